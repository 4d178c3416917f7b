"""The lint result cache: an unchanged tree is not re-parsed or re-validated.

A cache entry is keyed by the working directory and the command line. It records everything
the result depended on — the content hash (and size, mtime) of every file read, the listing
time of every folder walked, the values of the environment variables the profiles referenced,
the settings file, lorac's own code and data, and the installed distributions (plugins come
from entry points). Dataset files (images, captions) are compared by size and modification
time only, so that a cache check never re-reads a dataset. :func:`fast_lint` runs before click,
pluggy or tomlkit are imported: on a hit it prints the stored report and returns the stored exit
code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from lorac.core.digest import sha256

CACHE_DIR = ".lorac_cache"
VERSION = 1
#: Variables that choose the trainer version lint reads (lorac.config.kohya_version).
VERSION_ENV = ["LORAC_SD_SCRIPTS", "LORAC_INVENTORY_DIR"]


def _sha(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return sha256(fh.read()).hexdigest()
    except (OSError, ValueError):
        return None


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_size, st.st_mtime_ns)


def _code_files() -> list[tuple[str, os.stat_result]]:
    """Every file of the lorac package (each of its folders but ``__pycache__``) and of the
    backend data beside it (``backends/`` in a source tree; ``_backends`` is in the package)."""

    package = Path(__file__).parent.parent
    found: list[tuple[str, os.stat_result]] = []
    folders = [str(root) for root in (package, package.parent / "backends") if root.is_dir()]
    while folders:
        for entry in sorted(os.scandir(folders.pop()), key=lambda e: e.name):
            if entry.is_dir():
                if entry.name != "__pycache__":
                    folders.append(entry.path)
            elif entry.is_file():
                found.append((entry.path, entry.stat()))
    return found


def _code_fingerprint() -> str:
    """lorac's own files and data, and the installed distributions (for plugins)."""

    h = sha256()
    for path, st in _code_files():
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns};".encode())
    for entry in sys.path:  # every folder plugins can come from (see find_entry_points)
        try:
            names = sorted(n for n in os.listdir(entry or ".")
                           if n.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
        h.update(f"{entry}:{';'.join(names)};".encode())
    return h.hexdigest()


def _key(argv: list[str]) -> str:
    raw = json.dumps([os.getcwd(), argv, sys.executable])
    return sha256(raw.encode()).hexdigest()[:24]


def _entry_path(argv: list[str]) -> Path:
    return Path(CACHE_DIR) / f"lint-{_key(argv)}.json"


FORMATS = ("text", "json", "sarif", "github")


def parse_lint_argv(args: list[str]) -> tuple[tuple[str, ...], str, bool] | None:
    """(paths, format, dataset) for ``lint [PATHS] [--format F] [--no-dataset]``, or None when
    the command line has anything else (click then parses it)."""

    paths: list[str] = []
    fmt, dataset = "text", True
    it = iter(args)
    for arg in it:
        if arg == "--no-dataset":
            dataset = False
        elif arg in ("-f", "--format") or arg.startswith("--format="):
            value = arg.split("=", 1)[1] if "=" in arg else next(it, None)
            if value not in FORMATS:
                return None
            fmt = value
        elif arg.startswith("-"):
            return None
        else:
            paths.append(arg)
    return tuple(paths), fmt, dataset


def _normalise(argv: list[str]) -> list[str] | None:
    """The lint argv in canonical form, or None when it has options the cache does not know."""

    parsed = parse_lint_argv(argv)
    if parsed is None:
        return None
    paths, fmt, dataset = parsed
    return ["--format", fmt, *([] if dataset else ["--no-dataset"]), "--", *paths]


def store(argv: list[str], paths: list[str], report: Any, text: str, code: int) -> None:
    """Record a finished lint run (called by :func:`lorac.lint.command.lint`); ``argv`` is the
    command line after ``lint``."""

    from lorac.core.diagnostics import summary

    norm = _normalise(argv)
    if norm is None or os.environ.get("LORAC_NO_CACHE"):
        return
    try:
        files = set(report.read)
        for folder in (Path.cwd(), *Path.cwd().parents):  # the settings files, found or not
            for name in ("pyproject.toml", "lorac.toml"):
                files.add(str(folder / name))
        dirs = set(report.dirs)
        for group in report.files.values():
            for p in group:
                dirs.add(str(Path(p).parent))
        dirs |= {str(Path(p)) for p in paths if Path(p).is_dir()}
        env_names = sorted({r.name for res in report.resolutions.values() if res.profile
                            for r in res.profile.references if r.kind == "env"})
        deps = {}
        for f in sorted(files):
            deps[f] = [_stat(f), _sha(f)]
        for f in sorted(report.stat_deps - files):
            deps[f] = [_stat(f), None]  # images: size and mtime only, never re-read
        entry = {
            "version": VERSION,
            "code": _code_fingerprint(),
            "deps": deps,
            "dirs": {d: _stat(d) for d in sorted(dirs)},
            "env": {n: os.environ.get(n) for n in env_names + [*VERSION_ENV, "NO_COLOR"]},
            "stdout": text,
            "stderr": summary(report.diagnostics),
            "exit": code,
        }
        path = _entry_path(norm)
        path.parent.mkdir(exist_ok=True)
        ignore = path.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass  # a read-only tree (or an unusable path) simply has no cache


def fast_lint(argv: list[str]) -> int | None:
    """Print a cached lint result for ``argv`` (after ``lint``) and return its exit code, or
    return None when there is no valid entry."""

    norm = _normalise(argv)
    if norm is None or os.environ.get("LORAC_NO_CACHE"):
        return None
    try:
        with open(_entry_path(norm), encoding="utf-8") as fh:
            entry = json.load(fh)
    except (OSError, ValueError):
        return None
    if entry.get("version") != VERSION:
        return None
    for name, value in entry["env"].items():
        if os.environ.get(name) != value:
            return None
    for d, st in entry["dirs"].items():
        now = _stat(d)
        if now is None or st is None or now[1] != st[1]:
            return None
    for f, (st, sha) in entry["deps"].items():
        now = _stat(f)
        if (now is None) != (st is None):
            return None
        if now is not None and tuple(now) != tuple(st) and (sha is None or _sha(f) != sha):
            return None
    if entry["code"] != _code_fingerprint():
        return None
    sys.stdout.write(entry["stdout"])
    if norm[1] == "text":
        sys.stderr.write(entry["stderr"])
    return int(entry["exit"])
