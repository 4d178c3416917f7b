"""LRC8xx: repository hygiene — trainer configs nothing loads, training scripts that repeat one
another, profiles that are the same recipe twice, and scripts that hard-code a value that
should follow a variable.

The module also holds the project model the variable and documentation rules share
(:func:`model`): shell scans of every script and env file, the trainer invocations with their
options evaluated, and the trainer configuration files with whether anything loads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorac.config.document import read_lenient
from lorac.config.profile import display_path
from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProjectContext, Rule

if TYPE_CHECKING:
    from lorac.scan.shell import Invocation, ShellScan


def _sh() -> Any:
    """:mod:`lorac.scan.shell`, imported only when there are scripts or env files to read."""

    import lorac.scan.shell

    return lorac.scan.shell

_IGNORED_PROFILE_KEYS = {("profile", "description"), ("profile", "extends")}


@dataclass
class TrainerConfig:
    """A kohya ``--config_file`` TOML or an ai-toolkit YAML found in the linted tree."""

    path: str
    kind: str  # "kohya-toml" | "ai-toolkit-yaml"
    used_by: list[str] = field(default_factory=list)


@dataclass
class Script:
    """A shell script with a trainer invocation, its options evaluated."""

    path: str
    scan: ShellScan
    invocation: Invocation
    values: dict[str, str]  # variable values the script sees (env files it sources + its own)

    def value(self, option: str) -> tuple[str | bool | None, int, int]:
        """Evaluated value of ``option`` (True for a flag, None when unknown) and its place."""

        found = self.invocation.option(option)
        if found is None:
            return None, 0, 0
        if found.raw is None:
            return True, found.line, found.col
        return _sh().evaluate(found.raw, self.values), found.line, found.col


@dataclass
class Model:
    root: Path
    scans: dict[str, ShellScan]  # display path → scan, for shell and env files
    env_files: dict[str, ShellScan]
    scripts: list[Script]
    configs: list[TrainerConfig]
    texts: dict[str, str]


#: The kinds of file whose text :func:`texts` holds (the secrets rules scan the same set).
TEXT_KINDS = ("shell", "env", "profile", "toml", "yaml", "json")


def texts(project: ProjectContext) -> dict[str, str]:
    """Display path → text of every linted file of :data:`TEXT_KINDS`, read once per lint run
    (leniently: "" when unreadable or too big). Building it starts no shell scan."""

    return project.memo("lorac.hygiene.texts", lambda: {
        display_path(path): read_lenient(path)
        for kind in TEXT_KINDS for path in project.files.get(kind, [])})


def tree_root(project: ProjectContext) -> Path:
    """The deepest folder that holds every linted file (the repository being linted)."""

    import os

    folders = [str(p.parent.resolve()) for group in project.files.values() for p in group]
    if not folders:
        return project.root
    return Path(os.path.commonpath(folders))


def _kohya_option_types() -> dict[str, str]:
    from lorac.config.inventory import kohya_options

    return {name: option.type for name, option in kohya_options().items()}


_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str), "path": lambda v: isinstance(v, str),
}


def _looks_like_kohya_config(data: dict[str, Any]) -> bool:
    """At least three kohya options, most of them with values of the option's type (a table
    that merely *names* options, such as a key mapping, does not qualify)."""

    types = _kohya_option_types()
    pairs = [(k, v) for k, v in data.items() if not isinstance(v, dict)]
    pairs += [(k, v) for t in data.values() if isinstance(t, dict) for k, v in t.items()]
    known = [(k, v) for k, v in pairs if k in types]
    typed = [k for k, v in known if _TYPE_CHECKS.get(types[k], lambda _v: True)(v)]
    return len(typed) >= 3 and len(typed) * 2 > len(known)


def _trainer_config_kind(text: str, kind: str) -> str | None:
    if kind == "toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError):
            return None
        return "kohya-toml" if _looks_like_kohya_config(data) else None
    if kind == "yaml" and re.search(r"^\s*process\s*:", text, re.M) and re.search(
            r"^\s*-?\s*type\s*:\s*['\"]?(sd_trainer|ui_trainer|diffusion_trainer)", text, re.M):
        return "ai-toolkit-yaml"
    return None


def orphaned_kohya_configs(project: ProjectContext) -> list[str]:
    """Display paths of the kohya ``--config_file`` TOMLs nothing in the tree loads (what
    LRC801 reports), dataset configs left out: the lint driver lints their contents as it
    lints a TOML named on the command line."""

    import tomllib

    found = []
    m = model(project)
    for config in m.configs:
        if config.kind != "kohya-toml" or config.used_by:
            continue
        try:
            data = tomllib.loads(m.texts.get(config.path, ""))
        except (tomllib.TOMLDecodeError, RecursionError):
            continue
        if "datasets" not in data and "general" not in data:
            found.append(config.path)
    return found


def _repository_root(project: ProjectContext) -> Path:
    """Where the code that may load the linted files lives: the folder the linted paths share
    (``lorac lint .`` reads the whole repository; a file stands for its folder), else the
    tree of the linted files."""

    import os

    paths = project.cache.get("paths")
    if not paths:
        return tree_root(project)
    folders = [str(p if p.is_dir() else p.parent) for p in (Path(x).resolve() for x in paths)]
    return Path(os.path.commonpath(folders))


def references(project: ProjectContext) -> Any:
    """The Python code, compose files, Makefiles, Dockerfiles and CI workflows of the linted
    tree (:mod:`lorac.scan.references`), read once per lint run and recorded as inputs of
    the lint result cache."""

    def collect() -> Any:
        from lorac.lint.driver import SKIP_DIRS
        from lorac.scan.references import collect as read

        found = read(_repository_root(project), SKIP_DIRS, display_path)
        project.cache.setdefault("deps", set()).update(found.files)
        project.cache.setdefault("dep_dirs", set()).update(found.dirs)
        return found

    return project.memo("lorac.hygiene.references", collect)


def model(project: ProjectContext) -> Model:
    """Build (once per lint run) the project model shared by the LRC2xx/3xx/8xx rules."""

    return project.memo("lorac.hygiene.model", lambda: _model(project))


def _model(project: ProjectContext) -> Model:
    root = tree_root(project)
    scans: dict[str, ShellScan] = {}
    env_files: dict[str, ShellScan] = {}
    extra = project.settings.raw.get("env-files") or []
    env_paths = list(project.files.get("env", []))
    for name in extra if isinstance(extra, list) else []:
        candidate = Path(str(name))
        if candidate.is_file() and candidate not in env_paths:
            env_paths.append(candidate)
    for path in env_paths:
        shown = display_path(path)
        env_files[shown] = scans[shown] = _sh().scan_file(path, shown)
    for path in project.files.get("shell", []):
        shown = display_path(path)
        if shown not in scans:
            scans[shown] = _sh().scan_file(path, shown)
    scripts: list[Script] = []
    for shown, sc in scans.items():
        if shown in env_files or not sc.invocations:
            continue
        values = _sh().definitions([*_sh().sourced_env_files(sc, env_files), sc])
        scripts.append(Script(shown, sc, sc.invocations[0], values))
    read = texts(project)
    configs: list[TrainerConfig] = []
    for kind in ("toml", "yaml"):
        for path in project.files.get(kind, []):
            shown = display_path(path)
            ckind = _trainer_config_kind(read[shown], kind)
            if ckind is None:
                continue
            pattern = re.compile(r"(?<![\w.-])" + re.escape(path.name) + r"(?![\w-])")
            users = [other for other, text in read.items()
                     if other != shown and path.name in text and pattern.search(text)]
            if not users:  # code and build files: train.py, docker-compose.yaml, Makefile
                refs = references(project)
                users = [other for other, text in refs.texts.items()
                         if path.name in text and pattern.search(text)]
                users = users or refs.loads_by_folder(path, shown.rpartition("/")[0])
            configs.append(TrainerConfig(shown, ckind, users))
    return Model(root, scans, env_files, scripts, configs, read)


# --------------------------------------------------------------------------- rules


class UnusedTrainerConfig(Rule):
    """What it does
    Reports a trainer configuration file — a kohya ``--config_file`` TOML or an ai-toolkit
    YAML — that no script, env file, profile or other configuration file in the linted tree
    names, and that no Python code, compose file, Makefile, Dockerfile or CI workflow of the
    tree names or loads (a loader such as ``toml.load`` with the file's folder and suffix:
    ``Path("configs").glob("*.toml")``, ``f"configs/{preset}.toml"``).

    Why is this bad?
    A configuration nobody loads looks authoritative: people edit it, docs cite it, and the
    change has no effect because the real values are hard-coded in a script. The audited
    repository had ``configs/flux_fast.toml`` with alpha 32 while the script trained with
    alpha 1.

    Example
    ``configs/flux_fast.toml`` exists; ``grep -rn flux_fast.toml scripts/`` finds nothing.

    Use instead
    Load it (``--config_file configs/flux_fast.toml``), or turn it into a lorac profile
    (``lorac import``) and delete it.

    Fix safety
    No fix: whether to delete or wire the file is a decision.
    """

    code = "LRC801"
    name = "unused-trainer-config"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        for config in model(ctx).configs:
            if not config.used_by:
                yield self.in_file(
                    config.path, 1, 1,
                    f"{config.path} looks like a trainer configuration but nothing loads it: "
                    "no script, env file, profile, configuration, Python code, compose file, "
                    "Makefile or workflow names it",
                    hint="load it with --config_file, import it with `lorac import`, or "
                    "delete it")


class DuplicateTrainerInvocation(Rule):
    """What it does
    Reports training scripts that invoke the same trainer entry script with mostly the same
    options (at least 80% of the options of the smaller invocation share name and text).

    Why is this bad?
    Parallel copies of one command drift apart: a fix made in one script (alpha, a new
    option) is forgotten in the others. The audited repository had three.

    Example
    ``train_flux_fast.sh``, ``train_flux_final.sh`` and ``train_dashboard.sh`` each build
    the same ``accelerate launch flux_train_network.py`` command with 40 options.

    Use instead
    One profile per recipe (``profiles/fast.toml``, ``profiles/final.toml``) and one way to
    run them (``lorac run fast``).

    Fix safety
    No fix.
    """

    code = "LRC802"
    name = "duplicate-trainer-invocation"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        scripts = model(ctx).scripts
        for script in scripts:
            mine = {(o.name, o.raw) for o in script.invocation.options}
            twins = []
            for other in scripts:
                if other is script or other.invocation.trainer != script.invocation.trainer:
                    continue
                theirs = {(o.name, o.raw) for o in other.invocation.options}
                smaller = min(len(mine), len(theirs))
                if smaller >= 3 and len(mine & theirs) >= 0.8 * smaller:
                    twins.append(f"{other.path}:{other.invocation.line}")
            if twins:
                inv = script.invocation
                yield self.in_file(
                    script.path, inv.line, inv.col,
                    f"this {inv.trainer} invocation repeats the one in {', '.join(twins)}",
                    hint="keep one profile per recipe and one launcher (lorac run PROFILE)")


class IdenticalProfiles(Rule):
    """What it does
    Reports two profiles that resolve to the same settings (ignoring ``description`` and
    ``extends``).

    Why is this bad?
    Two names for one recipe: one of them is dead, or was meant to differ and does not.

    Example
    ``profiles/final.toml`` and ``profiles/final_v2.toml`` with the same values.

    Use instead
    Delete one, or make the difference explicit.

    Fix safety
    No fix.
    """

    code = "LRC803"
    name = "identical-profiles"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        seen: dict[str, Any] = {}
        for profile in sorted(ctx.profiles, key=lambda p: p.path):
            data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in profile.data.items()}
            if isinstance(data.get("profile"), dict):
                for _, key in _IGNORED_PROFILE_KEYS:
                    data["profile"].pop(key, None)
            key = repr(_canonical(data))
            if key in seen:
                yield self.in_file(profile.path, 1, 1,
                                   f"profile {profile.name} resolves to the same settings as "
                                   f"{seen[key].path}",
                                   hint="delete one of them or make the difference explicit")
            else:
                seen[key] = profile


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted((k, _canonical(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


class ScriptHardcodedAlpha(Rule):
    """What it does
    Reports a training script that passes ``--network_alpha`` as a literal while
    ``--network_dim`` follows a variable, when the two differ at the script's defaults.

    Why is this bad?
    kohya scales the LoRA update by alpha/dim. A hard-coded ``--network_alpha=1`` next to
    ``--network_dim=${RANK}`` trains at 1/32 of the intended strength at rank 32, and
    changing the rank silently changes the effective learning rate again.

    Example
        CMD="${CMD} --network_dim=${RANK}"
        CMD="${CMD} --network_alpha=1"

    Use instead
        CMD="${CMD} --network_alpha=${RANK}"

    Fix safety
    No fix: scripts are not rewritten; migrate them with ``lorac import``.
    """

    code = "LRC804"
    name = "script-hardcoded-alpha"
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        for script in model(ctx).scripts:
            dim = script.invocation.option("network_dim")
            alpha = script.invocation.option("network_alpha")
            if dim is None or alpha is None or alpha.raw is None or dim.raw is None:
                continue
            if "$" in alpha.raw or "$" not in dim.raw:
                continue
            dim_value = _number(_sh().evaluate(dim.raw, script.values))
            alpha_value = _number(alpha.raw)
            if dim_value is None or alpha_value is None or dim_value == alpha_value:
                continue
            yield self.in_file(
                script.path, alpha.line, alpha.col,
                f"network_alpha={alpha.raw} is hard-coded while network_dim={dim.raw} "
                f"({_fmt(dim_value)} here): updates are scaled by alpha/dim = "
                f"{_fmt(alpha_value)}/{_fmt(dim_value)}",
                hint=f"pass --network_alpha={dim.raw}")


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


RULES = (UnusedTrainerConfig, DuplicateTrainerInvocation, IdenticalProfiles, ScriptHardcodedAlpha)


@hookimpl
def lorac_rules() -> list[Rule]:
    return [cls() for cls in RULES]
