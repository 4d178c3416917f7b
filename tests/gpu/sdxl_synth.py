"""Write a synthetic SDXL base checkpoint (real shapes and dtypes, random values) with
sd-scripts' own classes and its own save function, plus offline tokenizers.

    python3 tests/gpu/sdxl_synth.py OUT_DIR [--device cuda]

Run on the device machine with sd-scripts importable (``LORAC_SD_SCRIPTS`` names the checkout;
its folder goes on ``sys.path``). The U-Net is ``library.sdxl_original_unet.
SdxlUNet2DConditionModel()``, the text encoders and the VAE are built from the configurations
``library/sdxl_model_util.py`` uses when it loads a checkpoint
(``load_models_from_sdxl_checkpoint``), and the file is written by that module's
``save_stable_diffusion_checkpoint`` in fp16, so the loader matches every key. The tokenizers
are lorac's small synthetic CLIP BPE (``lorac.trainers.kohya.synth.write_clip_tokenizer``)
under both ids sd-scripts' SDXL strategy looks up in ``--tokenizer_cache_dir``. Writes
``OUT_DIR/sdxl-synth.safetensors``, ``OUT_DIR/tokenizers`` and ``OUT_DIR/sdxl-synth.json``
(last, when everything is there). Parameter counts: U-Net 2,567,463,684, CLIP-L 123,060,480,
OpenCLIP bigG 694,659,840, VAE 83,653,863 (lorac.trainers.lora_memory.ARCHS["sdxl"]).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

#: The tokenizer ids of sd-scripts' SDXL strategy (library/strategy_sdxl.py:18-19).
TOKENIZER_IDS = ("openai/clip-vit-large-patch14", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k")
#: Text-encoder configurations as library/sdxl_model_util.py builds them when loading.
TE1 = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
       "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
       "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "pad_token_id": 1,
       "bos_token_id": 0, "eos_token_id": 2, "projection_dim": 768}
TE2 = {**TE1, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
       "num_attention_heads": 20, "hidden_act": "gelu", "projection_dim": 1280}


def tokenizers(out: Path) -> Path:
    from lorac.trainers.kohya.synth import write_clip_tokenizer

    folder = out / "tokenizers"
    for tid in TOKENIZER_IDS:
        write_clip_tokenizer(folder / tid.replace("/", "_"))
    return folder


def build(out: Path, device: str) -> dict[str, str]:
    sd_scripts = os.environ.get("LORAC_SD_SCRIPTS")
    if sd_scripts:
        sys.path.insert(0, sd_scripts)
    import torch
    from diffusers import AutoencoderKL
    from library import model_util, sdxl_model_util, sdxl_original_unet
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    torch.manual_seed(0)
    with torch.device(device):
        unet = sdxl_original_unet.SdxlUNet2DConditionModel()
        te1 = CLIPTextModel._from_config(CLIPTextConfig(**TE1, model_type="clip_text_model"))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**TE2, model_type="clip_text_model"))
        vae = AutoencoderKL(**model_util.create_vae_diffusers_config())
    logit_scale = torch.tensor(4.6052, device=device)
    path = out / "sdxl-synth.safetensors"
    keys = sdxl_model_util.save_stable_diffusion_checkpoint(
        str(path), te1, te2, unet, 0, 0, None, vae, logit_scale,
        {"lorac": "synthetic SDXL base: real shapes, random values"}, save_dtype=torch.float16)
    tok = tokenizers(out)
    info = {"checkpoint": str(path), "tokenizer_cache_dir": str(tok), "keys": str(keys),
            "bytes": str(path.stat().st_size), "seconds": f"{time.monotonic() - t0:.1f}"}
    (out / "sdxl-synth.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    out = Path(argv[0])
    if (out / "sdxl-synth.json").is_file():
        print((out / "sdxl-synth.json").read_text())
        return 0
    device = argv[argv.index("--device") + 1] if "--device" in argv else "cuda"
    print(json.dumps(build(out, device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
