"""The lint stage: discover files, resolve and validate profiles, run the rules.

:func:`lint` is the one public function. It takes paths and settings and returns a
:class:`LintReport`; rendering and exit codes belong to the caller.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorac.config.profile import Profile, Resolution, display_path, load_cached, resolve
from lorac.core.diagnostics import (
    Diagnostic,
    ExitCode,
    KeyPath,
    LoracError,
    Severity,
    exit_code_for,
    sort_diagnostics,
)

if TYPE_CHECKING:
    from lorac.config.settings import Settings
    from lorac.lint.plugins import Plugins

SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox",
             ".mypy_cache", ".ruff_cache", ".pytest_cache", ".lorac_cache", ".hypothesis",
             "build", "dist", "runs", "site-packages"}
MAX_FILES = 20000
_PROFILE_HINT = re.compile(r"^\s*\[profile\]|^#:schema\s+\S*profile\.schema\.json", re.M)
_KINDS = {
    ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".md": "markdown",
    ".markdown": "markdown", ".sh": "shell", ".bash": "shell", ".env": "env",
    ".safetensors": "lora",
}


@dataclass
class LintReport:
    diagnostics: list[Diagnostic]
    files: dict[str, list[Path]]
    resolutions: dict[str, Resolution] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)  # every file whose content the result depends on
    dirs: set[str] = field(default_factory=set)  # every folder whose listing it depends on
    stat_deps: set[str] = field(default_factory=set)  # large inputs (images): size + mtime only

    def exit_code(self, fail_on: Severity) -> ExitCode:
        return exit_code_for(self.diagnostics, fail_on)


def classify(path: Path, *, explicit: bool = False, in_profiles: bool = False) -> str | None:
    name = path.name
    if name == ".env" or name.endswith(".env") or name in ("env.sh", ".envrc"):
        return "env"
    kind = _KINDS.get(path.suffix.lower())
    if kind == "toml":
        if explicit or in_profiles or path.parent.name == "profiles":
            return "profile"
        if name in ("pyproject.toml", "lorac.toml", "Cargo.toml"):
            return None
        return "profile" if _has_profile_table(path) else "toml"
    return kind


def _has_profile_table(path: Path) -> bool:
    """A TOML file outside ``profiles/`` is a profile when it has a top-level ``[profile]``
    table (or a ``#:schema`` header naming lorac's profile schema)."""

    if _special(path):
        return False
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:1048576]
    except (OSError, ValueError):
        return False
    if not _PROFILE_HINT.search(text):
        return False
    if re.match(r"#:schema\s+\S*profile\.schema\.json", text):
        return True
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the hint is all we have
        return True
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return False
    return isinstance(data.get("profile"), dict)


def _special(path: Path) -> bool:
    """True for a FIFO, socket or device: reading one could block forever."""

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False  # missing or a dangling link: the reader reports it
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def discover(paths: Iterable[Path]) -> dict[str, list[Path]]:
    """Files under ``paths`` by kind; a path that does not exist is a usage error.

    FIFOs, sockets and devices that would be linted are listed under ``"special"``: nothing
    reads them, :func:`lint` reports each as unreadable.
    """

    found: dict[str, list[Path]] = {}
    count = 0

    def add(kind: str | None, path: Path) -> None:
        nonlocal count
        if kind is None:
            return
        if _special(path):
            kind = "special"
        count += 1
        if count > MAX_FILES:
            raise LoracError(f"more than {MAX_FILES} files under the linted paths; "
                             "lint a narrower folder")
        found.setdefault(kind, []).append(path)

    for root in paths:
        if not root.exists() and not root.is_symlink():
            raise LoracError(f"{root}: no such file or directory")
        if root.is_file() or (root.is_symlink() and not root.is_dir()):
            add(classify(root, explicit=root.suffix == ".toml"), root)
            continue
        in_profiles = root.name == "profiles"
        seen_dirs: set[tuple[int, int]] = set()
        for folder, dirs, names in os.walk(root, followlinks=False):
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen_dirs:
                dirs[:] = []
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            for name in sorted(names):
                path = Path(folder) / name
                add(classify(path, in_profiles=in_profiles and Path(folder) == root), path)
    return {k: sorted(set(v)) for k, v in found.items()}


def _failed_references(profile: Profile) -> set[KeyPath]:
    return {r.key_path for r in profile.references if not r.resolved}


