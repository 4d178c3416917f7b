"""``[trainers.kohya]`` checked against sd-scripts (LRC682)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule

TRAINER = "kohya"


class KohyaValueUnknown(Rule):
    """What it does
    Checks ``[trainers.kohya]``, the values a profile gives for sd-scripts only: each key must
    be an option of the entry script of the profile's family (any inventoried script when the
    family is unset), and the table has no sub-tables (sd-scripts has nothing but options).

    Why is this bad?
    sd-scripts keeps a ``--config_file`` key it does not know without reading it: the value
    the profile gives for kohya never reaches the run.

    Example
        [trainers.kohya]
        pretrained_model = "/models/flux1-dev.safetensors"

    Use instead
        [trainers.kohya]
        pretrained_model_name_or_path = "/models/flux1-dev.safetensors"

    Fix safety
    No fix: the closest name is a hint, not a certainty.
    """

    code = "LRC682"
    name = "kohya-value-unknown"
    severity = Severity.ERROR
    groups = ("kohya",)

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        from lorac.config import inventory
        from lorac.config.trainer_values import SECTION, trainer_table

        profile = ctx.profile
        script = inventory.family_script(profile.family)
        options = (inventory.load_kohya_inventory(script).options if script
                   else inventory.kohya_options())
        for key, value in trainer_table(profile, TRAINER).items():
            kp = (SECTION, TRAINER, key)
            if isinstance(value, dict):
                yield self.at(profile, kp, f"[trainers.kohya.{key}]: sd-scripts has no "
                              "sections of its own; kohya values are plain options",
                              hint="put the options in [trainers.kohya] itself")
            elif key not in options:
                close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.6)
                where = f"{script} (family {profile.family})" if script else "sd-scripts"
                yield self.at(profile, kp, f"{key} is not an option of {where}: a value for "
                              "kohya only is never used",
                              hint=f"did you mean {close[0]!r}?" if close else None)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The rule of ``[trainers.kohya]``."""

    return [KohyaValueUnknown()]
