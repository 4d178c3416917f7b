"""Generate ``backends/kohya/network_modules.toml``: which ``network_args`` each module reads.

sd-scripts passes every ``--network_args key=value`` to the module's ``create_network(...,
**kwargs)`` as strings (``train_network.py`` splits each at the first ``=``). A key that the
module never looks up is silently ignored. This script reads the modules with :mod:`ast` (no
import, no torch) and records, with file and line:

* ``args``: every ``kwargs.get("key")`` in ``create_network`` — and in module-level helpers
  that ``create_network`` hands its ``kwargs`` to (``parse_block_lr_kwargs`` in ``lora.py``);
* ``bools``: the keys parsed as ``True if value == "True" else False`` (any other spelling,
  ``true`` included, is False);
* ``bools_lower``: the keys parsed as ``value.lower() == "true"`` (any case of ``true``);
* ``bools_truthy``: the keys parsed as ``bool(value)`` (any non-empty string, ``"False"``
  included, is True);
* ``types``: the conversion applied to the string (``int``, ``float``, ``literal`` for
  ``ast.literal_eval``), where the module converts it;
* ``defaults``: the literal default of the lookup (``kwargs.get("key", default)``), unless None;
* ``alpha_default``: the value ``network_alpha`` gets when it is not given.

Every module of :data:`MODULES` that exists at the checkout is written; a module that a version
does not have (``networks.loha`` before v0.11.0) is left out.

Usage::

    python -m lorac.trainers.kohya.network_args_gen --from /path/to/sd-scripts \
        [--out backends/kohya]
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lorac.trainers.inventory_gen import (
    InventoryError,
    checkout_commit,
    run_generator,
    str_get,
)

#: The modules lorac knows, in the order they are written to the file.
MODULES = (
    "networks.lora", "networks.lora_flux", "networks.lora_sd3", "networks.lora_fa",
    "networks.dylora", "networks.oft", "networks.oft_flux", "networks.lora_lumina",
    "networks.lora_hunyuan_image", "networks.lora_anima", "networks.loha", "networks.lokr",
)
OUT_NAME = "network_modules.toml"


def _gets(func: ast.FunctionDef, holder: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for node in ast.walk(func):
        key = str_get(node, holder)
        if key is not None:
            found.setdefault(key, node.lineno)
    return found


def _get_defaults(func: ast.FunctionDef, holder: str) -> dict[str, Any]:
    """``kwargs.get("key", <literal>)`` → ``{"key": literal}`` (None defaults left out)."""
    found: dict[str, Any] = {}
    for node in ast.walk(func):
        key = str_get(node, holder)
        if key is None or len(node.args) < 2:  # type: ignore[attr-defined]
            continue
        try:
            value = ast.literal_eval(node.args[1])  # type: ignore[attr-defined]
        except (ValueError, SyntaxError, TypeError):
            continue
        if value is not None and isinstance(value, (bool, int, float, str)):
            found.setdefault(key, value)
    return found


_CONVERTERS = {"int": "int", "float": "float", "literal_eval": "literal"}


def _key_of(node: ast.AST, holder: str, bound: dict[str, str]) -> str | None:
    """The network_args key *node* stands for: ``kwargs.get("k")``, a name bound to one, or
    ``str(...)`` of either."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str" \
            and len(node.args) == 1:
        node = node.args[0]
    if isinstance(node, ast.BoolOp) and node.values:  # ``kwargs.get("k", d) or d``
        node = node.values[0]
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    return str_get(node, holder)


def _func_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _parses(func: ast.FunctionDef, holder: str) -> dict[str, dict[str, int]]:
    """How *func* converts each key's string: ``{"bools": …, "bools_lower": …, "bools_truthy":
    …, "types": {key: (kind, line)}}``."""
    bound: dict[str, str] = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name):
            key = str_get(node.value, holder)
            if key is not None:
                bound.setdefault(node.targets[0].id, key)
    out: dict[str, dict[str, Any]] = {"bools": {}, "bools_lower": {}, "bools_truthy": {},
                                      "bools_str": {}, "types": {}}
    for node in ast.walk(func):
        if (isinstance(node, ast.Compare) and len(node.ops) == 1
                and isinstance(node.ops[0], ast.Eq)
                and isinstance(node.comparators[0], ast.Constant)):
            left, right = node.left, node.comparators[0].value
            if right == "True":
                key = _key_of(left, holder, bound)
                if key is not None:
                    out["bools"].setdefault(key, node.lineno)
            elif (right == "true" and isinstance(left, ast.Call)
                  and isinstance(left.func, ast.Attribute) and left.func.attr == "lower"):
                key = _key_of(left.func.value, holder, bound)
                if key is not None:
                    out["bools_lower"].setdefault(key, node.lineno)
        if isinstance(node, ast.Call) and len(node.args) == 1:
            name = _func_name(node)
            key = _key_of(node.args[0], holder, bound)
            if key is None and name != "str_bool":
                continue
            if name == "str_bool":  # LyCORIS: ``str(v).lower() != "false"``
                for inner in ast.walk(node.args[0]):
                    found = str_get(inner, holder)
                    if found is not None:
                        out["bools_str"].setdefault(found, node.lineno)
            elif name == "bool":
                out["bools_truthy"].setdefault(key, node.lineno)
            elif name in _CONVERTERS:
                out["types"].setdefault(key, (_CONVERTERS[name], node.lineno))
    return out


