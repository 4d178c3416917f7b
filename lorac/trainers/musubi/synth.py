"""Synthetic musubi-tuner checkpoints of the real shapes, for running it without the real weights.

``write_synthetic("wan2.1-t2v-1.3b", out_dir)`` writes the three files a Wan run loads, with
random weights: the DiT (bf16 safetensors, ``--dit``), the umT5-XXL encoder (bf16 ``.pth``,
``--t5``) and the Wan 2.1 VAE (fp32 ``.pth``, ``--vae``). Key names and shapes are read from
``backends/musubi/synth/<family>.json``, which :mod:`lorac.trainers.musubi.synth_gen` generates
from musubi-tuner's own classes; ``tiny=True`` writes the same keys with that file's tiny sizes,
for CPU tests. GPU memory then behaves as with the real weights; losses mean nothing.

Two more things make a run work offline:

* musubi loads the umT5 tokenizer with ``AutoTokenizer.from_pretrained("Wan-AI/Wan2.1-T2V-14B",
  subfolder="google/umt5-xxl")`` (src/musubi_tuner/wan/modules/t5.py:496-500): a small Unigram
  tokenizer goes into a Hugging Face cache under that id (``hf_home/``; the run sets
  ``HF_HOME`` to it);
* musubi imports PyAV at module level (src/musubi_tuner/dataset/media_utils.py:11) but uses it
  only for video files: when ``av`` is not installed, ``stand_ins/av.py`` (which raises
  ``ImportError`` when used) goes on the run's ``PYTHONPATH``.

Torch and safetensors are imported lazily (the ``gpu`` extra); the tokenizer needs
``tokenizers`` and ``transformers``.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorac.config import inventory
from lorac.trainers.tokenizers import write_t5_tokenizer

__all__ = ["FAMILIES", "TOKENIZER_REPO", "TOKENIZER_SUBFOLDER", "SynthSet", "layout",
           "write_synthetic"]

FAMILIES = ("wan2.1-t2v-1.3b",)

#: The hub id and subfolder musubi hard-codes for the umT5 tokenizer (wan/modules/t5.py:497-498).
TOKENIZER_REPO = "Wan-AI/Wan2.1-T2V-14B"
TOKENIZER_SUBFOLDER = "google/umt5-xxl"
#: The snapshot revision the cache's ``refs/main`` names (any 40-hex string serves offline).
CACHE_REVISION = "0" * 40

AV_STAND_IN = '''"""Stand-in for PyAV, written by lorac synth: PyAV is not installed here.

musubi-tuner imports av at module level but needs it only for video files; any use of this
module raises ImportError (install PyAV to train on videos).
"""


def __getattr__(name):
    raise ImportError(f"PyAV is not installed (av.{name} used); lorac's stand-in serves "
                      "image datasets only: install the av wheel for video datasets")
'''


@functools.cache
def layout(family: str) -> dict[str, Any]:
    """``backends/musubi/synth/<family>.json`` (cached; do not mutate)."""
    _check_family(family)
    return inventory._read_json(inventory._resolve(f"musubi/synth/{family}.json", None))


def component_shapes(family: str, *, tiny: bool = False) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{component: {key: shape}}`` of ``family``, full or tiny, without allocating."""
    index = 1 if tiny else 0
    return {name: {k: tuple(v[index]) for k, v in comp["keys"].items()}
            for name, comp in layout(family)["components"].items()}


@dataclass(frozen=True)
class SynthSet:
    """Paths of a written synthetic set, named after the musubi options that take them."""

    family: str
    root: Path
    files: dict[str, Path]
    hf_home: Path
    stand_ins: Path | None
    tiny: bool = False
    bytes_written: int = 0
    seconds: float = 0.0
    options: dict[str, str] = field(default_factory=dict)

    def trainer_args(self) -> dict[str, str]:
        """``{option: path}``: ``dit``, ``t5``, ``vae``."""
        return dict(self.options)

    def trainer_env(self) -> dict[str, str]:
        """Variables the trainer needs set (the offline tokenizer cache)."""
        return {"HF_HOME": str(self.hf_home)}

    def pythonpath(self) -> list[str]:
        """Folders to append to the trainer's ``PYTHONPATH`` (the ``av`` stand-in, when PyAV
        is missing)."""
        return [str(self.stand_ins)] if self.stand_ins is not None else []


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"no synthetic musubi checkpoints for family {family!r}; "
                         f"known: {FAMILIES}")


