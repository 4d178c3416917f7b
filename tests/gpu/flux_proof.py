"""End-to-end proof on a GPU machine: synthetic FLUX.1-dev set -> sd-scripts LoRA run via lorac.

    python tests/gpu/flux_proof.py --work /tmp/proof --out "$OUT" [--steps 20]

Needs: a CUDA GPU, torch + accelerate on the machine, and the kit from ``scripts/gpu_kit.sh``
(``.gpu/sd-scripts`` and sd-scripts' pinned wheels installed on PYTHONPATH). Writes
``summary.json``, ``train.log`` and ``manifest.json`` to ``--out`` as it goes, so a run cut off
still leaves what it had.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lorac.run.process import launch  # noqa: E402

CAPTIONS = [
    "a photo of ohwx cat on a red sofa",
    "a photo of ohwx cat in the garden",
    "ohwx cat, close up, studio light",
    "a drawing of ohwx cat, black and white",
]


def build_synth(models: Path, out: Path) -> dict[str, Any]:
    """In a child process, so its CUDA context is gone before the trainer starts."""
    code = (
        "import json, sys; from pathlib import Path; "
        "from lorac.trainers.kohya.synth import write_synthetic;"
        "s = write_synthetic('flux1-dev', Path(sys.argv[1]), device='cuda');"
        "print(json.dumps({**s.trainer_args(), 'bytes': s.bytes_written, 'seconds': s.seconds}))"
    )
    t = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-c", code, str(models)], capture_output=True, text=True, cwd=ROOT
    )
    (out / "synth.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"synth failed:\n{r.stderr[-3000:]}")
    info: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    info["wall_s"] = round(time.monotonic() - t, 1)
    return info


def write_dataset(data: Path, n: int = 4) -> Path:
    from PIL import Image

    img_dir = data / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for i in range(n):
        color = tuple(rng.randrange(256) for _ in range(3))
        im = Image.new("RGB", (512, 512), color)
        for _ in range(200):  # some structure for the VAE
            x, y = rng.randrange(512), rng.randrange(512)
            im.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + 32, y + 32))
        im.save(img_dir / f"{i:02d}.png")
        (img_dir / f"{i:02d}.txt").write_text(CAPTIONS[i % len(CAPTIONS)])
    toml = data / "dataset.toml"
    toml.write_text(
        "[general]\ncaption_extension = '.txt'\nshuffle_caption = false\n\n"
        "[[datasets]]\nresolution = 512\nbatch_size = 1\nenable_bucket = false\n\n"
        f"  [[datasets.subsets]]\n  image_dir = '{img_dir}'\n  num_repeats = 1\n"
    )
    return toml


def write_config(path: Path, synth: dict[str, Any], output_dir: Path, steps: int) -> Path:
    def q(v: object) -> str:
        return f"'{v}'" if isinstance(v, str | Path) else str(v).lower()

    cfg: dict[str, object] = {
        "pretrained_model_name_or_path": synth["pretrained_model_name_or_path"],
        "clip_l": synth["clip_l"],
        "t5xxl": synth["t5xxl"],
        "ae": synth["ae"],
        "tokenizer_cache_dir": synth["tokenizer_cache_dir"],
        "network_module": "networks.lora_flux",
        "network_dim": 16,
        "network_alpha": 16,
        "network_train_unet_only": True,
        "optimizer_type": "AdamW",
        "learning_rate": 1e-4,
        "mixed_precision": "bf16",
        "save_precision": "bf16",
        "gradient_checkpointing": True,
        "fp8_base": True,
        "cache_latents": True,
        "cache_text_encoder_outputs": True,
        "max_train_steps": steps,
        "output_dir": str(output_dir),
        "output_name": "lora",
        "save_model_as": "safetensors",
        "sdpa": True,
        "seed": 42,
        "max_data_loader_n_workers": 2,
        "timestep_sampling": "shift",
        "discrete_flow_shift": 3.1582,
        "model_prediction_type": "raw",
        "guidance_scale": 1.0,
    }
    path.write_text("".join(f"{k} = {q(v)}\n" for k, v in cfg.items()))
    return path


def lora_counts(path: Path) -> dict[str, int]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    return {"keys": len(keys), "modules": len({k.split(".", 1)[0] for k in keys})}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/lorac-proof"))
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/lorac-proof-out")))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sd-scripts", type=Path, default=ROOT / ".gpu" / "sd-scripts")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}

    def dump() -> None:
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))

    t0 = time.monotonic()
    summary["synth"] = build_synth(args.work / "models", args.out)
    dump()
    dataset = write_dataset(args.work / "data")
    run_dir = args.work / "run"
    config = write_config(
        args.work / "config.toml", summary["synth"], run_dir / "output", args.steps
    )
    accelerate = [sys.executable, "-m", "accelerate.commands.launch"]
    argv = [
        *accelerate,
        "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "bf16",
        "--dynamo_backend", "no",
        str(args.sd_scripts / "flux_train_network.py"),
        "--config_file", str(config),
        "--dataset_config", str(dataset),
    ]  # fmt: skip
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    shutil.copy(config, args.out / "config.toml")
    result = launch(argv, run_dir, env=env, display="plain")
    for name in ("train.log", "manifest.json"):
        if (run_dir / name).exists():
            shutil.copy(run_dir / name, args.out / name)
    summary["run"] = {
        "status": result.status,
        "exit_code": result.exit_code,
        "duration_s": result.duration_s,
        "steps": [result.step, result.total],
        "sec_per_it": result.sec_per_it,
        "loss": result.loss,
        "error": result.error,
        "peak_mib": result.peak_mib,
        "phase_peaks_mib": result.phase_peaks_mib,
    }
    lora = run_dir / "output" / "lora.safetensors"
    if lora.exists():
        summary["lora"] = {"bytes": lora.stat().st_size, **lora_counts(lora)}
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    dump()
    print(json.dumps(summary, indent=2, default=str))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
