"""lorac's synthetic diffusers folders for ai-toolkit, through the diffusers and transformers
classes that ai-toolkit loads them with, on the CPU.

Skipped unless ``LORAC_AI_TOOLKIT`` points at the pinned ai-toolkit checkout; the worker runs in
``LORAC_TRAINER_PYTHON`` (an interpreter with torch, diffusers and transformers), else in this
one, and the test is skipped when that interpreter lacks them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorac.trainers.ai_toolkit.synth import FAMILIES, lora_modules
from tests.trainer.conftest import REPO, checkout

pytestmark = pytest.mark.trainer

#: Writes each family's tiny set, loads every part back with its class (ai-toolkit's loaders
#: call the same from_pretrained: stable_diffusion_model.py:667-809, wan21.py:345-460,
#: loaders/umt5.py:41-45) and reports what did not match; then builds the real-size models on
#: the meta device and lists their parameters and the Linear layers in their blocks.
WORKER = r'''
import importlib, json, sys
from pathlib import Path
import torch, diffusers, transformers
from lorac.trainers.ai_toolkit.synth import parts, write_synthetic
out_dir, out = Path(sys.argv[1]), sys.argv[2]
result = {}
for family in ("flux1-dev", "wan2.1-t2v-1.3b"):
    made = write_synthetic(family, out_dir / family, tiny=True)
    index = json.loads((made.root / "model_index.json").read_text())
    loaded = {}
    for name, (library, cls_name) in ((k, v) for k, v in index.items() if isinstance(v, list)):
        cls = getattr(diffusers if library == "diffusers" else transformers, cls_name)
        if "Tokenizer" in cls_name:
            tok = cls.from_pretrained(str(made.root), subfolder=name)
            loaded[name] = {"ids": tok("ohwx woman, a photo of the park")["input_ids"]}
        elif cls_name.endswith("Scheduler"):
            cls.from_pretrained(str(made.root), subfolder=name)
            loaded[name] = {}
        else:
            model, info = cls.from_pretrained(str(made.root), subfolder=name,
                                              output_loading_info=True)
            vocab = getattr(model.config, "vocab_size", None)
            loaded[name] = {"problems": {k: list(v) for k, v in info.items() if v},
                            "vocab": vocab}
    real = {}
    for name, part in parts(family).items():
        if part.library == "tokenizer" or part.cls.endswith("Scheduler"):
            continue
        lib = importlib.import_module(part.library)
        with torch.device("meta"):
            if part.library == "transformers":
                config = getattr(lib, part.cls.replace("EncoderModel", "Config")
                                 .replace("TextModel", "TextConfig"))(**part.config)
                model = getattr(lib, part.cls)(config)
            else:
                model = getattr(lib, part.cls)(**part.config)
        real[name] = {"params": sum(p.numel() for p in model.parameters())}
        if name == "transformer":
            block = "transformer_blocks" if family == "flux1-dev" else "blocks"
            real[name]["linear"] = sorted(
                n for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) and block in n)
    result[family] = {"loaded": loaded, "real": real,
                      "stand_ins": made.pythonpath()}
json.dump(result, open(out, "w"))
'''

NEEDS = ("torch", "diffusers", "transformers", "tokenizers", "safetensors")


def _python() -> str:
    python = os.environ.get("LORAC_TRAINER_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import " + ", ".join(NEEDS)], capture_output=True,
                           text=True, timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import {', '.join(NEEDS)}; set LORAC_TRAINER_PYTHON to "
                    "an interpreter that can")
    return python


def test_sets_load_with_every_key_matched_and_real_sizes(tmp_path: Path) -> None:
    checkout("LORAC_AI_TOOLKIT", pinned="ai-toolkit")
    python = _python()
    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS"))}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO),
                "PYTHONDONTWRITEBYTECODE": "1"})
    proc = subprocess.run([python, "-c", WORKER, str(tmp_path / "sets"), str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert sorted(result) == sorted(FAMILIES)

    flux, wan = result["flux1-dev"], result["wan2.1-t2v-1.3b"]
    assert sorted(flux["loaded"]) == ["scheduler", "text_encoder", "text_encoder_2",
                                      "tokenizer", "tokenizer_2", "transformer", "vae"]
    assert sorted(wan["loaded"]) == ["scheduler", "text_encoder", "tokenizer", "transformer",
                                     "vae"]
    for family in result.values():
        for name, part in family["loaded"].items():
            assert part.get("problems", {}) == {}, (name, part)
    # token ids stay below the tiny encoders' vocabularies (and so below the real ones)
    assert max(flux["loaded"]["tokenizer"]["ids"]) < flux["loaded"]["text_encoder"]["vocab"]
    assert max(flux["loaded"]["tokenizer_2"]["ids"]) < flux["loaded"]["text_encoder_2"]["vocab"]
    assert max(wan["loaded"]["tokenizer"]["ids"]) < wan["loaded"]["text_encoder"]["vocab"]

    # the real sizes: FLUX.1-dev 11.9 B + T5-XXL encoder 4.76 B + CLIP-L 123 M + VAE 84 M;
    # Wan 2.1 1.3B 1.42 B + umT5-XXL encoder 5.68 B + VAE 127 M
    def billions(family: dict, name: str) -> float:
        return round(family["real"][name]["params"] / 1e9, 2)

    assert [billions(flux, n) for n in ("transformer", "text_encoder_2", "text_encoder",
                                        "vae")] == [11.9, 4.76, 0.12, 0.08]
    assert [billions(wan, n) for n in ("transformer", "text_encoder", "vae")] == \
        [1.42, 5.68, 0.13]
    # ai-toolkit's LoRA goes on every Linear layer in the blocks (lora_special.py:485-566)
    assert flux["real"]["transformer"]["linear"] == sorted(lora_modules("flux1-dev"))
    assert wan["real"]["transformer"]["linear"] == sorted(lora_modules("wan2.1-t2v-1.3b"))
