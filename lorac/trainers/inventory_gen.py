"""Generate backend option inventories from a trainer checkout.

What a backend *knows* about its trainer (option names, types, defaults, choices, the source line
that defines each) is data under ``backends/<name>/``, produced by this module from a checkout of
the trainer and never typed in by hand::

    python -m lorac.trainers.inventory_gen kohya --from ~/sd-scripts [--out backends/kohya]
    python -m lorac.trainers.inventory_gen ai-toolkit --from ~/ai-toolkit \
        [--out backends/ai-toolkit]

kohya sd-scripts: each entry script's real ``argparse`` parser is built by importing the script
and calling its ``setup_parser()`` in a child process. The heavy dependencies (torch,
transformers, diffusers, ...) are not needed: a finder placed last on ``sys.meta_path`` serves a
permissive stand-in module for any third-party import that is missing. The dataset-config schema
(``library.config_util.ConfigSanitizer``) is read the same way, with ``voluptuous`` stood in by a
stub that records its calls, and source lines come from the ``ast`` of the file.

ai-toolkit: ``toolkit/config_modules.py`` is read with ``ast`` only (every
``kwargs.get('key', default)`` of every config class), and a short list of forced behaviours
(:data:`AI_TOOLKIT_FACTS`) is located in the source so that each fact carries a current line.

Output is JSON with sorted keys and ``indent=1``; regenerating from the same checkout gives
byte-identical files (a test checks the committed copies against a fresh run).
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.abc
import importlib.machinery
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENERATED_BY = "lorac.trainers.inventory_gen"

#: The kohya LoRA entry scripts lorac compiles for; each gets ``inventory/<stem>.json``.
#: Chroma is a ``--model_type`` of ``flux_train_network.py``, not a script of its own.
KOHYA_SCRIPTS: tuple[str, ...] = (
    "flux_train_network.py",
    "sdxl_train_network.py",
    "sd3_train_network.py",
    "train_network.py",
    "lumina_train_network.py",
    "hunyuan_image_train_network.py",
    "anima_train_network.py",
    "train_leco.py",
    "sdxl_train_leco.py",
)

#: Entry scripts that only some sd-scripts versions have (the LECO scripts arrived in v0.11.0):
#: a checkout without one gets no inventory for it instead of an error.
KOHYA_OPTIONAL_SCRIPTS = frozenset({"train_leco.py", "sdxl_train_leco.py"})

KOHYA_CONFIG_UTIL = "library/config_util.py"
AI_TOOLKIT_CONFIG_MODULES = "toolkit/config_modules.py"


class InventoryError(Exception):
    """The checkout could not be read (missing file, failed import, unknown commit)."""


# --------------------------------------------------------------------------------------------
# Checkout helpers


def checkout_commit(checkout: Path) -> str:
    """Return the commit of *checkout* (:func:`lorac.trainers.checkout.commit_of`: its
    ``.lorac-commit`` file, else ``git rev-parse HEAD`` of its own ``.git``).

    Raises:
        InventoryError: when neither names a 40-hex commit.
    """
    from lorac.trainers.checkout import commit_of

    commit = commit_of(checkout)
    if commit is None:
        raise InventoryError(f"{checkout}: cannot tell its commit (no .lorac-commit file, and "
                             "no git checkout whose HEAD git can read)")
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise InventoryError(f"{checkout}: {commit!r} is not a 40-hex commit")
    return commit


def write_json(path: Path, data: Any) -> Path:
    """Write *data* as stable JSON (sorted keys, indent 1, trailing newline) and return *path*."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _jsonable(value: Any) -> tuple[Any, str | None]:
    """Return ``(value, note)``: *value* made JSON-serialisable, *note* says what was converted."""
    if value is None or isinstance(value, (bool, int, str)):
        return value, None
    if isinstance(value, float):
        if math.isfinite(value):
            return value, None
        return repr(value), "non-finite float stored as text"
    if isinstance(value, (list, tuple)):
        items = [_jsonable(v) for v in value]
        notes = sorted({n for _, n in items if n})
        return [v for v, _ in items], ("; ".join(notes) or None)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        notes_set: set[str] = set()
        for key, item in value.items():
            out[str(key)], note = _jsonable(item)
            if note:
                notes_set.add(note)
        return out, ("; ".join(sorted(notes_set)) or None)
    if isinstance(value, os.PathLike):
        return os.fspath(value), f"converted from {type(value).__name__}"
    return str(value), f"converted from {type(value).__name__}"


