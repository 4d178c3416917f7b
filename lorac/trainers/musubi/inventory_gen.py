"""Generate ``backends/musubi/``: what lorac knows about musubi-tuner, read from a checkout.

::

    python -m lorac.trainers.inventory_gen musubi --from ~/musubi-tuner [--out backends/musubi]

musubi-tuner is a ``src/`` package (``src/musubi_tuner/``). Its entry scripts do not share one
parser builder: some assemble options inline in ``main()``. So each script is imported in a
child interpreter with the stand-in modules of :mod:`lorac.trainers.inventory_gen`, and its
``main()`` is run with ``ArgumentParser.parse_args`` replaced by a function that hands the
parser back; every ``main()`` builds its parser and parses before anything heavy.

Written (JSON, sorted keys, ``indent=1``; byte-identical on regeneration):

* ``inventory/<script_stem>.json`` for every ``*_train_network*.py`` and every caching script;
* ``inventory/dataset_config.json``: ``ConfigSanitizer``'s schema at the ``general``, image
  dataset and video dataset levels;
* ``network_modules.json``: each ``networks/*.py`` module with ``create_arch_network`` and the
  ``network_args`` it and ``networks.lora.create_network`` read;
* ``architectures.json``: per architecture its three scripts, network module, cache-file suffix,
  the options each script requires, and the variant choices (Wan ``--task``, FLUX.2 and
  Qwen-Image ``--model_version``, Kandinsky 5 ``--task``), each with the source line.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorac.trainers import inventory_gen as gen

PACKAGE = "src/musubi_tuner"
CONFIG_UTILS = f"{PACKAGE}/dataset/config_utils.py"
TRAINER_BASE = f"{PACKAGE}/training/trainer_base.py"
MODULE = "lorac.trainers.musubi.inventory_gen"


def _package(checkout: Path) -> Path:
    return checkout / PACKAGE


def train_scripts(checkout: Path) -> list[str]:
    """Every LoRA training script (``*_train_network*.py``), sorted."""
    return sorted(p.name for p in _package(checkout).glob("*_train_network*.py"))


def cache_scripts(checkout: Path) -> list[str]:
    """Every caching script (latents, pixels, text-encoder outputs), sorted."""
    pkg = _package(checkout)
    names = {p.name for pattern in ("*cache_latents.py", "*cache_pixel.py",
                                    "*cache_text_encoder_outputs.py") for p in pkg.glob(pattern)}
    return sorted(names)


# --------------------------------------------------------------------------------------------
# Worker: one script's parser


class _Captured(Exception):
    pass


def _worker_parser(checkout: Path, script: str) -> dict[str, Any]:
    src = checkout / "src"
    finder = gen._prepare_worker(src)
    gen._install_add_argument_recorder(src)

    def capture(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _Captured(self)

    argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign]
    module = importlib.import_module(f"musubi_tuner.{Path(script).stem}")
    try:
        module.main()
    except _Captured as exc:
        parser = exc.args[0]
    else:
        raise gen.InventoryError(f"{script}: main() returned without parsing arguments")
    action_names = {cls: key for key, cls in parser._registries["action"].items() if key}
    lines = gen._CallLines(src)
    options: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        entry = gen._describe_action(action, action_names, lines)
        if entry["path"] is not None:
            entry["path"] = f"src/{entry['path']}"
        if entry["choices"] == []:
            # choices computed from a stood-in package (accelerate's DynamoBackend): unknown
            entry["choices"] = None
            entry["choices_note"] = "computed from a third-party package at run time"
        key = action.dest
        if key in options:  # --x / --no_x pairs share a dest: the second goes by its flag
            key = action.option_strings[-1].lstrip("-").replace("-", "_")
            if key in options:
                raise gen.InventoryError(f"{script}: two options share dest {action.dest!r}")
        options[key] = entry
    return {"options": options, "stubbed": sorted(finder.stubbed)}


# --------------------------------------------------------------------------------------------
# Worker: the dataset-config schema


#: The dataset levels and the ConfigSanitizer dicts each merges (config_utils.py ``__init__``).
DATASET_LEVELS = {
    "general": ("DATASET_ASCENDABLE_SCHEMA",),
    "image": ("DATASET_ASCENDABLE_SCHEMA", "IMAGE_DATASET_DISTINCT_SCHEMA"),
    "video": ("DATASET_ASCENDABLE_SCHEMA", "VIDEO_DATASET_DISTINCT_SCHEMA"),
}
#: Keys whose presence selects the video schema, else the image one (``validate_flex_dataset``).
VIDEO_SELECTORS = ("video_directory", "video_jsonl_file")


def _worker_dataset(checkout: Path) -> dict[str, Any]:
    gen._prepare_worker(checkout / "src")
    config_utils = importlib.import_module("musubi_tuner.dataset.config_utils")
    cls = config_utils.ConfigSanitizer
    src = gen._config_util_ast_lines(checkout / CONFIG_UTILS, "ConfigSanitizer")
    fragments: dict[str, Any] = {}
    for name, info in src["attrs"].items():
        value = getattr(cls, name, None)
        if not isinstance(value, dict):
            continue
        keys = {}
        for key, validator in value.items():
            key_name, required = gen._schema_key(key)
            expr, accepts = gen._describe_validator(validator)
            keys[key_name] = {"accepts": accepts, "line": info["keys"].get(key_name),
                              "required": required, "type": expr}
        fragments[name] = {"keys": keys, "line": info["line"]}
    levels: dict[str, Any] = {}
    for level, parts in DATASET_LEVELS.items():
        missing = [p for p in parts if p not in fragments]
        if missing:
            raise gen.InventoryError(f"{CONFIG_UTILS}: ConfigSanitizer has no {missing}")
        keys = {}
        for part in parts:
            for key, entry in fragments[part]["keys"].items():
                keys[key] = {**entry, "defined_in": part}
        levels[level] = {"composed_of": list(parts), "keys": keys}
    return {"class_line": src["line"], "fragments": fragments, "levels": levels}


# --------------------------------------------------------------------------------------------
# ast readers (no import)


def _tree(path: Path) -> ast.Module:
    if not path.is_file():
        raise gen.InventoryError(f"{path} not found")
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _kwargs_gets(func: ast.FunctionDef) -> dict[str, int]:
    holder = func.args.kwarg.arg if func.args.kwarg else "kwargs"
    found: dict[str, int] = {}
    for node in ast.walk(func):
        key = gen.str_get(node, holder)
        if key is not None:
            found.setdefault(key, node.lineno)
    return found


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def network_modules(checkout: Path) -> dict[str, Any]:
    """``networks.<name>`` → file, ``create_arch_network`` line, target module classes and the
    ``network_args`` keys read (own lookups, plus ``networks.lora.create_network``'s for modules
    that hand their kwargs on to it)."""

    net_dir = _package(checkout) / "networks"
    base_tree = _tree(net_dir / "lora.py")
    base = _functions(base_tree).get("create_network")
    if base is None:
        raise gen.InventoryError(f"{net_dir / 'lora.py'}: no create_network")
    base_args = _kwargs_gets(base)
    alpha = _alpha_default(base)
    modules: dict[str, Any] = {}
    for path in sorted(net_dir.glob("*.py")):
        tree = _tree(path)
        funcs = _functions(tree)
        create = funcs.get("create_arch_network")
        if create is None:
            continue
        own = _kwargs_gets(create)
        rel = path.relative_to(checkout).as_posix()
        args = {k: {"file": rel, "line": n} for k, n in own.items()}
        forwards = any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == "create_network" for n in ast.walk(create)
        ) or path.name == "lora.py"
        if forwards:
            for key, line in base_args.items():
                args.setdefault(key, {"file": f"{PACKAGE}/networks/lora.py", "line": line})
        targets: dict[str, Any] = {}
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id.endswith("TARGET_REPLACE_MODULES")):
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    continue
                if isinstance(value, (list, tuple)):
                    targets[node.targets[0].id] = {"classes": list(value), "line": node.lineno}
        modules[f"networks.{path.stem}"] = {
            "alpha_default": alpha[0] if forwards else None,
            "alpha_default_line": alpha[1] if forwards else None,
            "args": args,
            "create_arch_network": create.lineno,
            "file": rel,
            "target_modules": targets,
        }
    return modules


def _alpha_default(func: ast.FunctionDef) -> tuple[Any, int | None]:
    """``if network_alpha is None: network_alpha = X`` → ``(X, line)``."""
    for node in ast.walk(func):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "network_alpha"):
            try:
                return ast.literal_eval(node.value), node.lineno
            except ValueError:
                continue
    return None, None


def _dict_keys(path: Path, name: str) -> tuple[list[str], int]:
    """Keys of the module-level dict ``name`` (annotated or not) and its line."""
    for node in _tree(path).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if isinstance(target, ast.Name) and target.id == name and isinstance(
                getattr(node, "value", None), ast.Dict):
            keys = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
            return keys, node.lineno
    raise gen.InventoryError(f"{path}: no dict {name}")


def _set_literal(path: Path, function: str, name: str) -> tuple[list[str], int]:
    """Items of the set literal assigned to ``name`` inside ``function``, and its line."""
    func = _functions(_tree(path)).get(function)
    if func is not None:
        for node in ast.walk(func):
            if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id == name):
                return sorted(ast.literal_eval(node.value)), node.lineno
    raise gen.InventoryError(f"{path}: no {name} in {function}()")


def _arch_constants(checkout: Path) -> dict[str, tuple[str, int]]:
    path = _package(checkout) / "dataset" / "architectures.py"
    out: dict[str, tuple[str, int]] = {}
    for node in _tree(path).body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)):
            out[node.targets[0].id] = (node.value.value, node.lineno)
    return out


def _returned_constants(path: Path, prop: str) -> list[str]:
    """The ``ARCHITECTURE_*`` names returned by the method ``prop`` of the script's classes."""
    names: list[str] = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.FunctionDef) and node.name == prop:
            for sub in ast.walk(node):
                if (isinstance(sub, ast.Return) and isinstance(sub.value, ast.Name)
                        and sub.value.id.startswith("ARCHITECTURE_")
                        and sub.value.id not in names):
                    names.append(sub.value.id)
    return names


