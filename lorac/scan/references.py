"""Where a repository refers to files and environment variables outside its shell scripts and
profiles: Python code, compose files, Makefiles, Dockerfiles, CI workflows.

The hygiene and variable rules ask this module before they say that nothing loads a trainer
config (LRC801) or reads an env-file variable (LRC206): a TOML that ``train.py`` opens, or a
variable that ``docker-compose.yaml`` passes to its service, is used. Nothing is executed;
the files are read as text, with patterns for the usual ways each kind names a variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILES = 5000
MAX_BYTES = 1024 * 1024

_MAKE_NAMES = {"makefile", "gnumakefile", "justfile"}
_COMPOSE = re.compile(r"^(docker-)?compose([.-][\w.-]+)?\.ya?ml$", re.I)

# Python: os.environ["X"], os.environ.get("X"), environ.setdefault("X"), os.getenv("X")
_PY_ENV = re.compile(r"""(?:environ(?:\.(?:get|setdefault|pop))?\s*[\[(]\s*|getenv\s*\(\s*)"""
                     r"""['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")
# ${X}, ${X:-d}, $X (shell-like text: compose, Dockerfile, workflow run lines)
_DOLLAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)")
# make's $(X) and ${X}
_MAKE_VAR = re.compile(r"\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}:]")
# GitHub Actions: ${{ env.X }}, ${{ secrets.X }}, ${{ vars.X }}
_ACTIONS = re.compile(r"\$\{\{\s*(?:env|secrets|vars)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# a compose `environment:` entry passed through from the host: "- X" (no value)
_PASS_THROUGH = re.compile(r"^\s*-\s*['\"]?([A-Z_][A-Z0-9_]*)['\"]?\s*$", re.M)
# Dockerfile ARG X / ENV X
_DOCKER_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)

#: Calls that read a TOML or YAML file in Python.
LOADERS = re.compile(r"\b(toml|tomllib|tomli|tomlkit|yaml|OmegaConf|rtoml)\s*\.\s*"
                     r"(load|loads|safe_load|parse|full_load)\b")


@dataclass
class References:
    """What :func:`collect` found: file texts by kind, and the variables each reads."""

    texts: dict[str, str] = field(default_factory=dict)  # display path → text
    kinds: dict[str, str] = field(default_factory=dict)  # display path → kind
    variables: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)  # what was read (for the lint cache)
    dirs: list[Path] = field(default_factory=list)  # what was listed
    _by_folder: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)

    def loads_by_folder(self, config: Path, shown_parent: str) -> list[str]:
        """Python files that load TOML/YAML files of ``config``'s folder without naming the
        file: the folder as a string (``Path("configs")``, ``"configs/"``) with a pattern of
        the suffix (``"*.toml"``, ``f"{name}.toml"``), or one templated path
        (``f"configs/{preset}.toml"``, ``"configs/*.toml"``). A path naming another file of
        the folder does not count."""

        folder = config.parent.name or Path(shown_parent).name
        if not folder:
            return []
        key = (folder, config.suffix)
        if key not in self._by_folder:
            f, ext = re.escape(folder), re.escape(config.suffix)
            whole = re.compile(r"""['"](?:[^'"\n]*/)?""" + f + r"""/?['"]""")
            pattern = re.compile(r"""['"](?:[^'"\n]*[*}])?""" + ext + r"""['"]""")
            templated = re.compile(r"""['"](?:[^'"\n]*/)?""" + f + r"""/[^'"\n/]*[*}]"""
                                   r"""[^'"\n/]*""" + ext + r"""['"]""")
            self._by_folder[key] = [
                path for path, text in self.texts.items()
                if self.kinds[path] == "python" and LOADERS.search(text) and (
                    templated.search(text) or (whole.search(text) and pattern.search(text)))]
        return self._by_folder[key]


def kind_of(path: Path) -> str | None:
    """``python`` / ``make`` / ``docker`` / ``compose`` / ``workflow`` for a file that may refer
    to configs and variables, else None."""

    name = path.name
    low = name.lower()
    if low.endswith(".py"):
        return "python"
    if low in _MAKE_NAMES or low.endswith(".mk"):
        return "make"
    if low == "dockerfile" or low.startswith("dockerfile.") or low.endswith(".dockerfile"):
        return "docker"
    if _COMPOSE.match(name):
        return "compose"
    if low.endswith((".yml", ".yaml")) and (
            (path.parent.name == "workflows" and path.parent.parent.name == ".github")
            or low == ".gitlab-ci.yml"):
        return "workflow"
    return None


def collect(root: Path, skip_dirs: Iterable[str], display) -> References:
    """Read every referring file under ``root`` (at most :data:`MAX_FILES` of at most
    :data:`MAX_BYTES` each; folders in ``skip_dirs`` are not entered). ``display`` turns a
    path into the name findings show."""

    refs = References()
    skip = set(skip_dirs) - {".github"}
    count = 0
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in skip and (
            not d.startswith(".") or d == ".github"))
        refs.dirs.append(Path(folder))
        for name in sorted(names):
            path = Path(folder) / name
            kind = kind_of(path)
            if kind is None:
                continue
            count += 1
            if count > MAX_FILES:
                return refs
            try:
                if not path.is_file() or path.stat().st_size > MAX_BYTES:
                    continue
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            shown = display(path)
            refs.texts[shown] = text
            refs.kinds[shown] = kind
            refs.files.append(path)
            for var, line in _variables(text, kind):
                refs.variables.setdefault(var, []).append((shown, line))
    return refs


def _variables(text: str, kind: str) -> list[tuple[str, int]]:
    patterns = {
        "python": (_PY_ENV,),
        "make": (_MAKE_VAR, _DOLLAR),
        "docker": (_DOLLAR, _DOCKER_ARG),
        "compose": (_DOLLAR, _PASS_THROUGH),
        "workflow": (_ACTIONS, _DOLLAR),
    }[kind]
    out: list[tuple[str, int]] = []
    for pattern in patterns:
        for m in pattern.finditer(text):
            name = next(g for g in m.groups() if g)
            out.append((name, text.count("\n", 0, m.start()) + 1))
    return out
