"""lorac's plugin manager finds exactly the hook implementations pluggy's own lookup finds."""

from __future__ import annotations

import functools
import importlib
import sys
import types
from pathlib import Path
from typing import ClassVar

import pluggy
import pytest

from lorac.lint.plugins import BUILTIN, _PluginManager

PKG = Path(__file__).parent / "plugin_pkg"
hookimpl = pluggy.HookimplMarker("lorac")


def _both(plugin: object) -> tuple[list, list]:
    ours = _PluginManager("lorac")
    theirs = pluggy.PluginManager("lorac")
    names = dir(plugin)
    return ([ours.parse_hookimpl_opts(plugin, n) for n in names],  # type: ignore[arg-type]
            [theirs.parse_hookimpl_opts(plugin, n) for n in names])  # type: ignore[arg-type]


def test_every_builtin_and_the_demo_plugin_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PKG))
    for name in (*BUILTIN, "lorac_demo_plugin"):
        module = importlib.import_module(name)
        ours, theirs = _both(module)
        assert ours == theirs, name
        assert any(opts is not None for opts in ours), name


class _NonData:
    """Not callable, but a descriptor: older pluggy took it for a routine."""

    lorac_impl: ClassVar[dict] = {}

    def __get__(self, obj: object, owner: object = None) -> object:  # pragma: no cover
        return self


class _Lazy(types.ModuleType):
    @property
    def shadowed(self) -> object:  # pragma: no cover - never evaluated
        raise AssertionError


def _demo_module(cls: type[types.ModuleType] = types.ModuleType) -> types.ModuleType:
    module = cls("lorac_lookup_demo")

    @hookimpl
    def lorac_rules() -> list:
        return []

    @hookimpl(tryfirst=True)
    def other_name() -> list:
        return []

    def plain() -> None: ...

    def odd() -> None: ...

    odd.lorac_impl = "not a dict"  # type: ignore[attr-defined]

    class Marked:
        lorac_impl: ClassVar[dict] = {"tryfirst": False}

    module.__dict__.update(
        lorac_rules=lorac_rules, other_name=other_name, plain=plain, odd=odd, Marked=Marked,
        static=staticmethod(lorac_rules), klass=classmethod(lorac_rules), sys=sys, number=3,
        bound=types.MethodType(lorac_rules, object()),
        table={"lorac_rules": lorac_rules}, flag=True,
        annotations=globals()["annotations"],  # the __future__ feature
        descriptor=_NonData(), cached=functools.lru_cache(lorac_rules),
        shadowed=lorac_rules)
    return module


def test_every_kind_of_module_attribute_agrees() -> None:
    for cls in (types.ModuleType, _Lazy):
        module = _demo_module(cls)
        ours, theirs = _both(module)
        assert ours == theirs, cls
        found = {n for n, o in zip(dir(module), ours, strict=True) if o is not None}
        assert {"lorac_rules", "other_name"} <= found
        assert not {"plain", "odd", "Marked", "sys", "number", "table", "flag"} & found
