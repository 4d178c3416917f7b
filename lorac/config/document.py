"""Loading TOML with source positions, and format-preserving edits.

tomlkit keeps comments and layout (parse-then-dump is byte-identical) but gives no line or
column for a value. :class:`Locator` fills that gap: a small scanner over the source text that
maps every key path (tables, array-of-tables entries, inline tables, array items) to the
``line:col`` where it is written, and remembers every comment by line (for suppressions).
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from lorac.core.diagnostics import Diagnostic, KeyPath, Severity

MAX_BYTES = 4 * 1024 * 1024
#: the deepest nesting of tables and arrays lorac reads (the readers after it recurse)
MAX_DEPTH = 100


@dataclass
class Document:
    """One TOML file: its text, its plain data and the positions of its keys.

    ``data`` comes from the standard library's ``tomllib`` (fast); the format-preserving
    tomlkit document, needed only to edit the file, is parsed on first use of :attr:`toml`.
    """

    path: str
    text: str
    data: dict[str, Any]
    locator: Locator

    def position(self, key_path: KeyPath) -> tuple[int, int]:
        return self.locator.find(key_path)

    def plain(self) -> dict[str, Any]:
        return self.data

    @cached_property
    def toml(self) -> Any:
        """The tomlkit document (comments and layout kept)."""

        import tomlkit

        return tomlkit.parse(self.text)

    def dumps(self) -> str:
        import tomlkit

        return tomlkit.dumps(self.toml)


class LoadError(Exception):
    """A file could not be loaded; carries the diagnostic that says why."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def read_lenient(path: Path | str) -> str:
    """A file's text for scanning rules: "" when it is unreadable or over :data:`MAX_BYTES`;
    undecodable bytes become U+FFFD (nothing is reported: the scanners look for patterns)."""
    try:
        p = Path(path)
        if p.stat().st_size > MAX_BYTES:
            return ""
        return p.read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return ""


def read_text(path: Path, display: str | None = None) -> str:
    """Read a UTF-8 text file or raise :class:`LoadError` with LRC002/LRC003."""

    shown = display or str(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise LoadError(_diag("LRC003", f"cannot read file: it is {what}", shown))
        size = st.st_size
        if size > MAX_BYTES:
            raise LoadError(_diag("LRC003", f"file is {size / 1048576:.1f} MiB; lorac reads "
                                  f"configuration files up to {MAX_BYTES // 1048576} MiB", shown))
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise LoadError(_diag("LRC003", f"file is over {MAX_BYTES // 1048576} MiB; lorac "
                                  "reads configuration files up to that size", shown))
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise LoadError(_diag("LRC003", f"cannot read file: {reason}", shown)) from None
    except ValueError:  # a NUL byte in the name
        raise LoadError(_diag("LRC003", "cannot read file: the name holds a NUL byte",
                              shown)) from None
    if b"\x00" in data:
        raise LoadError(_diag("LRC002", "file is binary, not text", shown))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LoadError(_diag("LRC002", f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                              shown, line, col)) from None


def _diag(code: str, message: str, path: str, line: int = 0, col: int = 0) -> Diagnostic:
    names = {"LRC001": "invalid-toml", "LRC002": "not-utf8-text", "LRC003": "unreadable-file"}
    return Diagnostic(code=code, message=message, path=path, line=line, col=col,
                      severity=Severity.ERROR, rule=names[code])


_TOMLLIB_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)$|\s*\(at end of document\)$")


def parse(text: str, display: str) -> Document:
    """Parse TOML text; invalid TOML raises :class:`LoadError` with LRC001 at its position."""

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return _parse_tomlkit(text, display)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOMLLIB_POS.search(message)
        line, col = (int(m.group(1)), int(m.group(2))) if m and m.group(1) else (
            text.count("\n") + 1, 1)
        message = _TOMLLIB_POS.sub("", message)
        raise LoadError(_diag("LRC001", f"invalid TOML: {message}", display, line, col)) from None
    except RecursionError:
        raise LoadError(_diag("LRC001", "invalid TOML: nested too deeply", display)) from None
    if _depth(data) > MAX_DEPTH:
        raise LoadError(_diag("LRC001", f"tables or arrays nested more than {MAX_DEPTH} levels "
                              "deep", display))
    _remember_credentials(data)
    return Document(path=display, text=text, data=data, locator=Locator(text))


