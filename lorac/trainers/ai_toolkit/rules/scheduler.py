"""LRC690 — learning-rate scheduler parameters ai-toolkit's scheduler rejects at start-up.

``toolkit/scheduler.py`` (pinned in ``backends/ai-toolkit/pin.toml``) passes
``train.lr_scheduler_params`` as keyword arguments to a torch or diffusers scheduler, after
``jobs/process/BaseSDTrainProcess.py:2231-2241`` added ``total_iters`` (the step count) unless
``max_iterations`` is there. A keyword the scheduler does not take is a ``TypeError`` once the
models are loaded.
"""

from __future__ import annotations

from collections.abc import Iterable

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, KeyPath, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import Rule
from lorac.trainers.ai_toolkit.rules.traps import _native, _Trap

#: scheduler → (the keywords its class takes, ai-toolkit's renaming of ``total_iters``,
#: toolkit/scheduler.py line); the torch signatures of CosineAnnealingLR,
#: CosineAnnealingWarmRestarts, StepLR, ConstantLR, LinearLR and diffusers'
#: get_constant_schedule_with_warmup
SCHEDULERS: dict[str, tuple[frozenset[str], str | None, str]] = {
    "cosine": (frozenset({"T_max", "eta_min", "last_epoch"}), "T_max", "11-16"),
    "cosine_with_restarts": (frozenset({"T_0", "T_mult", "eta_min", "last_epoch"}), "T_0",
                             "17-22"),
    "step": (frozenset({"step_size", "gamma", "last_epoch"}), None, "23-27"),
    "constant": (frozenset({"factor", "total_iters", "last_epoch"}), None, "28-32"),
    "linear": (frozenset({"start_factor", "end_factor", "total_iters", "last_epoch"}), None,
               "33-37"),
    "constant_with_warmup": (frozenset({"num_warmup_steps", "last_epoch"}), None, "38-44"),
}
REQUIRED = {"step": ("step_size",)}


class SchedulerParamsRejected(_Trap):
    """What it does
    Works out the keyword arguments ai-toolkit gives its learning-rate scheduler — the
    ``lr_scheduler_params`` of ``[trainers.ai-toolkit.train]``, ``num_warmup_steps`` from
    ``lr_warmup_steps``, and the ``total_iters`` ai-toolkit adds itself — and reports those the
    chosen scheduler does not take, a required one that is missing, and a scheduler name
    ``toolkit/scheduler.py`` cannot build.

    Why is this bad?
    ``toolkit/scheduler.py:11-54`` hands them to ``CosineAnnealingLR``,
    ``CosineAnnealingWarmRestarts``, ``StepLR``, ``ConstantLR``, ``LinearLR`` or
    ``get_constant_schedule_with_warmup`` as they are: an unknown keyword (``num_warmup_steps``
    on ``cosine``) is a ``TypeError`` at start-up, after minutes of model loading. ``step``
    always gets ``total_iters``, which ``StepLR`` does not take, and any other name goes to
    diffusers with ``total_iters`` too and ends in "Scheduler must be cosine, …".

    Example
        [optimizer]
        lr_scheduler = "cosine"
        lr_warmup_steps = 100

    Use instead
        [optimizer]
        lr_scheduler = "constant_with_warmup"
        lr_warmup_steps = 100

    Fix safety
    No fix.
    """

    code = "LRC690"
    name = "ai-toolkit-scheduler-params-rejected"
    severity = Severity.ERROR

    def trap(self, profile: Profile, view: Profile) -> Iterable[Diagnostic]:
        native_name, name_kp = _native(view, "train", "lr_scheduler")
        found = view.options().get("lr_scheduler")
        if isinstance(native_name, str):
            name = native_name
        elif found is not None and isinstance(found[0], str):
            name, name_kp = found
        else:
            name, name_kp = "constant", ("optimizer", "lr_scheduler")  # config_modules default
        raw, params_kp = _native(view, "train", "lr_scheduler_params")
        params: dict[str, KeyPath] = {}
        if isinstance(raw, dict):
            params = {str(k): (*params_kp, str(k)) for k in raw}
        warmup = view.options().get("lr_warmup_steps")
        if warmup is not None and isinstance(warmup[0], int) and not isinstance(warmup[0], bool):
            params.setdefault("num_warmup_steps", warmup[1])
        added = "max_iterations" not in params
        if name not in SCHEDULERS:
            yield self.at(view, name_kp, f"lr_scheduler {name!r} is none of "
                          f"{', '.join(SCHEDULERS)}: ai-toolkit tries diffusers with "
                          "total_iters and stops with 'Scheduler must be cosine, …' "
                          "(toolkit/scheduler.py:45-54, jobs/process/BaseSDTrainProcess.py:2234)",
                          hint="use one of " + ", ".join(SCHEDULERS))
            return
        accepted, renamed, lines = SCHEDULERS[name]
        given = dict(params)
        if added:
            given.setdefault("total_iters", params_kp)
        if renamed and "total_iters" in given:
            given[renamed] = given.pop("total_iters")
        if name == "constant_with_warmup":
            given.pop("total_iters", None)  # deleted there (a KeyError when it is missing)
            if not added:
                yield self.at(view, params["max_iterations"], "max_iterations keeps "
                              "ai-toolkit from adding total_iters, which constant_with_warmup "
                              "then deletes: KeyError at start-up (toolkit/scheduler.py:43)",
                              hint="remove max_iterations")
                return
        for key, kp in sorted(given.items()):
            if key in accepted:
                continue
            what = ("ai-toolkit adds it itself (jobs/process/BaseSDTrainProcess.py:2234-2235)"
                    if key == "total_iters" and kp == params_kp and "total_iters" not in params
                    else "")
            yield self.at(view, kp if kp != params_kp or key in params else name_kp,
                          f"lr_scheduler {name!r} does not take {key!r}: TypeError at "
                          f"start-up (toolkit/scheduler.py:{lines}; it takes "
                          f"{', '.join(sorted(accepted))}){'; ' + what if what else ''}",
                          hint=_hint(name, key))
        for key in REQUIRED.get(name, ()):
            if key not in given:
                yield self.at(view, params_kp if isinstance(raw, dict) else name_kp,
                              f"lr_scheduler {name!r} needs {key!r} in lr_scheduler_params: "
                              f"TypeError at start-up (toolkit/scheduler.py:{lines})")


def _hint(name: str, key: str) -> str:
    if key == "num_warmup_steps":
        return "use lr_scheduler = \"constant_with_warmup\", or drop lr_warmup_steps"
    if name == "step":
        return "ai-toolkit's step scheduler cannot start; use cosine or linear"
    return f"remove {key}"


RULES = (SchedulerParamsRejected,)


@hookimpl
def lorac_rules() -> list[Rule]:
    """ai-toolkit's scheduler parameters."""

    return [cls() for cls in RULES]
