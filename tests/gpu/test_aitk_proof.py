"""`lorac run --backend ai-toolkit` on a real GPU with the real ai-toolkit and synthetic
diffusers-format weights (FLUX.1-dev; Wan 2.1 T2V 1.3B).

Runs only with a CUDA GPU, ``LORAC_AI_TOOLKIT`` pointing at the pinned checkout and
``LORAC_GPU_PROOF=1``; ``tests/gpu/aitk_proof.sh`` sets everything up on the GPU machine and
runs it. ``LORAC_SYNTH_DIR_FLUX`` and ``LORAC_SYNTH_DIR_WAN`` name the synthetic sets (written
once: ~34 GB and ~15 GB).

FLUX.1: the shipped ``final`` profile as it is, ``lorac run final --backend ai-toolkit
--synthetic --max-steps 20``, on a copy of the example dataset (``DATA_DIR``: ai-toolkit writes
its caches into the dataset folder). Wan 2.1: the example profile
``profiles/examples/ai-toolkit/wan2.1-t2v-1.3b.toml`` with the same 20 steps, its dataset a copy
of the example images. Each must exit 0, pass through ai-toolkit's phases with a GPU memory
peak for each, and save a LoRA with one module per Linear layer in the transformer's blocks
(:func:`lorac.trainers.ai_toolkit.synth.lora_modules`, checked against the diffusers classes in
tests/trainer/test_aitk_synth_trainer.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lorac.trainers.ai_toolkit.synth import lora_modules
from tests.gpu import proof_marks

ROOT = Path(__file__).resolve().parents[2]
STEPS = 20
PHASES = ("load", "cache_text_encoder", "prepare", "train", "save")
#: Phases long enough for the GPU sampler (every 0.2 s) to see in any run: the Wan example has
#: no sample prompts, so its prepare and save phases may pass between two samples.
LONG = ("load", "cache_text_encoder", "train")


pytestmark = proof_marks("LORAC_AI_TOOLKIT")


def _dataset(tmp: Path) -> Path:
    data = tmp / "subject"
    shutil.copytree(ROOT / "examples" / "subject", data)
    return data


def _run(tmp: Path, profile: str, synth: str, extra_env: dict[str, str], label: str = ""
         ) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    """Run ``lorac run PROFILE``; with ``LORAC_PROOF_LOGS`` its logs, job and manifest are
    copied there, named ``label`` (default: the test's folder)."""
    label = label or tmp.name
    env = {**os.environ, "LORAC_NO_CACHE": "1", **extra_env}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(ROOT)) if p)
    runs = tmp / "runs"
    proc = subprocess.run([sys.executable, "-m", "lorac", "run", profile, "--backend",
                           "ai-toolkit", "--synthetic", "--synth-dir", synth, "--max-steps",
                           str(STEPS), "--display", "plain", "--runs-dir", str(runs)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    log = os.environ.get("LORAC_PROOF_LOGS")
    if log:
        Path(log).mkdir(parents=True, exist_ok=True)
        (Path(log) / f"{label}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    folders = list(runs.iterdir()) if runs.is_dir() else []
    assert len(folders) == 1, (proc.stdout + proc.stderr)[-6000:]
    (run,) = folders
    if log:
        shutil.copy(run / "train.log", Path(log) / f"{label}-train.log")
        shutil.copy(run / "job.yaml", Path(log) / f"{label}-job.yaml")
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    if log:
        (Path(log) / f"{label}-manifest.json").write_text(json.dumps(manifest, indent=1))
    return proc, manifest, run


def _check(proc: subprocess.CompletedProcess[str], manifest: dict, family: str,
           min_train_mib: float, peaked: tuple[str, ...] = LONG) -> None:
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert manifest["status"] == "succeeded"
    assert manifest["progress"]["step"] == manifest["progress"]["total"] == STEPS
    assert manifest["trainer"]["commit"] == manifest["trainer"]["pin"]
    phases = [p["phase"] for p in manifest["phases"]]
    assert set(PHASES) <= set(phases), phases
    peaks = manifest["telemetry"]["phases"]
    assert set(peaked) <= set(peaks), peaks
    train = max(v["memory_used_mib"] for v in peaks["train"].values())
    # the transformer's weights at least (FLUX.1 quantised to 8 bits: 11,350 MiB; Wan 2.1
    # 1.3B in bf16: 2,706 MiB)
    assert train > min_train_mib
    check = manifest["lora_check"]
    modules = len(lora_modules(family))
    assert check["expected_modules"] == modules
    (entry,) = check["files"]
    assert entry["modules"] == modules and entry["problems"] == []


def test_flux_final_twenty_steps(tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    synth = os.environ.get("LORAC_SYNTH_DIR_FLUX", "/tmp/synth-aitk-flux")
    proc, manifest, _ = _run(tmp_path, "final", synth, {"DATA_DIR": str(data)})
    # final caches latents and samples three prompts before and after training
    _check(proc, manifest, "flux1-dev", 11_000, (*PHASES, "cache_latents"))


def test_wan21_example_twenty_steps(tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    example = ROOT / "profiles" / "examples" / "ai-toolkit"
    folder = tmp_path / "profiles"
    folder.mkdir()
    for name in ("common.toml", "wan2.1-t2v-1.3b.toml"):
        shutil.copy(example / name, folder / name)
    profile = folder / "wan-proof.toml"
    profile.write_text('[profile]\nextends = "wan2.1-t2v-1.3b"\ndescription = "the Wan 2.1 '
                       f'example on a copy of its dataset"\n\n[vars]\ndata_dir = "{data}"\n',
                       encoding="utf-8")
    synth = os.environ.get("LORAC_SYNTH_DIR_WAN", "/tmp/synth-aitk-wan")
    proc, manifest, _ = _run(tmp_path, str(profile), synth, {})
    _check(proc, manifest, "wan2.1-t2v-1.3b", 2_700)


#: Variants of ``final``. torch 2.11's cuDNN attention fails in the backward pass of ai-toolkit's
#: FLUX.1 at 1024 px on an H100 (``run_cudnn_SDP_bprop``: ``mha_graph.execute`` not good, an
#: illegal memory access without CUDA_LAUNCH_BLOCKING), so every variant asks diffusers for
#: torch's flash attention (``attention_backend``, toolkit/config_modules.py:399): ``flash`` is
#: ``final`` otherwise unchanged; ``bf16`` trains without quantisation (an 80GB card, else
#: LRC401 stops it); ``r512`` at 512 px.
FLASH = '\n[trainers.ai-toolkit.train]\nattention_backend = "_native_flash"\n'
VARIANTS = {
    "flash": FLASH,
    "bf16": 'gpu = "80GB"\n\n[training]\nfp8_base = false\n' + FLASH,
    "r512": "\n[dataset]\nresolution = 512\n" + FLASH,
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_flux_variant_twenty_steps(tmp_path: Path, variant: str) -> None:
    data = _dataset(tmp_path)
    folder = tmp_path / "profiles"
    folder.mkdir()
    for name in ("base.toml", "final.toml"):
        shutil.copy(ROOT / "profiles" / name, folder / name)
    profile = folder / f"final-{variant}.toml"
    profile.write_text(f'[profile]\nextends = "final"\ndescription = "final, {variant}"\n'
                       + VARIANTS[variant], encoding="utf-8")
    synth = os.environ.get("LORAC_SYNTH_DIR_FLUX", "/tmp/synth-aitk-flux")
    proc, manifest, _ = _run(tmp_path, str(profile), synth, {"DATA_DIR": str(data)},
                             f"flux_{variant}")
    _check(proc, manifest, "flux1-dev", 11_000, (*PHASES, "cache_latents"))