# --------------------------------------------------------------------------------------------
# Architectures


@dataclass(frozen=True)
class Arch:
    """One model architecture musubi trains: lorac's key, its scripts and network module.

    The file names and the module are checked against the checkout; what they require and
    accept is read from the generated inventories.
    """

    key: str
    train: str
    latents: str
    text_encoder: str
    network_module: str
    #: option dests whose choices are the architecture's variants (``task``, ``model_version``)
    variants: tuple[str, ...] = ()
    #: where the cache suffixes are named when the script's ``architecture`` reads them from
    #: a table (FLUX.2's ``FLUX2_MODEL_INFO``), relative to the package
    suffix_source: str = ""


ARCHITECTURES: tuple[Arch, ...] = (
    Arch("hunyuan_video", "hv_train_network.py", "cache_latents.py",
         "cache_text_encoder_outputs.py", "networks.lora"),
    Arch("hunyuan_video_1_5", "hv_1_5_train_network.py", "hv_1_5_cache_latents.py",
         "hv_1_5_cache_text_encoder_outputs.py", "networks.lora_hv_1_5", ("task",)),
    Arch("wan", "wan_train_network.py", "wan_cache_latents.py",
         "wan_cache_text_encoder_outputs.py", "networks.lora_wan", ("task",)),
    Arch("framepack", "fpack_train_network.py", "fpack_cache_latents.py",
         "fpack_cache_text_encoder_outputs.py", "networks.lora_framepack"),
    Arch("flux_kontext", "flux_kontext_train_network.py", "flux_kontext_cache_latents.py",
         "flux_kontext_cache_text_encoder_outputs.py", "networks.lora_flux"),
    Arch("flux_2", "flux_2_train_network.py", "flux_2_cache_latents.py",
         "flux_2_cache_text_encoder_outputs.py", "networks.lora_flux_2", ("model_version",),
         "flux_2/flux2_utils.py"),
    Arch("qwen_image", "qwen_image_train_network.py", "qwen_image_cache_latents.py",
         "qwen_image_cache_text_encoder_outputs.py", "networks.lora_qwen_image",
         ("model_version",)),
    Arch("z_image", "zimage_train_network.py", "zimage_cache_latents.py",
         "zimage_cache_text_encoder_outputs.py", "networks.lora_zimage"),
    Arch("kandinsky5", "kandinsky5_train_network.py", "kandinsky5_cache_latents.py",
         "kandinsky5_cache_text_encoder_outputs.py", "networks.lora_kandinsky", ("task",)),
    Arch("hidream_o1", "hidream_o1_train_network.py", "hidream_o1_cache_pixel.py",
         "hidream_o1_cache_text_encoder_outputs.py", "networks.lora_hidream_o1",
         ("model_type", "task")),
    Arch("ideogram4", "ideogram4_train_network.py", "ideogram4_cache_latents.py",
         "ideogram4_cache_text_encoder_outputs.py", "networks.lora_ideogram4"),
    Arch("krea2", "krea2_train_network.py", "krea2_cache_latents.py",
         "krea2_cache_text_encoder_outputs.py", "networks.lora_krea2"),
)