def _duplicate_options(profile: Profile) -> list[Diagnostic]:
    seen: dict[str, str] = {}
    out = []
    for section, table in profile.option_sections():
        for key in table:
            if key in seen:
                first = profile.where((seen[key], key))
                out.append(profile.diagnostic(
                    "LRC007", f"{key} is set in [{seen[key]}] ({first.location()}) and again in "
                    f"[{section}]; kohya keeps only one of them", (section, key),
                    rule="duplicate-option"))
            else:
                seen[key] = section
    return out


def _run_env_names(profile: Profile) -> list[Diagnostic]:
    """LRC209 for each ``[run.env]`` name the shell, the launcher or lorac owns, or no
    environment can carry (:func:`lorac.core.envnames.problem`)."""

    from lorac.core.envnames import problem

    env = profile.get("run", "env")
    if not isinstance(env, dict):
        return []  # the schema reports it
    out = []
    for name in env:
        why = problem(name)
        if why is not None:
            out.append(profile.diagnostic("LRC209", why[0], ("run", "env", name),
                                          rule="forbidden-run-env-name", hint=why[1]))
    return out


def _unparseable(paths: list[Path], doc_cache: dict) -> list[Diagnostic]:
    """Other TOML files in the linted tree (trainer configs, dataset configs) that do not load:
    a broken config is reported even though it is not a profile."""

    loaded = (load_cached(path, doc_cache) for path in paths)
    return [d for d in loaded if isinstance(d, Diagnostic)]


def check_profile(resolution: Resolution) -> list[Diagnostic]:
    """Resolution findings plus schema validation (what ``build`` also needs)."""

    diags = list(resolution.diagnostics)
    profile = resolution.profile
    if profile is not None:
        from lorac.config.validate import validate

        diags += validate(profile, skip=_failed_references(profile))
        diags += _duplicate_options(profile)
        diags += _run_env_names(profile)
    return diags


def profile_path(name: str, settings: Settings | None = None) -> Path:
    """The file of profile ``name`` (under ``settings.profiles``), or a :class:`LoracError`."""
    from lorac.config.profile import find_profile
    from lorac.config.settings import load_settings

    settings = settings if settings is not None else load_settings(Path.cwd())
    path = find_profile(name, settings.profiles)
    if not path.exists():
        raise LoracError(f"no profile {name!r} (looked for {path})")
    return path


def load_profile(name: str, settings: Settings | None = None) -> Profile:
    """Profile ``name`` resolved, or a :class:`LoracError` naming the first error that stops it
    resolving. Validation runs only on that failure."""

    res = resolve(profile_path(name, settings))
    if res.profile is None:
        errors = [d for d in check_profile(res) if d.severity >= Severity.ERROR]
        first = errors[0] if errors else None
        why = f": {first.path}:{first.line}: {first.message}" if first else ""
        raise LoracError(f"profile {name!r} cannot be resolved{why}")
    return res.profile


def resolve_named(name: str) -> tuple[Resolution, list[Diagnostic]]:
    """Profile ``name`` resolved, with its resolution and validation findings, sorted."""

    res = resolve(profile_path(name))
    return res, sort_diagnostics(check_profile(res))


