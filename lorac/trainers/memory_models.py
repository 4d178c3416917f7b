"""Which memory and time model answers for a profile: :func:`model_for`, shared by
``lorac vram`` and the memory rules (LRC401, LRC402), so both give the same peak, interval and
verdict.

A profile is judged for the trainer it targets: ``[profile] backend`` (kohya when unset), the
trainer ``lorac build`` and ``lorac run`` use without ``--backend``, with that trainer's plain
``[trainers.<trainer>]`` values in place (:func:`lorac.config.trainer_values.for_trainer`);
another trainer's table changes nothing. The models, by trainer and family (:func:`covered`):

- kohya sd-scripts: FLUX.1 (:mod:`lorac.trainers.kohya.vram`, calibrated), SDXL and SD3/SD3.5
  (:mod:`lorac.trainers.kohya.vram_families`);
- ai-toolkit: FLUX.1 and Wan 2.1 T2V, bf16 and the quantisation paths
  (:mod:`lorac.trainers.ai_toolkit.vram`);
- musubi-tuner: Wan 2.x and Qwen-Image (:mod:`lorac.trainers.musubi.vram`).

Every other trainer and family has no model: :func:`model_for` returns None, the rules say
nothing, and ``lorac vram`` says so (:func:`not_modelled`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: What :func:`covered` holds, for people.
SCOPE = ("kohya FLUX.1, SDXL and SD3/SD3.5, ai-toolkit FLUX.1 and Wan 2.1 T2V, musubi-tuner "
         "Wan 2.x and Qwen-Image")


@dataclass
class Model:
    """One trainer's and family's prediction for a profile, and how to plan fixes for it."""

    header: str
    est: Any
    plan: Callable[[float, float], list[Any]]
    constants: dict[str, float]
    # the trainer-neutral run (lorac.trainers.lora_memory.LoraRun) for time, or what makes it
    # when asked (lint never asks, so it never imports the time model)
    run_of: Any = None
    hash_checkpoint: bool = False  # sd-scripts hashes the base checkpoint at start-up
    trainer: str = "kohya"

    @property
    def run(self) -> Any:
        return self.run_of() if callable(self.run_of) else self.run_of

    @property
    def estimate_only(self) -> bool:
        """True when no measured run of this trainer and family informs the interval."""
        return bool(self.est.interval.estimate_only)


#: trainer (``[profile] backend``) -> where each of its models lists its families (module,
#: attribute), in the order they are asked: a kohya FLUX.1 profile, the common case, never
#: imports the SDXL/SD3 model (tests/test_lint_imports.py)
MODELS: dict[str, tuple[tuple[str, str], ...]] = {
    "kohya": (("lorac.trainers.kohya.vram", "FLUX_FAMILIES"),
              ("lorac.trainers.kohya.vram_families", "FAMILIES")),
    "ai-toolkit": (("lorac.trainers.ai_toolkit.vram", "FAMILIES"),),
    "musubi": (("lorac.trainers.musubi.vram", "CALIBRATED_BY"),),
}


def _families(trainer: str) -> Iterator[tuple[str, ...]]:
    """The family lists of ``trainer``'s models, each module imported when its turn comes."""
    from importlib import import_module

    for module, attribute in MODELS.get(trainer, ()):
        yield tuple(getattr(import_module(module), attribute))


def covered() -> dict[str, tuple[str, ...]]:
    """Trainer (``[profile] backend``) -> the families its memory model covers, as each
    trainer's model lists them."""
    return {t: tuple(f for fams in _families(t) for f in fams) for t in MODELS}


def covers(trainer: str, family: str | None) -> bool:
    """Whether ``trainer``'s memory model covers ``family``; imports only what answers it."""
    return family is not None and any(family in fams for fams in _families(trainer))


