"""Every ``arch`` value ai-toolkit accepts, and what lorac needs to know about each, read from an
ai-toolkit checkout with :mod:`ast` only (nothing of ai-toolkit is imported).

Two kinds of architecture exist (``toolkit/util/get_model.py`` ``get_model_class``):

* class-based: a model class with a class attribute ``arch = "…"``, registered in
  ``BUILT_IN_MODELS`` (``toolkit/util/get_model.py``) or in the ``AI_TOOLKIT_MODELS`` list of a
  package under ``extensions_built_in/`` or ``extensions/``;
* legacy: anything else goes to ``StableDiffusion`` (``toolkit/stable_diffusion_model.py``),
  which knows the archs that ``ModelConfig`` turns into ``is_*`` flags
  (``toolkit/config_modules.py``: ``if self.arch == 'sd3': self.is_v3 = True``), ``sd1`` when
  none fits, and aliases (``flex1`` → ``flux``). An arch ai-toolkit does not know falls back
  to that legacy path silently.

Per arch, with the source line that decides it:

* ``peft_alpha_is_rank``: the LoRA is saved in PEFT format and its alpha overwritten with the
  rank (``toolkit/lora_special.py``: ``if self.is_flux or … or is_transformer``; every class
  that sets ``self.is_transformer = True`` counts);
* ``quantize``: the model loader quantises the transformer when ``model.quantize`` is set
  (a call of ``quantize``/``quantize_model`` in the class, or in the legacy loader's branch);
* ``layer_offloading`` / ``low_vram``: the model code reads ``model_config.layer_offloading``
  / ``model_config.low_vram`` (elsewhere the setting does nothing);
* ``bucket_divisibility``: the constant ``get_bucket_divisibility`` returns, where it is one;
* ``flowmatch``: a flow-matching model (the class uses a ``FlowMatch`` scheduler, or the legacy
  condition that builds one), so ``train.noise_scheduler: flowmatch`` is what the train loop
  needs (``jobs/process/BaseSDTrainProcess.py`` gates its flow-matching timestep handling on it).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_MODULES = "toolkit/config_modules.py"
GET_MODEL = "toolkit/util/get_model.py"
LEGACY_MODEL = "toolkit/stable_diffusion_model.py"
LORA_SPECIAL = "toolkit/lora_special.py"
SCAN_DIRS = ("toolkit", "extensions_built_in", "extensions")
#: Base classes every model class shares; what they do is not a property of one arch.
SHARED_BASES = frozenset({"BaseModel", "StableDiffusion", "object"})


class ArchError(Exception):
    """The checkout does not have the shape the reader expects (a file or anchor is gone)."""


@dataclass
class _Class:
    name: str
    file: str
    line: int
    bases: list[str]
    arch: str | None = None
    arch_line: int = 0
    transformer_line: int = 0
    quantize_line: int = 0
    flowmatch_line: int = 0
    layer_offloading_line: int = 0
    low_vram_line: int = 0
    divisibility: int = 0
    divisibility_line: int = 0
    registered: list[str] = field(default_factory=list)


def _parse(checkout: Path, rel: str) -> ast.Module:
    path = checkout / rel
    if not path.is_file():
        raise ArchError(f"{checkout}: {rel} not found")
    return ast.parse(path.read_text(encoding="utf-8"), rel)


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _scan_class(cls: ast.ClassDef, rel: str) -> _Class:
    info = _Class(cls.name, rel, cls.lineno, [_name(b) for b in cls.bases])
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and any(_name(t) == "arch" for t in stmt.targets) \
                and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            info.arch, info.arch_line = stmt.value.value, stmt.lineno
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "get_bucket_divisibility":
            returns = [n for n in ast.walk(stmt) if isinstance(n, ast.Return)]
            if len(returns) == 1 and isinstance(returns[0].value, ast.Constant) \
                    and isinstance(returns[0].value.value, int):
                info.divisibility = returns[0].value.value
                info.divisibility_line = returns[0].lineno
            else:  # computed at run time: not known from the source alone
                info.divisibility, info.divisibility_line = -1, stmt.lineno
    for node in ast.walk(cls):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr in ("layer_offloading", "low_vram") \
                and _name(node.value) == "model_config":
            attr = f"{node.attr}_line"
            setattr(info, attr, getattr(info, attr) or line)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and node.value.value is True and any(
                    isinstance(t, ast.Attribute) and t.attr == "is_transformer"
                    for t in node.targets):
            info.transformer_line = info.transformer_line or line
        elif isinstance(node, ast.Call) and _name(node.func) in ("quantize", "quantize_model"):
            info.quantize_line = info.quantize_line or line
        elif isinstance(node, (ast.Name, ast.Attribute)) and "flowmatch" in _name(node).lower():
            info.flowmatch_line = info.flowmatch_line or line
    return info


def _classes(checkout: Path) -> dict[str, list[_Class]]:
    found: dict[str, list[_Class]] = {}
    for top in SCAN_DIRS:
        base = checkout / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(checkout).as_posix()
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), rel)
            except (SyntaxError, UnicodeDecodeError):
                continue
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    found.setdefault(node.name, []).append(_scan_class(node, rel))
    return found


def _module_file(checkout: Path, package_rel: str, module: str, level: int) -> str | None:
    """The file a ``from <level dots><module> import`` in ``package_rel`` (a folder) names."""

    here = Path(package_rel)
    for _ in range(level - 1):
        here = here.parent
    if level == 0:
        here = Path()
    target = here.joinpath(*module.split(".")) if module else here
    for candidate in (target.with_suffix(".py"), target / "__init__.py"):
        if (checkout / candidate).is_file():
            return candidate.as_posix()
    return None


def _resolve(checkout: Path, rel: str, name: str, classes: dict[str, list[_Class]],
             depth: int = 0) -> _Class | None:
    """The class ``name`` as imported or defined in the file ``rel``."""

    for entry in classes.get(name, []):
        if entry.file == rel:
            return entry
    if depth > 4:
        return None
    tree = ast.parse((checkout / rel).read_text(encoding="utf-8"), rel)
    package = str(Path(rel).parent)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == name for a in node.names):
            target = _module_file(checkout, package, node.module or "", node.level)
            if target is not None:
                return _resolve(checkout, target, name, classes, depth + 1)
    candidates = classes.get(name, [])
    return candidates[0] if len(candidates) == 1 else None


def _registered(checkout: Path, classes: dict[str, list[_Class]]) -> list[tuple[_Class, str]]:
    """Every registered model class with where it is registered (``file:line``)."""

    lists: list[tuple[str, str, ast.AST]] = []
    get_model = _parse(checkout, GET_MODEL)
    lists += [(GET_MODEL, "BUILT_IN_MODELS", n) for n in get_model.body]
    for top in ("extensions_built_in", "extensions"):
        for init in sorted((checkout / top).glob("*/__init__.py")):
            rel = init.relative_to(checkout).as_posix()
            lists += [(rel, "AI_TOOLKIT_MODELS", n) for n in _parse(checkout, rel).body]
    out = []
    for rel, var, node in lists:
        if not (isinstance(node, ast.Assign) and any(_name(t) == var for t in node.targets)
                and isinstance(node.value, ast.List)):
            continue
        for elt in node.value.elts:
            cls = _resolve(checkout, rel, _name(elt), classes)
            if cls is None:
                raise ArchError(f"{rel}:{elt.lineno}: cannot find class {_name(elt)}")
            out.append((cls, f"{rel}:{elt.lineno}"))
    if not out:
        raise ArchError(f"{checkout}: no registered model classes found")
    return out


def _inherited(cls: _Class, classes: dict[str, list[_Class]], attr: str) -> str | None:
    """``file:line`` of ``attr`` (a ``*_line`` field) in ``cls`` or the first base that has it."""

    seen: set[str] = set()
    todo = [cls]
    while todo:
        here = todo.pop(0)
        if here.name in seen:
            continue
        seen.add(here.name)
        line = getattr(here, attr)
        if line:
            return f"{here.file}:{line}"
        for base in here.bases:
            if base in SHARED_BASES:
                continue
            todo += [c for c in classes.get(base, [])][:1]
    return None


def _owner(at: str, classes: dict[str, list[_Class]]) -> str:
    """The name of the class whose ``divisibility_line`` is ``at``."""

    for name, entries in classes.items():
        if any(f"{c.file}:{c.divisibility_line}" == at for c in entries):
            return name
    return ""


def _arch_of(cls: _Class, classes: dict[str, list[_Class]]) -> tuple[str, str] | None:
    here: _Class | None = cls
    while here is not None:
        if here.arch is not None:
            return here.arch, f"{here.file}:{here.arch_line}"
        bases = [classes[b][0] for b in here.bases if b in classes and b not in SHARED_BASES]
        here = bases[0] if bases else None
    return None


# ------------------------------------------------------------------------ legacy architectures


def _self_attr(node: ast.AST, attr_prefix: str = "") -> str | None:
    """``self.x`` or ``self.model_config.x`` → ``x``."""

    if isinstance(node, ast.Attribute) and node.attr.startswith(attr_prefix):
        inner = node.value
        if isinstance(inner, ast.Name) and inner.id == "self":
            return node.attr
        if isinstance(inner, ast.Attribute) and inner.attr == "model_config":
            return node.attr
    return None


def _legacy(checkout: Path) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """``(archs, flag → arch, alias → arch)`` from ``ModelConfig``."""

    tree = _parse(checkout, CONFIG_MODULES)
    model_config = next((n for n in tree.body if isinstance(n, ast.ClassDef)
                         and n.name == "ModelConfig"), None)
    if model_config is None:
        raise ArchError(f"{CONFIG_MODULES}: class ModelConfig not found")
    archs: dict[str, Any] = {}
    flags: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for node in ast.walk(model_config):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1
                and isinstance(test.ops[0], ast.Eq) and _self_attr(test.left) == "arch"
                and isinstance(test.comparators[0], ast.Constant)):
            continue
        value = test.comparators[0].value
        for stmt in node.body:
            if not isinstance(stmt, ast.Assign):
                continue
            target = _self_attr(stmt.targets[0])
            if target == "arch" and isinstance(stmt.value, ast.Constant):
                aliases[value] = stmt.value.value
                archs.setdefault(value, {"kind": "alias", "of": stmt.value.value,
                                         "source": f"{CONFIG_MODULES}:{stmt.lineno}"})
            elif target is not None and target.startswith("is_"):
                flags[target] = value
                archs[value] = {"kind": "legacy", "flag": target,
                                "source": f"{CONFIG_MODULES}:{node.lineno}"}
    # the default when neither arch nor a flag is given: ``self.arch = 'sd1'`` in the last else
    defaults = [n for n in ast.walk(model_config) if isinstance(n, ast.If)
                and _self_attr(getattr(n.test, "left", ast.Constant(None))) == "arch"
                and isinstance(n.test, ast.Compare) and isinstance(n.test.ops[0], ast.Is)]
    for node in defaults:
        for stmt in ast.walk(node):
            if isinstance(stmt, ast.Assign) and _self_attr(stmt.targets[0]) == "arch" \
                    and isinstance(stmt.value, ast.Constant) and stmt.value.value not in archs:
                archs[stmt.value.value] = {"kind": "legacy", "flag": None,
                                           "source": f"{CONFIG_MODULES}:{stmt.lineno}"}
    if not flags:
        raise ArchError(f"{CONFIG_MODULES}: no `if self.arch == '…': self.is_… = True` found")
    return archs, flags, aliases


def _flag_names(expr: ast.AST) -> list[str]:
    return [n for n in (_self_attr(x, "is_") for x in ast.walk(expr)) if n]


def _legacy_facts(checkout: Path, flags: dict[str, str]) -> dict[str, dict[str, str]]:
    """Per legacy arch: ``{"peft_alpha_is_rank"|"quantize"|"flowmatch": "file:line"}``."""

    facts: dict[str, dict[str, str]] = {}

    def note(flag: str, key: str, where: str) -> None:
        arch = flags.get(flag)
        if arch is not None:
            facts.setdefault(arch, {}).setdefault(key, where)

    lora = _parse(checkout, LORA_SPECIAL)
    peft = [n for n in ast.walk(lora) if isinstance(n, ast.If)
            and "is_transformer" in ast.unparse(n.test) and _flag_names(n.test)]
    if not peft:
        raise ArchError(f"{LORA_SPECIAL}: the PEFT-format condition is gone")
    for flag in _flag_names(peft[0].test):
        note(flag, "peft_alpha_is_rank", f"{LORA_SPECIAL}:{peft[0].lineno}")
    legacy = _parse(checkout, LEGACY_MODEL)
    found_flow = found_quant = False
    for node in ast.walk(legacy):
        if not isinstance(node, ast.If):
            continue
        text = ast.unparse(node.test)
        if "FlowMatch" in text and isinstance(node.test, ast.BoolOp):
            found_flow = True
            for flag in _flag_names(node.test):
                note(flag, "flowmatch", f"{LEGACY_MODEL}:{node.lineno}")
        names = _flag_names(node.test)
        if len(names) == 1 and isinstance(node.test, ast.Attribute):
            calls = [c for stmt in node.body for c in ast.walk(stmt)
                     if isinstance(c, ast.Call) and _name(c.func) in ("quantize", "quantize_model")]
            if calls:
                found_quant = True
                note(names[0], "quantize", f"{LEGACY_MODEL}:{calls[0].lineno}")
    if not (found_flow and found_quant):
        raise ArchError(f"{LEGACY_MODEL}: the flow-matching or quantising branches are gone")
    low_vram = [n for n in ast.walk(legacy) if isinstance(n, ast.Attribute)
                and n.attr == "low_vram" and _name(n.value) == "model_config"]
    if low_vram:  # StableDiffusion, the model of every legacy arch, reads it
        facts["*"] = {"low_vram": f"{LEGACY_MODEL}:{low_vram[0].lineno}"}
    return facts


def ai_toolkit_archs(checkout: Path) -> dict[str, Any]:
    """``{arch: {...}}`` for every ``arch`` value the checkout accepts (see the module
    docstring)."""

    checkout = Path(checkout)
    classes = _classes(checkout)
    archs: dict[str, Any] = {}
    for cls, where in _registered(checkout, classes):
        found = _arch_of(cls, classes)
        if found is None:
            raise ArchError(f"{where}: class {cls.name} has no arch attribute")
        arch, arch_at = found
        if arch in archs:
            continue  # get_model_class takes the first class with this arch
        entry: dict[str, Any] = {"kind": "class", "class": cls.name, "source": arch_at,
                                 "registered": where}
        for key, attr in (("peft_alpha_is_rank", "transformer_line"),
                          ("quantize", "quantize_line"), ("flowmatch", "flowmatch_line"),
                          ("layer_offloading", "layer_offloading_line"),
                          ("low_vram", "low_vram_line")):
            at = _inherited(cls, classes, attr)
            entry[key] = at is not None
            if at is not None:
                entry[f"{key}_at"] = at
        at = _inherited(cls, classes, "divisibility_line")
        if at is not None:
            owner = next(c for c in classes.get(_owner(at, classes), []) if
                         f"{c.file}:{c.divisibility_line}" == at)
            if owner.divisibility > 0:
                entry["bucket_divisibility"] = owner.divisibility
                entry["bucket_divisibility_at"] = at
        archs[arch] = entry
    legacy, flags, _aliases = _legacy(checkout)
    facts = _legacy_facts(checkout, flags)
    for arch, entry in legacy.items():
        if arch in archs:
            continue
        if entry["kind"] == "legacy":
            own = {**facts.get("*", {}), **facts.get(arch, {})}
            for key in ("peft_alpha_is_rank", "quantize", "flowmatch", "layer_offloading",
                        "low_vram"):
                entry[key] = key in own
                if key in own:
                    entry[f"{key}_at"] = own[key]
        archs[arch] = entry
    return dict(sorted(archs.items()))


#: The anchor of the silent fallback, recorded so that a change to it fails regeneration.
FALLBACK_ANCHOR = re.compile(r"^\s*return StableDiffusion\s*$")


def fallback_line(checkout: Path) -> str:
    """``file:line`` where an unknown arch falls back to the legacy model."""

    lines = (Path(checkout) / GET_MODEL).read_text(encoding="utf-8").splitlines()
    hits = [n for n, text in enumerate(lines, start=1) if FALLBACK_ANCHOR.search(text)]
    if not hits:
        raise ArchError(f"{GET_MODEL}: the fallback to StableDiffusion is gone")
    return f"{GET_MODEL}:{hits[0]}"