@dataclass(frozen=True)
class Requirement:
    """A check every training script makes at start-up that argparse does not (trainer_base)."""

    id: str
    anchor: str
    options: tuple[str, ...]
    description: str


#: What ``NetworkTrainer.train`` requires before loading anything; lines located by ``anchor``.
TRAIN_REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("dataset_config", r"if args\.dataset_config is None:", ("dataset_config",),
                "--dataset_config is required"),
    Requirement("dit", r"if args\.dit is None:", ("dit",), "--dit is required"),
    Requirement("fp8_scaled_needs_fp8_base", r"assert not args\.fp8_scaled or args\.fp8_base",
                ("fp8_scaled", "fp8_base"), "--fp8_scaled requires --fp8_base"),
    Requirement("no_sage_attn_training", r"if args\.sage_attn:", ("sage_attn",),
                "--sage_attn is refused for training"),
    Requirement("attention_mode", r"either --sdpa, --flash-attn, --flash3",
                ("sdpa", "flash_attn", "flash3", "xformers", "sage_attn"),
                "one attention option must be given"),
    Requirement("network_module", r"importlib\.import_module\(args\.network_module\)",
                ("network_module",), "--network_module has no default"),
)

#: Variant lists that are not argparse choices: (arch key, option, file, reader, name).
EXTRA_VARIANTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("qwen_image", "model_version", f"{PACKAGE}/qwen_image/qwen_image_utils.py",
     "resolve_model_version_args", "valid_model_versions"),
    ("kandinsky5", "task", f"{PACKAGE}/kandinsky5/configs.py", "", "TASK_CONFIGS"),
)


