"""What lorac knows about musubi-tuner, read from ``backends/musubi/``.

Generated (``python -m lorac.trainers.inventory_gen musubi``): ``inventory/*.json`` (every
script's options), ``inventory/dataset_config.json``, ``network_modules.json``,
``architectures.json``. Hand-written: ``families.toml`` (family → architecture and variant).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

from lorac.config import inventory
from lorac.core.diagnostics import LoracError

#: The three steps of a musubi run, in order, by the key ``architectures.json`` uses.
STEPS = ("latents", "text_encoder", "train")


class Family(NamedTuple):
    """One ``[families.X]`` of ``families.toml``."""

    name: str
    architecture: str
    media: str
    variant: dict[str, Any]
    i2v: bool
    latents_required: tuple[str, ...]
    experts: bool
    max_blocks_to_swap: int | None
    evidence: tuple[str, ...]


def _json(relative: str) -> dict[str, Any]:
    return inventory._read_json(inventory._resolve(f"musubi/{relative}", None))


@functools.lru_cache(maxsize=1)
def families() -> dict[str, Family]:
    """``families.toml`` as ``{name: Family}`` (cached; do not mutate)."""
    table = inventory.load_backend_toml("musubi/families.toml")["families"]
    return {
        name: Family(
            name=name,
            architecture=entry["architecture"],
            media=entry.get("media", "image"),
            variant=dict(entry.get("variant", {})),
            i2v=bool(entry.get("i2v", False)),
            latents_required=tuple(entry.get("latents_required", ())),
            experts=bool(entry.get("experts", False)),
            max_blocks_to_swap=entry.get("max_blocks_to_swap"),
            evidence=tuple(entry.get("evidence", ())),
        )
        for name, entry in table.items()
    }


def family(name: str | None) -> Family | None:
    """The musubi family ``name``, or None (unset, or a family musubi does not train)."""
    return families().get(name) if name else None


def architectures() -> dict[str, Any]:
    """``architectures.json``'s ``architectures`` (do not mutate)."""
    return _json("architectures.json")["architectures"]


def train_requirements() -> dict[str, Any]:
    """``architectures.json``'s ``train_requirements`` (do not mutate)."""
    return _json("architectures.json")["train_requirements"]


def network_modules() -> dict[str, Any]:
    """``network_modules.json``'s ``modules`` (do not mutate)."""
    return _json("network_modules.json")["modules"]


def dataset_schema() -> dict[str, Any]:
    """``inventory/dataset_config.json`` (do not mutate)."""
    return _json("inventory/dataset_config.json")


def script_inventory(script: str) -> inventory.Inventory:
    """The option inventory of one musubi script (``src/musubi_tuner/wan_train_network.py``,
    its file name or its stem)."""
    stem = Path(script).stem
    return inventory._kohya_inventory(inventory._resolve(f"musubi/inventory/{stem}.json", None))


class Plan(NamedTuple):
    """A family resolved to its architecture: the script and inventory of each step."""

    family: Family
    arch: dict[str, Any]
    scripts: dict[str, str]
    inventories: dict[str, inventory.Inventory]


def plan_for(name: str | None) -> Plan | None:
    """The :class:`Plan` of the musubi family ``name``; None when musubi does not train it."""
    fam = family(name)
    if fam is None:
        return None
    arch = architectures().get(fam.architecture)
    if arch is None:
        raise LoracError(f"backends/musubi/families.toml: {name} names architecture "
                         f"{fam.architecture!r}, which architectures.json does not have")
    scripts = {step: arch["steps"][step]["script"] for step in STEPS}
    return Plan(fam, arch, scripts, {s: script_inventory(p) for s, p in scripts.items()})
