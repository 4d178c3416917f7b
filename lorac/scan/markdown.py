"""Markdown scanning for the documentation rules, with line numbers.

:func:`parse` splits a Markdown text into what the rules look at: headings, fenced code
blocks, tables (rows of cells), ``Name: value`` claims in bullets and plain lines, and
generated blocks between ``<!-- lorac:begin … -->`` and ``<!-- lorac:end -->``.
:func:`render_block` renders a generated block's body from a resolved profile.

Block syntax::

    <!-- lorac:begin profile=final keys=network_dim,network_alpha,learning_rate format=table -->
    | Setting | Value |
    …
    <!-- lorac:end -->

``profile`` is required; ``keys`` (comma-separated option names, default: every trainer
option) and ``format`` (``table`` or ``list``, default ``table``) are optional.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```+|~~~+)")
_BEGIN = re.compile(r"^\s*<!--\s*lorac:begin\b(.*?)-->\s*$")
_END = re.compile(r"^\s*<!--\s*lorac:end\s*-->\s*$")
_CLAIM = re.compile(
    r"^\s*(?:[-*+]\s+|\d+[.)]\s+)?(?:\*\*|__)?`?([A-Za-z][A-Za-z0-9 _/().-]{0,40}?)`?"
    r"(?:\*\*|__)?\s*(?::|=)\s*(?:\*\*|__)?\s*(\S.*?)\s*$")


@dataclass(frozen=True)
class Heading:
    line: int
    level: int
    text: str


@dataclass(frozen=True)
class Claim:
    """A ``label: value`` statement: a bullet, a plain line, or a table row or cell."""

    label: str
    value: str
    line: int
    col: int
    context: tuple[str, ...]  # headings above (outermost first) + the paragraph just before


@dataclass(frozen=True)
class Block:
    """A generated block: the marker lines, its parameters and the body lines between."""

    begin: int
    end: int | None  # line of ``lorac:end``; None when missing
    params: dict[str, str]
    body: str
    error: str | None = None


@dataclass
class Markdown:
    lines: list[str]
    headings: list[Heading] = field(default_factory=list)
    code_lines: set[int] = field(default_factory=set)
    claims: list[Claim] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)


def _cells(row: str) -> list[tuple[str, int]]:
    """Cells of a table row with the 1-based column of each cell's text."""

    out = []
    text = row.rstrip()
    start = text.index("|") + 1 if text.lstrip().startswith("|") else 0
    i = start
    cell_start = start
    while i <= len(text):
        if i == len(text) or (text[i] == "|" and text[i - 1:i] != "\\"):
            raw = text[cell_start:i]
            stripped = raw.strip()
            if i < len(text) or stripped:
                out.append((stripped, cell_start + (len(raw) - len(raw.lstrip())) + 1))
            cell_start = i + 1
        i += 1
    return out


def _is_separator(row: str) -> bool:
    return bool(re.fullmatch(r"\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*", row))


def strip_markup(text: str) -> str:
    """Text without emphasis and code markers (``_`` inside words is kept)."""

    text = re.sub(r"(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])", "", text)
    return re.sub(r"[*`]", "", text).strip()


