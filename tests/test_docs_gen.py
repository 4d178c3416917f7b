from __future__ import annotations

from lorac.lint import docs_gen


def test_reference_pages_are_current() -> None:
    for name, render in docs_gen.PAGES.items():
        path = docs_gen.DOCS / name
        assert path.exists() and path.read_text(encoding="utf-8") == render(), (
            f"docs/{name} is stale: run `python -m lorac.lint.docs_gen`")

