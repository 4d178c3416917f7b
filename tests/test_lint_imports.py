"""A cold ``lorac lint`` imports what the linted profiles need and no more: the modules a FLUX.1
kohya profile does not use stay out of the process (each is milliseconds of every cold lint;
``bench/lint_speed.py`` measures the whole)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, write_files

FLUX = """\
[profile]
family = "flux1-dev"
gpu = "24GB"
[model]
pretrained_model_name_or_path = "m/flux1-dev.safetensors"
clip_l = "m/clip_l.safetensors"
t5xxl = "m/t5xxl_fp16.safetensors"
ae = "m/ae.safetensors"
[network]
network_module = "networks.lora_flux"
network_dim = 16
network_alpha = 16
[training]
fp8_base = true
mixed_precision = "bf16"
gradient_checkpointing = true
"""

_PROBE = """\
import json, sys
from lorac.__main__ import main
code = main(sys.argv[1:])
print(json.dumps([code, sorted(sys.modules)]))
"""


def _cold_lint(cwd: Path, *args: str) -> tuple[int, set[str]]:
    env = {**os.environ, "LORAC_NO_CACHE": "1"}
    proc = subprocess.run([sys.executable, "-c", _PROBE, "lint", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=True)
    code, modules = json.loads(proc.stdout.splitlines()[-1])
    return code, set(modules)


def test_flux_profile_leaves_the_other_memory_models_out(tmp_path: Path) -> None:
    write_files(tmp_path, {"profiles/flux.toml": FLUX})
    code, modules = _cold_lint(tmp_path, "profiles", "--no-dataset")
    assert code == 0
    assert "lorac.trainers.kohya.vram" in modules  # LRC401 priced the profile
    assert not {"lorac.trainers.kohya.vram_families", "lorac.trainers.lora_memory"} & modules
    # the FLUX.1 parameter counts come from their generated copy, not from the tensor specs
    assert "lorac.trainers.kohya.flux_shapes" in modules
    assert "lorac.trainers.kohya.synth" not in modules


def test_sdxl_profile_loads_its_memory_model(tmp_path: Path) -> None:
    write_files(tmp_path, {"profiles/sdxl.toml": FLUX.replace("flux1-dev", "sdxl").replace(
        "networks.lora_flux", "networks.lora")})
    _, modules = _cold_lint(tmp_path, "profiles", "--no-dataset")
    assert {"lorac.trainers.kohya.vram_families", "lorac.trainers.lora_memory"} <= modules


def test_lint_that_writes_nothing_and_runs_nothing_leaves_their_modules_out(
        tmp_path: Path) -> None:
    """shutil (with zlib, bz2 and lzma), tempfile and subprocess are imported where lorac
    writes files, reads a checkout's git commit, or imports an orphaned config."""
    write_files(tmp_path, {"profiles/flux.toml": FLUX})
    _, modules = _cold_lint(tmp_path, "profiles", "--no-dataset")
    assert not {"shutil", "tempfile", "subprocess"} & modules
    assert "_hashlib" not in modules  # SHA-256 without loading OpenSSL (lorac.core.digest)


def test_musubi_profiles_leave_them_out_too() -> None:
    """musubi-tuner's rules read the checkout's commit (subprocess) and key its caches by
    SHA-256 only when they need to."""
    _, modules = _cold_lint(REPO, "profiles/examples/musubi", "--no-dataset")
    assert "lorac.trainers.musubi.cache" in modules
    assert not {"subprocess", "_hashlib"} & modules