def analyse_module(path: Path) -> dict[str, Any]:
    """The ``network_args`` facts of one network module file (see the module docstring)."""

    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    create = functions.get("create_network")
    if create is None or create.args.kwarg is None:
        raise ValueError(f"{path}: no create_network(..., **kwargs)")
    holder = create.args.kwarg.arg
    args = _gets(create, holder)
    defaults = _get_defaults(create, holder)
    parses = _parses(create, holder)
    # helpers that receive the kwargs dict positionally
    for node in ast.walk(create):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        helper = functions.get(node.func.id)
        if helper is None:
            continue
        for i, arg in enumerate(node.args):
            if isinstance(arg, ast.Name) and arg.id == holder and i < len(helper.args.args):
                inner = helper.args.args[i].arg
                for key, line in _gets(helper, inner).items():
                    args.setdefault(key, line)
                for key, value in _get_defaults(helper, inner).items():
                    defaults.setdefault(key, value)
                for table, found in _parses(helper, inner).items():
                    for key, value in found.items():
                        parses[table].setdefault(key, value)
    alpha: tuple[Any, int] | None = None
    for node in ast.walk(create):
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "network_alpha"
                and isinstance(node.test.ops[0], ast.Is)):
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
                        and isinstance(stmt.targets[0], ast.Name)
                        and stmt.targets[0].id == "network_alpha"):
                    alpha = (stmt.value.value, stmt.lineno)
    out: dict[str, Any] = {"create_network": create.lineno}
    if alpha is not None:
        out["alpha_default"], out["alpha_default_line"] = alpha
    out["args"] = dict(sorted(args.items()))
    for table in ("bools", "bools_lower", "bools_truthy", "bools_str"):
        out[table] = {k: v for k, v in sorted(parses[table].items()) if k in args}
    out["types"] = {k: v for k, v in sorted(parses["types"].items())
                    if k in args and k not in out["bools_truthy"] and k not in out["bools_str"]}
    out["defaults"] = {k: v for k, v in sorted(defaults.items()) if k in args}
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(checkout: Path, commit: str) -> str:
    """The text of ``network_modules.toml`` for the checkout at ``checkout``."""

    lines = [
        "# GENERATED by `python -m lorac.trainers.kohya.network_args_gen --from "
        "<sd-scripts>`; do not edit.",
        "# Which network_args each sd-scripts network module reads (key = line of the lookup),",
        "# how each string is parsed (bools: `value == \"True\"`; bools_lower: `.lower() ==",
        "# \"true\"`; bools_truthy: `bool(value)`; types: int/float/literal), the literal",
        "# defaults of the lookups, and the alpha default.",
        "",
        "[source]",
        'trainer = "sd-scripts"',
        f'commit = "{commit}"',
    ]
    for module in MODULES:
        rel = module.replace(".", "/") + ".py"
        if not (checkout / rel).is_file():
            continue
        facts = analyse_module(checkout / rel)
        lines += ["", f'[modules."{module}"]', f'file = "{rel}"',
                  f"create_network = {facts['create_network']}"]
        if "alpha_default" in facts:
            lines += [f"alpha_default = {float(facts['alpha_default'])!r}",
                      f"alpha_default_line = {facts['alpha_default_line']}"]
        lines += ["", f'[modules."{module}".args]']
        lines += [f"{key} = {line}" for key, line in facts["args"].items()]
        for table in ("bools", "bools_lower", "bools_truthy", "bools_str"):
            lines += ["", f'[modules."{module}".{table}]']
            lines += [f"{key} = {line}" for key, line in facts[table].items()]
        lines += ["", f'[modules."{module}".types]']
        lines += [f'{key} = {{ type = "{kind}", line = {line} }}'
                  for key, (kind, line) in facts["types"].items()]
        lines += ["", f'[modules."{module}".defaults]']
        lines += [f"{key} = {_toml_value(value)}" for key, value in facts["defaults"].items()]
    return "\n".join(lines) + "\n"


def generate(checkout: Path, out_dir: Path) -> Path:
    """Write ``network_modules.toml`` for ``checkout`` into ``out_dir``; return its path."""

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / OUT_NAME
    path.write_text(render(checkout, checkout_commit(checkout)), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    return run_generator(argv, prog="lorac.trainers.kohya.network_args_gen", doc=__doc__ or "",
                         source_help="an sd-scripts checkout at the pinned commit", backend="kohya",
                         generate=generate,
                         errors=(OSError, ValueError, SyntaxError, InventoryError))


if __name__ == "__main__":
    raise SystemExit(main())
