"""Write a small LoRA file in kohya's key format with ``safetensors`` (no model weights).

Usage: ``python tests/make_lora.py FILE [--rank R] [--alpha A] [--modules N] [--zero-up]
[--nan] [--meta KEY=VALUE ...]``. ``write(path, …)`` does the same from Python. Metadata
defaults to what sd-scripts records for the rank, alpha and module given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def flux_names() -> list[str]:
    """The key prefix of every module ``networks/lora_flux.py`` makes by default (from
    :func:`lorac.trainers.kohya.vram.lora_modules`)."""

    from lorac.trainers.kohya import vram

    out = []
    for pattern, _, _ in vram.lora_modules(vram.RunConfig()):
        if pattern.startswith("te1."):
            out.append("lora_te1_text_model_encoder_" + pattern[4:].replace(".", "_"))
        else:
            out.append("lora_unet_" + pattern.replace(".", "_"))
    return out


def write(path: Path, *, rank: int = 4, alpha: float = 4.0, modules: int = 2,
          module: str = "networks.lora_flux", zero_up: bool = False, nan: bool = False,
          meta: dict[str, str] | None = None, seed: int = 0,
          names: list[str] | None = None) -> Path:
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    if names is None:
        names = [f"lora_unet_double_blocks_{i}_img_attn_qkv" for i in range(modules)]
    for i, p in enumerate(names):
        tensors[f"{p}.lora_down.weight"] = rng.normal(size=(rank, 8)).astype("float16")
        up = np.zeros((8, rank)) if zero_up else rng.normal(size=(8, rank))
        if nan and i == 0:
            up[0, 0] = np.nan
        tensors[f"{p}.lora_up.weight"] = up.astype("float16")
        tensors[f"{p}.alpha"] = np.array(alpha, dtype="float16")
    recorded = {"ss_network_module": module, "ss_network_dim": str(rank),
                "ss_network_alpha": str(alpha), "ss_base_model_version": "flux1"}
    recorded.update(meta or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=recorded)
    return path


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=4.0)
    ap.add_argument("--modules", type=int, default=2)
    ap.add_argument("--module", default="networks.lora_flux")
    ap.add_argument("--zero-up", action="store_true")
    ap.add_argument("--nan", action="store_true")
    ap.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    meta = dict(item.split("=", 1) for item in args.meta)
    write(args.file, rank=args.rank, alpha=args.alpha, modules=args.modules,
          module=args.module, zero_up=args.zero_up, nan=args.nan, meta=meta)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