def _remember_credentials(data: dict[str, Any]) -> None:
    """Values under credential-like keys are hidden in everything printed from now on, however
    a finding, key path or table comes to quote them (:func:`lorac.core.secrets.remember`)."""

    from lorac.core.secrets import credential_values, remember

    remember(credential_values(data))


def _depth(data: Any) -> int:
    """How deeply tables and arrays nest in ``data`` (without recursion)."""

    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return deepest


def _parse_tomlkit(text: str, display: str) -> Document:
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        doc = tomlkit.parse(text)
    except ParseError as exc:
        message = re.sub(r" at line \d+ col \d+$", "", str(exc))
        raise LoadError(_diag("LRC001", f"invalid TOML: {message}", display,
                              exc.line, exc.col)) from None
    except RecursionError:
        raise LoadError(_diag("LRC001", "invalid TOML: nested too deeply", display)) from None
    except Exception as exc:  # tomlkit raises a few non-ParseError types on odd input
        raise LoadError(_diag("LRC001", f"invalid TOML: {exc.__class__.__name__}: {exc}",
                              display)) from None
    result = Document(path=display, text=text, data=doc.unwrap(), locator=Locator(text))
    _remember_credentials(result.data)
    result.__dict__["toml"] = doc
    return result


def load(path: Path, display: str | None = None) -> Document:
    shown = display or str(path)
    return parse(read_text(path, shown), shown)


# --------------------------------------------------------------------------- locator


_BARE = re.compile(r"[A-Za-z0-9_-]+")
_BARE_VALUE = re.compile(r"[^,\]}\n#]*")
_BASIC_STRING = re.compile(r'"([^"\\\n]*(?:\\.[^"\\\n]*)*)"')
#: the common line ``key = value`` with a bare key and a one-line value that holds no
#: escape, comma or bracket (``rank = 32``, ``name = "x"``): located without the full scanner
_SIMPLE_KEYVAL = re.compile(r"""([A-Za-z0-9_-]+)[ \t]*=[ \t]*"""
                            r"""(?:"[^"\\\n]*"|'[^'\n]*'|[A-Za-z0-9_+.:-]+)"""
                            r"""(?=[ \t]*(?:[#\r\n]|$))""")


@dataclass
class Locator:
    """Positions of keys in TOML source text (1-based line and column)."""

    text: str
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    comments: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            _Scanner(self.text, self.positions, self.comments).run()
        except (IndexError, ValueError, RecursionError):
            pass  # the text is valid TOML (tomlkit parsed it); keep what was found

    def find(self, key_path: KeyPath) -> tuple[int, int]:
        """The position of ``key_path`` or of its nearest located ancestor (else 1:1)."""

        path = tuple(key_path)
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return (1, 1)


