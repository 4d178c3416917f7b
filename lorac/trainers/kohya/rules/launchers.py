"""LRC097–LRC098 — what a linted tree holds besides profiles, checked as if it were one.

``lorac lint .`` reads shell scripts for their variables (LRC2xx) and their trainer calls, and
reports the trainer configurations nothing loads (LRC801). These rules also read each training
call's options the way ``lorac import`` does and report what the trainer's ``argparse`` would
refuse (LRC097), and import each orphaned kohya ``--config_file`` into a profile in memory and
run the profile rules on it, reporting their findings at the lines of the TOML, each naming
the rule that found it (LRC098): a stale configuration is still read, copied and trusted by
whoever finds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from lorac.config.profile import display_path
from lorac.core.diagnostics import Diagnostic, LoracError, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, ProjectContext, Rule

#: import findings that are the trainer's own argument errors: a bad or missing value, an
#: option the script does not have (argparse stops with "unrecognized arguments")
ARGUMENT_CODES = ("LRC091", "LRC093")


class LauncherOptionError(Rule):
    """What it does
    Reads every training command of the shell scripts in the linted tree (``accelerate
    launch … train_network.py``, ``python … flux_train_network.py``, musubi-tuner's
    scripts) the way ``lorac import`` does, and reports the options the trainer's argument
    parser refuses: an option the script does not have (``lorac import``'s LRC093), a value
    it cannot convert or a flag that takes one and got none (LRC091).

    Why is this bad?
    argparse stops the run with "unrecognized arguments" or "expected one argument" — after
    the environment was set up, often on a rented GPU. A misspelt ``--men_eff_attn`` or a
    ``--save_every_n_epoch`` left without its number is invisible in review.

    Example
        accelerate launch train_network.py --men_eff_attn --save_every_n_epoch --lowram

    Use instead
        accelerate launch train_network.py --mem_eff_attn --save_every_n_epochs 1 --lowram

    Fix safety
    No fix.
    """

    code = "LRC097"
    name = "launcher-option-error"
    severity = Severity.ERROR
    scope = "project"
    groups = ("import",)

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        shells = ctx.files.get("shell", [])
        if not shells:
            return  # (the importers are imported only where a script is linted)
        from lorac import importers

        for path in shells:
            shown = display_path(path)
            try:
                source = importers.read_source(path)
                if not _launches_training(source.text):
                    continue
                kind = importers.detect(source)
                if kind not in ("shell", "musubi"):
                    continue
                draft = importers.read(source, kind, importers.Settings(keep_env=True))
            except LoracError:
                continue  # no training command lorac can read: nothing to check
            seen: set[tuple[int, str]] = set()
            for diag in draft.diagnostics:
                if (diag.code not in ARGUMENT_CODES or diag.severity < Severity.WARNING
                        or diag.path != source.display or (diag.line, diag.message) in seen):
                    continue
                seen.add((diag.line, diag.message))
                yield self.in_file(shown, diag.line or 1, 1,
                                   f"{diag.message} (the trainer's argument parser refuses "
                                   f"it; `lorac import` reports it as {diag.code})",
                                   hint=diag.hint)


def _launches_training(text: str) -> bool:
    return "_train_network.py" in text or "train_network.py" in text \
        or "musubi_tuner" in text


class OrphanedConfigContents(Rule):
    """What it does
    For each kohya ``--config_file`` TOML that nothing in the linted tree loads (the files
    LRC801 reports), imports it into a profile in memory — its family inferred as ``lorac
    import`` infers it — runs the profile rules on that profile, and reports their findings
    at the lines of the TOML, each naming the rule that found it (``LRC105
    network-module-wrong-family``), with what the import itself finds (options the entry
    script does not have, values it refuses). Its severity is that of the finding relayed.

    Why is this bad?
    A configuration nobody loads is still the one people open, copy into the next run or
    cite in an issue. A stale FLUX TOML with ``network_module = "networks.lora"`` trains the
    wrong thing the day someone passes it; linting the folder should say so, not only
    linting the file alone.

    Example
        # configs/flux_old.toml, loaded by no script
        pretrained_model_name_or_path = "/models/flux1-dev.safetensors"
        network_module = "networks.lora"

    Use instead
        network_module = "networks.lora_flux"   # or delete the file

    Fix safety
    No fix here (the findings' own fixes apply to profiles; import the file to use them).
    """

    code = "LRC098"
    name = "orphaned-config-contents"
    severity = Severity.WARNING
    scope = "project"
    groups = ("hygiene",)
    #: finding codes left out: the dataset rules read folders the file's options may not name
    #: relative to the tree, and the schema rules judge the profile lorac wrote, not the TOML
    SKIP = ("LRC5", "LRC00")

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        from lorac.lint.rules import hygiene

        orphans = hygiene.orphaned_kohya_configs(ctx)
        if not orphans:
            return
        from lorac import importers
        from lorac.config.profile import resolve
        from lorac.lint.plugins import get_plugins

        by_shown = {display_path(p): p for p in ctx.files.get("toml", [])}
        rules = [r for r in get_plugins().rules.values() if r.scope == "profile"
                 and ctx.settings.enabled(r.code) and not r.code.startswith(self.SKIP)]
        for shown in orphans:
            path = by_shown.get(shown)
            if path is None:
                continue
            try:
                source = importers.read_source(path)
                draft = importers.read(source, "kohya-toml", importers.Settings())
                text = importers.render(draft, schema_header=False)
            except LoracError:
                continue
            seen: set[tuple[str, int, str]] = set()
            for diag in draft.diagnostics:
                if diag.severity >= Severity.WARNING and diag.path == source.display:
                    seen.add((diag.code, diag.line, diag.message))
                    yield self._relayed(diag, shown, diag.line or 1)
            lines = {name: value.line for name, value in draft.options.items()}
            import tempfile  # only for an orphaned config: most lints never get here

            with tempfile.TemporaryDirectory(prefix="lorac-orphan-") as tmp:
                profile_path = Path(tmp) / "profiles" / f"{path.stem}.toml"
                profile_path.parent.mkdir()
                profile_path.write_text(text, encoding="utf-8")
                res = resolve(profile_path, env=ctx.env)
                if res.profile is None:
                    continue
                sub = ProjectContext(root=ctx.root, settings=ctx.settings,
                                     files={"profile": [profile_path]},
                                     resolutions={str(profile_path): res}, env=ctx.env)
                found: list[Diagnostic] = []
                for rule in rules:
                    try:
                        found += list(rule.check(ProfileContext(res.profile, sub)))
                    except LoracError:
                        continue
            for diag in found:
                name = diag.key_path[1] if len(diag.key_path) > 1 else ""
                line = lines.get(str(name)) or 1
                if (diag.code, line, diag.message) in seen:
                    continue
                seen.add((diag.code, line, diag.message))
                yield self._relayed(diag, shown, line)

    def _relayed(self, diag: Diagnostic, path: str, line: int) -> Diagnostic:
        """``diag`` (found on the file as a profile) as this rule's finding at ``line``."""

        return dataclasses.replace(
            diag, code=self.code, rule=self.name, path=path, line=line, col=1, fix=(),
            key_path=(), message=f"{diag.message} ({diag.code} {diag.rule}, on this file "
            "imported as a profile)")


RULES = (LauncherOptionError, OrphanedConfigContents)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The options of training launchers."""

    return [cls() for cls in RULES]
