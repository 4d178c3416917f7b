"""Synthetic musubi-tuner checkpoints of the real shapes, for running it without the real weights.

``write_synthetic("wan2.1-t2v-1.3b", out_dir)`` writes the three files a Wan run loads, with
random weights: the DiT (bf16 safetensors, ``--dit``), the umT5-XXL encoder (bf16 ``.pth``,
``--t5``) and the Wan 2.1 VAE (fp32 ``.pth``, ``--vae``). ``write_synthetic("qwen-image", ...)``
writes Qwen-Image's: the DiT (``--dit``) and Qwen2.5-VL (``--text_encoder``) as float8 e4m3fn
safetensors (musubi casts on read, so they serve bf16 runs and ``--fp8_base`` / ``--fp8_vl``
runs alike; ``--fp8_scaled`` refuses them) and the VAE (bf16 safetensors, ``--vae``).
Key names and shapes are read from ``backends/musubi/synth/<family>.json``, which
:mod:`lorac.trainers.musubi.synth_gen` generates from musubi-tuner's own classes;
``tiny=True`` writes the same keys with that file's tiny sizes, for CPU tests. GPU memory then
behaves as with the real weights; losses mean nothing.

Two more things make a run work offline:

* musubi loads Wan's umT5 tokenizer with ``AutoTokenizer.from_pretrained(
  "Wan-AI/Wan2.1-T2V-14B", subfolder="google/umt5-xxl")`` (src/musubi_tuner/wan/modules/t5.py:
  496-500): a small Unigram tokenizer goes into a Hugging Face cache under that id
  (``hf_home/``; the run sets ``HF_HOME`` to it); Qwen-Image's Qwen2 tokenizer goes there
  under ``Qwen/Qwen-Image`` / ``tokenizer`` (qwen_image/qwen_image_utils.py:316-317), a
  byte-level BPE whose template prefix is the 34 tokens musubi drops
  (:func:`lorac.trainers.tokenizers.write_qwen2_tokenizer`);
* musubi imports PyAV at module level (src/musubi_tuner/dataset/media_utils.py:11) but uses it
  only for video files: when ``av`` is not installed, ``stand_ins/av.py`` (which raises
  ``ImportError`` when used) goes on the run's ``PYTHONPATH``.

Torch and safetensors are imported lazily (the ``gpu`` extra); the tokenizer needs
``tokenizers`` and ``transformers``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorac.config import inventory
from lorac.trainers.tokenizers import write_qwen2_tokenizer, write_t5_tokenizer

__all__ = ["FAMILIES", "TOKENIZER_REPO", "TOKENIZER_SUBFOLDER", "WAN_FAMILIES", "SynthSet",
           "layout", "write_synthetic"]

FAMILIES = ("wan2.1-t2v-1.3b", "qwen-image")
#: The families whose ``networks.lora_wan`` modules lorac counts (:func:`wan_lora_modules`).
WAN_FAMILIES = ("wan2.1-t2v-1.3b",)

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


_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32",
           "fp8_e4m3fn": "float8_e4m3fn"}
_ST_DTYPE = {"bf16": "BF16", "fp16": "F16", "fp32": "F32", "fp8_e4m3fn": "F8_E4M3"}
_ITEMSIZE = {"bf16": 2, "fp16": 2, "fp32": 4, "fp8_e4m3fn": 1}


def _save_streamed(path: Path, shapes: dict[str, tuple[int, ...]], dtype: str, device: str,
                   seed: int) -> None:
    """A safetensors file written one tensor at a time (generated on ``device``, cast to
    ``dtype``, copied out, freed): the host holds one tensor, never the model (the Qwen-Image
    DiT is 20 GB in float8)."""
    import torch

    entries: dict[str, Any] = {"__metadata__": {"format": "pt",
                                                "lorac": "synthetic, random weights"}}
    offset = 0
    for key, shape in shapes.items():
        n = math.prod(shape) * _ITEMSIZE[dtype]
        entries[key] = {"dtype": _ST_DTYPE[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + n]}
        offset += n
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # safetensors pads the header to 8 bytes
    gen = torch.Generator(device=device).manual_seed(seed)
    target = getattr(torch, _DTYPES[dtype])
    with open(path, "wb", buffering=0) as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for key, shape in shapes.items():
            t = _tensor(key, shape, target, device, gen)
            if t.numel():
                f.write(memoryview(t.contiguous().view(torch.uint8).reshape(-1).cpu().numpy()))
            del t


def _state_dict(shapes: dict[str, tuple[int, ...]], dtype: Any, device: str, seed: int,
                ) -> dict[str, Any]:
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    return {k: _tensor(k, s, dtype, device, gen).cpu() for k, s in shapes.items()}


def _write_component(path: Path, comp: dict[str, Any], shapes: dict[str, tuple[int, ...]],
                     device: str, seed: int) -> int:
    import torch

    tmp = path.with_name(path.name + ".part")
    if comp["format"] == "safetensors":
        _save_streamed(tmp, shapes, comp["dtype"], device, seed)
    else:
        sd = _state_dict(shapes, getattr(torch, _DTYPES[comp["dtype"]]), device, seed)
        torch.save(sd, tmp)
        del sd
    tmp.replace(path)
    return path.stat().st_size


def _cache_folder(hf_home: Path, repo_id: str, subfolder: str) -> Path:
    """``subfolder`` of ``repo_id``'s snapshot in the offline Hugging Face cache under
    ``hf_home`` (``refs/main`` names :data:`CACHE_REVISION`)."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(CACHE_REVISION, encoding="utf-8")
    return repo / "snapshots" / CACHE_REVISION / subfolder


def write_qwen_tokenizer(hf_home: Path, family: str = "qwen-image") -> Path:
    """Qwen-Image's Qwen2 tokenizer (:func:`lorac.trainers.tokenizers.write_qwen2_tokenizer`)
    in the offline cache where musubi looks for it; every id is below 1024 (the tiny text
    encoder's vocabulary). Returns the tokenizer's folder."""
    spec = layout(family)["tokenizer"]
    return write_qwen2_tokenizer(_cache_folder(hf_home, spec["repo"], spec["subfolder"]))


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
    umT5-XXL encoder alone is 11.4 GB in bf16) in the format its loader reads: a safetensors
    file one tensor at a time, a ``.pth`` whole (host memory peaks at the largest ``.pth``).
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
    if "tokenizer" in layout(family):
        write_qwen_tokenizer(hf_home, family)
    else:
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