class _Scanner:
    def __init__(self, text: str, positions: dict, comments: dict) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.line_start = 0
        self.pos = positions
        self.comments = comments
        self.table: tuple[str | int, ...] = ()
        self.aot: dict[tuple, int] = {}

    # -- low level
    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def here(self) -> tuple[int, int]:
        return (self.line, self.i - self.line_start + 1)

    def advance(self, n: int = 1) -> None:
        end = min(self.i + n, len(self.s))
        newlines = self.s.count("\n", self.i, end)
        if newlines:
            self.line += newlines
            self.line_start = self.s.rfind("\n", self.i, end) + 1
        self.i += n

    def skip_ws(self, newlines: bool = False) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                start = self.i
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
                self.comments[self.line] = self.s[start:self.i]
            else:
                break

    # -- grammar
    def run(self) -> None:
        n = len(self.s)
        while self.i < n:
            self.skip_ws(newlines=True)
            if self.i >= n:
                break
            simple = _SIMPLE_KEYVAL.match(self.s, self.i)
            if simple:
                self.pos[(*self.table, simple.group(1))] = self.here()
                self.i = simple.end()  # the line does not change
            elif self.peek() == "[":
                self.header()
            else:
                self.keyval(self.table)
            self.skip_ws()
            if self.peek() == "\n":
                self.advance()

    def header(self) -> None:
        array = self.peek(1) == "["
        self.advance(2 if array else 1)
        self.skip_ws()
        at = self.here()
        keys = self.key()
        self.skip_ws()
        self.advance(2 if array else 1)
        resolved: tuple[str | int, ...] = ()
        for k in keys[:-1]:
            resolved = (*resolved, k)
            if resolved in self.aot:
                resolved = (*resolved, self.aot[resolved])
        resolved = (*resolved, keys[-1])
        if array:
            idx = self.aot.get(resolved, -1) + 1
            self.aot[resolved] = idx
            self.pos.setdefault(resolved, at)
            resolved = (*resolved, idx)
        self.pos[resolved] = at
        self.table = resolved

    def key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self.skip_ws()
            c = self.peek()
            if c == '"':
                parts.append(self.basic_string())
            elif c == "'":
                parts.append(self.literal_string())
            else:
                m = _BARE.match(self.s, self.i)
                if not m:
                    raise ValueError("bad key")
                parts.append(m.group())
                self.advance(m.end() - self.i)
            self.skip_ws()
            if self.peek() == ".":
                self.advance()
                continue
            return parts

    def keyval(self, base: tuple) -> None:
        at = self.here()
        keys = self.key()
        path = (*base, *keys)
        for depth in range(len(keys)):
            self.pos.setdefault((*base, *keys[: depth + 1]), at)
        self.pos[path] = at
        self.skip_ws()
        if self.peek() != "=":
            raise ValueError("expected =")
        self.advance()
        self.skip_ws()
        self.value(path)

    def value(self, path: tuple) -> None:
        c = self.peek()
        if c == '"':
            self.basic_string()
        elif c == "'":
            self.literal_string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            self.i = _BARE_VALUE.match(self.s, self.i).end()

    def array(self, path: tuple) -> None:
        self.advance()
        idx = 0
        while True:
            self.skip_ws(newlines=True)
            if self.peek() in ("]", ""):
                self.advance()
                return
            self.pos[(*path, idx)] = self.here()
            self.value((*path, idx))
            idx += 1
            self.skip_ws(newlines=True)
            if self.peek() == ",":
                self.advance()

    def inline_table(self, path: tuple) -> None:
        self.advance()
        while True:
            self.skip_ws(newlines=True)
            if self.peek() in ("}", ""):
                self.advance()
                return
            self.keyval(path)
            self.skip_ws(newlines=True)
            if self.peek() == ",":
                self.advance()

    def basic_string(self) -> str:
        if self.s.startswith('"""', self.i):
            self.advance(3)
            end = self.i
            while True:
                end = self.s.index('"""', end)
                if self.s[end - 1] == "\\" and not self._escaped_backslash(end - 1):
                    end += 1
                    continue
                break
            while end + 3 < len(self.s) and self.s[end + 3] == '"':
                end += 1
            body = self.s[self.i:end]
            self.advance(end - self.i + 3)
            return body
        m = _BASIC_STRING.match(self.s, self.i)
        if not m:
            raise ValueError("unterminated string")
        self.i = m.end()  # a one-line string: the line does not change
        body = m.group(1)
        if "\\" in body:
            try:
                return json.loads('"' + body + '"')
            except ValueError:
                return body
        return body

    def _escaped_backslash(self, j: int) -> bool:
        count = 0
        while j >= 0 and self.s[j] == "\\":
            count += 1
            j -= 1
        return count % 2 == 0

    def literal_string(self) -> str:
        if self.s.startswith("'''", self.i):
            self.advance(3)
            end = self.s.index("'''", self.i)
            while end + 3 < len(self.s) and self.s[end + 3] == "'":
                end += 1
            body = self.s[self.i:end]
            self.advance(end - self.i + 3)
            return body
        self.advance()
        end = self.s.index("'", self.i)
        body = self.s[self.i:end]
        self.advance(end - self.i + 1)
        return body


SUPPRESS = re.compile(r"lorac:\s*ignore\[([A-Z0-9_,\s-]+)\]")


def suppressed_codes(comment: str) -> set[str] | None:
    """The codes a ``lorac: ignore[LRC123, LRC124]`` in ``comment`` silences; None when the
    comment has no such marker."""

    m = SUPPRESS.search(comment)
    return {c.strip() for c in m.group(1).split(",") if c.strip()} if m else None


def suppressions(doc_or_locator: Document | Locator) -> dict[int, set[str]]:
    """Line → codes silenced there by ``# lorac: ignore[LRC123, LRC124]`` comments."""

    loc = doc_or_locator.locator if isinstance(doc_or_locator, Document) else doc_or_locator
    out: dict[int, set[str]] = {}
    for line, comment in loc.comments.items():
        codes = suppressed_codes(comment)
        if codes is not None:
            out[line] = codes
    return out