# --------------------------------------------------------------------------------------------
# Stand-in modules for missing imports (used only inside the worker process)


class _Stub:
    """A permissive stand-in: any attribute, call, subscript or operator yields another stub.

    Calls are recorded (``_lorac_origin``, ``_lorac_args``), so that e.g. ``voluptuous.Any(float,
    int)`` can be read back. Used as a base class it turns into a plain class (``__mro_entries__``);
    used as a decorator on a function or class it returns the decorated object unchanged.
    """

    def __init__(self, name: str, origin: str | None = None, args: tuple = (), kwargs=None):
        object.__setattr__(self, "_lorac_name", name)
        object.__setattr__(self, "_lorac_origin", origin)
        object.__setattr__(self, "_lorac_args", args)
        object.__setattr__(self, "_lorac_kwargs", dict(kwargs or {}))
        object.__setattr__(self, "_lorac_cls", None)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Stub(f"{self._lorac_name}.{attr}")

    def __setattr__(self, attr: str, value: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and isinstance(args[0], (types.FunctionType, type)):
            return args[0]
        return _Stub(f"{self._lorac_name}(...)", self._lorac_name, args, kwargs)

    def __mro_entries__(self, bases: tuple) -> tuple:
        if self._lorac_cls is None:
            name = self._lorac_name.rsplit(".", 1)[-1]
            cls = type(name, (), {"__init__": lambda s, *a, **k: None})
            object.__setattr__(self, "_lorac_cls", cls)
        return (self._lorac_cls,)

    def __getitem__(self, key: Any) -> Any:
        return self

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __bool__(self) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __int__(self) -> int:
        return 0

    def __index__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0

    def __contains__(self, item: Any) -> bool:
        return False

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return id(self)

    def __lt__(self, other: Any) -> bool:
        return False

    __le__ = __gt__ = __ge__ = __lt__

    def _same(self, *other: Any) -> Any:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same
    __truediv__ = __rtruediv__ = __floordiv__ = __pow__ = __mod__ = __neg__ = _same
    __or__ = __ror__ = __and__ = __rand__ = __matmul__ = _same

    def __repr__(self) -> str:
        return f"<stub {self._lorac_name}>"

    def __str__(self) -> str:
        return self._lorac_name


class _StubModule(types.ModuleType):
    """A module whose every public attribute is a :class:`_Stub`."""

    def __getattr__(self, attr: str) -> Any:
        if attr == "__version__":
            return "99.0.0"
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Stub(f"{self.__name__}.{attr}")


#: Heavy packages that are stubbed even when installed, so that the generated inventory does not
#: depend on what happens to be installed (and no GPU library is initialised).
ALWAYS_STUB: frozenset[str] = frozenset(
    {
        "accelerate",
        "bitsandbytes",
        "cv2",
        "diffusers",
        "huggingface_hub",
        "safetensors",
        "torch",
        "torchvision",
        "transformers",
        "voluptuous",
        "xformers",
    }
)


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serve a :class:`_StubModule` for third-party imports that nothing else can find.

    Two instances are installed: one first on ``sys.meta_path`` that serves only
    :data:`ALWAYS_STUB` packages, and one last, so that otherwise real modules win. Standard-library
    names are never stubbed (their optional imports must keep failing normally); a submodule is
    stubbed only when its top-level package is itself a stub.
    """

    def __init__(self, only: frozenset[str] | None = None) -> None:
        self.only = only
        self.stubbed: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        top = fullname.partition(".")[0]
        if top in sys.stdlib_module_names or top == "org":  # org.python.core: Jython probes
            return None
        if self.only is not None and top not in self.only:
            return None
        if "." in fullname and not isinstance(sys.modules.get(top), _StubModule):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        self.stubbed.append(spec.name)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _prepare_worker(checkout: Path) -> _StubFinder:
    sys.dont_write_bytecode = True
    os.chdir(checkout)
    sys.path.insert(0, str(checkout))
    first = _StubFinder(only=ALWAYS_STUB)
    last = _StubFinder()
    sys.meta_path.insert(0, first)
    sys.meta_path.append(last)
    last.stubbed = first.stubbed
    return last


# --------------------------------------------------------------------------------------------
# kohya: argparse options


_BUILTIN_TYPES: dict[Any, str] = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    Path: "path",
}


def _callable_name(obj: Any) -> str:
    if obj in _BUILTIN_TYPES:
        return _BUILTIN_TYPES[obj]
    if isinstance(obj, _Stub):
        return str(obj)
    module = getattr(obj, "__module__", None) or ""
    qualname = getattr(obj, "__qualname__", None) or type(obj).__name__
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


class _CallLines:
    """Map a line inside an ``add_argument(...)`` call to the line where the call starts."""

    def __init__(self, checkout: Path) -> None:
        self.checkout = checkout

    @functools.cache  # noqa: B019 - one instance per worker process
    def spans(self, rel: str) -> list[tuple[int, int]]:
        tree = ast.parse((self.checkout / rel).read_text(encoding="utf-8"))
        return sorted(
            (node.lineno, node.end_lineno or node.lineno)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        )

    def start(self, rel: str, line: int) -> int:
        inside = [(s, e) for s, e in self.spans(rel) if s <= line <= e]
        return max(inside)[0] if inside else line


def _install_add_argument_recorder(checkout: Path) -> None:
    original = argparse._ActionsContainer.add_argument
    root = str(checkout.resolve()) + os.sep

    def add_argument(self: Any, *args: Any, **kwargs: Any) -> argparse.Action:
        action = original(self, *args, **kwargs)
        frame = sys._getframe(1)
        while frame is not None:
            filename = os.path.abspath(frame.f_code.co_filename)
            if filename.startswith(root):
                action._lorac_src = (  # type: ignore[attr-defined]
                    Path(filename[len(root) :]).as_posix(),
                    frame.f_lineno,
                )
                break
            frame = frame.f_back
        return action

    argparse._ActionsContainer.add_argument = add_argument  # type: ignore[method-assign]


def _describe_action(
    action: argparse.Action, action_names: dict[type, str], lines: _CallLines
) -> dict[str, Any]:
    name = action_names.get(type(action), type(action).__name__)
    if name in ("store_true", "store_false"):
        type_name = "bool"
    elif name == "count":
        type_name = "int"
    elif name in ("store_const", "append_const"):
        type_name = "const"
    elif action.type is None:
        type_name = "str"
    else:
        type_name = _callable_name(action.type)
    default, default_note = _jsonable(action.default)
    const, _ = _jsonable(action.const)
    choices = None
    if action.choices is not None:
        choices, _ = _jsonable(list(action.choices))
    path, line = getattr(action, "_lorac_src", (None, None))
    if path is not None:
        line = lines.start(path, line)
    entry: dict[str, Any] = {
        "action": name,
        "choices": choices,
        "const": const,
        "default": default,
        "dest": action.dest,
        "flags": list(action.option_strings),
        "line": line,
        "nargs": action.nargs,
        "path": path,
        "required": bool(action.required),
        "type": type_name,
    }
    if default_note:
        entry["default_note"] = default_note
    return entry


def _worker_kohya_parser(checkout: Path, script: str) -> dict[str, Any]:
    """Import *script* from *checkout*, build its parser, and describe every option."""
    finder = _prepare_worker(checkout)
    _install_add_argument_recorder(checkout)
    module = importlib.import_module(Path(script).stem)
    parser = module.setup_parser()
    action_names = {cls: key for key, cls in parser._registries["action"].items() if key}
    lines = _CallLines(checkout)
    options: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        entry = _describe_action(action, action_names, lines)
        if action.dest in options:
            raise InventoryError(f"{script}: two options share dest {action.dest!r}")
        options[action.dest] = entry
    return {"options": options, "stubbed": sorted(finder.stubbed)}


# --------------------------------------------------------------------------------------------
# kohya: dataset-config schema (voluptuous, in library/config_util.py)


_SCHEMA_PAIR_CONVERTERS = {
    # ConfigSanitizer's private converters, recognised by name: value kind -> accepted shapes.
    "__validate_and_convert_twodim": ("ExactSequence([{k}, {k}])", ["[{k}, {k}]"]),
    "__validate_and_convert_scalar_or_twodim": (
        "Any({k}, ExactSequence([{k}, {k}]))",
        ["{k}", "[{k}, {k}]"],
    ),
}


#: How voluptuous applies the validators recorded above (lorac's summary, for rule authors).
VOLUPTUOUS_SEMANTICS = {
    "bare type": "isinstance check, no conversion: float rejects an integer such as 1, "
    "int rejects 1.0, int accepts true/false (bool is a subclass of int)",
    "Any(a, b)": "the first alternative that validates wins",
    "ExactSequence([a, b])": "a list or tuple of exactly two items of those types",
    "Required(key)": "the key must be present; every other key is optional",
    "extra keys": "a key absent from the schema is an error (voluptuous default PREVENT_EXTRA)",
}


def _describe_validator(value: Any) -> tuple[str, list[str]]:
    """Return ``(expression, accepts)`` for one voluptuous schema value."""
    if value is None:
        return "None", ["null"]
    if isinstance(value, type):
        name = _BUILTIN_TYPES.get(value, value.__name__)
        return name, [name]
    if isinstance(value, list):
        inner = [_describe_validator(v)[0] for v in value]
        return f"[{', '.join(inner)}]", ["list"]
    if isinstance(value, dict):
        return "dict-schema", ["table"]
    if isinstance(value, functools.partial):
        func_name = getattr(value.func, "__name__", "?")
        kind = ", ".join(_describe_validator(a)[0] for a in value.args)
        if func_name in _SCHEMA_PAIR_CONVERTERS:
            expr, accepts = _SCHEMA_PAIR_CONVERTERS[func_name]
            return expr.format(k=kind), [a.format(k=kind) for a in accepts]
        return f"{func_name.lstrip('_')}({kind})", ["?"]
    if isinstance(value, _Stub) and value._lorac_origin:
        parts = [_describe_validator(a) for a in value._lorac_args]
        short = value._lorac_origin.rsplit(".", 1)[-1]
        accepts: list[str] = []
        for _, acc in parts:
            accepts.extend(a for a in acc if a not in accepts)
        return f"{short}({', '.join(p[0] for p in parts)})", accepts
    if callable(value):
        return _callable_name(value), ["?"]
    return repr(value), [repr(value)]


def _schema_key(key: Any) -> tuple[str, bool]:
    if isinstance(key, _Stub) and key._lorac_origin and key._lorac_args:
        return str(key._lorac_args[0]), key._lorac_origin.endswith("Required")
    return str(key), False


def _config_util_ast_lines(path: Path, class_name: str) -> dict[str, Any]:
    """Lines of the class, of each dict/list attribute in its body, and of each dict key."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            break
    else:
        raise InventoryError(f"{path}: class {class_name} not found")
    attrs: dict[str, Any] = {}
    for stmt in node.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            continue
        target = stmt.targets[0]
        if not isinstance(target, ast.Name):
            continue
        key_lines: dict[str, int] = {}
        if isinstance(stmt.value, ast.Dict):
            for key in stmt.value.keys:
                if isinstance(key, ast.Constant):
                    key_lines[str(key.value)] = key.lineno
                elif isinstance(key, ast.Call) and key.args:
                    arg = key.args[0]
                    if isinstance(arg, ast.Constant):
                        key_lines[str(arg.value)] = key.lineno
        attrs[target.id] = {"line": stmt.lineno, "keys": key_lines}
    return {"line": node.lineno, "attrs": attrs}


def _sanitizer_calls(checkout: Path, scripts: Sequence[str]) -> dict[str, Any]:
    calls: dict[str, Any] = {}
    for script in scripts:
        tree = ast.parse((checkout / script).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "ConfigSanitizer"
            ):
                names = ("support_dreambooth", "support_finetuning", "support_controlnet")
                flags = dict(
                    zip((*names, "support_dropout"), map(ast.unparse, node.args), strict=False)
                )
                calls[script] = {"line": node.lineno, "arguments": flags}
                break
    return calls


def _merge_composition(path: Path, class_name: str, fragments: dict[str, Any]) -> dict[str, Any]:
    """For each ``self.X = self.__merge_dict(...)`` in *class_name*, the fragments it merges."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: dict[str, Any] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == class_name):
            continue
        for stmt in ast.walk(node):
            if not (
                isinstance(stmt, ast.Assign)
                and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Attribute)
                and stmt.value.func.attr.endswith("merge_dict")
            ):
                continue
            target = stmt.targets[0]
            if not isinstance(target, ast.Attribute):
                continue
            names: list[str] = []
            for sub in ast.walk(stmt.value):
                if (
                    isinstance(sub, ast.Attribute)
                    and sub.attr in fragments
                    and sub.attr not in names
                ):
                    names.append(sub.attr)
            out[target.attr] = {"fragments": names, "line": stmt.lineno}
    return out


def _worker_kohya_dataset(checkout: Path) -> dict[str, Any]:
    """Import ``library.config_util`` with stubs and describe ConfigSanitizer's schemas."""
    _prepare_worker(checkout)
    config_util = importlib.import_module("library.config_util")
    cls = config_util.ConfigSanitizer
    src = _config_util_ast_lines(checkout / KOHYA_CONFIG_UTIL, "ConfigSanitizer")

    fragments: dict[str, Any] = {}
    for name, info in src["attrs"].items():
        value = getattr(cls, name, None)
        if isinstance(value, dict):
            keys = {}
            for key, validator in value.items():
                key_name, required = _schema_key(key)
                expr, accepts = _describe_validator(validator)
                keys[key_name] = {
                    "accepts": accepts,
                    "line": info["keys"].get(key_name),
                    "required": required,
                    "type": expr,
                }
            fragments[name] = {"keys": keys, "line": info["line"]}
        elif isinstance(value, list):
            fragments[name] = {"items": [str(v) for v in value], "line": info["line"]}

    sanitizer = cls(True, True, True, True)
    composition = _merge_composition(checkout / KOHYA_CONFIG_UTIL, "ConfigSanitizer", fragments)

    def merged(attr: str) -> dict[str, Any]:
        parts = composition.get(attr, {"fragments": [], "line": None})
        keys: dict[str, Any] = {}
        for key, validator in getattr(sanitizer, attr).items():
            key_name, required = _schema_key(key)
            if key_name == "subsets":
                expr, accepts = "[subset]", ["list"]
            else:
                expr, accepts = _describe_validator(validator)
            keys[key_name] = {
                "accepts": accepts,
                "defined_in": [
                    f for f in parts["fragments"] if key_name in fragments[f].get("keys", {})
                ],
                "required": required,
                "type": expr,
            }
        return {"composed_of": parts["fragments"], "keys": keys, "line": parts["line"]}

    variants = {}
    for variant, prefix in (("dreambooth", "db"), ("fine_tuning", "ft"), ("controlnet", "cn")):
        variants[variant] = {
            "dataset": merged(f"{prefix}_dataset_schema"),
            "subset": merged(f"{prefix}_subset_schema"),
        }
    return {
        "class_line": src["line"],
        "fragments": fragments,
        "general": merged("general_schema"),
        "validator_semantics": VOLUPTUOUS_SEMANTICS,
        "variants": variants,
    }


# --------------------------------------------------------------------------------------------
# Running the workers


def _run_worker(kind: str, checkout: Path, *extra: str,
                module: str = "lorac.trainers.inventory_gen") -> dict[str, Any]:
    """Run one worker in a fresh interpreter (module state of the trainer stays out of ours):
    ``python -m <module> _worker <kind> <checkout> <out.json> <extra…>``; ``module`` is this
    one or a trainer's generator that answers ``_worker`` the same way."""
    package_root = Path(__file__).resolve().parent.parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(package_root), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", module, "_worker", kind, str(checkout)]
        proc = subprocess.run(
            [*cmd, str(out), *extra], env=env, capture_output=True, text=True, cwd=tmp
        )
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise InventoryError(f"worker {kind} {' '.join(extra)} failed:\n{tail}")
        return json.loads(out.read_text(encoding="utf-8"))


def generate_kohya(checkout: Path, out_dir: Path) -> list[Path]:
    """Write kohya inventories for *checkout* under ``out_dir/inventory/``.

    One ``<script_stem>.json`` per entry of :data:`KOHYA_SCRIPTS` (every argparse option of that
    script's real parser) and ``dataset_config.json`` (ConfigSanitizer's voluptuous schema).

    Returns:
        The written paths, in a stable order.

    Raises:
        InventoryError: when the checkout lacks a script, its commit is unknown, or a worker fails.
    """
    checkout = Path(checkout).resolve()
    commit = checkout_commit(checkout)
    written: list[Path] = []
    scripts = [s for s in KOHYA_SCRIPTS
               if (checkout / s).is_file() or s not in KOHYA_OPTIONAL_SCRIPTS]
    for script in scripts:
        if not (checkout / script).is_file():
            raise InventoryError(f"{checkout}: {script} not found")
        result = _run_worker("kohya-parser", checkout, script)
        data = {
            "source": {
                "commit": commit,
                "generated_by": GENERATED_BY,
                "script": script,
                "trainer": "sd-scripts",
            },
            "options": result["options"],
        }
        written.append(write_json(out_dir / "inventory" / f"{Path(script).stem}.json", data))
    schema = _run_worker("kohya-dataset", checkout)
    data = {
        "source": {
            "class": "ConfigSanitizer",
            "commit": commit,
            "file": KOHYA_CONFIG_UTIL,
            "generated_by": GENERATED_BY,
            "line": schema.pop("class_line"),
            "trainer": "sd-scripts",
        },
        "sanitizer_calls": _sanitizer_calls(checkout, scripts),
        **schema,
    }
    written.append(write_json(out_dir / "inventory" / "dataset_config.json", data))
    return written


# --------------------------------------------------------------------------------------------
# ai-toolkit: config classes (ast only)


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None
    value, note = _jsonable(value)
    return note is None, value


def _infer_type(is_literal: bool, value: Any) -> str:
    if not is_literal:
        return "expr"
    if value is None:
        return "none"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}.get(
        type(value), type(value).__name__
    )


