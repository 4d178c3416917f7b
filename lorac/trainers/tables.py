"""Rules of the ``[trainers]`` table that hold for every trainer (LRC681, LRC683); each
trainer checks its own table's keys (``lorac/trainers/<trainer>/rules/tables.py``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule


class TrainerValueSameAsShared(Rule):
    """What it does
    Finds an option in ``[trainers.<trainer>]`` whose value is the same as the shared value it
    replaces.

    Why is this bad?
    One value, one place: the copy looks like a difference between trainers that is not
    there, and the next change to the shared value leaves it behind.

    Example
        [optimizer]
        learning_rate = 1e-4

        [trainers.ai-toolkit]
        learning_rate = 1e-4

    Use instead
        [optimizer]
        learning_rate = 1e-4

    Fix safety
    No fix.
    """

    code = "LRC681"
    name = "trainer-value-same-as-shared"
    severity = Severity.WARNING

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        from lorac.config.trainer_values import SECTION, overrides

        profile = ctx.profile
        tables = profile.get(SECTION)
        if not isinstance(tables, dict):
            return
        shared = profile.options()
        for trainer in tables:
            for key, value in overrides(profile, trainer).items():
                if key in shared and shared[key][0] == value:
                    yield self.at(profile, (SECTION, trainer, key),
                                  f"{key} is the same as the shared value at "
                                  f"{profile.where(shared[key][1])}: keep it in one place",
                                  hint=f"remove it from [trainers.{trainer}]")


class UnknownTrainer(Rule):
    """What it does
    Checks that every table of ``[trainers]`` is named after a trainer lorac builds for
    (``lorac backends`` lists them).

    Why is this bad?
    No backend reads ``[trainers.ai_toolkit]`` (the backend is ``ai-toolkit``): its values
    are never used, and the trainer gets the shared ones instead.

    Example
        [trainers.ai_toolkit]
        pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"

    Use instead
        [trainers.ai-toolkit]
        pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"

    Fix safety
    No fix.
    """

    code = "LRC683"
    name = "unknown-trainer"
    severity = Severity.ERROR

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        from lorac.config.trainer_values import SECTION
        from lorac.lint.plugins import get_plugins

        profile = ctx.profile
        tables = profile.get(SECTION)
        if not isinstance(tables, dict):
            return
        # the trainers are the installed backends: the lint run's plugins know them (those
        # of trainers no profile names included, without loading them)
        plugins = ctx.project.plugins
        known = ctx.project.memo("lorac.trainers.tables.known",
                                 lambda: plugins.backend_names if plugins is not None
                                 else sorted(get_plugins().backends))
        for trainer in tables:
            if trainer in known:
                continue
            close = difflib.get_close_matches(trainer, known, n=1, cutoff=0.5)
            yield self.at(profile, (SECTION, trainer),
                          f"no trainer is called {trainer!r} (known: {', '.join(known)}): "
                          "its values are never used",
                          hint=f"did you mean [trainers.{close[0]}]?" if close else None)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The rules every ``[trainers.<trainer>]`` table follows."""

    return [TrainerValueSameAsShared(), UnknownTrainer()]