def lint(paths: list[Path], settings: Settings, plugins: Plugins, *,
         env: Mapping[str, str] | None = None, options: dict[str, Any] | None = None,
         ) -> LintReport:
    from lorac.lint.rules import ProfileContext, ProjectContext

    env = dict(os.environ if env is None else env)
    files = discover(paths)
    if not any(files.values()):
        shown = ", ".join(str(p) for p in paths)
        raise LoracError(f"no profiles or configuration files found in {shown}")
    doc_cache: dict = {}
    chains: dict = {}  # files merged over their ancestors: each merged once per run
    resolutions: dict[str, Resolution] = {}
    diags: list[Diagnostic] = []
    for path in files.get("special", []):
        diags.append(Diagnostic("LRC003", "cannot read file: not a regular file",
                                display_path(path), severity=Severity.ERROR,
                                rule="unreadable-file"))
    for path in files.get("profile", []):
        res = resolve(path, env=env, cache=doc_cache, chains=chains)
        resolutions[display_path(path)] = res
        diags += check_profile(res)
    diags += _unparseable(files.get("toml", []), doc_cache)

    named: set[str] = set()  # the trainers the profiles name: their rules are needed
    for res in resolutions.values():
        if res.profile is not None:
            tables = res.profile.get("trainers")
            named |= {res.profile.backend, *(tables if isinstance(tables, dict) else ())}
    plugins.load_trainers(named)
    project = ProjectContext(root=Path.cwd(), settings=settings, files=files,
                             resolutions=resolutions, env=env, cache={"documents": doc_cache},
                             plugins=plugins)
    project.cache["options"] = options or {}
    project.cache["paths"] = list(paths)  # where rules look for code that names the files
    for rule in plugins.rules.values():
        if rule.scope == "pipeline" or not settings.enabled(rule.code):
            continue
        if rule.code.startswith("LRC5") and not (options or {}).get("dataset", True):
            continue
        try:
            if rule.scope == "project":
                diags += list(rule.check(project))
            else:
                for profile in project.profiles:
                    diags += list(rule.check(ProfileContext(profile, project)))
        except LoracError:
            raise
        except Exception as exc:
            raise LoracError(f"rule {rule.code} ({rule.name}) failed: "
                             f"{exc.__class__.__name__}: {exc}", ExitCode.INTERNAL) from exc

    diags = _drop_superseded(diags)
    enabled = {code: settings.enabled(code) for code in {d.code for d in diags}}
    diags = [d for d in diags if enabled[d.code]]
    diags = [d if (severity := settings.severity_of(d.code, d.severity)) == d.severity
             else d.with_severity(severity) for d in diags]
    diags = apply_suppressions(diags, doc_cache, settings)
    read = {p for res in resolutions.values() for p in res.files}
    read |= {display_path(p) for kind, group in files.items()
             if kind not in ("special", "lora") for p in group}
    stat_deps = {str(p) for p in project.cache.get("deps", ())}
    dirs = {str(p) for p in project.cache.get("dep_dirs", ())}
    return LintReport(sort_diagnostics(diags), files, resolutions, read, dirs, stat_deps)


#: Trainer-option findings that say more than a schema violation at the same key.
_SPECIFIC = ("LRC602", "LRC603", "LRC604", "LRC605")


def _drop_superseded(diags: list[Diagnostic]) -> list[Diagnostic]:
    """Drop an LRC005 where an inventory rule reports the same key with its reason and fix."""

    specific = {(d.path, d.key_path) for d in diags if d.code in _SPECIFIC}
    return [d for d in diags if not (d.code == "LRC005" and (d.path, d.key_path) in specific)]


def _file_suppressions(path: str, doc_cache: dict) -> dict[int, set[str]]:
    from lorac.config.document import Document, read_lenient, suppressed_codes, suppressions

    try:
        doc = doc_cache.get(Path(os.path.realpath(path)))  # the key resolve() gives its files
    except ValueError:  # a NUL byte in the name
        return {}
    if isinstance(doc, Document):
        return suppressions(doc)
    out: dict[int, set[str]] = {}
    if not os.path.isfile(path):
        return out
    for number, line in enumerate(read_lenient(path).splitlines(), 1):
        if "#" in line or "<!--" in line:
            codes = suppressed_codes(line)
            if codes is not None:
                out[number] = codes
    return out


def apply_suppressions(diags: list[Diagnostic], doc_cache: dict,
                       settings: Settings) -> list[Diagnostic]:
    """Drop findings silenced by ``# lorac: ignore[CODE]`` on their line; report unused ones."""

    by_file: dict[str, dict[int, set[str]]] = {}
    paths = {d.path for d in diags} | {
        doc.path for doc in doc_cache.values() if hasattr(doc, "locator")}
    for path in paths:
        sup = _file_suppressions(path, doc_cache)
        if sup:
            by_file[path] = sup
    used: set[tuple[str, int, str]] = set()
    kept = []
    for d in diags:
        codes = by_file.get(d.path, {}).get(d.line, set())
        if d.code in codes:
            used.add((d.path, d.line, d.code))
        else:
            kept.append(d)
    if settings.enabled("LRC006"):
        for path, lines in by_file.items():
            for line, codes in lines.items():
                for code in sorted(codes):
                    if (path, line, code) not in used:
                        kept.append(Diagnostic(
                            "LRC006", f"suppression of {code} is unused", path, line, 1,
                            severity=settings.severity_of("LRC006", Severity.WARNING),
                            rule="unused-suppression"))
    return kept