def str_get(node: ast.AST, holder: str) -> str | None:
    """``holder.get("key", …)`` → ``"key"``; None for any other node."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == holder
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def _class_keys(cls: ast.ClassDef) -> dict[str, Any]:
    """Every ``kwargs.get('key', default)`` in *cls*, in source order, first read wins."""
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(cls):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    attr_to_key: dict[str, str] = {}
    keys: dict[str, Any] = {}
    calls = sorted(
        (n for n in ast.walk(cls) if str_get(n, "kwargs") is not None),
        key=lambda n: (n.lineno, n.col_offset),
    )
    for call in calls:
        assert isinstance(call, ast.Call)
        key = str_get(call, "kwargs")
        default_node = call.args[1] if len(call.args) > 1 else None
        if default_node is None:
            is_lit, default, expr = True, None, "None"
        else:
            is_lit, default = _literal(default_node)
            expr = ast.unparse(default_node)
        parent = parents.get(call)
        attribute = annotation = None
        if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is call:
            target = parent.target if isinstance(parent, ast.AnnAssign) else parent.targets[0]
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                attribute = target.attr
                attr_to_key.setdefault(attribute, key)
            if isinstance(parent, ast.AnnAssign):
                annotation = ast.unparse(parent.annotation)
        method = parent
        while method is not None and not isinstance(method, (ast.FunctionDef, ast.ClassDef)):
            method = parents.get(method)
        entry = {
            "annotation": annotation,
            "attribute": attribute,
            "default": default if is_lit else None,
            "default_expr": expr,
            "default_from": None,
            "default_is_literal": is_lit,
            "line": call.lineno,
            "method": method.name if isinstance(method, ast.FunctionDef) else None,
            "type": _infer_type(is_lit, default),
        }
        if default_node is not None and not is_lit:
            copied = str_get(default_node, "kwargs")
            if copied is not None:
                entry["default_from"] = copied
            elif (
                isinstance(default_node, ast.Attribute)
                and isinstance(default_node.value, ast.Name)
                and default_node.value.id == "self"
                and default_node.attr in attr_to_key
            ):
                entry["default_from"] = attr_to_key[default_node.attr]
        if key in keys:
            keys[key].setdefault("other_lines", []).append(call.lineno)
        else:
            keys[key] = entry
    return keys


def ai_toolkit_config_keys(checkout: Path) -> dict[str, Any]:
    """Return ``{class_name: {"line": n, "keys": {...}}}`` for ``toolkit/config_modules.py``."""
    path = checkout / AI_TOOLKIT_CONFIG_MODULES
    if not path.is_file():
        raise InventoryError(f"{checkout}: {AI_TOOLKIT_CONFIG_MODULES} not found")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    classes: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            keys = _class_keys(node)
            if keys:
                classes[node.name] = {"keys": keys, "line": node.lineno}
    return classes


@dataclass(frozen=True)
class SourceFact:
    """A behaviour of the trainer that overrides what the user configured.

    ``anchor`` is a regular expression matched line by line against ``file``; ``occurrence``
    picks among several matches. The generator records the matched line, so a fact whose anchor
    no longer matches fails regeneration loudly instead of going stale.
    """

    id: str
    file: str
    anchor: str
    description: str
    applies_to: tuple[str, ...] = ()
    occurrence: int = 0


#: Forced behaviours of ai-toolkit that lorac's rules rely on (descriptions are lorac's own).
AI_TOOLKIT_FACTS: tuple[SourceFact, ...] = (
    SourceFact(
        id="peft-format-models",
        file="toolkit/lora_special.py",
        anchor=r"if self\.is_flux or self\.is_v3 or self\.is_lumina2 or is_transformer:",
        description=(
            "FLUX, SD3, Lumina2 and every transformer-based model are saved in PEFT format "
            "(LoKr keeps the old format only when old_lokr_format is set)."
        ),
        applies_to=("flux", "sd3", "lumina2", "transformer"),
    ),
    SourceFact(
        id="peft-alpha-equals-rank",
        file="toolkit/lora_special.py",
        anchor=r"^\s*self\.alpha = self\.lora_dim\s*$",
        description=(
            "In PEFT format the network alpha is overwritten with the rank (and conv_alpha with "
            "the conv rank): a configured linear_alpha/alpha is ignored for FLUX and the other "
            "PEFT-format models, so the effective scale is always 1."
        ),
        applies_to=("flux", "sd3", "lumina2", "transformer"),
    ),
    SourceFact(
        id="network-alpha-default",
        file=AI_TOOLKIT_CONFIG_MODULES,
        anchor=r"self\.alpha: float = kwargs\.get\('alpha', 1\.0\)",
        description=(
            "network.alpha defaults to 1.0 and linear_alpha defaults to alpha, not to the rank."
        ),
    ),
    SourceFact(
        id="network-rank-default",
        file=AI_TOOLKIT_CONFIG_MODULES,
        anchor=r"rank = kwargs\.get\('rank', None\)",
        description=(
            "network.rank is a legacy spelling of network.linear and wins when both are given; "
            "with neither, the rank is 4."
        ),
    ),
    SourceFact(
        id="lokr-full-rank",
        file=AI_TOOLKIT_CONFIG_MODULES,
        anchor=r"if self\.lokr_full_rank and self\.type\.lower\(\) == 'lokr':",
        description=(
            "For type lokr with lokr_full_rank (default true) linear, linear_alpha, conv and "
            "conv_alpha are all forced to a huge value; configured ranks are ignored."
        ),
        applies_to=("lokr",),
    ),
    SourceFact(
        id="lorm-forces-rank",
        file=AI_TOOLKIT_CONFIG_MODULES,
        anchor=r"if self\.type == 'lorm':",
        description="For type lorm, linear and rank are forced to 4 (conv too when do_conv).",
        applies_to=("lorm",),
    ),
)


def _locate_fact(checkout: Path, fact: SourceFact) -> int:
    path = checkout / fact.file
    if not path.is_file():
        raise InventoryError(f"fact {fact.id}: {fact.file} not found in {checkout}")
    pattern = re.compile(fact.anchor)
    hits = [
        n
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if pattern.search(text)
    ]
    if len(hits) <= fact.occurrence:
        raise InventoryError(f"fact {fact.id}: anchor no longer found in {fact.file}")
    return hits[fact.occurrence]


def generate_ai_toolkit(checkout: Path, out_dir: Path) -> list[Path]:
    """Write ``inventory/config_keys.json``, ``inventory/archs.json`` (every ``arch`` value, see
    :mod:`lorac.trainers.ai_toolkit.archs_gen`) and ``facts.json`` for an ai-toolkit *checkout*.

    Returns:
        The written paths.

    Raises:
        InventoryError: when a file is missing, the commit is unknown, or a fact's anchor is gone.
    """
    checkout = Path(checkout).resolve()
    commit = checkout_commit(checkout)
    source = {"commit": commit, "generated_by": GENERATED_BY, "trainer": "ai-toolkit"}
    keys = {
        "source": {**source, "file": AI_TOOLKIT_CONFIG_MODULES},
        "classes": ai_toolkit_config_keys(checkout),
    }
    facts = {
        "source": source,
        "facts": {
            fact.id: {
                "applies_to": list(fact.applies_to),
                "description": fact.description,
                "file": fact.file,
                "line": _locate_fact(checkout, fact),
            }
            for fact in AI_TOOLKIT_FACTS
        },
    }
    from lorac.trainers.ai_toolkit.archs_gen import ArchError, ai_toolkit_archs, fallback_line

    try:
        archs = {"source": {**source, "unknown_arch_falls_back_to": fallback_line(checkout)},
                 "archs": ai_toolkit_archs(checkout)}
    except ArchError as exc:
        raise InventoryError(str(exc)) from exc
    return [
        write_json(out_dir / "inventory" / "config_keys.json", keys),
        write_json(out_dir / "facts.json", facts),
        write_json(out_dir / "inventory" / "archs.json", archs),
    ]


# --------------------------------------------------------------------------------------------
# Command line

def generate_musubi(checkout: Path, out_dir: Path) -> list[Path]:
    """musubi-tuner's generator (:mod:`lorac.trainers.musubi.inventory_gen`, loaded by name:
    it builds on this module)."""
    return importlib.import_module("lorac.trainers.musubi.inventory_gen").generate(
        checkout, out_dir)


GENERATORS: dict[str, Callable[[Path, Path], list[Path]]] = {
    "kohya": generate_kohya,
    "ai-toolkit": generate_ai_toolkit,
    "musubi": generate_musubi,
}


def default_out_dir(backend: str) -> Path | None:
    """The source tree's ``backends/<backend>`` when lorac runs from a checkout, else None."""
    candidate = Path(__file__).resolve().parent.parent.parent / "backends" / backend
    return candidate if candidate.is_dir() else None


