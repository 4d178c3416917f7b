"""Settings from ``[tool.lorac]`` in pyproject.toml or from ``lorac.toml``.

Looked up from the current directory upwards; the first file that has lorac settings wins::

    [tool.lorac]            # (in lorac.toml: top level, or [lorac])
    select = ["LRC"]        # code prefixes to enable (default: all)
    ignore = ["LRC804"]     # code prefixes to disable
    fail-on = "error"       # info | warning | error
    profiles = "profiles"   # where profile names are looked up
    sd-scripts = "../sd-scripts"
    [tool.lorac.severity]
    LRC101 = "warning"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorac.config.inventory import read_toml
from lorac.core.diagnostics import LoracError, Severity


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ("LRC",)
    ignore: tuple[str, ...] = ()
    severity: dict[str, Severity] = field(default_factory=dict)
    fail_on: Severity = Severity.ERROR
    profiles: Path = Path("profiles")
    sd_scripts: Path | None = None
    ai_toolkit: Path | None = None
    musubi_tuner: Path | None = None
    source: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def enabled(self, code: str) -> bool:
        def best(prefixes: tuple[str, ...]) -> int:
            return max((len(p) for p in prefixes if code.startswith(p)), default=-1)

        return best(self.select) > best(self.ignore)

    def severity_of(self, code: str, default: Severity) -> Severity:
        return self.severity.get(code, default)


def find_settings_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    for folder in [start, *start.parents]:
        lorac_toml = folder / "lorac.toml"
        if lorac_toml.is_file():
            data = _load(lorac_toml)
            return lorac_toml, data.get("lorac", data)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            data = _load(pyproject)
            section = data.get("tool", {}).get("lorac")
            if section is not None:
                return pyproject, section
    return None


def _load(path: Path) -> dict[str, Any]:
    try:
        return read_toml(path)
    except Exception as exc:
        raise LoracError(f"{path}: cannot read settings: {exc}") from None


def load_settings(start: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    start = (start or Path.cwd()).resolve()
    found = find_settings_file(start)
    # one spelling for every top-level key: ``fail_on`` is ``fail-on`` (the dashed one wins)
    raw: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in (found[1] if found else {}).items():
        dashed = key.replace("_", "-")
        if dashed not in raw or key == dashed:
            raw[dashed], spelled[dashed] = value, key
    raw.update({k: v for k, v in (overrides or {}).items() if v not in (None, ())})
    source = str(found[0]) if found else None
    base = found[0].parent if found else start

    def strings(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = raw.get(key, default)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise LoracError(f"{source or 'settings'}: {key} must be a list of code prefixes")
        return tuple(v.strip().upper() for v in value)

    severity = {}
    for code, level in (raw.get("severity") or {}).items():
        severity[code.upper()] = Severity.parse(str(level))
    known = {"select", "ignore", "severity", "fail-on", "profiles", "sd-scripts", "ai-toolkit",
             "musubi-tuner", "extend-select", "dataset", "vram", "env-files"}
    unknown = sorted(spelled.get(k, k) for k in set(raw) - known)
    if unknown:
        raise LoracError(f"{source}: unknown lorac setting(s): {', '.join(unknown)}")

    def path(key: str) -> Path | None:
        value = raw.get(key)
        return (base / value) if isinstance(value, str) else None

    select = strings("select", ("LRC",)) + strings("extend-select", ())
    return Settings(
        select=select,
        ignore=strings("ignore", ()),
        severity=severity,
        fail_on=Severity.parse(str(raw.get("fail-on", "error"))),
        profiles=path("profiles") or base / "profiles",
        sd_scripts=path("sd-scripts"),
        ai_toolkit=path("ai-toolkit"),
        musubi_tuner=path("musubi-tuner"),
        source=source,
        raw=raw,
    )
