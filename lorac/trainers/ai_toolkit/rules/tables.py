"""``[trainers.ai-toolkit]`` checked against ai-toolkit (LRC680, LRC684)."""

from __future__ import annotations

from collections.abc import Iterable

from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule


class _TableRule(Rule):
    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        from lorac.config.inventory import load_backend_toml
        from lorac.trainers.ai_toolkit.tables import problems

        profile = ctx.profile
        if not isinstance(profile.get("trainers", "ai-toolkit"), dict):
            return
        for problem in problems(profile, load_backend_toml("ai-toolkit/mapping.toml")):
            if problem.code == self.code:
                yield self.at(profile, problem.key_path, problem.message, hint=problem.hint)


class AiToolkitValueUnknown(_TableRule):
    """What it does
    Checks ``[trainers.ai-toolkit]``, the values a profile gives for ai-toolkit only: each
    plain key must be a profile option ai-toolkit has an equivalent for
    (``backends/ai-toolkit/mapping.toml``), each key of a sub-table (``model``, ``train``,
    ``network``, ``save``, ``sample``, ``datasets``, ``process``) one that ai-toolkit's config
    class for that section reads (``toolkit/config_modules.py``), and ``model.arch`` an arch
    ai-toolkit has.

    Why is this bad?
    ai-toolkit ignores keys it does not read, and an arch it does not know falls back to the
    Stable Diffusion 1.x model silently (``toolkit/util/get_model.py:50``): the value the
    profile gives for ai-toolkit never reaches it.

    Example
        [trainers.ai-toolkit.model]
        arch = "qwen_imag"
        quantise_te = true

    Use instead
        [trainers.ai-toolkit.model]
        arch = "qwen_image"
        quantize_te = true

    Fix safety
    No fix: the closest name is a hint, not a certainty.
    """

    code = "LRC680"
    name = "ai-toolkit-value-unknown"
    severity = Severity.ERROR
    groups = ("ai-toolkit",)


class AiToolkitValueTwice(_TableRule):
    """What it does
    Finds an ai-toolkit key in a sub-table of ``[trainers.ai-toolkit]``
    (``[trainers.ai-toolkit.train] lr``) that a profile option already writes
    (``learning_rate``, per ``backends/ai-toolkit/mapping.toml``).

    Why is this bad?
    One value, one place: two copies drift apart, and which one ai-toolkit gets is not
    obvious from reading the profile.

    Example
        [optimizer]
        learning_rate = 1e-4

        [trainers.ai-toolkit.train]
        lr = 2e-4

    Use instead
        [trainers.ai-toolkit]
        learning_rate = 2e-4

    Fix safety
    No fix: which copy is meant only a person knows.
    """

    code = "LRC684"
    name = "ai-toolkit-value-twice"
    severity = Severity.ERROR
    groups = ("ai-toolkit",)


RULES = (AiToolkitValueUnknown, AiToolkitValueTwice)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The rules of ``[trainers.ai-toolkit]``."""

    return [cls() for cls in RULES]
