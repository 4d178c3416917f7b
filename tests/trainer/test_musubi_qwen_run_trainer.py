"""One configuration of tests/gpu/musubi_matrix.py through ``lorac run --synthetic`` and
musubi-tuner's unchanged Qwen-Image scripts on the CPU: latent caching, text-encoder caching
(Qwen2.5-VL and its tokenizer from the synthetic set's offline cache) and two training steps,
with the tiny weights of ``lorac synth qwen-image --tiny``. What the GPU plan would trip on
first (a flag, a file, the tokenizer, the dataset config) shows here.

musubi's loaders fix the real sizes; ``tiny_qwen/sitecustomize.py`` (on the trainer's
``PYTHONPATH``) wraps the three classes they build to add the tiny ones. The two images at
256 px and the two steps keep it short; every other option is the plan's.

Skipped unless ``LORAC_MUSUBI_TUNER`` points at the pinned checkout; musubi's steps run with
``LORAC_TRAINER_PYTHON``'s interpreter and its ``accelerate``, lorac with this one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lorac.run.launch import make_synthetic
from lorac.trainers.musubi import synth
from tests.gpu.summarise import lora_counts
from tests.test_musubi_matrix import mm
from tests.trainer.conftest import REPO, checkout
from tests.trainer.test_musubi_synth_trainer import _python

pytestmark = pytest.mark.trainer
NAME = "fp8vl-r32-512"


def test_a_plan_configuration_runs_through_musubi_on_tiny_weights(tmp_path: Path) -> None:
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    python = _python()
    pytest.importorskip("torch", reason="writing the set needs torch")
    bin_dir = Path(python).parent
    if not (bin_dir / "accelerate").is_file():
        pytest.skip(f"{bin_dir} has no accelerate launcher (musubi's training step)")
    made = make_synthetic("qwen-image", tmp_path / "set", tiny=True, device="cpu")
    data = tmp_path / "data"
    data.mkdir()
    for stem in ("subject_000", "subject_001"):
        for ext in (".jpg", ".txt"):
            shutil.copy(REPO / "examples" / "subject" / f"{stem}{ext}", data)
    (job,) = mm.queue_of({NAME})
    job["cond"] = {**job["cond"], "resolution": [256, 256]}
    profile = mm.write_profile(tmp_path, job, data, tmp_path / "cache")
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps(synth.layout("qwen-image")), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS"))}
    env.update({
        "PATH": os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent / "tiny_qwen"),
                                       str(musubi / "src"), str(REPO)]),
        "LORAC_TINY_LAYOUT": str(layout), "LORAC_MUSUBI_TUNER": str(musubi),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LORAC_NO_CACHE": "1",
        "PYTHONDONTWRITEBYTECODE": "1"})
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "lorac", "run", str(profile), "--synthetic", "--synth-dir",
         str(made.root), "--max-steps", "2", "--display", "plain", "--force", "--runs-dir",
         str(runs)], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    (run,) = list(runs.iterdir())
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "succeeded" and manifest["progress"]["step"] == 2
    assert [s["name"] for s in manifest["steps"]] == [
        "cache latents", "cache text-encoder outputs", "train"]
    assert {p["phase"] for p in manifest["phases"]} >= {"cache_latents", "cache_text_encoder",
                                                       "prepare", "train"}
    log = (run / "train.log").read_text(encoding="utf-8", errors="replace")
    assert "fp8_vl" in (run / "train.sh").read_text(encoding="utf-8")
    assert "Loading tokenizer" in log or "tokenizer" in log.lower()
    # the text-encoder caching wrote one cache file per image, the latent caching likewise
    cache = tmp_path / "cache"
    assert len(list(cache.glob("*_qi_te.safetensors"))) == 2, sorted(cache.iterdir())
    assert len(list(cache.glob("*_qi.safetensors"))) == 2, sorted(cache.iterdir())
    (lora,) = list((run / "output").glob("*.safetensors"))
    assert lora_counts(lora) == (14 * 60, 3 * 14 * 60)  # lora_qwen_image: 14 Linear per block
