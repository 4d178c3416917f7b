"""The lorac plugin contract: every hook a plugin may implement.

lorac is assembled from plugins. Its own rules and backends are plugins registered through the
same path as third-party ones (see :func:`lorac.lint.plugins.get_plugins`); a third-party
package adds rules or backends by registering a module in the ``lorac`` entry-point group::

    [project.entry-points.lorac]
    my_rules = "my_package.lorac_plugin"

and implementing any of the hooks below with ``@lorac.hookimpl``. Hooks are called in
pluggy's order (last registered first); every hook here collects all results (none is
``firstresult``).

What the hooks return is part of the contract: rules subclass :class:`lorac.lint.rules.Rule`;
backends satisfy :class:`Backend` and return :class:`Artifacts` (both defined below, and
importable from :mod:`lorac.trainers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pluggy

from lorac import hookimpl
from lorac.core.diagnostics import Diagnostic

if TYPE_CHECKING:
    from lorac.config.profile import Profile
    from lorac.lint.rules import Rule

__all__ = ["Artifacts", "Backend", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("lorac")


# --------------------------------------------------------------------------- what backends are


@dataclass
class Artifacts:
    """What an emitter produced.

    ``files`` maps a relative file name to its text; ``executable`` names the ones to mark
    executable; ``argv`` is the launch command (``None`` when the backend cannot launch);
    ``diagnostics`` are findings made while compiling (options with no equivalent, …);
    ``options`` is the compiled option mapping the files express, for round-trip tests.
    """

    files: dict[str, str] = field(default_factory=dict)
    executable: set[str] = field(default_factory=set)
    argv: list[str] | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    options: dict[str, object] = field(default_factory=dict)
    #: environment variables the trainer reads (``train.sh`` exports them; ``lorac run`` sets
    #: them, ``[run.env]`` winning)
    env: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """A trainer emitter."""

    name: str
    formats: tuple[str, ...]
    description: str

    def emit(self, profile: Profile, fmt: str) -> Artifacts:
        """Compile ``profile`` into ``fmt`` (one of :attr:`formats`)."""
        ...


# --------------------------------------------------------------------------- lint phase


@hookspec
def lorac_rules() -> list[Rule]:
    """Return the lint rules this plugin provides.

    Called once when the plugin manager is built, before any file is read. Each item is an
    instance of a :class:`lorac.lint.rules.Rule` subclass with its ``code``, ``name``, ``severity``
    and ``fix`` attributes set and a docstring in the sections *What it does / Why is this
    bad? / Example / Use instead / Fix safety*. Codes must be unique across all plugins: a
    clash stops lorac and names both plugins. Results of all plugins are concatenated.
    """


# --------------------------------------------------------------------------- emit phase


@hookspec
def lorac_backends() -> list[Backend]:
    """Return the backends (trainer emitters) this plugin provides.

    Called once when the plugin manager is built. Each item satisfies the
    :class:`lorac.trainers.Backend` protocol: a ``name`` (``kohya``, ``ai-toolkit``…), the
    ``formats`` it can emit and an ``emit(profile, fmt)`` method returning
    :class:`lorac.trainers.Artifacts`. Names must be unique across plugins. Results of all
    plugins are concatenated.
    """
