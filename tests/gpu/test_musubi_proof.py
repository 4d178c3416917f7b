"""`lorac run` on a real GPU with the real musubi-tuner and synthetic Wan 2.1 T2V 1.3B weights.

Runs only with a CUDA GPU, ``LORAC_MUSUBI_TUNER`` pointing at the pinned checkout and
``LORAC_GPU_PROOF=1``; ``tests/gpu/musubi_proof.sh`` sets everything up on the GPU machine and
runs it. ``LORAC_SYNTH_DIR`` names the synthetic set (written once, ~15 GB).

Each case runs the example profile ``profiles/examples/musubi/wan2.1-t2v-1.3b.toml`` with
what a short proof needs changed, in a copy under the test's folder: its dataset (the example
images, or a 17-frame clip made from them), its cache folder, no epoch count
(``--max-steps 20`` decides),
and torch's AdamW when bitsandbytes is missing. Then: exit 0, the three phases of a musubi run
in the manifest, each with a peak, and a LoRA with one module per Linear layer that
``networks.lora_wan`` targets (:func:`lorac.trainers.musubi.synth.wan_lora_modules`, checked
against musubi's own choice in tests/trainer/test_musubi_synth_trainer.py).
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

from lorac.trainers.musubi.synth import component_shapes, wan_lora_modules
from tests.gpu import proof_marks
from tests.gpu.summarise import lora_counts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "profiles" / "examples" / "musubi" / "wan2.1-t2v-1.3b.toml"
FAMILY = "wan2.1-t2v-1.3b"
STEPS = 20
HAVE_AV = importlib.util.find_spec("av") is not None and importlib.util.find_spec(
    "av.video") is not None


pytestmark = proof_marks("LORAC_MUSUBI_TUNER")


def _profile(tmp: Path, dataset: dict[str, object]) -> Path:
    """The example profile with the proof's changes (see the module docstring)."""
    import tomlkit

    text = "\n".join(line for line in EXAMPLE.read_text(encoding="utf-8").splitlines()
                     if not line.startswith("#:schema"))
    doc = tomlkit.parse(text)
    if "image_directory" in dataset:
        doc["vars"]["data_dir"] = str(ROOT / "examples" / "subject")
    else:
        del doc["vars"]["data_dir"]
    del doc["training"]["max_train_epochs"]
    del doc["saving"]["save_every_n_epochs"]
    if importlib.util.find_spec("bitsandbytes") is None:
        doc["optimizer"]["optimizer_type"] = "adamw"
    table = tomlkit.table()
    table.update({**dataset, "cache_directory": str(tmp / "cache"), "num_repeats": 10})
    aot = tomlkit.aot()
    aot.append(table)
    doc["dataset"]["datasets"] = aot
    path = tmp / f"{EXAMPLE.stem}-proof.toml"
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return path


def _run(tmp: Path, profile: Path) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    env = {**os.environ, "LORAC_NO_CACHE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(ROOT)) if p)
    runs = tmp / "runs"
    proc = subprocess.run([sys.executable, "-m", "lorac", "run", str(profile), "--synthetic",
                           "--max-steps", str(STEPS), "--display", "plain", "--runs-dir",
                           str(runs)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    log = os.environ.get("LORAC_PROOF_LOGS")
    if log:
        Path(log).mkdir(parents=True, exist_ok=True)
        (Path(log) / f"{tmp.name}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    (run,) = list(runs.iterdir())
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    if log:
        (Path(log) / f"{tmp.name}-manifest.json").write_text(json.dumps(manifest, indent=1))
    return proc, manifest, run


def _check(proc: subprocess.CompletedProcess[str], manifest: dict, run: Path) -> None:
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert manifest["status"] == "succeeded" and manifest["progress"]["step"] == STEPS
    assert [s["name"] for s in manifest["steps"]] == [
        "cache latents", "cache text-encoder outputs", "train"]
    assert not any(s["skipped"] for s in manifest["steps"])
    peaks = manifest["telemetry"]["phases"]
    assert {"cache_latents", "cache_text_encoder", "train"} <= set(peaks)

    def peak(phase: str) -> float:
        return max(v["memory_used_mib"] for v in peaks[phase].values())

    # each phase holds at least its model's weights in bf16 (musubi casts the VAE to bf16 for
    # caching, wan_cache_latents.py:256; the encoder to bf16, t5.py:484-485): 242 MiB,
    # 10,835 MiB and 2,706 MiB
    sizes = {name: sum(math.prod(s) for s in shapes.values()) * 2 / 2**20
             for name, shapes in component_shapes(FAMILY).items()}
    assert peak("cache_latents") > sizes["vae"]
    assert peak("cache_text_encoder") > sizes["t5"]
    assert peak("train") > sizes["dit"]
    (lora,) = list((run / "output").glob("*.safetensors"))
    modules = len(wan_lora_modules(FAMILY))
    assert lora_counts(lora) == (modules, 3 * modules)  # lora_down, lora_up, alpha each


def test_image_dataset_twenty_steps(tmp_path: Path) -> None:
    profile = _profile(tmp_path, {"image_directory": "${data_dir}"})
    _check(*_run(tmp_path, profile))


@pytest.mark.skipif(not HAVE_AV, reason="a video dataset needs PyAV: scripts/gpu_kit_musubi.sh "
                    "--with-av, installed with the other wheels")
def test_video_dataset_twenty_steps(tmp_path: Path) -> None:
    import av
    import numpy as np
    from PIL import Image

    clips = tmp_path / "clips"
    clips.mkdir()
    frames = sorted((ROOT / "examples" / "subject").glob("*.jpg"))
    container = av.open(str(clips / "subject.mp4"), mode="w")
    stream = container.add_stream("mpeg4", rate=16)
    stream.width, stream.height, stream.pix_fmt = 832, 480, "yuv420p"
    for i in range(17):  # Wan takes 4k+1 frames
        image = Image.open(frames[i % len(frames)]).convert("RGB").resize((832, 480))
        frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    (clips / "subject.txt").write_text("ohwx woman turning her head", encoding="utf-8")
    profile = _profile(tmp_path, {"video_directory": str(clips), "target_frames": [1, 17],
                                  "frame_extraction": "head"})
    _check(*_run(tmp_path, profile))
