"""Diagnostics: the one finding type, its renderers, exit codes and the user-facing error.

Every stage of lorac reports problems as :class:`Diagnostic` values. A diagnostic knows where
it is (``path:line:col`` and the key path inside the profile), what rule produced it, and how
severe it is. Renderers turn a sorted list of them into text, JSON, SARIF 2.1.0 or GitHub
workflow annotations.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lorac.core import secrets as _secrets  # (only the standard library: no import cycle)

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

    ``value`` of :data:`DELETE` removes the key. Fixes are applied by :mod:`lorac.lint.fix`
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
        # a message may quote a value and a key may be one: a credential in either is masked
        # wherever the finding goes (renderers, manifests, the lint cache)
        scrub = _secrets.scrub_message
        # (render_text scrubs message and hint again only if a credential was remembered since)
        object.__setattr__(self, "_scrubbed_with", _secrets.remembered_count())
        for name in ("message", "hint"):
            text = getattr(self, name)
            if text:
                object.__setattr__(self, name, scrub(text))
        if any(isinstance(part, str) and len(part) >= 8 for part in self.key_path):
            object.__setattr__(self, "key_path", tuple(
                scrub(part) if isinstance(part, str) else part for part in self.key_path))

    @property
    def fixable(self) -> bool:
        return bool(self.fix)

    @property
    def dotted_key(self) -> str:
        return format_key_path(self.key_path)

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line, self.col, self.code, self.message)

    def with_severity(self, severity: Severity) -> Diagnostic:
        return replace(self, severity=severity)

    def to_json(self) -> dict[str, Any]:
        """Every field, fit to print: paths, keys and values pass the one scrubber
        (:func:`lorac.core.secrets.scrub_message`); ``path`` is kept as it is on the object,
        where suppressions and fixes find the file by it."""

        from lorac.core.secrets import known_secrets, redact_data, scrub_message

        out = asdict(self)
        out["path"] = scrub_message(self.path)
        out["severity"] = str(self.severity)
        out["key_path"] = list(self.key_path)
        out["fixable"] = self.fixable
        out["fix"] = [
            {"path": scrub_message(e.path),
             "key_path": [scrub_message(k) if isinstance(k, str) else k for k in e.key_path],
             "value": None if e.value is DELETE else (
                 scrub_message(e.value) if isinstance(e.value, str) else e.value),
             "delete": e.value is DELETE}
            for e in self.fix
        ]
        if self.data:
            out["data"] = redact_data(self.data, known_secrets())
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


#: What text output escapes: C0 and C1 control characters (a newline would start a forged
#: line, an ESC a terminal sequence), Unicode line and paragraph separators, bidirectional
#: overrides and isolates (which reorder what a terminal shows), lone surrogates (undecodable
#: bytes of a file name, which no UTF-8 terminal can print).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                      r"\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """``text`` with every character of :data:`_CONTROL` written as a Python escape
    (``\\n``, ``\\x1b``, ``\\u202e``): one line on a terminal, showing what is there."""

    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: _NAMED.get(m.group()) or (
        f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"),
        text)


def printable(text: object) -> str:
    """What text output shows of a path, key, value or message: credentials masked
    (:func:`lorac.core.secrets.scrub_message`, the one scrubber), control characters escaped
    (:func:`escape_controls`). Every path and value lorac prints as text goes through it."""

    text = str(text)
    if len(text) < 8:  # shorter than any credential scrub_message masks
        return escape_controls(text)
    from lorac.core.secrets import scrub_message

    return escape_controls(scrub_message(text))


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


def render_text(diags: Sequence[Diagnostic], *, show_hints: bool = True) -> str:
    """One line a finding (and its hint line): every path, key and message :func:`printable`,
    so a file name or value holding a newline cannot start a line of its own."""

    lines: list[str] = []
    paths: dict[str, str] = {}  # many findings share a file and a rule: made printable once
    rules: dict[str, str] = {}
    remembered = _secrets.remembered_count()
    for d in diags:
        # a message and hint scrubbed when the finding was made need only their escapes, unless
        # a credential has been remembered since
        shown = escape_controls if getattr(d, "_scrubbed_with", -1) == remembered else printable
        fix_mark = " [*]" if d.fixable and d.fix_safe else ""
        where = f" ({printable(d.dotted_key)})" if d.key_path else ""
        rule = ""
        if d.rule:
            if d.rule not in rules:
                rules[d.rule] = f" [{printable(d.rule)}]"
            rule = rules[d.rule]
        if d.path not in paths:
            paths[d.path] = printable(d.path)
        place = f"{paths[d.path]}:{d.line}:{d.col or 1}" if d.line else paths[d.path]
        lines.append(f"{place}: {d.code}{fix_mark} {shown(d.message)}{where}{rule}")
        if show_hints and d.hint:
            lines.append(f"    hint: {shown(d.hint)}")
    return "\n".join(lines) + ("\n" if lines else "")


def render_json(diags: Sequence[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diags], indent=2, ensure_ascii=False) + "\n"


def render_github(diags: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands (``::error file=…,line=…``)."""

    from lorac.core.secrets import scrub_message

    level = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}

    def esc_data(s: str) -> str:
        return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def esc_prop(s: str) -> str:
        return esc_data(s).replace(":", "%3A").replace(",", "%2C")

    out = []
    for d in diags:
        props = [f"file={esc_prop(scrub_message(d.path))}"]
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

    from lorac.core.secrets import scrub_message

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
                    "artifactLocation": {"uri": scrub_message(d.path).replace("\\", "/"),
                                         "uriBaseId": "%SRCROOT%"},
                    "region": region,
                },
            }],
            "partialFingerprints": {"lorac/v1": scrub_message(f"{d.code}:{d.path}:"
                                                              f"{d.dotted_key}")},
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


def render(diags: Sequence[Diagnostic], fmt: str, rules: Sequence[Any] = ()) -> str:
    """``diags`` in output format ``fmt`` (one of :data:`RENDERERS`); ``rules`` describe the
    codes in SARIF."""

    from lorac import __version__

    if fmt == "json":
        return render_json(diags)
    if fmt == "sarif":
        return render_sarif(diags, rules, __version__)
    if fmt == "github":
        return render_github(diags)
    return render_text(diags)


def summary(diags: Sequence[Diagnostic]) -> str:
    """The closing line of a text report: ``All checks passed.`` or the count per severity and
    how many ``--fix`` can mend."""

    if not diags:
        return "All checks passed.\n"
    counts = {s: sum(1 for d in diags if d.severity == s) for s in Severity}
    parts = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in sorted(counts.items(), reverse=True)
             if n]
    fixable = sum(1 for d in diags if d.fixable and d.fix_safe)
    tail = f"; {fixable} fixable with --fix" if fixable else ""
    return f"Found {', '.join(parts)}{tail}.\n"
