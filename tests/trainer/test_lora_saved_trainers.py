"""``lorac inspect`` on LoRA files saved by musubi-tuner's, LyCORIS's and ai-toolkit's own save
code, on tiny modules (no model weights). sd-scripts' own ``lora_flux`` file is in
``test_lora_saved.py``.

Each worker runs in the trainers' interpreter and prints what the trainer built (module count,
and per module the rank and alpha it trains with); the test then runs ``lorac inspect --format
json`` on the file and compares.

* musubi-tuner (``LORAC_MUSUBI_TUNER``, interpreter ``LORAC_TRAINER_PYTHON``):
  ``networks/lora_wan.py`` on a small ``WanModel`` built with musubi's own class, saved by
  ``LoRANetwork.save_weights`` with the metadata keys of ``training/trainer_base.py``.
* LyCORIS (interpreter ``LORAC_LYCORIS_PYTHON`` with ``lycoris-lora`` installed):
  ``create_lycoris`` (LyCORIS's own ``lycoris_*`` keys) and ``lycoris.kohya.create_network``
  (what sd-scripts and musubi-tuner load for ``network_module = "lycoris.kohya"``), LoCon and
  LoKr, saved by ``save_weights``.
* ai-toolkit (``LORAC_AI_TOOLKIT``, interpreter ``LORAC_TRAINER_PYTHON``): ``LoRASpecialNetwork``
  on a small diffusers ``WanTransformer3DModel``, as ``BaseSDTrainProcess`` builds it for Wan
  (``is_transformer``, ``target_lora_modules``), saved by ``save_weights`` with metadata from
  ``get_meta_for_safetensors``; once in PEFT keys and once through the Wan model's conversion
  to the original key names. optimum-quanto, torchao, torchaudio and PyAV, which its modules
  import at load time but the save path never uses, are stood in for when missing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import lorac
from tests.trainer.conftest import checkout

pytestmark = pytest.mark.trainer

MUSUBI_WORKER = r'''
import sys, json
import torch
if not torch.cuda.is_available():
    torch.cuda.current_device = lambda: 0  # t5.py evaluates it as a default argument
sys.path.insert(0, sys.argv[1])
import types
try:
    import av  # noqa: F401  (video reading only; the dataset module imports it)
except ImportError:
    import importlib.machinery
    stub = types.ModuleType('av')
    stub.__spec__ = importlib.machinery.ModuleSpec('av', None)
    sys.modules['av'] = stub
out = sys.argv[2]
from musubi_tuner.wan.modules.model import WanModel
from musubi_tuner.networks import lora_wan
from musubi_tuner.training import trainer_base as tb
from musubi_tuner.dataset.image_video_dataset import ARCHITECTURE_WAN_FULL
dit = WanModel(model_type="t2v", dim=32, ffn_dim=64, freq_dim=32, text_dim=16, num_heads=2,
               num_layers=3, in_dim=4, out_dim=4, text_len=8, attn_mode="torch")
network = lora_wan.create_arch_network(1.0, 4, 2.0, None, [], dit)
network.apply_to(None, dit, apply_text_encoder=False, apply_unet=True)
# the keys training/trainer_base.py:1835-1841 writes, as strings (:1899)
meta = {tb.SS_METADATA_KEY_NETWORK_MODULE: "networks.lora_wan",
        tb.SS_METADATA_KEY_NETWORK_DIM: 4, tb.SS_METADATA_KEY_NETWORK_ALPHA: 2.0,
        tb.SS_METADATA_KEY_BASE_MODEL_VERSION: ARCHITECTURE_WAN_FULL}
network.save_weights(out, torch.bfloat16, {k: str(v) for k, v in meta.items()})
print(json.dumps({"modules": len(network.unet_loras)}))
'''


LYCORIS_WORKER = r'''
import sys, json
import torch
from torch import nn
from lycoris import create_lycoris, LycorisNetwork
out, algo, dim, alpha = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
kohya = sys.argv[5] == "1"

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.to_q = nn.Linear(64, 64)
        self.to_k = nn.Linear(64, 64)
        self.proj = nn.Conv2d(64, 64, 3, padding=1)

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block() for _ in range(3)])

LycorisNetwork.apply_preset({"target_module": ["Block"]})
model = Tiny()
extra = {"factor": 4} if algo == "lokr" else {}
net = create_lycoris(model, 1.0, linear_dim=dim, linear_alpha=alpha, algo=algo, **extra)
net.apply_to()
meta = {"ss_network_module": "lycoris.kohya", "ss_network_dim": str(dim),
        "ss_network_alpha": str(alpha),
        "ss_network_args": json.dumps({"algo": algo})} if kohya else None
net.save_weights(out, torch.float16, meta)
print(json.dumps({"modules": len(net.loras), "per_module": {
    m.lora_name: {"dim": int(m.lora_dim), "alpha": float(m.alpha), "scale": float(m.scale),
                  "full": bool(getattr(m, "use_w1", False) and getattr(m, "use_w2", False))}
    for m in net.loras}}))
'''


LYCORIS_KOHYA_WORKER = r'''
import sys, json
import torch
from torch import nn
from lycoris.kohya import create_network
out, algo, dim, alpha = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

class Transformer2DModel(nn.Module):  # a class name LyCORIS's kohya wrapper targets
    def __init__(self):
        super().__init__()
        self.to_q = nn.Linear(64, 64)
        self.to_k = nn.Linear(64, 64)
        self.ff = nn.Linear(64, 128)

class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down_blocks = nn.ModuleList([Transformer2DModel() for _ in range(2)])

unet = UNet()
extra = {"factor": "4"} if algo == "lokr" else {}
net = create_network(1.0, dim, alpha, None, [], unet, algo=algo, **extra)
net.apply_to([], unet, apply_text_encoder=False, apply_unet=True)
net.save_weights(out, torch.float16, {"ss_network_module": "lycoris.kohya",
                                       "ss_network_dim": str(dim), "ss_network_alpha": str(alpha),
                                       "ss_network_args": json.dumps({"algo": algo})})
print(json.dumps({"modules": len(net.loras), "per_module": {
    m.lora_name: {"dim": int(m.lora_dim), "alpha": float(m.alpha), "scale": float(m.scale),
                  "full": bool(getattr(m, "use_w1", False) and getattr(m, "use_w2", False))}
    for m in net.loras}}))
'''


AI_TOOLKIT_WORKER = r'''
import importlib.abc, importlib.machinery, json, sys, types
checkout, out, convert = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
sys.path.insert(0, checkout)

class Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """optimum-quanto, torchao, torchaudio and PyAV: imported at module level by
    toolkit/network_mixins.py and its neighbours, used only to quantize or read audio/video."""
    roots = {"optimum", "torchao", "torchaudio", "av"}
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr: type(attr, (), {})
        return module
    def exec_module(self, module):
        pass

import importlib.util
sys.meta_path.insert(0, Stub())
from collections import OrderedDict
import torch
from diffusers import WanTransformer3DModel
from toolkit.config_modules import NetworkConfig
from toolkit.lora_special import LoRASpecialNetwork
from toolkit.metadata import get_meta_for_safetensors
# Wan21.convert_lora_weights_before_save (toolkit/models/wan21/wan21.py:726-727) calls this
# function; its package's __init__ imports the whole Wan pipeline, so the file is loaded alone
spec = importlib.util.spec_from_file_location(
    "wan_lora_convert", f"{checkout}/toolkit/models/wan21/wan_lora_convert.py")
wan_lora_convert = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wan_lora_convert)

transformer = WanTransformer3DModel(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4,
    out_channels=4, text_dim=16, freq_dim=16, ffn_dim=32, num_layers=2, rope_max_seq_len=32)

class Base:  # a stand-in for the loaded Wan21 model, with what the network reads of it
    arch = "wan21"
    use_old_lokr_format = True  # BaseModel's default (toolkit/models/base_model.py:191)

    def get_transformer_block_names(self):  # toolkit/models/wan21/wan21.py:735-736
        return ["blocks"]

    def convert_lora_weights_before_save(self, state_dict):
        return wan_lora_convert.convert_to_original(state_dict)

base = Base()
config = NetworkConfig(type="lora", linear=4, linear_alpha=2)
network = LoRASpecialNetwork(
    text_encoder=None, unet=transformer, lora_dim=config.linear, multiplier=1.0,
    alpha=config.linear_alpha, train_unet=True, train_text_encoder=False,
    network_config=config, network_type=config.type, is_transformer=True,
    base_model=base if convert else None, target_lin_modules=["WanTransformer3DModel"])
network.apply_to(None, transformer, False, True)
meta = OrderedDict({"name": "[name]", "version": "1.0",
                    "training_info": OrderedDict({"step": 0, "epoch": 0}),
                    "ss_base_model_version": "wan_2.1", "ss_output_name": "tiny"})
network.save_weights(out, dtype=torch.bfloat16, metadata=get_meta_for_safetensors(meta, "tiny"))
print(json.dumps({"modules": len(network.unet_loras), "alpha": float(network.alpha),
                  "dim": int(network.lora_dim)}))
'''



def _python(env: str, needs: tuple[str, ...]) -> str:
    python = os.environ.get(env)
    if not python:
        pytest.skip(f"{env} is not set")
    probe = subprocess.run([python, "-c", "import " + ", ".join(needs)], capture_output=True,
                           text=True, timeout=300)
    if probe.returncode != 0:
        pytest.fail(f"{env}={python} cannot import {', '.join(needs)}: "
                    f"{probe.stderr.strip().splitlines()[-1:]}")
    return python


def _run(python: str, worker: str, *args: str, cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS"))}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1",
                "CUDA_VISIBLE_DEVICES": ""})
    done = subprocess.run([python, "-c", worker, *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _inspect(path: Path) -> dict:
    code, out, err = lorac("inspect", str(path), "--format", "json")
    found = json.loads(out)
    # exit 1 only for a LoRA that never trained (up-weights still at their zero start) here
    assert code == (1 if found["health"]["never_trained"] else 0), err
    assert not found["health"]["nonfinite"]
    return found


def test_musubi_lora_wan_file(tmp_path: Path) -> None:
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    python = _python("LORAC_TRAINER_PYTHON", ("torch", "accelerate", "einops", "easydict",
                                              "ftfy", "transformers", "safetensors"))
    out = tmp_path / "wan.safetensors"
    made = _run(python, MUSUBI_WORKER, str(musubi / "src"), str(out), cwd=tmp_path)
    found = _inspect(out)
    assert (found["key_format"], found["trainer"]) == ("kohya (DiT keys)", "musubi-tuner")
    assert found["network_module"] == "networks.lora_wan"
    # 3 WanAttentionBlocks x (self_attn q k v o, cross_attn q k v o, ffn.0, ffn.2)
    assert made["modules"] == 30 and found["modules"] == 30
    assert (found["rank"], found["alpha"], found["effective_alpha"]) == (4, 2.0, 2.0)
    assert found["base_model"] == "wan" and found["components"] == {"unet": 30}
    assert found["health"]["never_trained"]  # musubi starts lora_up at zero, as sd-scripts


@pytest.mark.parametrize(("worker", "algo", "dim", "alpha"), [
    ("lycoris", "locon", 8, 4.0), ("lycoris", "lokr", 4, 2.0), ("lycoris", "lokr", 8, 4.0),
    ("kohya", "locon", 8, 4.0), ("kohya", "lokr", 4, 2.0), ("kohya", "lokr", 8, 4.0)])
def test_lycoris_files(tmp_path: Path, worker: str, algo: str, dim: int, alpha: float) -> None:
    python = _python("LORAC_LYCORIS_PYTHON", ("torch", "lycoris", "safetensors"))
    out = tmp_path / f"{algo}.safetensors"
    if worker == "lycoris":
        made = _run(python, LYCORIS_WORKER, str(out), algo, str(dim), str(alpha), "0",
                    cwd=tmp_path)
    else:
        made = _run(python, LYCORIS_KOHYA_WORKER, str(out), algo, str(dim), str(alpha),
                    cwd=tmp_path)
    found = _inspect(out)
    assert found["key_format"] == "LyCORIS"
    if worker == "lycoris":  # its own keys and no metadata: LyCORIS itself, named by algorithm
        assert found["trainer"] == "LyCORIS"
        assert found["network_module"] == {"locon": "lycoris (LoCon)",
                                           "lokr": "lycoris (LoKr)"}[algo]
    else:
        assert (found["trainer"], found["network_module"]) == ("kohya sd-scripts (LyCORIS)",
                                                               "lycoris.kohya")
    assert found["modules"] == made["modules"]
    truth = made["per_module"]
    full = {n for n, m in truth.items() if m["full"]}
    assert found["full_matrix_modules"] == len(full)
    per = {m["name"]: m for m in found["per_module"]}
    if per:  # differing modules: each one as LyCORIS trains it
        for name, m in truth.items():
            assert per[name]["rank"] == (None if name in full else m["dim"]), name
            assert per[name]["alpha"] == m["alpha"], name
        assert found["rank"] is None
    else:  # every module alike
        (m,) = {json.dumps(m, sort_keys=True) for m in truth.values()}
        assert found["rank"] == (None if json.loads(m)["full"] else json.loads(m)["dim"])
        assert found["alpha"] == json.loads(m)["alpha"]
    if not full:
        assert (found["rank"], found["alpha"]) == (dim, alpha)


@pytest.mark.parametrize("convert", [False, True], ids=["peft-keys", "wan-original-keys"])
def test_ai_toolkit_lora_special_file(tmp_path: Path, convert: bool) -> None:
    toolkit = checkout("LORAC_AI_TOOLKIT", pinned="ai-toolkit")
    python = _python("LORAC_TRAINER_PYTHON", ("torch", "diffusers", "transformers",
                                              "safetensors"))
    out = tmp_path / "wan.safetensors"
    made = _run(python, AI_TOOLKIT_WORKER, str(toolkit), str(out), "1" if convert else "0",
                cwd=tmp_path)
    found = _inspect(out)
    assert (found["key_format"], found["trainer"]) == ("diffusers-PEFT", "ai-toolkit")
    assert found["network_module"] == "peft (LoraConfig)"
    # every Linear of WanTransformer3DModel (toolkit/models/wan21/wan21.py:330): 2 blocks x 10,
    # the condition embedder's 5 and proj_out
    assert made["modules"] == 26 and found["modules"] == 26
    # PEFT format: no alpha tensors; ai-toolkit set alpha = rank (lora_special.py:428-430)
    assert made["alpha"] == made["dim"] == 4
    assert (found["rank"], found["alpha"], found["effective_alpha"]) == (4, None, 4.0)
    assert found["base_model"] == "wan_2.1"
    assert found["components"] == {"transformer": 26}