def parse(text: str) -> Markdown:
    """Parse Markdown text (see the module docstring)."""

    lines = text.split("\n")
    md = Markdown(lines)
    fence: str | None = None
    paragraph = ""
    open_block: tuple[int, dict[str, str], str | None] | None = None
    body: list[str] = []
    table: list[tuple[int, str]] = []
    enclosing: list[Heading] = []  # the headings above the current line, outermost first

    def context() -> tuple[str, ...]:
        return tuple(h.text for h in enclosing)

    def flush_table() -> None:  # before a heading changes the context of its rows
        if len(table) >= 3 and _is_separator(table[1][1]):
            _table_claims(md, table, (*context(), paragraph_before[0]))
        table.clear()

    paragraph_before = [""]
    for number, line in enumerate(lines, 1):
        if fence is not None:
            md.code_lines.add(number)
            if line.strip().startswith(fence):
                fence = None
            continue
        begin = _BEGIN.match(line)
        if begin:
            if open_block is not None:
                md.blocks.append(Block(open_block[0], None, open_block[1], "\n".join(body),
                                       "lorac:begin inside another block"))
            params, error = _params(begin.group(1))
            open_block, body = (number, params, error), []
            continue
        if _END.match(line):
            if open_block is None:
                md.blocks.append(Block(number, number, {}, "", "lorac:end without lorac:begin"))
            else:
                md.blocks.append(Block(open_block[0], number, open_block[1], "\n".join(body),
                                       open_block[2]))
                open_block = None
            continue
        if open_block is not None:
            body.append(line)
            continue
        m = _FENCE.match(line)
        if m:
            flush_table()
            md.code_lines.add(number)
            fence = m.group(1)
            continue
        h = _HEADING.match(line)
        if h:
            flush_table()
            heading = Heading(number, len(h.group(1)), strip_markup(h.group(2)))
            md.headings.append(heading)
            while enclosing and enclosing[-1].level >= heading.level:
                enclosing.pop()
            enclosing.append(heading)
            paragraph = ""
            continue
        if "|" in line and line.strip().startswith("|"):
            if not table:
                paragraph_before[0] = paragraph
            table.append((number, line))
            continue
        flush_table()
        if not line.strip():
            continue
        c = _CLAIM.match(line)
        if c and not line.lstrip().startswith(("http", "<")):
            md.claims.append(Claim(strip_markup(c.group(1)), c.group(2), number, c.start(1) + 1,
                                   (*context(), paragraph)))
        if not re.match(r"^\s*([-*+]|\d+[.)])\s", line):
            paragraph = line.strip()
    flush_table()
    if open_block is not None:
        md.blocks.append(Block(open_block[0], None, open_block[1], "\n".join(body),
                               "lorac:begin without lorac:end"))
    return md


def _table_claims(md: Markdown, table: list[tuple[int, str]],
                  context: tuple[str, ...]) -> None:
    """Claims of a table's rows; ``context`` is the enclosing headings and the paragraph
    before the table."""

    header = [strip_markup(c) for c, _ in _cells(table[0][1])]
    for number, row in table[2:]:
        cells = _cells(row)
        if len(cells) == 2:
            (label, _), (value, col) = cells
            md.claims.append(Claim(strip_markup(label), value, number, col, context))
            continue
        # one row per subject: the first cell names it, the header names the settings
        if cells:
            subject = strip_markup(cells[0][0])
            for name, (value, col) in zip(header[1:], cells[1:], strict=False):
                md.claims.append(Claim(name, value, number, col, (*context, subject)))


def _params(text: str) -> tuple[dict[str, str], str | None]:
    params: dict[str, str] = {}
    for item in text.split():
        if "=" not in item:
            return params, f"malformed parameter {item!r} (expected name=value)"
        key, value = item.split("=", 1)
        params[key.strip()] = value.strip().strip("\"'")
    unknown = sorted(set(params) - {"profile", "keys", "format"})
    if unknown:
        return params, f"unknown parameter(s): {', '.join(unknown)}"
    if "profile" not in params:
        return params, "lorac:begin needs profile=NAME"
    if params.get("format", "table") not in ("table", "list"):
        return params, f"format must be table or list, not {params['format']!r}"
    return params, None


# --------------------------------------------------------------------------- rendering


def format_value(value: Any) -> str:
    """A value as a block shows it (TOML-like: ``true``, ``1e-04`` kept as Python writes it)."""

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def render_block(options: dict[str, Any], keys: list[str], fmt: str) -> str:
    """The body of a generated block: ``keys`` of ``options`` (a missing key shows "not set")."""

    rows = [(k, format_value(options[k]) if k in options else "not set") for k in keys]
    if fmt == "list":
        return "\n".join(f"- `{k}`: {v}" for k, v in rows)
    out = ["| Setting | Value |", "|---------|-------|"]
    out += [f"| `{k}` | {v} |" for k, v in rows]
    return "\n".join(out)
