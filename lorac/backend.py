"""The backend contract: what a trainer emitter is and what it returns.

A backend turns a resolved :class:`~lorac.profile.Profile` into the files a trainer reads and
the command that launches it. Backends are plugins (hook ``lorac_backends``); the core never
names one. ``test`` is a trivial backend shipped beside the real ones: it writes the flattened
options as JSON, which is what the pipeline tests use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from lorac.diagnostics import Diagnostic

if TYPE_CHECKING:
    from lorac.profile import Profile


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


@runtime_checkable
class Backend(Protocol):
    """A trainer emitter."""

    name: str
    formats: tuple[str, ...]
    description: str

    def emit(self, profile: Profile, fmt: str) -> Artifacts:
        """Compile ``profile`` into ``fmt`` (one of :attr:`formats`)."""
        ...
