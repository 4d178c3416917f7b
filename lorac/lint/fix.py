"""Applying fixes: edits to the tomlkit document, so comments and layout survive; and line
edits for the other files (Markdown, shell)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lorac.core.diagnostics import DELETE, Diagnostic, Edit


def _set(container: Any, key_path: tuple, value: Any) -> None:
    import tomlkit

    node = container
    for part in key_path[:-1]:
        if isinstance(part, str) and part not in node:
            node[part] = tomlkit.table()
        node = node[part]
    last = key_path[-1]
    if value is DELETE:
        if isinstance(last, int) or last in node:
            del node[last]
    else:
        node[last] = value


def apply_edits(path: Path, edits: Sequence[Edit]) -> bool:
    """Apply ``edits`` to the TOML file at ``path``; True when the file changed."""

    from lorac.config import document
    from lorac.core.outputs import write_file

    doc = document.load(path)
    before = doc.text
    for edit in edits:
        _set(doc.toml, edit.key_path, edit.value)
    after = doc.dumps()
    if after == before:
        return False
    write_file(path, after)
    return True


def apply_fixes(diags: Sequence[Diagnostic], *, unsafe: bool = False) -> int:
    """Apply the fixes of ``diags`` (safe ones, or all with ``unsafe``); count the findings
    whose fix changed a file. Edits that target something other than a TOML file are
    handled by the rule's own ``apply`` (Markdown blocks, for instance) via ``Edit.path``
    suffix."""

    by_file: dict[str, list[Edit]] = {}
    fixed = 0
    for d in diags:
        if not d.fix or (not d.fix_safe and not unsafe):
            continue
        fixed += 1
        for edit in d.fix:
            by_file.setdefault(edit.path, []).append(edit)
    changed = 0
    for path, edits in by_file.items():
        if path.endswith(".toml"):
            changed += apply_edits(Path(path), edits)
        else:
            changed += apply_text_edits(Path(path), edits)
    return fixed if changed else 0


def apply_text_edits(path: Path, edits: Sequence[Edit]) -> bool:
    """Fixes for non-TOML files: an :class:`~lorac.core.diagnostics.Edit` whose key path is
    ``("text", start_line, end_line)`` replaces those lines (1-based, inclusive) with its
    value. True when the file changed."""

    from lorac.core.outputs import write_file

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
