"""lorac: a compiler and linter for LoRA training configurations."""

from __future__ import annotations

import sys
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]

#: Module paths of lorac's first, flat layout that outside code may name, and the module that
#: answers to each now: what a plugin imports (the rule and backend contracts, diagnostics,
#: profiles, settings, option inventories) and the generators run as ``python -m lorac.X``.
MOVED = {
    "lorac.backend": "lorac.trainers",
    "lorac.diagnostics": "lorac.core.diagnostics",
    "lorac.docs_gen": "lorac.lint.docs_gen",
    "lorac.hookspecs": "lorac.lint.hookspecs",
    "lorac.inventory": "lorac.config.inventory",
    "lorac.inventory_gen": "lorac.trainers.inventory_gen",
    "lorac.network_args_gen": "lorac.trainers.kohya.network_args_gen",
    "lorac.profile": "lorac.config.profile",
    "lorac.rules": "lorac.lint.rules",
    "lorac.schema_gen": "lorac.config.schema_gen",
    "lorac.settings": "lorac.config.settings",
}


def __getattr__(name: str) -> Any:
    # ``lorac.hookimpl`` for plugins, without importing pluggy on every start-up.
    if name == "hookimpl":
        import pluggy

        marker = globals()["hookimpl"] = pluggy.HookimplMarker("lorac")
        return marker
    raise AttributeError(name)


class _Moved:
    """Import finder and loader for :data:`MOVED`: ``import lorac.rules`` gives the very module
    object of ``lorac.lint.rules``; ``python -m lorac.inventory_gen`` runs the module's code."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
        if name not in MOVED:
            return None
        from importlib.machinery import ModuleSpec
        from importlib.util import find_spec

        moved = find_spec(MOVED[name])
        return ModuleSpec(name, _Moved, origin=moved.origin if moved else None)

    @staticmethod
    def create_module(spec: Any) -> Any:
        import importlib

        return importlib.import_module(MOVED[spec.name])

    @staticmethod
    def exec_module(module: Any) -> None:
        return None

    @staticmethod
    def get_code(name: str) -> Any:  # for runpy (``python -m``)
        from importlib.util import find_spec

        spec = find_spec(MOVED[name])
        return spec.loader.get_code(MOVED[name])


if not any(finder is _Moved for finder in sys.meta_path):
    sys.meta_path.append(_Moved)