def run_generator(argv: Sequence[str] | None, *, prog: str, doc: str, source_help: str,
                  backend: str, generate: Any, errors: tuple[type[BaseException], ...]) -> int:
    """The command line every one-file generator shares: ``--from SOURCE [--out DIR]``, then
    ``generate(source, out_dir) -> path``; one line on stderr and exit 2 on ``errors``."""

    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc.split("\n\n")[0])
    parser.add_argument("--from", dest="source", required=True, type=Path, help=source_help)
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default: the source tree's backends/{backend})")
    ns = parser.parse_args(argv)
    out = ns.out or default_out_dir(backend)
    if out is None:
        parser.error("--out is required outside lorac's source tree")
    try:
        path = generate(ns.source, out)
    except errors as exc:
        print(f"{prog.rsplit('.', 1)[-1]}: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _worker_main(argv: Sequence[str]) -> int:
    kind, checkout, out, *extra = argv
    if kind == "kohya-parser":
        result = _worker_kohya_parser(Path(checkout), extra[0])
    elif kind == "kohya-dataset":
        result = _worker_kohya_dataset(Path(checkout))
    else:
        raise SystemExit(f"unknown worker {kind}")
    Path(out).write_text(json.dumps(result, sort_keys=True), encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point:
    ``python -m lorac.trainers.inventory_gen {kohya,ai-toolkit} --from PATH [--out DIR]``.

    Returns 0 on success, 2 when the checkout cannot be read.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_worker"]:
        return _worker_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m lorac.trainers.inventory_gen")
    parser.add_argument("backend", choices=sorted(GENERATORS))
    parser.add_argument("--from", dest="checkout", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or default_out_dir(args.backend)
    if out is None:
        parser.error("--out is required outside lorac's source tree")
    try:
        written = GENERATORS[args.backend](args.checkout, out)
    except InventoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
