"""ai-toolkit's architectures as lorac uses them: the generated ``inventory/archs.json`` (every
``arch`` value of the pinned checkout, :mod:`lorac.trainers.ai_toolkit.archs_gen`) and the
family → arch table of ``mapping.toml``."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any

from lorac.core.diagnostics import LoracError


@dataclass(frozen=True)
class Arch:
    """One ``arch`` value ai-toolkit accepts, with the source line of each fact."""

    name: str
    kind: str  # "class" | "legacy" | "alias"
    source: str
    peft_alpha_is_rank: bool = False
    quantize: bool = False
    flowmatch: bool = False
    layer_offloading: bool = False
    low_vram: bool = False
    bucket_divisibility: int | None = None
    alias_of: str | None = None
    facts_at: tuple[tuple[str, str], ...] = ()

    def at(self, fact: str) -> str:
        """``file:line`` of ``fact`` (``peft_alpha_is_rank``, ``quantize``, ``flowmatch``,
        ``layer_offloading``, ``low_vram``, ``bucket_divisibility``)."""

        return dict(self.facts_at).get(fact, self.source)


@functools.lru_cache(maxsize=1)
def _load() -> tuple[dict[str, Arch], str]:
    import json

    from lorac.config.inventory import backends_dir

    data = json.loads((backends_dir() / "ai-toolkit" / "inventory" / "archs.json")
                      .read_text(encoding="utf-8"))
    archs: dict[str, Arch] = {}
    for name, raw in data["archs"].items():
        archs[name] = Arch(
            name=name, kind=raw["kind"], source=raw["source"],
            peft_alpha_is_rank=bool(raw.get("peft_alpha_is_rank")),
            quantize=bool(raw.get("quantize")), flowmatch=bool(raw.get("flowmatch")),
            layer_offloading=bool(raw.get("layer_offloading")),
            low_vram=bool(raw.get("low_vram")),
            bucket_divisibility=raw.get("bucket_divisibility"),
            alias_of=raw.get("of"),
            facts_at=tuple((k[:-3], v) for k, v in raw.items() if k.endswith("_at")))
    return archs, data["source"]["unknown_arch_falls_back_to"]


def load_archs() -> dict[str, Arch]:
    """Every arch of the pinned ai-toolkit, by name (aliases resolve through :func:`arch`)."""

    return _load()[0]


def arch(name: str) -> Arch:
    """The arch ``name`` (a ``:tag`` suffix dropped and an alias followed, as
    ``toolkit/config_modules.py`` does); :class:`LoracError` with the closest names when
    ai-toolkit does not know it — it would silently train it as Stable Diffusion 1.x."""

    archs, fallback = _load()
    base = name.split(":", 1)[0]
    found = archs.get(base)
    if found is not None and found.alias_of is not None:
        found = archs.get(found.alias_of)
    if found is None:
        close = difflib.get_close_matches(base, list(archs), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise LoracError(f"ai-toolkit has no arch {name!r}: it would fall back to the Stable "
                         f"Diffusion 1.x path silently ({fallback}){hint}")
    return found


def family_arch(family: str | None, mapping: dict[str, Any]) -> str | None:
    """The arch the family trains as on ai-toolkit (``mapping.toml`` ``[families]``)."""

    entry = mapping["families"].get(family or "")
    return entry["arch"] if entry else None


def families_of(arch_name: str, mapping: dict[str, Any]) -> list[str]:
    """The lorac families that train as ``arch_name`` (an alias counts as its target)."""

    target = arch(arch_name).name
    return [f for f, e in mapping["families"].items() if arch(e["arch"]).name == target]
