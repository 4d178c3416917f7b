"""Diagnostics: the one finding type, its renderers, exit codes and the user-facing error.

Every stage of lorac reports problems as :class:`Diagnostic` values. A diagnostic knows where
it is (``path:line:col`` and the key path inside the profile), what rule produced it, and how
severe it is. Renderers turn a sorted list of them into text, JSON, SARIF 2.1.0 or GitHub
workflow annotations.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lorac import secrets as _secrets  # (only the standard library: no import cycle)

KeyPath = tuple[str | int, ...]


class ExitCode(enum.IntEnum):
    """The process exit codes of every lorac command."""

    OK = 0
    FINDINGS = 1
    USAGE = 2
    INTERNAL = 3
    INTERRUPTED = 130


class Severity(enum.IntEnum):
    """How bad a finding is; ordered so that ``>=`` compares with a fail level."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise LoracError(f"unknown severity {text!r} (expected one of: {names})") from None

    def __str__(self) -> str:
        return self.name.lower()


class LoracError(Exception):
    """The one user-facing error: bad input or usage. Printed as one line; exit code 2."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Edit:
    """A fix expressed as a replacement of ``value`` at ``key_path`` in ``path``.

    ``value`` of :data:`DELETE` removes the key. Fixes are applied by :mod:`lorac.fix`
    on the tomlkit document, so comments and layout survive. ``value`` must be hashable
    (diagnostics are de-duplicated in sets): write a list as a tuple.
    """

    path: str
    key_path: KeyPath
    value: Any


DELETE = object()


@dataclass(frozen=True)
class Diagnostic:
    """One finding.

    ``line`` and ``col`` are 1-based; 0 means "the whole file". ``fix`` holds the edits that
    mend the finding, ``fix_safe`` says whether ``--fix`` applies them (else only
    ``--unsafe-fixes`` does).
    """

    code: str
    message: str
    path: str
    line: int = 0
    col: int = 0
    severity: Severity = Severity.ERROR
    rule: str = ""
    key_path: KeyPath = ()
    hint: str | None = None
    fix: tuple[Edit, ...] = ()
    fix_safe: bool = True
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        # a message may quote a value; a credential in it is masked wherever it is shown
        for name in ("message", "hint"):
            text = getattr(self, name)
            if text:
                object.__setattr__(self, name, _secrets.scrub_message(text))

    @property
    def fixable(self) -> bool:
        return bool(self.fix)

    @property
    def dotted_key(self) -> str:
        return format_key_path(self.key_path)

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line, self.col, self.code, self.message)

    def with_severity(self, severity: Severity) -> Diagnostic:
        return Diagnostic(**{**self.__dict__, "severity": severity})

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["severity"] = str(self.severity)
        out["key_path"] = list(self.key_path)
        out["fixable"] = self.fixable
        out["fix"] = [
            {"path": e.path, "key_path": list(e.key_path),
             "value": None if e.value is DELETE else e.value, "delete": e.value is DELETE}
            for e in self.fix
        ]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Diagnostic:
        fix = tuple(
            Edit(e["path"], tuple(e["key_path"]), DELETE if e.get("delete") else e["value"])
            for e in data.get("fix", ())
        )
        return cls(
            code=data["code"], message=data["message"], path=data["path"], line=data["line"],
            col=data["col"], severity=Severity.parse(data["severity"]), rule=data["rule"],
            key_path=tuple(data["key_path"]), hint=data.get("hint"), fix=fix,
            fix_safe=data.get("fix_safe", True), data=data.get("data") or {},
        )


def format_key_path(key_path: KeyPath) -> str:
    parts: list[str] = []
    for part in key_path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts)


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(set(diags), key=Diagnostic.sort_key)


def exit_code_for(diags: Sequence[Diagnostic], fail_on: Severity) -> ExitCode:
    return ExitCode.FINDINGS if any(d.severity >= fail_on for d in diags) else ExitCode.OK


# --------------------------------------------------------------------------- renderers


def _location(d: Diagnostic) -> str:
    if d.line:
        return f"{d.path}:{d.line}:{d.col or 1}"
    return d.path


def render_text(diags: Sequence[Diagnostic], *, show_hints: bool = True) -> str:
    lines: list[str] = []
    for d in diags:
        fix_mark = " [*]" if d.fixable and d.fix_safe else ""
        where = f" ({d.dotted_key})" if d.key_path else ""
        rule = f" [{d.rule}]" if d.rule else ""
        lines.append(f"{_location(d)}: {d.code}{fix_mark} {d.message}{where}{rule}")
        if show_hints and d.hint:
            lines.append(f"    hint: {d.hint}")
    return "\n".join(lines) + ("\n" if lines else "")


def render_json(diags: Sequence[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diags], indent=2, ensure_ascii=False) + "\n"


def render_github(diags: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands (``::error file=…,line=…``)."""

    level = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}

    def esc_data(s: str) -> str:
        return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def esc_prop(s: str) -> str:
        return esc_data(s).replace(":", "%3A").replace(",", "%2C")

    out = []
    for d in diags:
        props = [f"file={esc_prop(d.path)}"]
        if d.line:
            props += [f"line={d.line}", f"col={d.col or 1}"]
        props.append(f"title={esc_prop(d.code + ' ' + d.rule)}")
        out.append(f"::{level[d.severity]} {','.join(props)}::{esc_data(d.message)}")
    return "\n".join(out) + ("\n" if out else "")


def render_sarif(diags: Sequence[Diagnostic], rules: Sequence[Any] = (), version: str = "") -> str:
    """SARIF 2.1.0 with the fields GitHub code scanning requires.

    ``rules`` are rule objects (``code``, ``name``, ``summary``, ``severity``); every code that
    appears in ``diags`` gets a ``reportingDescriptor`` even if no rule object was passed.
    """

    level = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
    descriptors: dict[str, dict[str, Any]] = {}
    for r in rules:
        descriptors[r.code] = {
            "id": r.code,
            "name": r.name,
            "shortDescription": {"text": r.summary or r.name},
            "fullDescription": {"text": r.summary or r.name},
            "defaultConfiguration": {"level": level[r.severity]},
            "helpUri": f"https://lorac.invalid/rules/{r.code}",
        }
    for d in diags:
        descriptors.setdefault(d.code, {
            "id": d.code, "name": d.rule or d.code,
            "shortDescription": {"text": d.rule or d.code},
        })
    ids = list(descriptors)
    results = []
    for d in diags:
        region = {"startLine": max(d.line, 1), "startColumn": max(d.col, 1)}
        results.append({
            "ruleId": d.code,
            "ruleIndex": ids.index(d.code),
            "level": level[d.severity],
            "message": {"text": d.message + (f" (hint: {d.hint})" if d.hint else "")},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": d.path.replace("\\", "/"),
                                         "uriBaseId": "%SRCROOT%"},
                    "region": region,
                },
            }],
            "partialFingerprints": {"lorac/v1": f"{d.code}:{d.path}:{d.dotted_key}"},
        })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "lorac",
                "version": version,
                "informationUri": "https://lorac.invalid/",
                "rules": [descriptors[i] for i in ids],
            }},
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


RENDERERS = ("text", "json", "sarif", "github")
