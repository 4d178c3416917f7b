"""Generate ``lorac/schema/profile.schema.json`` from lorac's own sections and the backends'
option inventories (``backends/*/inventory``).

Run ``python -m lorac.config.schema_gen`` (or ``lorac schema --write``) after regenerating an
inventory; ``tests/test_validate.py`` fails while the committed schema is stale. Only keywords
that JSON Schema draft 4 also has are used, so taplo / Even Better TOML can offer completion
through a ``#:schema`` header.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lorac.config.inventory import backends_dir, load_backend_toml, load_families
from lorac.config.validate import SCHEMA_PATH

DRAFT4 = "http://json-schema.org/draft-04/schema#"
GPU_PATTERN = r"^([0-9]+(\.[0-9]+)?\s*(GB|GiB|G)|[A-Za-z][A-Za-z0-9 ._-]*)$"

_SCALAR = {"int": "integer", "float": "number", "str": "string", "path": "string",
           "bool": "boolean"}


def _own_sections(families: list[str]) -> dict[str, Any]:
    return {
        "profile": {
            "type": "object",
            "description": "lorac's description of this recipe.",
            "properties": {
                "extends": {"type": "string", "minLength": 1,
                            "description": "Another profile in the same folder (name or file)."},
                "description": {"type": "string"},
                "family": {"enum": families,
                           "description": "Model family: decides the trainer script and rules."},
                "gpu": {"description": "The card(s) this profile must fit, e.g. \"24GB\".",
                        "anyOf": [{"type": "string", "pattern": GPU_PATTERN},
                                  {"type": "array", "minItems": 1,
                                   "items": {"type": "string", "pattern": GPU_PATTERN}}]},
                "backend": {"type": "string", "description": "Default backend for build/run."},
                "trigger": {"description": "Trigger token(s) every caption must contain.",
                            "anyOf": [{"type": "string", "minLength": 1},
                                      {"type": "array", "items": {"type": "string"}}]},
                "docs": {"type": "array", "items": {"type": "string"},
                         "description": "Markdown files that describe this profile."},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "vars": {
            "type": "object",
            "description": "Variables, referenced as \"${name}\" anywhere in the profile.",
            "patternProperties": {"^[A-Za-z_][A-Za-z0-9_.-]*$": {
                "type": ["string", "integer", "number", "boolean", "array", "object"]}},
            "additionalProperties": False,
        },
        "run": {
            "type": "object",
            "description": "How `lorac run` launches the trainer through accelerate.",
            "properties": {
                "gpus": {"type": "integer", "minimum": 1},
                "num_machines": {"type": "integer", "minimum": 1},
                "machine_rank": {
                    "description": "This machine's rank, 0 on the main one; digits in a string "
                    "are accepted so that \"${env:MACHINE_RANK:-0}\" works (docs/multi-gpu.md).",
                    "anyOf": [{"type": "integer", "minimum": 0},
                              {"type": "string", "pattern": "^[0-9]+$"}]},
                "main_process_ip": {"type": "string"},
                "main_process_port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "mixed_precision": {"enum": ["no", "fp16", "bf16", "fp8"]},
                "num_cpu_threads_per_process": {"type": "integer", "minimum": 1},
                "accelerate_args": {"type": "array", "items": {"type": "string"}},
                "runs_dir": {"type": "string"},
                "convert_for_comfyui": {
                    "type": "boolean",
                    "description": "musubi-tuner: convert the final LoRA for ComfyUI as a last "
                                   "step (<output_name>_comfyui.safetensors)."},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
    }


def _accepts_schema(accepts: list[str]) -> dict[str, Any]:
    forms: list[dict[str, Any]] = []
    for a in accepts:
        if a in ("int", "float", "str", "bool"):
            forms.append({"type": _SCALAR[a]})
        elif a in ("[int, int]", "[float, float]"):
            item = "integer" if a.startswith("[int") else "number"
            forms.append({"type": "array", "items": {"type": item}, "minItems": 2,
                          "maxItems": 2})
        elif a == "list":
            forms.append({"type": "array"})
        elif a == "dict":
            forms.append({"type": "object"})
    if not forms:
        return {}
    if all(set(f) == {"type"} for f in forms):
        types = sorted({f["type"] for f in forms})
        return {"type": types[0] if len(types) == 1 else types}
    return {"anyOf": forms}


def _dataset_section(dataset_inv: dict[str, Any]) -> dict[str, Any]:
    def keys_of(level: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for variant in dataset_inv["variants"].values():
            for key, spec in variant[level]["keys"].items():
                if key != "subsets":
                    out[key] = _accepts_schema(spec["accepts"])
        return dict(sorted(out.items()))

    subset = {"type": "object", "properties": keys_of("subset"), "additionalProperties": False}
    dataset_props = keys_of("dataset")
    dataset_props["subsets"] = {"type": "array", "items": {"$ref": "#/definitions/subset"}}
    general = {key: _accepts_schema(spec["accepts"])
               for key, spec in sorted(dataset_inv["general"]["keys"].items())}
    general["subsets"] = {"type": "array", "items": {"$ref": "#/definitions/subset"},
                          "description": "The subsets of the single dataset."}
    general["datasets"] = {"type": "array", "items": {"$ref": "#/definitions/dataset"},
                           "description": "Several datasets (e.g. per resolution)."}
    return {
        "section": {"type": "object", "properties": general, "additionalProperties": False,
                    "description": "Compiled into the trainer's dataset config (sd-scripts' "
                                   "and musubi-tuner's --dataset_config TOML, ai-toolkit's "
                                   "datasets). Without it, the dataset_config option may name "
                                   "a dataset config file of your own (sd-scripts, "
                                   "musubi-tuner), which the trainer gets as it is."},
        "dataset": {"type": "object", "properties": dict(sorted(dataset_props.items())),
                    "additionalProperties": False},
        "subset": subset,
    }


def _option_schema(specs: list[dict[str, Any]]) -> dict[str, Any]:
    forms = []
    for spec in specs:
        if spec["action"] in ("store_true", "store_false"):
            form: dict[str, Any] = {"type": "boolean"}
        else:
            scalar = _SCALAR.get(spec["type"])
            item: dict[str, Any] = {"type": scalar} if scalar else {
                "type": ["integer", "number", "string"]}
            if spec.get("choices"):
                item = {"enum": spec["choices"]}
            nargs = spec.get("nargs")
            if nargs in ("*", "+") or (isinstance(nargs, int) and nargs > 1) or \
                    spec["action"] == "append":
                form = {"type": "array", "items": item}
                if nargs == "+":
                    form["minItems"] = 1
                if isinstance(nargs, int):
                    form["minItems"] = form["maxItems"] = nargs
            else:
                form = item
        if form not in forms:
            forms.append(form)
    schema = forms[0] if len(forms) == 1 else {"anyOf": forms}
    spec = specs[0]
    facts = [spec["type"] if spec["action"] == "store" else spec["action"]]
    if spec.get("default") not in (None, False):
        facts.append(f"default {spec['default']!r}")
    return {**schema, "description": "; ".join(facts)}


def _musubi_families(root: Path) -> list[str]:
    """The families of ``musubi/families.toml`` (musubi-tuner trains them)."""
    from lorac.config.inventory import read_toml

    path = root / "musubi" / "families.toml"
    return list(read_toml(path)["families"]) if path.is_file() else []


def _musubi_inventories(root: Path) -> list[Path]:
    """musubi's training and caching script inventories: their options are profile options."""
    folder = root / "musubi" / "inventory"
    return sorted(p for p in folder.glob("*.json") if p.stem != "dataset_config") \
        if folder.is_dir() else []


