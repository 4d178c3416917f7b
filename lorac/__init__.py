"""lorac: a compiler and linter for LoRA training configurations."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    # ``lorac.hookimpl`` for plugins, without importing pluggy on every start-up.
    if name == "hookimpl":
        import pluggy

        marker = globals()["hookimpl"] = pluggy.HookimplMarker("lorac")
        return marker
    raise AttributeError(name)
