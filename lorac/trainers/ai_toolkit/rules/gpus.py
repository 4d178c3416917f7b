"""LRC691: several GPUs asked of ai-toolkit, which trains on one at the pinned commit.

The rule applies to profiles whose backend is ai-toolkit; the emitter reports the same finding
whenever it compiles for ai-toolkit (``lorac build``, ``--backend ai-toolkit``;
:func:`several_gpus_finding`), so neither ``lorac run`` nor a built ``train.sh`` starts a
one-GPU run where the profile asked for several.
"""

from __future__ import annotations

from collections.abc import Iterable

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule

TRAINER = "ai-toolkit"


def processes(profile: Profile) -> int:
    """``gpus × num_machines`` of ``[run]`` (1 for anything that is not a positive count: the
    schema reports those)."""

    total = 1
    for key in ("gpus", "num_machines"):
        value = profile.get("run", key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            total *= value
    return total


class AiToolkitSeveralGpus(Rule):
    """What it does
    Reports ``[run] gpus`` above 1, or ``num_machines`` above 1, in a profile that trains with
    ai-toolkit.

    Why is this bad?
    ai-toolkit at the pinned commit has no data-parallel training. ``run.py`` starts one
    process, and its training process takes the device of accelerate's default state
    (``jobs/process/BaseSDTrainProcess.py:105``), so ``device: cuda:1`` in the job changes
    nothing. Launched as several processes, each one would train its own copy: the data loader
    is never handed to accelerate (``jobs/process/BaseSDTrainProcess.py:777``, commented out),
    so every process reads the whole dataset, and the LoRA layers run by replacing the model's
    own ``forward`` (``toolkit/lora_special.py:134``), so the forward of the wrapped network,
    where DistributedDataParallel arms its gradient exchange, is never called. The GPUs would
    not share the work; the main process alone saves its LoRA. A run with ``gpus = 2`` would
    be a one-GPU run that looks like two.

    Example
        [profile]
        backend = "ai-toolkit"
        [run]
        gpus = 2

    Use instead
    ``gpus = 1`` (pick the card with ``CUDA_VISIBLE_DEVICES``), or the kohya or musubi
    backend, which train on several GPUs through ``accelerate launch``.

    Fix safety
    No fix.
    """

    code = "LRC691"
    name = "ai-toolkit-several-gpus"
    severity = Severity.ERROR
    groups = ("ai-toolkit",)

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        if ctx.profile.backend != TRAINER:
            return ()
        found = several_gpus_finding(ctx.profile)
        return () if found is None else (found,)


def several_gpus_finding(profile: Profile) -> Diagnostic | None:
    """The LRC691 finding of ``profile`` built for ai-toolkit, or None for one process."""

    total = processes(profile)
    if total <= 1:
        return None
    gpus = profile.get("run", "gpus")
    key = "gpus" if isinstance(gpus, int) and not isinstance(gpus, bool) and gpus > 1 \
        else "num_machines"
    rule = AiToolkitSeveralGpus()
    return rule.at(profile, ("run", key),
                   f"[run] asks for {total} GPU processes; ai-toolkit trains on one GPU (no "
                   "data-parallel training at the pinned commit: jobs/process/"
                   "BaseSDTrainProcess.py:777, toolkit/lora_special.py:134)",
                   hint="set gpus = 1 and num_machines = 1, or train with the kohya or musubi "
                        "backend")


RULES = (AiToolkitSeveralGpus,)


@hookimpl
def lorac_rules() -> list[Rule]:
    """ai-toolkit's one-GPU limit."""

    return [cls() for cls in RULES]