def _tensor(key: str, shape: tuple[int, ...], dtype: Any, device: str, gen: Any) -> Any:
    import torch

    leaf = key.rsplit(".", 1)[-1]
    if leaf == "bias":
        return torch.zeros(shape, dtype=dtype, device=device)
    if leaf == "gamma" or (len(shape) == 1 and "norm" in key):
        return torch.ones(shape, dtype=dtype, device=device)
    std = 0.02 if "embedding" in key or len(shape) < 2 else math.prod(shape[1:]) ** -0.5
    x = torch.empty(shape, dtype=torch.float32, device=device).normal_(0.0, std, generator=gen)
    return x.to(dtype)


def _state_dict(shapes: dict[str, tuple[int, ...]], dtype: Any, device: str, seed: int,
                ) -> dict[str, Any]:
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    return {k: _tensor(k, s, dtype, device, gen).cpu() for k, s in shapes.items()}


def _write_component(path: Path, comp: dict[str, Any], shapes: dict[str, tuple[int, ...]],
                     device: str, seed: int) -> int:
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[comp["dtype"]]
    sd = _state_dict(shapes, dtype, device, seed)
    tmp = path.with_name(path.name + ".part")
    if comp["format"] == "safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(tmp), metadata={"format": "pt", "lorac": "synthetic, random weights"})
    else:
        torch.save(sd, tmp)
    del sd
    tmp.replace(path)
    return path.stat().st_size


def write_tokenizer(hf_home: Path) -> Path:
    """The T5 tokenizer of :func:`lorac.trainers.tokenizers.write_t5_tokenizer` (with
    ``▁woman`` and no sentinels) in the offline Hugging Face cache under
    :data:`TOKENIZER_REPO` / :data:`TOKENIZER_SUBFOLDER`; every id is below 100 (the tiny
    encoder's vocabulary is 256, the real one 256384). Returns the tokenizer's folder."""
    repo = hf_home / "hub" / ("models--" + TOKENIZER_REPO.replace("/", "--"))
    folder = repo / "snapshots" / CACHE_REVISION / TOKENIZER_SUBFOLDER
    write_t5_tokenizer(folder, extra_pieces=("▁woman",), extra_ids=0)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(CACHE_REVISION, encoding="utf-8")
    return folder


def write_synthetic(family: str, out_dir: Path, *, tiny: bool = False, device: str = "cpu",
                    seed: int = 0) -> SynthSet:
    """Write a synthetic set for ``family`` into ``out_dir`` and return its paths.

    Each component is generated on ``device`` (``"cuda"`` on the GPU machine: the full
    umT5-XXL encoder alone is 11.4 GB in bf16) and written whole, in the format its loader
    reads; host memory peaks at the largest component.
    """
    _check_family(family)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shapes = component_shapes(family, tiny=tiny)
    files: dict[str, Path] = {}
    options: dict[str, str] = {}
    total = 0
    for i, (name, comp) in enumerate(layout(family)["components"].items()):
        path = out_dir / comp["file"]
        total += _write_component(path, comp, shapes[name], device, seed + i)
        files[name] = path
        options[comp["option"]] = str(path)
    hf_home = out_dir / "hf_home"
    write_tokenizer(hf_home)
    stand_ins = None
    if importlib.util.find_spec("av") is None:
        stand_ins = out_dir / "stand_ins"
        stand_ins.mkdir(exist_ok=True)
        (stand_ins / "av.py").write_text(AV_STAND_IN, encoding="utf-8")
    return SynthSet(family=family, root=out_dir, files=files, hf_home=hf_home,
                    stand_ins=stand_ins, tiny=tiny, bytes_written=total,
                    seconds=time.perf_counter() - start, options=options)



#: networks/lora_wan.py:16,36: LoRA goes on the Linear layers inside ``WanAttentionBlock``s
#: (``blocks.N``) whose name does not fully match this pattern.
WAN_LORA_EXCLUDE = r".*(patch_embedding|text_embedding|time_embedding|time_projection|norm|head).*"


def wan_lora_modules(family: str) -> list[str]:
    """The DiT modules ``networks.lora_wan`` puts a LoRA on (its default patterns): the 2-D
    ``.weight`` tensors (Linear layers) under ``blocks.N.``, by module name."""
    import re

    exclude = re.compile(WAN_LORA_EXCLUDE)
    names = []
    for key, shape in component_shapes(family)["dit"].items():
        module, _, leaf = key.rpartition(".")
        if (key.startswith("blocks.") and leaf == "weight" and len(shape) == 2
                and not exclude.fullmatch(module)):
            names.append(module)
    return names
