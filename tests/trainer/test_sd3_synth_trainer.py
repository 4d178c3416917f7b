"""The synthetic SD3 set of ``tests/gpu/sd3_synth.py`` through sd-scripts' own loaders, on the CPU.

Skipped unless ``LORAC_SD_SCRIPTS`` points at an sd-scripts checkout. sd-scripts' SD3 modules
need torch, accelerate, einops, transformers and safetensors: the script and the worker run in
``LORAC_TRAINER_PYTHON`` (an interpreter that has them), else in this one; the test is skipped
when that interpreter lacks them.

``--tiny`` keeps every key name with small sizes. sd-scripts derives the MMDiT's configuration
from the shapes (``sd3_utils.analyze_state_dict_state``), so the MMDiT and the VAE (real size)
load through the unmodified ``load_mmdit``/``load_vae``; CLIP-L, CLIP-G and T5-XXL have their
configurations fixed in the loaders, so the worker wraps ``CLIPTextConfig``/``T5Config`` to add
the tiny sizes. Everything else (the prefixes, the model-type detection, the key matching, the
tokenizer lookup in ``--tokenizer_cache_dir``) is sd-scripts'.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer.conftest import REPO, checkout

pytestmark = pytest.mark.trainer

WORKER = r'''
import json, sys
import torch
src, info_path, out = sys.argv[1:]
sys.path.insert(0, src)
info = json.load(open(info_path))
from library import flux_utils, sd3_utils, strategy_sd3
from library.safetensors_utils import load_safetensors

def meta(model):
    return [n for n, p in model.state_dict().items() if p.is_meta]

result = {}
sd = load_safetensors(info["checkpoint"], "cpu", dtype=torch.float32)
keys = set(sd)
mmdit = sd3_utils.load_mmdit(sd, torch.float32, "cpu")
own = {"model.diffusion_model." + k for k in mmdit.state_dict()}
with torch.no_grad():
    y = torch.zeros(1, mmdit.y_embedder.mlp[0].in_features)
    ctx = torch.zeros(1, 5, mmdit.context_embedder.in_features)
    x = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    pred = mmdit(x, torch.tensor([500.0]), y=y, context=ctx)
norms = [m.weight for m in mmdit.modules() if type(m).__name__ == "RMSNorm"]
result["mmdit"] = {"rms_norms": len(norms), "rms_ones": all(bool((w == 1).all()) for w in norms),
                   "model_type": mmdit.model_type, "depth": len(mmdit.joint_blocks),
                   "meta": meta(mmdit), "unexpected": sorted(k for k in keys if
                   k.startswith("model.diffusion_model.") and k not in own),
                   "pred": list(pred.shape), "finite": bool(torch.isfinite(pred).all())}
vae = sd3_utils.load_vae(None, torch.float32, "cpu", state_dict=sd)  # strict load
result["vae"] = {"meta": meta(vae), "left": sorted(sd)}

tiny_clip = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32,
             "num_hidden_layers": 2, "num_attention_heads": 2, "projection_dim": 16}
real_clip = sd3_utils.CLIPTextConfig
sd3_utils.CLIPTextConfig = lambda **kw: real_clip(**{**kw, **tiny_clip})
for name, load in (("clip_l", sd3_utils.load_clip_l), ("clip_g", sd3_utils.load_clip_g)):
    model = load(info[name], torch.float32, "cpu")
    file_keys = set(load_safetensors(info[name], "cpu"))
    result[name] = {"meta": meta(model),
                    "unexpected": sorted(file_keys - set(model.state_dict()))}
real_t5 = flux_utils.T5Config
flux_utils.T5Config = lambda **kw: real_t5(**{**kw, "vocab_size": 64, "d_model": 8, "d_kv": 4,
                                            "num_heads": 2, "d_ff": 16,
                                            "relative_attention_num_buckets": 4})
t5 = sd3_utils.load_t5xxl(info["t5xxl"], torch.float32, "cpu")
result["t5xxl"] = {"meta": meta(t5), "unexpected": sorted(
    set(load_safetensors(info["t5xxl"], "cpu")) - set(t5.state_dict()))}

tok = strategy_sd3.Sd3TokenizeStrategy(256, info["tokenizer_cache_dir"])
l, g, t, *_ = tok.tokenize("a photo of ohwx woman")
result["tokens"] = {"shapes": [list(l.shape), list(g.shape), list(t.shape)],
                    "max": [int(l.max()), int(g.max()), int(t.max())],
                    "clip_g_pad": tok.clip_g.pad_token_id}
json.dump(result, open(out, "w"))
'''

NEEDS = ("torch", "accelerate", "einops", "transformers", "safetensors", "sentencepiece")


def _python() -> str:
    python = os.environ.get("LORAC_TRAINER_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import " + ", ".join(NEEDS)], capture_output=True,
                           text=True, timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import sd-scripts' SD3 dependencies ({', '.join(NEEDS)});"
                    " set LORAC_TRAINER_PYTHON to an interpreter that has them")
    return python


def test_tiny_sd3_sets_load_through_sd_scripts_own_loaders(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS")
    python = _python()
    env = {**os.environ, "LORAC_SD_SCRIPTS": str(sd), "PYTHONPATH": str(REPO),
           "PYTHONDONTWRITEBYTECODE": "1"}
    out = tmp_path / "set"
    made = subprocess.run(
        [python, str(REPO / "tests/gpu/sd3_synth.py"), str(out), "--device", "cpu", "--tiny",
         "--variants", "sd3-medium,sd3.5-large"],
        capture_output=True, text=True, env=env, timeout=600)
    assert made.returncode == 0, made.stderr[-4000:]
    for variant, model_type in (("sd3-medium", "medium"), ("sd3.5-large", "5-large")):
        info_path = out / f"{variant}.json"
        info = json.loads(info_path.read_text(encoding="utf-8"))
        # lorac reads the variant from the file name (vram_families.sd3_variant)
        from lorac.trainers.kohya.vram_families import sd3_variant

        assert sd3_variant({"pretrained_model_name_or_path": info["checkpoint"]}) == variant
        res_path = tmp_path / f"{variant}-result.json"
        proc = subprocess.run([python, "-c", WORKER, str(sd), str(info_path), str(res_path)],
                              capture_output=True, text=True, env=env, cwd=sd, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        res = json.loads(res_path.read_text(encoding="utf-8"))
        assert res["mmdit"]["model_type"] == model_type
        assert res["mmdit"]["depth"] == 2
        # SD3.5's q/k RMS norms: 4 per joint block (x and context, q and k), ones, not torch.empty
        assert res["mmdit"]["rms_norms"] == (0 if variant == "sd3-medium" else 8)
        assert res["mmdit"]["rms_ones"]
        assert res["mmdit"]["meta"] == [] and res["mmdit"]["unexpected"] == []
        assert res["mmdit"]["pred"] == [1, 16, 16, 16] and res["mmdit"]["finite"]
        assert res["vae"] == {"meta": [], "left": []}  # nothing in the file but MMDiT and VAE
        for name in ("clip_l", "clip_g", "t5xxl"):
            assert res[name] == {"meta": [], "unexpected": []}, (variant, name, res[name])
        tokens = res["tokens"]
        assert tokens["shapes"] == [[1, 77], [1, 77], [1, 256]]
        assert tokens["max"][0] < 49408 and tokens["max"][1] < 49408
        assert tokens["max"][2] < 32128
        assert tokens["clip_g_pad"] == 0


def test_the_sd3_plan_builds_what_sd3_train_network_parses(tmp_path: Path) -> None:
    """Every configuration of ``vram_matrix.py --plan sd3``, built by ``lorac build``, read by
    sd3_train_network.py's own parser and config reader: each option arrives with its value."""

    from lorac.config.profile import resolve
    from lorac.trainers.kohya.emitter import KohyaBackend
    from tests.trainer.conftest import run_worker

    sd = checkout("LORAC_SD_SCRIPTS")
    from tests.vm_standins import load_script

    vm = load_script("tests/gpu/vram_matrix.py", "vram_matrix")
    (tmp_path / "profiles").mkdir()
    for name, fam, changes, _ in vm.SD3_PLAN:
        cond = vm.plan_conditions(fam, changes)
        files = {"checkpoint": f"/m/{cond['pretrained_model_name_or_path']}",
                 "clip_l": "/m/clip_l.safetensors", "clip_g": "/m/clip_g.safetensors",
                 "t5xxl": "/m/t5xxl_fp16.safetensors", "tokenizer_cache_dir": "/m/tok"}
        path = tmp_path / "profiles" / f"vm-{name}.toml"
        path.write_text(vm.sd3_profile_text(name, cond, files, "data/x", 8), encoding="utf-8")
        res = resolve(path, env={})
        assert res.profile is not None, res.diagnostics
        art = KohyaBackend().emit(res.profile, "toml")
        build = tmp_path / "build" / name
        build.mkdir(parents=True)
        for fname, text in art.files.items():
            (build / fname).write_text(text, encoding="utf-8")
        args = run_worker(sd, "config", "sd3_train_network", str(build / "config.toml"),
                          "--dataset_config", str(build / "dataset.toml"), tmp=tmp_path)
        for key in ("network_dim", "optimizer_type", "gradient_checkpointing", "fp8_base",
                    "network_train_unet_only", "cache_text_encoder_outputs",
                    "cache_latents_to_disk", "network_module", "mixed_precision"):
            assert args[key] == cond[key], (name, key, args[key])
        assert args["network_alpha"] == cond["network_alpha"]
        for key in ("clip_l", "clip_g", "t5xxl", "tokenizer_cache_dir"):
            assert args[key] == files[key], (name, key)
        assert args["pretrained_model_name_or_path"] == files["checkpoint"]
        assert args["max_train_steps"] == 8 and args["t5xxl_max_token_length"] == 256
