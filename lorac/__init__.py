"""lorac: a compiler and linter for LoRA training configurations."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    # ``lorac.hookimpl`` for plugins, without importing pluggy on every start-up.
    if name == "hookimpl":
        from lorac.lint.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(name)