def _musubi_dataset_keys(root: Path) -> dict[str, Any]:
    path = root / "musubi" / "inventory" / "dataset_config.json"
    if not path.is_file():
        return {}
    levels = json.loads(path.read_text(encoding="utf-8"))["levels"]
    return {key: spec for level in ("image", "video") for key, spec in
            levels[level]["keys"].items()}


def _trainer_options(root: Path) -> dict[str, Any]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for path in [*sorted((root / "kohya" / "inventory").glob("*_network.json")),
                 *_musubi_inventories(root)]:
        inv = json.loads(path.read_text(encoding="utf-8"))
        for dest, spec in inv["options"].items():
            by_name.setdefault(dest, []).append(spec)
    return {name: _option_schema(specs) for name, specs in sorted(by_name.items())}


def generate(root: Path | None = None) -> dict[str, Any]:
    root = root or backends_dir()
    dataset_inv = json.loads((root / "kohya" / "inventory" / "dataset_config.json")
                             .read_text(encoding="utf-8"))
    dataset = _dataset_section(dataset_inv)
    musubi_keys = _musubi_dataset_keys(root)
    props = dataset["dataset"]["properties"]
    for key, spec in sorted(musubi_keys.items()):  # musubi's [[datasets]] keys (no subsets)
        props.setdefault(key, _accepts_schema(spec["accepts"]))
    dataset["dataset"]["properties"] = dict(sorted(props.items()))
    families = list(load_families(root))  # kohya's, then musubi's, then ai-toolkit's own
    families += [f for f in _musubi_families(root) if f not in families]
    families += [f for f in load_backend_toml("ai-toolkit/mapping.toml", root)["families"]
                 if f not in families]
    properties = _own_sections(families)
    properties["dataset"] = {"$ref": "#/definitions/dataset_section"}
    properties["trainers"] = {
        "type": "object",
        "description": "Values for one trainer only: [trainers.<trainer>] holds profile "
                       "options that replace the shared ones when building for that trainer; "
                       "its sub-tables hold the trainer's own keys (docs/profile.md).",
        "additionalProperties": {"type": "object"},
    }
    return {
        "$schema": DRAFT4,
        "title": "lorac profile",
        "description": "A LoRA training recipe. Sections other than profile, vars, dataset and "
                       "run hold trainer options (kohya sd-scripts names); the section names "
                       "are free and only group options for people.",
        "type": "object",
        "properties": properties,
        "additionalProperties": {"$ref": "#/definitions/trainer_section"},
        "definitions": {
            "trainer_section": {"type": "object", "properties": _trainer_options(root),
                                "additionalProperties": False},
            "dataset_section": dataset["section"],
            "dataset": dataset["dataset"],
            "subset": dataset["subset"],
        },
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


SCHEMA_FILE = SCHEMA_PATH


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render(generate())
    if "--check" in argv:
        current = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else ""
        if current != text:
            print(f"{SCHEMA_FILE} is stale; run python -m lorac.config.schema_gen", file=sys.stderr)
            return 1
        return 0
    SCHEMA_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
