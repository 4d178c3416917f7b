"""The rule base class and the contexts rules receive.

A rule is a class with plain attributes, checked once when the plugin manager is built:

``code``       ``LRC`` + three digits; the hundreds digit is the family.
``name``       kebab-case, naming the bad pattern (``alpha-rank-mismatch``).
``severity``   the default :class:`~lorac.core.diagnostics.Severity`.
``fix``        ``"none"``, ``"safe"`` (``--fix`` applies it) or ``"unsafe"`` (``--unsafe-fixes``).
``scope``      ``"profile"``: :meth:`Rule.check` is called once per resolved profile with a
               :class:`ProfileContext`; ``"project"``: once per lint run with a
               :class:`ProjectContext`; ``"pipeline"``: reported by a pipeline stage (loading,
               resolving, validating), never called — it exists for ``explain`` and selection.
``groups``     free-form tags.

The class docstring is the rule's documentation, printed by ``lorac explain CODE``.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from lorac.core.diagnostics import Diagnostic, Edit, KeyPath, Severity

if TYPE_CHECKING:
    from lorac.config.profile import Profile, Resolution
    from lorac.config.settings import Settings

FAMILIES = {
    "0": "input/schema", "1": "network", "2": "variables/env", "3": "docs", "4": "memory",
    "5": "dataset", "6": "trainer compatibility", "7": "secrets", "8": "repository hygiene",
}
CODE = re.compile(r"^LRC\d{3}$")
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
DOC_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead", "Fix safety")
T = TypeVar("T")


@dataclass
class ProjectContext:
    """Everything one lint run sees: the linted paths, files by kind, resolved profiles."""

    root: Path
    settings: Settings
    files: dict[str, list[Path]]  # kind → paths ("profile", "env", "markdown", "shell", …)
    resolutions: dict[str, Resolution]  # display path → resolution of every profile file
    env: dict[str, str] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict)
    plugins: Any = None  # the run's :class:`lorac.lint.plugins.Plugins`, when the driver runs

    @property
    def profiles(self) -> list[Profile]:
        return [r.profile for r in self.resolutions.values() if r.profile is not None]

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, called at most once per lint run for ``key`` (name keys after the
        module that owns them: ``"lorac.hygiene.model"``,
        ``("lorac.trainers.kohya.vram", path)``)."""

        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


@dataclass
class ProfileContext:
    """What a profile-scoped rule sees: one resolved profile within its project."""

    profile: Profile
    project: ProjectContext

    @property
    def settings(self) -> Settings:
        return self.project.settings


@functools.cache
def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "")


class Rule:
    """Base of every lint rule (see the module docstring)."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.ERROR
    fix: ClassVar[str] = "none"
    scope: ClassVar[str] = "profile"
    groups: ClassVar[tuple[str, ...]] = ()

    @property
    def family(self) -> str:
        return FAMILIES.get(self.code[3], "other")

    @property
    def doc(self) -> str:
        return _doc(type(self))

    @property
    def summary(self) -> str:
        doc = self.doc
        m = re.search(r"What it does\n[-=]*\n?(.+?)(\n\n|$)", doc, re.S)
        text = m.group(1) if m else doc.split("\n\n", 1)[0]
        return " ".join(text.split())

    def check(self, ctx: Any) -> Iterable[Diagnostic]:
        """Yield the findings of this rule for ``ctx`` (see ``scope``)."""

        return ()

    # -- helpers for subclasses
    def at(self, profile: Profile, key_path: KeyPath, message: str, *,
           hint: str | None = None, fix: Iterable[Edit | None] = (), **data: Any) -> Diagnostic:
        """A finding placed at the position where ``key_path`` was written in ``profile``.
        ``None`` items of ``fix`` (an edit helper that found nothing to edit) are dropped."""

        d = profile.diagnostic(self.code, message, key_path, rule=self.name,
                               severity=self.severity, hint=hint)
        return replace(d, fix=_edits(fix), fix_safe=self.fix == "safe", data=data)

    def in_file(self, path: str, line: int, col: int, message: str, *,
                hint: str | None = None, key_path: KeyPath = (),
                fix: Iterable[Edit | None] = (), **data: Any) -> Diagnostic:
        """A finding at an explicit place in any file (``fix`` as for :meth:`at`)."""

        return Diagnostic(code=self.code, message=message, path=path, line=line, col=col,
                          severity=self.severity, rule=self.name, key_path=key_path, hint=hint,
                          fix=_edits(fix), fix_safe=self.fix == "safe", data=data)


def _edits(fix: Iterable[Edit | None]) -> tuple[Edit, ...]:
    return tuple(e for e in fix if e is not None)


def _doc_text(rule: Rule) -> str:
    """Text that holds a section title exactly when ``rule.doc`` does: the raw docstring,
    which ``inspect.cleandoc`` changes only by dropping indentation and blank edge lines
    (unless it has tabs to expand), spares cleaning 150 docstrings on every lint."""
    raw = type(rule).__doc__
    if type(rule).doc is Rule.doc and isinstance(raw, str) and "\t" not in raw:
        return raw
    return rule.doc


def validate_rule(rule: Rule, plugin: str) -> None:
    """Check a rule's attributes once; a malformed rule stops lorac naming its plugin."""

    from lorac.core.diagnostics import LoracError

    def bad(why: str) -> LoracError:
        return LoracError(f"plugin {plugin}: rule {type(rule).__name__} {why}", 3)

    code = getattr(rule, "code", None)
    if not isinstance(code, str) or not CODE.match(code):
        raise bad(f"has an invalid code {code!r} (expected LRC + three digits)")
    name = getattr(rule, "name", None)
    if not isinstance(name, str) or not NAME.match(name):
        raise bad(f"has an invalid name {name!r} (expected kebab-case)")
    if not isinstance(rule.severity, Severity):
        raise bad("has no Severity")
    if rule.fix not in ("none", "safe", "unsafe"):
        raise bad(f"has fix={rule.fix!r} (expected none, safe or unsafe)")
    if rule.scope not in ("profile", "project", "pipeline"):
        raise bad(f"has scope={rule.scope!r}")
    missing = [s for s in DOC_SECTIONS if s not in _doc_text(rule)]
    if missing:
        raise bad(f"docstring lacks the section(s): {', '.join(missing)}")
