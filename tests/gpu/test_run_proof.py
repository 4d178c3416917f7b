"""`lorac run` on a real GPU with the real sd-scripts and synthetic FLUX.1-dev weights.

Runs only with an NVIDIA GPU, ``LORAC_SD_SCRIPTS`` pointing at a checkout and
``LORAC_GPU_PROOF=1`` (each run takes ~4-5 minutes on an H100). ``tests/gpu/proof.sh`` runs the
same jobs as a script, on two GPUs at once, and is what the figures in the project's notes come
from.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.gpu.summarise import lora_counts

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(os.environ.get("LORAC_GPU_PROOF") != "1",
                       reason="set LORAC_GPU_PROOF=1 (and LORAC_SD_SCRIPTS) on a GPU machine"),
]

#: FLUX.1-dev LoRA with CLIP-L trained too (cache_text_encoder_outputs caches T5 only when
#: network_train_unet_only is off: flux_train_network.py:76, :220): 304 transformer modules
#: + 72 CLIP-L modules, three tensors each (down, up, alpha).
FLUX_MODULES, FLUX_KEYS = 376, 1128


def _run(tmp: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LORAC_NO_CACHE": "1"}
    return subprocess.Popen([sys.executable, "-m", "lorac", "run", "fast", "--synthetic",
                             "--display", "plain", "--runs-dir", str(tmp), *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _manifest(runs: Path) -> dict:
    (run,) = list(runs.iterdir())
    return json.loads((run / "manifest.json").read_text())


@pytest.mark.parametrize("fmt", ["toml", "cli"])
def test_fast_runs_twenty_steps(tmp_path: Path, fmt: str) -> None:
    proc = _run(tmp_path, "--max-steps", "20", "--format", fmt)
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out[-4000:]
    m = _manifest(tmp_path)
    assert m["status"] == "succeeded" and m["progress"]["step"] == 20
    peaks = m["telemetry"]["phases"]
    assert {"cache_latents", "cache_text_encoder", "train"} <= set(peaks)
    assert max(v["memory_used_mib"] for v in peaks["train"].values()) > 1000
    (lora,) = list((tmp_path / next(iter(os.listdir(tmp_path))) / "output").glob("*.safetensors"))
    assert lora_counts(lora) == (FLUX_MODULES, FLUX_KEYS)


def test_interrupt_leaves_an_interrupted_manifest_and_no_process(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--max-steps", "20")
    deadline = time.time() + 600
    while time.time() < deadline:
        logs = list(tmp_path.glob("*/train.log"))
        if logs and re.search(r"steps: +\d+%\|", logs[0].read_text(errors="replace")):
            break
        time.sleep(1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert _manifest(tmp_path)["status"] == "interrupted"
    left = subprocess.run(["pgrep", "-f", "flux_train_network.py"], capture_output=True,
                          text=True).stdout.split()
    assert left == []
