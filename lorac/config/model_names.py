"""What a model's name says about its family: ``black-forest-labs/FLUX.2-dev`` is a FLUX.2
model, ``runwayml/stable-diffusion-v1-5`` an SD 1.x one.

The importers read it to choose a family where the source names none, and the lint rules to
find a model, a trainer script and a network module that disagree. Only names that say so
plainly count; a file called ``model.safetensors`` says nothing.
"""

from __future__ import annotations

import re

#: Model kinds, most specific first, with the pattern a model path or hub id shows them by.
KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("flux2", re.compile(r"flux[ ._-]?2(?![0-9])", re.I)),
    ("flux1", re.compile(r"flux|flex[ ._-]?1", re.I)),
    ("sd3", re.compile(r"sd[ ._-]?3(?![0-9])|stable-diffusion-3", re.I)),
    ("sdxl", re.compile(r"sdxl|stable-diffusion-xl|sd_xl|xl[ ._-]?base|illustrious|pony",
                        re.I)),
    ("sd1", re.compile(r"stable-diffusion-v1|sd[ ._-]?v?1[ ._-]?[45x](?![0-9])|v1-[45]|"
                       r"sd[ ._-]?15(?![0-9])", re.I)),
)

_FILE = re.compile(r"\.(safetensors|sft|ckpt|pt|pth|bin|gguf)$", re.I)

#: The model kind each lorac family trains (families missing here are not judged).
FAMILY_KINDS = {
    "flux1-dev": "flux1", "flux1-schnell": "flux1", "flux1-kontext": "flux1",
    "flux2-dev": "flux2", "flux2-klein-4b": "flux2", "flux2-klein-9b": "flux2",
    "sd3": "sd3", "sdxl": "sdxl", "sd15": "sd1",
}

#: How a message names each kind.
KIND_NAMES = {"flux1": "FLUX.1", "flux2": "FLUX.2", "sd3": "SD3", "sdxl": "SDXL",
              "sd1": "SD 1.x"}


def model_kind(name: object) -> str | None:
    """The kind of model ``name`` (a path or a hub id) says it is, or None."""

    if not isinstance(name, str) or not name:
        return None
    parts = [p for p in re.split(r"[/\\]", name) if p]
    if not parts:
        return None
    # a file says it by its name; a folder or a hub id by its last two parts (owner/name)
    tail = parts[-1] if _FILE.search(parts[-1]) else "/".join(parts[-2:])
    return next((kind for kind, pattern in KINDS if pattern.search(tail)), None)


def disagrees(name: object, family: str | None) -> str | None:
    """The kind ``name`` says when it is not the one ``family`` trains, else None."""

    kind = model_kind(name)
    want = FAMILY_KINDS.get(family or "")
    return kind if kind and want and kind != want else None