def _locate(path: Path, anchor: str) -> int:
    pattern = re.compile(anchor)
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if pattern.search(line):
            return n
    raise gen.InventoryError(f"{path}: {anchor!r} no longer found")


def architectures(checkout: Path, inventories: dict[str, dict[str, Any]],
                  modules: dict[str, Any]) -> dict[str, Any]:
    """``architectures.json``'s body from the inventories just generated."""
    constants = _arch_constants(checkout)
    pkg = _package(checkout)
    out: dict[str, Any] = {}
    for arch in ARCHITECTURES:
        for script in (arch.train, arch.latents, arch.text_encoder):
            if Path(script).stem not in inventories:
                raise gen.InventoryError(f"{checkout}: {PACKAGE}/{script} not found")
        if arch.network_module not in modules:
            raise gen.InventoryError(f"{checkout}: no network module {arch.network_module}")
        suffixes = {}
        names = _returned_constants(pkg / arch.train, "architecture")
        if not names and arch.suffix_source:
            names = sorted({n.id for n in ast.walk(_tree(pkg / arch.suffix_source))
                            if isinstance(n, ast.Name) and n.id in constants
                            and not n.id.endswith("_FULL")})
        for name in names:
            value, line = constants[name]
            suffixes[value] = {"constant": name, "line": line,
                               "full_name": constants.get(f"{name}_FULL", (None,))[0]}
        if not suffixes:
            raise gen.InventoryError(f"{arch.train}: no architecture property found")
        steps = {}
        for step, script in (("latents", arch.latents), ("text_encoder", arch.text_encoder),
                             ("train", arch.train)):
            opts = inventories[Path(script).stem]["options"]
            steps[step] = {
                "required": sorted(d for d, o in opts.items() if o["required"]),
                "script": f"{PACKAGE}/{script}",
            }
        variants = {}
        train_opts = inventories[Path(arch.train).stem]["options"]
        for dest in arch.variants:
            opt = train_opts.get(dest)
            if opt is None:
                raise gen.InventoryError(f"{arch.train}: no option {dest}")
            if opt["choices"]:
                variants[dest] = {"choices": opt["choices"], "default": opt["default"],
                                  "file": opt["path"], "line": opt["line"]}
        for key, dest, rel, function, name in EXTRA_VARIANTS:
            if key != arch.key:
                continue
            if function:
                values, line = _set_literal(checkout / rel, function, name)
                default = "original" if "original" in values else None
            else:
                values, line = _dict_keys(checkout / rel, name)
                default = train_opts[dest]["default"]
            variants[dest] = {"choices": values, "default": default, "file": rel, "line": line}
        out[arch.key] = {
            "cache_suffixes": suffixes,
            "network_module": arch.network_module,
            "steps": steps,
            "variants": variants,
        }
    return out


