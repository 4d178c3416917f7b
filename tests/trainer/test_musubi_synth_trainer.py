"""The synthetic Wan set through musubi-tuner's own loaders, on the CPU.

Skipped unless ``LORAC_MUSUBI_TUNER`` points at the pinned musubi-tuner checkout. musubi's
modules need torch, accelerate, einops, easydict, ftfy and transformers: the worker runs in
``LORAC_TRAINER_PYTHON`` (an interpreter that has them, e.g. a trainers' virtual environment),
else in this one; it is skipped when that interpreter lacks them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lorac.trainers.musubi import synth
from tests.trainer.conftest import REPO, checkout

pytestmark = pytest.mark.trainer
FAMILY = "wan2.1-t2v-1.3b"

#: musubi's own loading functions with the tiny sizes put where its code fixes the real ones:
#: ``load_wan_model`` takes the config (a copy with the tiny sizes); ``T5EncoderModel`` calls
#: ``umt5_xxl()`` and ``WanVAE`` calls ``_video_vae()`` with the real sizes, so the worker wraps
#: those two module functions to add the tiny ones. Everything else (file reading, the dtype
#: detection, prefix handling, strict loading, the tokenizer lookup) is musubi's.
WORKER = r'''
import copy, json, sys
import torch
if not torch.cuda.is_available():
    torch.cuda.current_device = lambda: 0  # t5.py evaluates it as a default argument
src, layout_path, dit, t5, vae, out = sys.argv[1:]
sys.path.insert(0, src)
layout = json.load(open(layout_path))["components"]
from musubi_tuner.wan.configs import WAN_CONFIGS
from musubi_tuner.wan.modules import t5 as t5_mod, vae as vae_mod
from musubi_tuner.wan.modules.model import detect_wan_sd_dtype, load_wan_model
from musubi_tuner.networks import lora_wan

result = {}
cfg = copy.deepcopy(WAN_CONFIGS["t2v-1.3B"])
cfg.update(layout["dit"]["tiny_sizes"])
dtype = detect_wan_sd_dtype(dit)
model = load_wan_model(cfg, "cpu", dit, "torch", False, "cpu", dtype)
result["dit"] = {"dtype": str(dtype), "meta": [n for n, p in model.state_dict().items()
                                               if p.is_meta],
                 "params": sum(p.numel() for p in model.parameters())}
network = lora_wan.create_arch_network(1.0, 4, 1.0, None, [], model)
result["lora_modules"] = sorted(m.lora_name for m in network.unet_loras)

real_umt5 = t5_mod.umt5_xxl
t5_mod.umt5_xxl = lambda **kw: real_umt5(**{**kw, **layout["t5"]["tiny_sizes"]})
enc = t5_mod.T5EncoderModel(text_len=512, dtype=torch.bfloat16, device="cpu", weight_path=t5)
with torch.no_grad():
    ctx = enc(["a photo of ohwx woman"], "cpu")
result["t5"] = {"meta": [n for n, p in enc.model.state_dict().items() if p.is_meta],
                "context": list(ctx[0].shape), "finite": bool(torch.isfinite(ctx[0]).all())}

real_vae = vae_mod._video_vae
vae_mod._video_vae = lambda **kw: real_vae(**{**kw, **layout["vae"]["tiny_sizes"]})
v = vae_mod.WanVAE(vae_path=vae, device="cpu", dtype=torch.float32)
with torch.no_grad():
    lat = v.encode([torch.zeros(3, 5, 32, 32)])[0]
result["vae"] = {"meta": [n for n, p in v.model.state_dict().items() if p.is_meta],
                 "latent": list(lat.shape), "finite": bool(torch.isfinite(lat).all())}
json.dump(result, open(out, "w"))
'''

NEEDS = ("torch", "accelerate", "einops", "easydict", "ftfy", "transformers", "safetensors")


def _python() -> str:
    python = os.environ.get("LORAC_TRAINER_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import " + ", ".join(NEEDS)], capture_output=True,
                           text=True, timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import musubi's dependencies ({', '.join(NEEDS)}); set "
                    "LORAC_TRAINER_PYTHON to an interpreter that can")
    return python


def load_tiny_set(family: str, worker: str, files: Callable[[Any], list[str]],
                  tmp_path: Path) -> dict[str, Any]:
    """Write ``family``'s tiny synthetic set and run ``worker`` on it in the trainer's
    interpreter, offline, with musubi's ``src``, the layout's JSON, ``files(set)`` and the path
    of the JSON result it writes, which is returned."""
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    python = _python()
    pytest.importorskip("torch", reason="writing the set needs torch")
    made = synth.write_synthetic(family, tmp_path / "set", tiny=True)
    layout_path = tmp_path / "layout.json"
    layout_path.write_text(json.dumps(synth.layout(family)), encoding="utf-8")
    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS"))}
    env.update({**made.trainer_env(), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(REPO)})
    proc = subprocess.run([python, "-c", worker, str(musubi / "src"), str(layout_path),
                           *files(made), str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(out.read_text(encoding="utf-8"))


def test_tiny_set_loads_through_musubis_own_loaders(tmp_path: Path) -> None:
    result = load_tiny_set(FAMILY, WORKER, lambda made: [str(made.files[k]) for k in (
        "dit", "t5", "vae")], tmp_path)

    tiny = synth.component_shapes(FAMILY, tiny=True)
    # every key loaded strictly (no parameter left on the meta device), dtype from the file
    assert result["dit"] == {"dtype": "torch.bfloat16", "meta": [],
                             "params": sum(map(math.prod, tiny["dit"].values()))}
    assert result["t5"]["meta"] == [] and result["vae"]["meta"] == []
    # the tokenizer came from the offline cache; one vector per token, the tiny width
    assert result["t5"]["finite"] and result["t5"]["context"][1] == 8
    assert 3 <= result["t5"]["context"][0] < 40
    # 5 frames of 32x32 -> 2 latent frames of 4x4, z_dim 16 (stride 4, 8, 8)
    assert result["vae"] == {"meta": [], "latent": [16, 2, 4, 4], "finite": True}
    # lora_wan's own module choice is the one lorac's count for the GPU proof assumes
    expected = sorted("lora_unet_" + m.replace(".", "_") for m in synth.wan_lora_modules(FAMILY))
    assert result["lora_modules"] == expected and len(expected) == 300


def test_synth_layout_is_fresh(tmp_path: Path) -> None:
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    python = _python()
    proc = subprocess.run([python, "-m", "lorac.trainers.musubi.synth_gen", str(musubi),
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    shipped = REPO / "backends" / "musubi" / "synth"
    assert sorted(p.name for p in tmp_path.glob("*.json")) == \
        sorted(p.name for p in shipped.glob("*.json"))
    for path in tmp_path.glob("*.json"):
        assert path.read_bytes() == (shipped / path.name).read_bytes(), (
            f"backends/musubi/synth/{path.name} is stale: python -m "
            "lorac.trainers.musubi.synth_gen /path/to/musubi-tuner")
