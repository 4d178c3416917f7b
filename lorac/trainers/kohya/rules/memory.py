"""LRC401–LRC499 — memory: does the profile fit the card(s) its ``[profile] gpu`` names?

The numbers come from the VRAM model (:mod:`lorac.trainers.kohya.vram`: first-principles sizes
plus constants fitted to measured runs, ``backends/kohya/vram_measurements.json``). The rules
judge profiles built for the kohya backend of FLUX.1 (calibrated), SDXL and SD3/SD3.5 (a
first-principles estimate until measured runs calibrate it, with its wide interval); a base
profile is judged through the profiles that extend it.
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


def _estimate(ctx: ProfileContext) -> tuple[Any, Any, list[tuple[str, float, tuple]]] | None:
    """``(config, estimate, targets)`` for the profile, the estimate computed once per lint
    run; None when the model does not apply or ``[profile] gpu`` names no known card."""

    p = ctx.profile
    if not p.gpus or p.backend != "kohya":
        return None  # the common case: nothing to judge, so vram is not even imported
    from lorac.trainers.kohya import vram

    flux = p.family in vram.FLUX_FAMILIES
    if not flux:  # the SDXL/SD3 model (and lora_memory) is imported only for those families
        from lorac.trainers.kohya import vram_families

        if p.family not in vram_families.FAMILIES:
            return None
    if is_base(p, ctx.project):
        return None
    targets = _targets(ctx)
    if not targets:
        return None

    def price() -> tuple[Any, Any]:
        if not flux:
            from lorac.trainers.kohya import vram_families

            run = vram_families.run_from_profile(p)
            return run, vram_families.estimate(run)
        cfg = vram.config_from_profile(p)
        return cfg, vram.estimate(cfg)

    cfg, est = ctx.project.memo(("lorac.memory.estimate", p.path), price)
    return cfg, est, targets


def _plan(cfg: Any, mib: float, margin: float) -> list[Any]:
    """The fix plan for ``cfg`` (a FLUX.1 RunConfig or an SDXL/SD3 LoraRun), ranked by the
    predicted seconds per step on the reference card (lorac.trainers.steptime)."""
    from lorac.trainers import lora_memory, steptime
    from lorac.trainers.kohya import vram, vram_families

    card = steptime.load_cards()[steptime.REFERENCE]
    k = vram.load_time_constants()
    if isinstance(cfg, lora_memory.LoraRun):
        consts = vram_families.calibration(
            "sd3" if cfg.family.startswith("sd3") else cfg.family)[0]
        return lora_memory.fixes(cfg, mib, consts, margin=margin,
                                 cost=lambda r: steptime.step_seconds(r, card, k))
    return vram.fixes(cfg, mib, margin=margin,
                      cost=lambda c: steptime.step_seconds(vram.time_run(c), card, k))


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


class DoesNotFitGpu(Rule):
    """What it does
    Reports a profile that does not fit, or is tight on, a card named in ``[profile] gpu``:
    the verdict is ``does not fit`` (an error) when even the bottom of the prediction's error
    interval exceeds the card, ``tight`` (a warning) when the interval straddles the card's
    memory. The interval comes from the model's measured error for the trainer and family
    (leave-one-out residuals of its calibration runs; a wide first-principles interval where
    none was measured). The finding names the phase that overflows (latent caching,
    text-encoder caching, the resident model, the training step, sampling, saving) and the
    cheapest changes that fit, from ``lorac vram``'s fix plan: among fp8 base, cached
    text-encoder outputs, cached latents, gradient checkpointing, an 8-bit optimizer and the
    smallest ``blocks_to_swap``, the one with the smallest predicted cost in seconds per step
    first (the larger memory saving among equally cheap ones), then batch size and resolution.

    Why is this bad?
    An out-of-memory error ends the run after a minute or more of start-up, or, worse, in the
    first sampling step hours later. The model is calibrated on measured H100 runs
    (``docs/vram.md`` gives its accuracy).

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
        found = _estimate(ctx)
        if found is None:
            return

        cfg, est, targets = found
        lo, hi = est.bounds
        for name, mib, kp in targets:
            word = est.verdict(mib)
            if word == "fits":
                continue
            plan = _plan(cfg, mib, est.interval.high)
            if plan and plan[-1].peak_mib * est.interval.high <= mib:
                hint = "cheapest fix: " + ", ".join(f.change for f in plan) + \
                    f" (predicted peak {plan[-1].peak_mib:,.0f} MiB); see lorac vram"
            else:
                hint = "no change the model knows makes it fit; see lorac vram"
            d = self.at(ctx.profile, kp,
                        f"predicted peak {est.peak_mib:,.0f} MiB (expected {lo:,.0f} .. "
                        f"{hi:,.0f}) in phase {est.peak_phase}: {word} {name} "
                        f"({mib:,.0f} MiB)",
                        hint=hint, peak_mib=round(est.peak_mib, 1), phase=est.peak_phase,
                        card=name, verdict=word, low_mib=round(lo, 1), high_mib=round(hi, 1))
            yield d if word != "tight" else replace(d, severity=Severity.WARNING)


class FitsMuchSmallerGpu(Rule):
    """What it does
    Reports a profile that targets a card (``[profile] gpu``) while the VRAM model's verdict is
    ``fits`` (the top of the prediction's error interval included) for a card of half that
    memory or less, naming the smallest such card.

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
        found = _estimate(ctx)
        if found is None:
            return
        from lorac.trainers.kohya import vram

        _, est, targets = found
        name, mib, kp = min(targets, key=lambda t: t[1])
        if est.verdict(mib) != "fits":
            return
        for small in LADDER:
            small_mib = vram.card_mib(small) or 0
            if small_mib * 2 <= mib * 1.01 and est.verdict(small_mib) == "fits":
                yield self.at(ctx.profile, kp,
                              f"targets {name} but the predicted peak {est.peak_mib:,.0f} MiB "
                              f"(expected up to {est.bounds[1]:,.0f}) fits a {small} card "
                              f"({small_mib:,.0f} MiB)",
                              hint=f"gpu = \"{small}\", or use what the larger card allows",
                              peak_mib=round(est.peak_mib, 1), card=small)
                return


RULES = (DoesNotFitGpu, FitsMuchSmallerGpu)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The LRC4xx memory rules."""

    return [cls() for cls in RULES]
