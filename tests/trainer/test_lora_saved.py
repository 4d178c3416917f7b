"""``lorac inspect`` on LoRA files written by the trainers' own save code (no model weights:
tiny modules with the class names the trainers look for).

sd-scripts: ``networks/lora_flux.py`` wraps every Linear of ``DoubleStreamBlock`` /
``SingleStreamBlock`` and of the CLIP attention and MLP; ``LoRANetwork.save_weights`` writes
the file (sd-scripts' logging setup, an SDXL type and the metadata hash helper are stood in for:
they need torchvision, cv2 and accelerate). The checkout is ``LORAC_SD_SCRIPTS``; it needs
torch, safetensors, transformers and diffusers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lorac.scan.lora import inspect_file
from tests.trainer.conftest import checkout

pytestmark = pytest.mark.trainer

KOHYA_WORKER = r'''
import sys
import types
import torch
from torch import nn
sys.path.insert(0, ".")
# sd-scripts' library modules that lora_flux imports only for logging, a type and the model
# hashes of the metadata pull in torchvision, cv2 and accelerate: stand-ins for those three
stubs = {
    "library.utils": {"setup_logging": lambda *a, **k: None},
    "library.sdxl_original_unet": {"SdxlUNet2DConditionModel": type("SdxlUNet2DConditionModel",
                                                                     (nn.Module,), {})},
    "library.train_util": {"precalculate_safetensors_hashes": lambda sd, meta: ("", "")},
}
import library
for name, attrs in stubs.items():
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    setattr(library, name.split(".")[1], module)
from networks import lora_flux

class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)

class DoubleStreamBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.img_attn = Attn()
        self.txt_attn = Attn()

class SingleStreamBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(8, 32)
        self.linear2 = nn.Linear(32, 8)

class Flux(nn.Module):
    def __init__(self):
        super().__init__()
        self.double_blocks = nn.ModuleList([DoubleStreamBlock() for _ in range(2)])
        self.single_blocks = nn.ModuleList([SingleStreamBlock() for _ in range(3)])

class CLIPMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 8)

class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = CLIPMLP()

class Clip(nn.Module):
    def __init__(self):
        super().__init__()
        self.text_model = nn.Module()
        self.text_model.encoder = nn.Module()
        self.text_model.encoder.layers = nn.ModuleList([Layer()])

clip, flux = Clip(), Flux()
network = lora_flux.create_network(1.0, 8, 1.0, None, [clip, None], flux)
network.apply_to([clip, None], flux, True, True)  # as train_network.py does before training
network.save_weights(sys.argv[1], torch.bfloat16, {"ss_network_module": "networks.lora_flux",
                     "ss_network_dim": "8", "ss_network_alpha": "1.0",
                     "ss_base_model_version": "flux1"})
'''


def test_sd_scripts_lora_flux_file(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS")
    for module in ("torch", "safetensors", "transformers", "diffusers"):
        pytest.importorskip(module, reason=f"sd-scripts' own {module} is needed")
    out = tmp_path / "flux.safetensors"
    done = subprocess.run([sys.executable, "-c", KOHYA_WORKER, str(out)], cwd=sd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = inspect_file(out)
    assert (found.key_format, found.trainer) == ("kohya", "kohya sd-scripts")
    assert (found.rank, found.alpha, found.network_module) == (8, 1.0, "networks.lora_flux")
    # 2 double blocks x 2 attentions x (qkv, proj) + 3 single blocks x 2 + 1 CLIP layer x 2
    assert len(found.modules) == 8 + 6 + 2
    assert found.components == {"te1": 2, "unet": 14}
    assert "unet.double_blocks_1" in found.blocks and "unet.single_blocks_2" in found.blocks
    assert found.family == "flux1-dev"
    # sd-scripts starts lora_up at zero: a network saved before training never trained
    assert found.health is not None and found.health.never_trained
    assert not found.health.nonfinite
