"""musubi-tuner's own code on a profile that names its dataset config with ``dataset_config``
(an imported launcher whose dataset config lies behind ``$BASE_DIR``): every step gets that
path as it is, and musubi-tuner reads it when the step starts.

Skipped unless ``LORAC_MUSUBI_TUNER`` points at a musubi-tuner checkout (the commit of
``backends/musubi/pin.toml``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import resolved
from tests.trainer.conftest import REPO, checkout
from tests.trainer.test_musubi_trainer import WORKER

pytestmark = pytest.mark.trainer

PROFILE = """[profile]
family = "wan2.1-t2v-1.3b"
backend = "musubi"
[model]
dit = "wan2.1_t2v_1.3B_bf16.safetensors"
vae = "wan_2.1_vae.safetensors"
t5 = "models_t5_umt5-xxl-enc-bf16.pth"
[training]
dataset_config = "${env:BASE_DIR}/dataset/dataset.toml"
sdpa = true
[saving]
output_dir = "output"
output_name = "wan"
"""

DATASET = """[general]
resolution = [832, 480]
caption_extension = ".txt"

[[datasets]]
image_directory = "data"
cache_directory = "cache"
num_repeats = 3
"""

#: musubi's own loader on a dataset config that is not there
MISSING = r'''
import os, sys
from lorac.trainers import inventory_gen as gen
checkout, missing = sys.argv[1:]
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(checkout, "src"))
sys.meta_path.insert(0, gen._StubFinder(only=gen.ALWAYS_STUB - {"toml", "voluptuous"}))
sys.meta_path.append(gen._StubFinder())
from musubi_tuner.dataset import config_utils
try:
    config_utils.load_user_config(missing)
except ValueError as exc:
    print("ValueError:", exc)
'''


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}


def test_every_step_reads_the_profiles_own_dataset_config(tmp_path: Path) -> None:
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    from lorac.trainers.musubi.emitter import MusubiBackend, launch_argv

    base = tmp_path / "musubi"
    (base / "dataset").mkdir(parents=True)
    (base / "dataset" / "dataset.toml").write_text(DATASET, encoding="utf-8")
    res = resolved(tmp_path, PROFILE, env={"BASE_DIR": str(base)})
    assert res.profile is not None, res.diagnostics
    art = MusubiBackend().emit(res.profile, "toml")
    assert "dataset.toml" not in art.files
    build = tmp_path / "build"
    build.mkdir()
    for name, text in art.files.items():
        (build / name).write_text(text, encoding="utf-8")
    real = [(step, launch_argv(argv, musubi, build)) for step, argv in art.steps]
    out = tmp_path / "worker.json"
    ext = str(base / "dataset" / "dataset.toml")
    proc = subprocess.run([sys.executable, "-c", WORKER, str(musubi), str(out), json.dumps(real),
                           ext], capture_output=True, text=True, env=_env(), cwd=tmp_path,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(out.read_text(encoding="utf-8"))
    for step in ("latents", "text_encoder", "train"):
        assert got["steps"][step]["dataset_config"] == ext, step
    (images,) = got["datasets"]
    assert images["is_image"] is True and images["params"]["num_repeats"] == 3


def test_musubi_stops_at_start_when_the_dataset_config_is_not_there(tmp_path: Path) -> None:
    # why the build may pass a path that does not exist on the building machine: musubi-tuner
    # itself checks it when each step starts (dataset/config_utils.py:363-366)
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    missing = tmp_path / "nowhere" / "dataset.toml"
    proc = subprocess.run([sys.executable, "-c", MISSING, str(musubi), str(missing)],
                          capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.startswith("ValueError: file not found") and str(missing) in proc.stdout