# --------------------------------------------------------------------------------------------
# Generation


def generate(checkout: Path, out_dir: Path) -> list[Path]:
    """Write everything of ``backends/musubi/`` that is generated from *checkout*.

    Raises:
        InventoryError: a missing file, an unknown commit, a failed worker or a stale anchor.
    """
    checkout = Path(checkout).resolve()
    if not (_package(checkout) / "training" / "trainer_base.py").is_file():
        raise gen.InventoryError(f"{checkout}: not a musubi-tuner checkout "
                                 f"(no {TRAINER_BASE})")
    commit = gen.checkout_commit(checkout)
    source = {"commit": commit, "generated_by": gen.GENERATED_BY, "trainer": "musubi-tuner"}
    written: list[Path] = []
    inventories: dict[str, dict[str, Any]] = {}
    scripts = [(s, "train") for s in train_scripts(checkout)]
    scripts += [(s, "cache") for s in cache_scripts(checkout)]
    for script, kind in scripts:
        result = gen._run_worker("musubi-parser", checkout, script, module=MODULE)
        data = {"source": {**source, "kind": kind, "script": f"{PACKAGE}/{script}"},
                "options": result["options"]}
        inventories[Path(script).stem] = data
        written.append(gen.write_json(out_dir / "inventory" / f"{Path(script).stem}.json", data))
    schema = gen._run_worker("musubi-dataset", checkout, module=MODULE)
    data = {
        "source": {**source, "class": "ConfigSanitizer", "file": CONFIG_UTILS,
                   "line": schema.pop("class_line")},
        "video_selectors": list(VIDEO_SELECTORS),
        "validator_semantics": gen.VOLUPTUOUS_SEMANTICS,
        **schema,
    }
    written.append(gen.write_json(out_dir / "inventory" / "dataset_config.json", data))
    modules = network_modules(checkout)
    written.append(gen.write_json(out_dir / "network_modules.json",
                                  {"source": source, "modules": modules}))
    base = checkout / TRAINER_BASE
    requirements = {
        r.id: {"description": r.description, "file": TRAINER_BASE,
               "line": _locate(base, r.anchor), "options": list(r.options)}
        for r in TRAIN_REQUIREMENTS
    }
    written.append(gen.write_json(out_dir / "architectures.json", {
        "source": source,
        "architectures": architectures(checkout, inventories, modules),
        "train_requirements": requirements,
    }))
    return written


def _worker_main(argv: Sequence[str]) -> int:
    kind, checkout, out, *extra = argv
    if kind == "musubi-parser":
        result = _worker_parser(Path(checkout), extra[0])
    elif kind == "musubi-dataset":
        result = _worker_dataset(Path(checkout))
    else:
        raise SystemExit(f"unknown worker {kind}")
    Path(out).write_text(json.dumps(result, sort_keys=True), encoding="utf-8")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_worker"]:
        raise SystemExit(_worker_main(sys.argv[2:]))
    raise SystemExit(gen.main(["musubi", *sys.argv[1:]]))
