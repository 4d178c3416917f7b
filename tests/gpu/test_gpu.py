"""Tests that need an NVIDIA GPU; each skips cleanly without one (CI has none).

The end-to-end FLUX proof (``flux_proof.py`` beside this file: ~34 GB of synthetic weights, ~3 min
on an H100) runs only when ``LORAC_GPU_PROOF=1`` is set as well.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.gpu import cuda

ROOT = Path(__file__).resolve().parents[2]


def _nvml() -> bool:
    if importlib.util.find_spec("pynvml") is None:
        return False
    import pynvml

    try:
        pynvml.nvmlInit()
    except Exception:
        return False
    pynvml.nvmlShutdown()
    return True


pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not cuda(), reason="needs torch with a CUDA GPU")
needs_nvml = pytest.mark.skipif(not _nvml(), reason="needs nvidia-ml-py and an NVIDIA driver")


@needs_nvml
@needs_cuda
def test_sampler_sees_an_allocation_in_its_phase() -> None:
    import torch

    from lorac.run.telemetry import GpuSampler

    with GpuSampler(interval=0.05) as s:
        s.set_phase("idle")
        time.sleep(0.3)
        s.set_phase("alloc")
        x = torch.empty(2 * 1024**3, dtype=torch.uint8, device="cuda")  # 2 GiB
        time.sleep(0.3)
        del x
    assert s.available and s.memory_api and "v2" in s.memory_api
    peaks = s.peaks()
    assert peaks["alloc"][0].memory_used_mib - peaks["idle"][0].memory_used_mib > 1900


@needs_cuda
def test_tiny_synthetic_set_on_gpu(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from lorac.trainers.kohya.synth import write_synthetic

    s = write_synthetic("flux1-dev", tmp_path, tiny=True, device="cuda")
    assert s.pretrained_model_name_or_path.stat().st_size > 0


@needs_cuda
@pytest.mark.skipif(os.environ.get("LORAC_GPU_PROOF") != "1", reason="set LORAC_GPU_PROOF=1")
@pytest.mark.skipif(not (ROOT / ".gpu" / "sd-scripts").exists(), reason="run scripts/gpu_kit.sh")
def test_flux_lora_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "gpu" / "flux_proof.py"), "--work", str(tmp_path),
         "--out", str(out), "--steps", "4"],
        cwd=ROOT,
        timeout=900,
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert r.returncode == 0, summary
    assert summary["run"]["status"] == "succeeded"
    assert summary["lora"] == {**summary["lora"], "modules": 304, "keys": 912}
