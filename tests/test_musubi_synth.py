"""lorac.trainers.musubi.synth: the synthetic Wan 2.1 T2V 1.3B set as musubi-tuner loads it.

What musubi's loaders expect (``backends/musubi/synth/wan2.1-t2v-1.3b.json``, generated from its
own classes; tests/trainer/test_musubi_synth_trainer.py loads the files through musubi itself):
the DiT as a safetensors file whose ``blocks.0.cross_attn.k.weight`` gives the dtype
(wan/modules/model.py:963-976) and whose keys load strictly; the umT5 encoder as a ``.pth`` that
``torch.load(weights_only=True)`` reads and whose keys survive musubi's removal of
``"encoder."`` (t5.py:478-482); the VAE as a ``.pth`` loaded strictly (vae.py:650-652); the
tokenizer under the hub id and subfolder t5.py:496-500 names.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorac.trainers.musubi import synth
from lorac.trainers.musubi.synth import component_shapes, layout, write_synthetic

FAMILY = "wan2.1-t2v-1.3b"
ROOT = Path(__file__).resolve().parents[1]
HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "safetensors"))
HAVE_TOKENIZERS = all(importlib.util.find_spec(m) is not None
                      for m in ("transformers", "tokenizers"))
needs_torch = pytest.mark.skipif(not (HAVE_TORCH and HAVE_TOKENIZERS),
                                 reason="needs torch, safetensors and transformers")


def test_full_layout_is_the_real_models() -> None:
    full = component_shapes(FAMILY)
    params = {n: sum(math.prod(s) for s in shapes.values()) for n, shapes in full.items()}
    # the released files: 2.84 GB bf16 DiT, 11.4 GB bf16 umT5-XXL encoder, 508 MB fp32 VAE
    assert params == {"dit": 1_418_996_800, "t5": 5_680_910_336, "vae": 126_892_531}
    assert len(full["dit"]) == 825 and len(full["t5"]) == 242 and len(full["vae"]) == 194
    assert full["dit"]["blocks.29.ffn.2.weight"] == (1536, 8960)  # dim 1536, ffn 8960, 30 blocks
    assert "blocks.30.ffn.2.weight" not in full["dit"]
    assert full["t5"]["token_embedding.weight"] == (256384, 4096)
    assert full["vae"]["conv1.weight"] == (32, 32, 1, 1, 1)  # 2 * z_dim 16


def test_tiny_layout_keeps_every_key_and_shrinks_every_component() -> None:
    full, tiny = component_shapes(FAMILY), component_shapes(FAMILY, tiny=True)
    for name in full:
        assert list(tiny[name]) == list(full[name]), name
        assert {len(s) for s in tiny[name].values()} == {len(s) for s in full[name].values()}
        small, big = (sum(map(math.prod, s[name].values())) for s in (tiny, full))
        assert small < big / 100, name


def test_no_text_encoder_key_is_touched_by_musubis_prefix_removal() -> None:
    assert not [k for k in layout(FAMILY)["components"]["t5"]["keys"] if "encoder." in k]


def test_unknown_family_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no synthetic musubi checkpoints"):
        write_synthetic("wan2.1-t2v-14b", Path("unused"))


@needs_torch
def test_tiny_set_has_the_keys_shapes_dtypes_and_formats_musubi_reads(tmp_path: Path) -> None:
    import torch
    from safetensors import safe_open

    made = write_synthetic(FAMILY, tmp_path, tiny=True)
    tiny = component_shapes(FAMILY, tiny=True)
    assert set(made.trainer_args()) == {"dit", "t5", "vae"}
    with safe_open(str(made.files["dit"]), framework="pt") as f:
        assert list(f.keys()) == sorted(tiny["dit"])
        for key in tiny["dit"]:
            t = f.get_tensor(key)
            assert tuple(t.shape) == tiny["dit"][key], key
            assert t.dtype == torch.bfloat16, key
            assert torch.isfinite(t.float()).all(), key
    for name, dtype in (("t5", torch.bfloat16), ("vae", torch.float32)):
        sd = torch.load(made.files[name], map_location="cpu", weights_only=True)
        assert list(sd) == list(tiny[name]), name
        assert {k: tuple(v.shape) for k, v in sd.items()} == tiny[name], name
        assert {v.dtype for v in sd.values()} == {dtype}, name
    assert made.files["dit"].suffix == ".safetensors"
    assert not list(tmp_path.glob("*.part"))


@needs_torch
def test_tokenizer_loads_offline_under_the_id_musubi_hard_codes(tmp_path: Path) -> None:
    hf_home = tmp_path / "hf"
    synth.write_tokenizer(hf_home)
    code = (
        "import json, sys\n"
        "from transformers import AutoTokenizer\n"
        f"tok = AutoTokenizer.from_pretrained({synth.TOKENIZER_REPO!r}, "
        f"subfolder={synth.TOKENIZER_SUBFOLDER!r})\n"
        "enc = tok(['a photo of ohwx woman, 42!'], padding='max_length', truncation=True, "
        "max_length=512, add_special_tokens=True)\n"
        "print(json.dumps({'ids': enc.input_ids[0], 'mask': enc.attention_mask[0]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["ids"]) == 512 and max(out["ids"]) < 100
    words = sum(out["mask"])
    assert 5 < words < 40 and out["ids"][words - 1] == 1  # </s> closes the text
    assert out["ids"][words:] == [0] * (512 - words)


def test_av_stand_in_raises_import_error_when_used(tmp_path: Path) -> None:
    (tmp_path / "av.py").write_text(synth.AV_STAND_IN, encoding="utf-8")
    code = ("import av\n"
            "try:\n    av.open('clip.mp4')\nexcept ImportError as e:\n    print('raised', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("raised PyAV is not installed (av.open used)")


@needs_torch
def test_lorac_synth_tiny_and_run_synthetic_use_musubis_options(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LORAC_NO_CACHE": "1"}
    lorac = [sys.executable, "-m", "lorac"]
    proc = subprocess.run([*lorac, "synth", FAMILY, str(tmp_path / "set"), "--tiny"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" = ", 1) for line in proc.stdout.splitlines())
    assert lines == {"dit": str(tmp_path / "set" / "wan2.1_t2v_1.3B_bf16.safetensors"),
                     "t5": str(tmp_path / "set" / "models_t5_umt5-xxl-enc-bf16.pth"),
                     "vae": str(tmp_path / "set" / "Wan2.1_VAE.pth")}
    marker = json.loads((tmp_path / "set" / "lorac-synth.json").read_text())
    assert marker["family"] == FAMILY and marker["trainer_args"] == lines
    assert marker["env"] == {"HF_HOME": str(tmp_path / "set" / "hf_home")}
    proc = subprocess.run([*lorac, "run", "profiles/examples/musubi/wan2.1-t2v-1.3b.toml",
                           "--synthetic", "--dry-run", "--max-steps", "20"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "override: dit = <synthetic>" in proc.stdout
    assert "override: t5 = <synthetic>" in proc.stdout
    assert "override: vae = <synthetic>" in proc.stdout
    assert "pretrained_model_name_or_path" not in proc.stdout
