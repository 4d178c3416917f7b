"""The section check of rule docstrings reads the raw docstring only where that finds exactly
what the cleaned one (``Rule.doc``, printed by ``lorac explain``) holds."""

from __future__ import annotations

import pytest

from lorac.core.diagnostics import LoracError
from lorac.lint.plugins import get_plugins
from lorac.lint.rules import DOC_SECTIONS, Rule, _doc_text, validate_rule

SECTIONS = "\n\n".join(f"    {s}\n    text" for s in DOC_SECTIONS)


def test_every_builtin_rule_finds_the_same_sections() -> None:
    plugins = get_plugins(entry_points=False)
    plugins.load_trainers()
    for rule in plugins.rules.values():
        assert [s in _doc_text(rule) for s in DOC_SECTIONS] == \
            [s in rule.doc for s in DOC_SECTIONS], rule.code


def _rule(docstring: str | None, **attrs: object) -> Rule:
    cls = type("Demo", (Rule,), {"__doc__": docstring, "code": "LRC999", "name": "demo",
                                 **attrs})
    return cls()


def test_a_tab_or_an_own_doc_property_falls_back_to_the_cleaned_text() -> None:
    tabbed = _rule("What\tit does\n" + SECTIONS.replace("    What it does\n    text\n\n", ""))
    assert _doc_text(tabbed) == tabbed.doc
    own = _rule(None, doc=property(lambda self: SECTIONS))
    assert _doc_text(own) == SECTIONS
    validate_rule(own, "demo")
    with pytest.raises(LoracError, match="lacks the section"):
        validate_rule(_rule(None), "demo")
    with pytest.raises(LoracError, match="Fix safety"):
        validate_rule(_rule(SECTIONS.replace("Fix safety", "Fix")), "demo")
    validate_rule(_rule(SECTIONS), "demo")
