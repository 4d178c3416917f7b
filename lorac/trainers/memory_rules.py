"""LRC401–LRC499 — memory: does the profile fit the card(s) its ``[profile] gpu`` names?

The numbers come from the model ``lorac vram`` uses (:mod:`lorac.trainers.memory_models`) for
the trainer the profile targets (``[profile] backend``) and its family: kohya sd-scripts FLUX.1
(calibrated on measured runs), SDXL and SD3/SD3.5 (calibrated); ai-toolkit FLUX.1 (bf16 and
quantised, calibrated) and Wan 2.1; musubi-tuner Wan 2.x (Wan 2.1 T2V 1.3B calibrated) and
Qwen-Image (calibrated). Where no measured run of the trainer and family calibrates the model,
or the predicted peak rests on a constant no measured run tested, the finding says it is a
first-principles estimate, with its wide interval; a trainer and family without a model get no
finding. A base profile is
judged through the profiles that extend it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule
from lorac.lint.rules.network import is_base

#: Card sizes LRC402 offers, smallest first.
LADDER = ("8GB", "10GB", "12GB", "16GB", "24GB", "32GB", "40GB", "48GB", "80GB")
#: What a finding adds where no measured run of the trainer and family informs the interval.
ESTIMATE = "first-principles estimate"


def _model(ctx: ProfileContext) -> tuple[Any, list[tuple[str, float, tuple]]] | None:
    """``(model, targets)`` for the profile, the model built once per lint run; None when
    ``[profile] gpu`` names no known card, the profile is a base, or lorac has no model for
    its trainer and family."""

    p = ctx.profile
    if not p.gpus or not p.family:
        return None  # the common case: nothing to judge, so no model is even imported
    from lorac.trainers import memory_models

    if not memory_models.covers(p.backend, p.family) or is_base(p, ctx.project):
        return None
    targets = _targets(ctx)
    if not targets:
        return None
    model = ctx.project.memo(("lorac.memory.model", p.path),
                             lambda: memory_models.model_for(p))
    return (model, targets) if model is not None else None


def _targets(ctx: ProfileContext) -> list[tuple[str, float, tuple]]:
    from lorac.trainers.kohya import vram

    p = ctx.profile
    raw = p.get("profile", "gpu")
    out = []
    for i, name in enumerate(p.gpus):
        mib = vram.card_mib(name)
        if mib is not None:
            kp = ("profile", "gpu") if isinstance(raw, str) else ("profile", "gpu", i)
            out.append((name, mib, kp))
    return out


def _basis(model: Any) -> str:
    """``; first-principles estimate`` where the interval is not a measured one."""
    return f"; {ESTIMATE}" if model.estimate_only else ""


class DoesNotFitGpu(Rule):
    """What it does
    Reports a profile that does not fit, or is tight on, a card named in ``[profile] gpu``,
    judged by the memory model ``lorac vram`` uses for the trainer the profile targets
    (``[profile] backend``, with its ``[trainers.<trainer>]`` values) and its family: kohya
    sd-scripts FLUX.1, SDXL and SD3/SD3.5, ai-toolkit FLUX.1 and Wan 2.1 T2V, musubi-tuner
    Wan 2.x and Qwen-Image. The verdict is ``does not fit`` (an error) when even the bottom of the
    prediction's error interval exceeds the card, ``tight`` (a warning) when the interval
    straddles the card's memory. The interval comes from the model's measured error for the
    trainer and family (leave-one-out residuals of its calibration runs); where no run was
    measured, or the predicted peak's phase rests on a constant that no left-out run tested, it
    is a wide first-principles interval and the finding says ``first-principles estimate``. A
    trainer and family without a model get no finding. The finding names the
    phase that overflows (latent caching, text-encoder caching, the resident model, the
    training step, sampling, saving) and the cheapest changes that fit, from ``lorac vram``'s
    fix plan: among fp8 base, cached text-encoder outputs, cached latents, gradient
    checkpointing, an 8-bit optimizer and the smallest ``blocks_to_swap``, the one with the
    smallest predicted cost in seconds per step first (the larger memory saving among equally
    cheap ones), then batch size and resolution.

    Why is this bad?
    An out-of-memory error ends the run after a minute or more of start-up, or, worse, in the
    first sampling step hours later. The model is calibrated on measured H100 runs where
    they exist (``docs/vram.md`` gives its accuracy per trainer and family).

    Example
        [profile]
        gpu = "24GB"
        [training]
        fp8_base = false

    Use instead
        [training]
        fp8_base = true

    Fix safety
    No fix: every change trades speed or quality; ``lorac vram PROFILE`` lists them with
    their predicted peaks.
    """

    code = "LRC401"
    name = "does-not-fit-gpu"
    groups = ("memory",)

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        found = _model(ctx)
        if found is None:
            return

        model, targets = found
        est = model.est
        lo, hi = est.bounds
        for name, mib, kp in targets:
            word = est.verdict(mib)
            if word == "fits":
                continue
            plan = model.plan(mib, est.interval.high)
            if plan and plan[-1].peak_mib * est.interval.high <= mib:
                hint = "cheapest fix: " + ", ".join(f.change for f in plan) + \
                    f" (predicted peak {plan[-1].peak_mib:,.0f} MiB); see lorac vram"
            else:
                hint = "no change the model knows makes it fit; see lorac vram"
            d = self.at(ctx.profile, kp,
                        f"predicted peak {est.peak_mib:,.0f} MiB (expected {lo:,.0f} .. "
                        f"{hi:,.0f}{_basis(model)}) in phase {est.peak_phase}: {word} {name} "
                        f"({mib:,.0f} MiB)",
                        hint=hint, peak_mib=round(est.peak_mib, 1), phase=est.peak_phase,
                        card=name, verdict=word, low_mib=round(lo, 1), high_mib=round(hi, 1),
                        trainer=model.trainer, estimate=model.estimate_only)
            yield d if word != "tight" else replace(d, severity=Severity.WARNING)


class FitsMuchSmallerGpu(Rule):
    """What it does
    Reports a profile that targets a card (``[profile] gpu``) while the VRAM model's verdict is
    ``fits`` (the top of the prediction's error interval included) for a card of half that
    memory or less, naming the smallest such card. The model and interval are LRC401's: the
    one ``lorac vram`` uses for the profile's trainer and family, labelled a first-principles
    estimate where no run was measured; nothing is reported where lorac has no model.

    Why is this bad?
    The target says where the recipe can run; a profile that asks for an 80 GB card while
    fitting 24 GB keeps people off the cheaper hardware, or hides settings (a large rank, a
    large batch) meant for the bigger card that were never applied.

    Example
        [profile]
        gpu = "80GB"    # the recipe peaks at 18 GB

    Use instead
        [profile]
        gpu = "24GB"

    Fix safety
    No fix: the target is a statement about intent.
    """

    code = "LRC402"
    name = "fits-much-smaller-gpu"
    severity = Severity.INFO
    groups = ("memory",)

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        found = _model(ctx)
        if found is None:
            return
        from lorac.trainers.kohya import vram

        model, targets = found
        est = model.est
        name, mib, kp = min(targets, key=lambda t: t[1])
        if est.verdict(mib) != "fits":
            return
        for small in LADDER:
            small_mib = vram.card_mib(small) or 0
            if small_mib * 2 <= mib * 1.01 and est.verdict(small_mib) == "fits":
                yield self.at(ctx.profile, kp,
                              f"targets {name} but the predicted peak {est.peak_mib:,.0f} MiB "
                              f"(expected up to {est.bounds[1]:,.0f}{_basis(model)}) fits a "
                              f"{small} card ({small_mib:,.0f} MiB)",
                              hint=f"gpu = \"{small}\", or use what the larger card allows",
                              peak_mib=round(est.peak_mib, 1), card=small, verdict="fits",
                              trainer=model.trainer, estimate=model.estimate_only)
                return


RULES = (DoesNotFitGpu, FitsMuchSmallerGpu)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The LRC4xx memory rules."""

    return [cls() for cls in RULES]
