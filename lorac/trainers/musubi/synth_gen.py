"""Generate ``backends/musubi/synth/<family>.json``: the checkpoint layouts musubi-tuner loads.

The key names and shapes come from musubi-tuner's own classes, built on torch's ``meta``
device (nothing is allocated), exactly as its loaders build them before ``load_state_dict``:

* the DiT: ``wan.modules.model.WanModel`` with the task's config
  (``load_wan_model``, src/musubi_tuner/wan/modules/model.py:979-1075, strict load);
* the text encoder: ``wan.modules.t5.umt5_xxl(encoder_only=True)``
  (``T5EncoderModel``, src/musubi_tuner/wan/modules/t5.py:451-505, strict load after removing
  ``"encoder."`` from every key);
* the VAE: ``wan.modules.vae.WanVAE_`` with ``_video_vae``'s config
  (src/musubi_tuner/wan/modules/vae.py:627-654; a ``.pth`` loads strictly, a ``.safetensors``
  with ``strict=False``).

Each component is built twice: with the real sizes and with the small ``tiny`` sizes of
:data:`TINY` (same key names), so ``lorac synth --tiny`` writes files musubi's loaders accept
once their size arguments are the tiny ones. Run it with an interpreter that can import the
checkout (torch, accelerate, einops, easydict, ftfy, transformers)::

    python -m lorac.trainers.musubi.synth_gen /path/to/musubi-tuner [--out backends/musubi/synth]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: family -> musubi task (``--task``) whose WAN_CONFIGS entry sizes the DiT.
TASKS = {"wan2.1-t2v-1.3b": "t2v-1.3B"}

#: The tiny sizes. The DiT keeps ``text_dim`` 4096 and the VAE ``z_dim`` 16: musubi's loaders
#: do not take them from the config. Head dim 12 keeps the DiT's rotary split (d - 4*(d//6),
#: 2*(d//6), 2*(d//6)) whole.
TINY = {
    "dit": {"dim": 24, "ffn_dim": 32, "freq_dim": 8, "num_heads": 2},
    "t5": {"vocab_size": 256, "dim": 8, "dim_attn": 8, "dim_ffn": 16, "num_heads": 2},
    "vae": {"dim": 8},
}

#: Files and dtypes as the real releases have them (the DiT as the bf16 safetensors release,
#: the text encoder as ``models_t5_umt5-xxl-enc-bf16.pth``, the VAE as ``Wan2.1_VAE.pth``).
FILES = {
    "dit": {"file": "wan2.1_t2v_1.3B_bf16.safetensors", "format": "safetensors",
            "dtype": "bf16", "option": "dit"},
    "t5": {"file": "models_t5_umt5-xxl-enc-bf16.pth", "format": "pth", "dtype": "bf16",
           "option": "t5"},
    "vae": {"file": "Wan2.1_VAE.pth", "format": "pth", "dtype": "fp32", "option": "vae"},
}


def _shapes(module: Any) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def build(family: str) -> dict[str, Any]:  # pragma: no cover - runs in the trainers' venv
    """The layout of ``family`` from musubi's classes (the checkout must be importable)."""
    import torch

    if not torch.cuda.is_available():
        # t5.py evaluates torch.cuda.current_device() as a default argument at import
        torch.cuda.current_device = lambda: 0
    from musubi_tuner.wan.configs import WAN_CONFIGS
    from musubi_tuner.wan.modules import t5 as t5_mod
    from musubi_tuner.wan.modules import vae as vae_mod
    from musubi_tuner.wan.modules.model import WanModel

    cfg = WAN_CONFIGS[TASKS[family]]

    def dit(**over: Any) -> dict[str, list[int]]:
        args = dict(model_type="i2v" if cfg.i2v else ("flf2v" if cfg.flf2v else "t2v"),
                    model_version="2.2" if cfg.v2_2 else "2.1", dim=cfg.dim, eps=cfg.eps,
                    ffn_dim=cfg.ffn_dim, freq_dim=cfg.freq_dim, in_dim=cfg.in_dim,
                    num_heads=cfg.num_heads, num_layers=cfg.num_layers, out_dim=cfg.out_dim,
                    text_len=cfg.text_len, attn_mode="torch", split_attn=False)
        args.update(over)
        with torch.device("meta"):
            return _shapes(WanModel(**args))

    def t5(**over: Any) -> dict[str, list[int]]:
        with torch.device("meta"):
            return _shapes(t5_mod.umt5_xxl(encoder_only=True, return_tokenizer=False, **over))

    def vae(**over: Any) -> dict[str, list[int]]:
        args = dict(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                    temperal_downsample=[False, True, True], dropout=0.0)  # vae.py:631-640
        args.update(over)
        with torch.device("meta"):
            return _shapes(vae_mod.WanVAE_(**args))

    components: dict[str, Any] = {}
    for name, make in (("dit", dit), ("t5", t5), ("vae", vae)):
        full, tiny = make(), make(**TINY[name])
        if list(full) != list(tiny):
            raise SystemExit(f"{name}: the tiny sizes change the key names")
        components[name] = {**FILES[name], "tiny_sizes": TINY[name],
                            "keys": {k: [full[k], tiny[k]] for k in full}}
    return {"family": family, "task": TASKS[family], "components": components}


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - runs in the trainers' venv
    parser = argparse.ArgumentParser(prog="python -m lorac.trainers.musubi.synth_gen")
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[3] / "backends/musubi/synth")
    args = parser.parse_args(argv)
    from lorac.trainers.inventory_gen import checkout_commit

    commit = checkout_commit(args.checkout)
    sys.path.insert(0, str(args.checkout / "src"))
    args.out.mkdir(parents=True, exist_ok=True)
    for family in TASKS:
        data = {"generated_from": commit, **build(family)}
        path = args.out / f"{family}.json"
        path.write_text(json.dumps(data, indent=0, separators=(",", ":")) + "\n",
                        encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
