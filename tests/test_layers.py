"""The shape of the package: stages in layers, no import circles, no arrows back up.

The import graph is read from the source with :mod:`ast`: every ``import`` and ``from … import``
anywhere in a module counts (at the top, inside a function, under ``if TYPE_CHECKING:``). A
module may import its own layer and the layers below it, never one above, and no chain of
imports may lead back to where it started.

Plugin modules are named as strings by the registries that load them on demand
(``BUILTIN`` in lorac/lint/plugins.py, ``READERS`` in lorac/importers/__init__.py), as entry
points name third-party plugins: that is how a higher layer plugs into a lower one, and it is
not an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

#: The layers, lowest first. A module belongs to the layer of the longest name that is the
#: module or a package above it; ``lorac`` itself (version, ``lorac.hookimpl``, the first module
#: paths) is the bottom.
LAYERS: tuple[str, ...] = (
    "lorac",
    "lorac.core",
    "lorac.config",
    "lorac.scan",
    "lorac.lint",
    "lorac.importers",
    "lorac.trainers",
    "lorac.run",
    "lorac.cli",
    "lorac.__main__",
)
#: Most entries at the top of lorac/ (files and folders, besides __init__.py).
MAX_TOP = 10


def modules(package: Path) -> dict[str, Path]:
    """Every module of ``package`` (a folder) by dotted name."""

    found = {}
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its source."""

    mods = modules(package)
    root = package.name

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        here = here.rpartition(".")[0]
                    base = f"{here}.{base}" if base else here
                # ``from pkg import mod`` imports the module; ``from mod import name`` the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                if target == root or target.startswith(root + "."):
                    found = owner(target)
                    if found and found != name:
                        edges.add(found)
        graph[name] = edges
    return graph


def layer_of(module: str, layers: tuple[str, ...] = LAYERS) -> int:
    best = -1
    for i, prefix in enumerate(layers):
        if (module == prefix or module.startswith(prefix + ".")) and (
                best < 0 or len(prefix) > len(layers[best])):
            best = i
    assert best >= 0, f"{module} is in no layer: add its package to LAYERS"
    return best


def upward(graph: dict[str, set[str]], layers: tuple[str, ...] = LAYERS) -> list[str]:
    """Every import from a lower layer into a higher one, as ``a -> b``."""

    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if layer_of(b, layers) > layer_of(a, layers))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (or a module
    importing itself), each sorted (Tarjan's algorithm)."""

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


# --------------------------------------------------------------------------- the package


def test_no_import_circles() -> None:
    assert cycles(import_graph(REPO / "lorac")) == []


def test_no_import_runs_back_up() -> None:
    assert upward(import_graph(REPO / "lorac")) == []


def test_trainers_do_not_import_each_other() -> None:
    # one folder per trainer: what two trainers share lives in lorac/trainers/__init__.py
    def trainer(module: str) -> str | None:
        parts = module.split(".")
        is_folder = len(parts) > 2 and parts[:2] == ["lorac", "trainers"]
        return parts[2] if is_folder and (REPO / "lorac" / "trainers" / parts[2]).is_dir() else None

    graph = import_graph(REPO / "lorac")
    crossing = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                      if trainer(a) and trainer(b) and trainer(a) != trainer(b))
    assert crossing == []


def test_every_module_has_a_layer() -> None:
    for name in modules(REPO / "lorac"):
        layer_of(name)


def test_top_of_the_package_stays_small() -> None:
    top = sorted(p.name for p in (REPO / "lorac").iterdir()
                 if p.name not in ("__init__.py", "__pycache__"))
    assert len(top) <= MAX_TOP, top
    # every stage at the top is one of the layers
    stages = {name.split(".")[1] for name in LAYERS if name.count(".") == 1}
    assert {p.removesuffix(".py") for p in top} - {"schema"} <= stages, top


def test_no_test_helpers_in_the_shipped_package() -> None:
    assert [p for p in (REPO / "lorac").rglob("test_*.py")] == []


# --------------------------------------------------------------------------- the checks


def test_a_planted_cycle_is_found() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}, "p.e": {"p.e"}}
    assert cycles(graph) == [["p.a", "p.b", "p.c"], ["p.e"]]
    assert cycles({"p.a": {"p.b"}, "p.b": set()}) == []


def test_the_graph_sees_lazy_and_relative_imports_and_upward_arrows(tmp_path: Path) -> None:
    pkg = tmp_path / "p"
    for folder in ("low", "high"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text(
        "def f():\n    from p.high import b  # a lazy import counts\n    return b\n")
    (pkg / "high" / "b.py").write_text("from ..low import a\n")
    (pkg / "high" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import p.low.a\n")
    graph = import_graph(pkg)
    assert graph["p.low.a"] == {"p.high.b"} and graph["p.high.b"] == {"p.low.a"}
    assert graph["p.high.c"] == {"p.low.a"}
    assert cycles(graph) == [["p.high.b", "p.low.a"]]
    assert upward(graph, ("p", "p.low", "p.high")) == ["p.low.a -> p.high.b"]
