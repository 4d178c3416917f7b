"""Fixes for non-TOML files: an :class:`~lorac.core.diagnostics.Edit` whose key path is
``("text", start_line, end_line)`` replaces those lines (1-based, inclusive) with its value."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lorac.core.diagnostics import Edit
from lorac.core.outputs import write_file


def apply_text_edits(path: Path, edits: Sequence[Edit]) -> bool:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    spans = sorted((e for e in edits if e.key_path and e.key_path[0] == "text"),
                   key=lambda e: e.key_path[1], reverse=True)
    for edit in spans:
        _, start, end = edit.key_path
        new = str(edit.value)
        if new and not new.endswith("\n"):
            new += "\n"
        lines[start - 1:end] = [new] if new else []
    after = "".join(lines)
    if after == text:
        return False
    write_file(path, after)
    return True
