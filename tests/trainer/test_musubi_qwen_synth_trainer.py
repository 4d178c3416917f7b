"""The synthetic Qwen-Image set through musubi-tuner's own loaders, on the CPU.

Skipped unless ``LORAC_MUSUBI_TUNER`` points at the pinned musubi-tuner checkout; the worker runs
in ``LORAC_TRAINER_PYTHON`` (an interpreter with musubi's dependencies), else in this one, and
is skipped when that interpreter lacks them.

musubi fixes Qwen-Image's sizes in its loaders: the worker wraps the three classes they build
(``QwenImageTransformer2DModel`` in ``create_model``, ``Qwen2_5_VLConfig`` in
``load_qwen2_5_vl``, ``AutoencoderKLQwenImage`` in ``load_vae``) to add the tiny sizes of
``backends/musubi/synth/qwen-image.json``. Everything else is musubi's: reading the float8 files
(cast on read to bf16, or kept in float8 as ``--fp8_base`` / ``--fp8_vl`` load them), the key
renaming, the strict loads, the tokenizer lookup in the offline cache, the prompt template.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lorac.trainers.musubi import synth
from tests.trainer.test_musubi_synth_trainer import load_tiny_set

pytestmark = pytest.mark.trainer
FAMILY = "qwen-image"

WORKER = r'''
import importlib.machinery, importlib.util, json, sys, types
import torch
if importlib.util.find_spec("av") is None:  # musubi's dataset module imports it; unused here
    sys.modules["av"] = types.ModuleType("av")
    sys.modules["av"].__spec__ = importlib.machinery.ModuleSpec("av", None)
src, layout_path, dit, te, vae_path, out = sys.argv[1:]
sys.path.insert(0, src)
from lorac.trainers.musubi.synth_gen import tiny_vl_config
from lorac.trainers.tokenizers import QWEN_TEMPLATE as TEMPLATE
layout = json.load(open(layout_path))["components"]
from musubi_tuner.qwen_image import qwen_image_model as qm, qwen_image_utils as qu
from musubi_tuner.networks import lora_qwen_image

real_dit = qm.QwenImageTransformer2DModel
qm.QwenImageTransformer2DModel = lambda **kw: real_dit(**{**kw, **layout["dit"]["tiny_sizes"]})
real_cfg = qu.Qwen2_5_VLConfig
tiny_te = layout["text_encoder"]["tiny_sizes"]
qu.Qwen2_5_VLConfig = lambda **kw: real_cfg(**tiny_vl_config(kw, tiny_te))
real_vae = qu.AutoencoderKLQwenImage
qu.AutoencoderKLQwenImage = lambda **kw: real_vae(**{**kw, **layout["vae"]["tiny_sizes"]})

def meta(model):
    return [n for n, p in model.state_dict().items() if p.is_meta]

result = {}
for name, dtype in (("bf16", torch.bfloat16), ("fp8", torch.float8_e4m3fn)):
    model = qm.load_qwen_image_model("cpu", dit, "torch", False, False, False, False, "cpu", dtype)
    result["dit_" + name] = {"dtypes": sorted({str(p.dtype) for p in model.parameters()}),
                             "meta": meta(model), "blocks": len(model.transformer_blocks),
                             "params": sum(p.numel() for p in model.parameters())}
network = lora_qwen_image.create_arch_network(1.0, 4, 1.0, None, [], model)
result["lora_modules"] = len(network.unet_loras)
try:
    qm.load_qwen_image_model("cpu", dit, "torch", False, False, False, False, "cpu", None,
                             fp8_scaled=True)
    result["fp8_scaled"] = "loaded"
except ValueError as exc:
    result["fp8_scaled"] = "refused: " + str(exc)[:80]
for name, dtype in (("bf16", torch.bfloat16), ("fp8", torch.float8_e4m3fn)):
    tok, vl = qu.load_qwen2_5_vl(te, dtype, "cpu", disable_mmap=True)
    entry = {"meta": meta(vl), "dtypes": sorted({str(p.dtype) for p in vl.parameters()})}
    try:
        embeds, mask = qu.get_qwen_prompt_embeds(tok, vl, "ohwx woman, glasses, evening")
        entry.update(embed=list(embeds.shape), finite=bool(torch.isfinite(embeds.float()).all()))
    except Exception as exc:
        entry["embed_error"] = f"{type(exc).__name__}: {exc}"[:300]
    result["te_" + name] = entry
vae = qu.load_vae(vae_path, device="cpu", disable_mmap=True)
with torch.no_grad():
    lat = vae.encode_pixels_to_latents(torch.zeros(1, 3, 1, 32, 32))
result["vae"] = {"meta": meta(vae), "latent": list(lat.shape),
                 "finite": bool(torch.isfinite(lat).all())}
tok, _ = qu.load_qwen2_5_vl(te, torch.bfloat16, "cpu", disable_mmap=True)
prefix = TEMPLATE.split("{}")[0]
result["template_prefix_tokens"] = len(tok(prefix)["input_ids"])
json.dump(result, open(out, "w"), indent=1)
'''


def test_tiny_qwen_image_set_loads_through_musubis_own_loaders(tmp_path: Path) -> None:
    res = load_tiny_set(FAMILY, WORKER, lambda made: [made.trainer_args()[k] for k in (
        "dit", "text_encoder", "vae")], tmp_path)

    tiny = synth.component_shapes(FAMILY, tiny=True)
    params = sum(math.prod(s) for s in tiny["dit"].values())
    # every key loaded strictly, the float8 file cast on read (bf16) or kept (--fp8_base)
    assert res["dit_bf16"] == {"dtypes": ["torch.bfloat16"], "meta": [], "blocks": 60,
                               "params": params}
    assert res["dit_fp8"] == {"dtypes": ["torch.float8_e4m3fn"], "meta": [], "blocks": 60,
                              "params": params}
    # --fp8_scaled refuses weights already in float8: the plan leaves it out
    assert res["fp8_scaled"].startswith("refused: Layer ")
    # lora_qwen_image: 14 Linear layers in each of the 60 blocks
    assert res["lora_modules"] == 14 * 60
    for name in ("te_bf16", "te_fp8"):
        te = res[name]
        assert te["meta"] == [], name
        # the caption's 6 tokens and the template's 5 closing ones, the tiny width
        assert te["embed"] == [1, 11, 16] and te["finite"], (name, te)
    assert res["te_bf16"]["dtypes"] == ["torch.bfloat16"]
    assert "torch.float8_e4m3fn" in res["te_fp8"]["dtypes"]
    # the 34 tokens musubi drops are the template's prefix, as with the real tokenizer (musubi's
    # template is lorac's QWEN_TEMPLATE: the embedding's length above holds only the caption's
    # and the closing tokens)
    assert res["template_prefix_tokens"] == 34
    # 32x32 pixels -> 4x4 latents, z_dim 16
    assert res["vae"] == {"meta": [], "latent": [1, 16, 1, 4, 4], "finite": True}