def not_modelled(trainer: str, family: str | None) -> str:
    """The one sentence ``lorac vram`` says for a trainer and family without a model."""
    return (f"the VRAM model does not cover {trainer} {family!r}: it is not modelled, and "
            f"LRC401/LRC402 say nothing about it; it covers {SCOPE}")


def model_for(profile: Any, family: str | None = None) -> Model | None:
    """The model of ``profile``'s trainer (``[profile] backend``) and family (``family``, else
    ``[profile] family``), with the trainer's ``[trainers.<trainer>]`` values in place; None
    where lorac has no model for them."""
    trainer = profile.backend
    family = family or profile.family
    if not covers(trainer, family):
        return None
    from lorac.config.trainer_values import for_trainer

    profile = for_trainer(profile, trainer)
    if trainer == "kohya":
        from lorac.trainers.kohya import vram

        if family in vram.FLUX_FAMILIES:
            return _kohya_flux(profile)
        from lorac.trainers.kohya import vram_families

        return _generic(vram_families.run_from_profile(profile), vram_families.estimate,
                        vram_families.calibration)
    if trainer == "musubi":
        from lorac.trainers.musubi import vram as mvram

        return _generic(mvram.run_from_profile(profile), mvram.estimate, mvram.calibration)
    from lorac.trainers.ai_toolkit import vram as avram

    return _generic(avram.run_from_profile(profile), lambda run: avram.estimate(run, family),
                    lambda arch: avram.calibration(arch, family))


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _kohya_flux(profile: Any) -> Model:
    from lorac.trainers.kohya import vram

    c = vram.config_from_profile(profile)
    k = vram.load_constants()
    head = (f"{c.family}, {c.width}x{c.height} batch {c.batch_size}, rank {c.rank}, "
            f"{c.optimizer}, fp8_base {_on(c.fp8_base)}, gradient checkpointing "
            f"{_on(c.gradient_checkpointing)}, blocks_to_swap {c.blocks_to_swap}, "
            f"{c.gpus} GPU(s)")
    tcost = step_cost(vram.time_run)
    return Model(head, vram.estimate(c, k),
                 lambda mib, m: vram.fixes(c, mib, k, margin=m, cost=tcost),
                 k.as_dict(), lambda: vram.time_run(c), True, "kohya")


def _generic(run: Any, estimate: Callable[[Any], Any], calibration: Any) -> Model:
    from lorac.trainers import lora_memory as lm

    est = estimate(run)
    k = calibration(run.family if run.trainer != "kohya" else
                    ("sd3" if run.family.startswith("sd3") else run.family))[0]
    frames = f" x {run.frames} frames" if run.frames > 1 else ""
    head = (f"{run.family} ({run.trainer}), {run.width}x{run.height}{frames} batch "
            f"{run.batch_size}, rank {run.rank}, {run.optimizer}, weights "
            f"{run.dit_bytes:g} B/param, gradient checkpointing "
            f"{_on(run.gradient_checkpointing)}"
            + (f", blocks_to_swap {run.blocks_to_swap}" if run.blocks_to_swap else "")
            + f", {run.gpus} GPU(s)")
    tcost = step_cost(lambda r: r)
    return Model(head, est, lambda mib, m: lm.fixes(run, mib, k, margin=m, cost=tcost),
                 k.as_dict(), run, run.trainer == "kohya", run.trainer)


def step_cost(to_run: Callable[[Any], Any]) -> Callable[[Any], float]:
    """Seconds per step on the reference card (the time model), for ranking fixes; the card
    table and time constants are read when a plan is first priced."""
    from functools import cache

    @cache
    def basis() -> tuple[Any, Any]:
        from lorac.trainers import steptime
        from lorac.trainers.kohya import vram

        return steptime.load_cards()[steptime.REFERENCE], vram.load_time_constants()

    def cost(cfg: Any) -> float:
        from lorac.trainers import steptime

        card, k = basis()
        return steptime.step_seconds(to_run(cfg), card, k)

    return cost
