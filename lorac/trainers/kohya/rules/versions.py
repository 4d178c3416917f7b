"""LRC623 — an option of another sd-scripts version than the one lint reads.

lorac ships the option inventories of several sd-scripts versions (``[[versions]]`` of
``backends/kohya/pin.toml``) and lints against the configured checkout's commit
(:mod:`lorac.config.kohya_version`). An option that this version's entry script lacks but
another shipped version's has is kept by ``read_config_from_file`` without being read (unknown
keys of ``--config_file`` are not errors: ``library/args.py:1193`` at 37a1cbbc builds the
namespace from every key), so the setting silently does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from lorac.core.diagnostics import Diagnostic
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule
from lorac.trainers.kohya.rules.options import family_script


def not_in_version(name: str, script: str) -> str | None:
    """When the active version's *script* lacks option *name* that a shipped version has:
    ``"is not accepted by sd-scripts 48d368fa; it exists from v0.11.1"``; else None."""
    from lorac.config import inventory
    from lorac.config.kohya_version import version_label

    inv = inventory.load_kohya_inventory(script)
    if name in inv:
        return None
    having = [v for v in inventory.option_versions(name, script) if v.commit != inv.commit]
    if not having:
        return None
    order = [v.commit for v in inventory.kohya_versions()]
    mine = order.index(inv.commit) if inv.commit in order else None
    names = [v.name for v in having]
    if mine is not None and all(order.index(v.commit) > mine for v in having):
        where = f"it exists from {names[0]}"
    else:
        where = f"it exists in {', '.join(names)}"
    return f"is not accepted by sd-scripts {version_label(inv.commit)}; {where}"


class OptionNotInVersion(Rule):
    """What it does
    Reports a trainer option that the profile's sd-scripts entry script does not have at the
    version lint reads (the configured checkout's commit, else lorac's default pin) although
    another version that lorac knows has it, and names that version.

    Why is this bad?
    sd-scripts reads a ``--config_file`` into a namespace and keeps keys no option declares
    without a word: on the older version the setting does nothing (``train_inpainting`` on
    48d368fa trains an ordinary LoRA).

    Example
        [training]
        train_inpainting = true   # with LORAC_SD_SCRIPTS at 48d368fa

    Use instead
    Update the sd-scripts checkout to a version that has the option, or remove it.

    Fix safety
    No fix: whether to upgrade the trainer or drop the option only a person knows.
    """

    code = "LRC623"
    name = "option-not-in-version"
    groups = ("kohya", "sd-scripts")

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        profile = ctx.profile
        if profile.backend != "kohya":
            return
        script = family_script(profile)
        if script is None:
            return
        for name, (_value, kp) in profile.options().items():
            message = not_in_version(name, script)
            if message is not None:
                yield self.at(profile, kp, f"--{name} {message}",
                              hint="update the sd-scripts checkout, or remove the option")


RULES = (OptionNotInVersion,)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The LRC623 version rule."""

    return [cls() for cls in RULES]
