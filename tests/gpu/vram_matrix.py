"""Measure the VRAM calibration matrix on a 2-GPU machine: two runs at a time, one per GPU.

    python3 tests/gpu/vram_matrix.py list                 # the configurations, no GPU needed
    python3 tests/gpu/vram_matrix.py run OUT [--steps 4] [--only ID,ID]

Run from the repository root on the device machine after ``tests/gpu/proof.sh setup`` (wheels in
/tmp/site, the synthetic FLUX set in /tmp/synth, bitsandbytes for AdamW8bit). Each
configuration becomes a profile ``profiles/vm-<id>.toml`` extending ``fast`` and is run with
``lorac run vm-<id> --synthetic --max-steps N``; CUDA_VISIBLE_DEVICES pins one run per GPU.
Every finished run appends one record in the format of ``backends/kohya/vram_measurements.json``
to ``OUT/records.jsonl`` at once (so a cut-off session keeps what finished); merge the records
into the committed file and run ``bench/vram_accuracy.py --write``.

Budget: 32 configurations, two at a time, ~60-90 s of start-up plus N steps each: 16 rounds of
~80-100 s ≈ 22-25 minutes. Runs share one dataset folder per GPU, so latent and text-encoder
caches on disk are reused between runs of equal resolution (the caching phases are then shorter,
but the models still reach the GPU: sd-scripts moves them before it checks the cache). Every
fourth configuration is held back (split "holdout") for bench/vram_accuracy.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "48d368fa557731ad0488c07304dfeba8c07910eb"

BASE = {"resolution": 1024, "batch_size": 1, "network_dim": 16, "optimizer_type": "AdamW8bit",
        "fp8_base": True, "gradient_checkpointing": True, "blocks_to_swap": 0,
        "cache_text_encoder_outputs": True, "network_train_unet_only": False}

# (id, changes from BASE): resolution 512/768/1024, batch 1/2/4, rank 4-128, fp8 on/off,
# checkpointing on/off, blocks_to_swap 0-28, AdamW / Adafactor / AdamW8bit, TE cached or not.
MATRIX: list[tuple[str, dict]] = [
    ("r512-b1", {"resolution": 512}),
    ("r768-b1", {"resolution": 768}),
    ("r1024-b1", {}),
    ("r512-b4", {"resolution": 512, "batch_size": 4}),
    ("r768-b2", {"resolution": 768, "batch_size": 2}),
    ("r1024-b2", {"batch_size": 2}),
    ("r1024-b4", {"batch_size": 4}),
    ("rank4", {"network_dim": 4}),
    ("rank64", {"network_dim": 64}),
    ("rank128", {"network_dim": 128}),
    ("rank128-adamw", {"network_dim": 128, "optimizer_type": "AdamW"}),
    ("adamw", {"optimizer_type": "AdamW"}),
    ("adafactor", {"optimizer_type": "Adafactor",
                   "optimizer_args": ["relative_step=False", "scale_parameter=False",
                                      "warmup_init=False"]}),
    ("adafactor-r64", {"optimizer_type": "Adafactor", "network_dim": 64,
                       "optimizer_args": ["relative_step=False", "scale_parameter=False",
                                          "warmup_init=False"]}),
    ("bf16-r512", {"fp8_base": False, "resolution": 512}),
    ("bf16-r1024", {"fp8_base": False}),
    ("bf16-swap8", {"fp8_base": False, "blocks_to_swap": 8}),
    ("bf16-swap18", {"fp8_base": False, "blocks_to_swap": 18}),
    ("swap4", {"blocks_to_swap": 4}),
    ("swap12", {"blocks_to_swap": 12}),
    ("swap18", {"blocks_to_swap": 18}),
    ("swap28", {"blocks_to_swap": 28}),
    ("swap28-b2", {"blocks_to_swap": 28, "batch_size": 2}),
    ("nogc-r512", {"gradient_checkpointing": False, "resolution": 512}),
    ("nogc-r768", {"gradient_checkpointing": False, "resolution": 768}),
    ("nogc-r1024", {"gradient_checkpointing": False}),
    ("offload-gc", {"cpu_offload_checkpointing": True}),
    ("te-live", {"cache_text_encoder_outputs": False,
                 "cache_text_encoder_outputs_to_disk": False}),
    ("te-live-r512", {"cache_text_encoder_outputs": False,
                      "cache_text_encoder_outputs_to_disk": False, "resolution": 512}),
    ("unet-only", {"network_train_unet_only": True}),
    ("unet-only-r32", {"network_train_unet_only": True, "network_dim": 32}),
    ("latents-live", {"cache_latents": False, "cache_latents_to_disk": False}),
]


def conditions(changes: dict) -> dict:
    """Every condition of a run: the ``fast`` profile's options, BASE, then ``changes``."""
    cond = {"network_module": "networks.lora_flux", "mixed_precision": "bf16", "sdpa": True,
            "cache_latents": True, "cache_latents_to_disk": True,
            "cache_text_encoder_outputs_to_disk": True, "t5xxl": "t5xxl_fp16.safetensors",
            "gradient_accumulation_steps": 1, **BASE, **changes}
    if not cond.get("cache_text_encoder_outputs"):
        cond["cache_text_encoder_outputs_to_disk"] = False
    cond["network_alpha"] = cond["network_dim"]
    return cond


def profile_text(name: str, cond: dict) -> str:
    ds = {"resolution": cond["resolution"], "batch_size": cond["batch_size"]}
    section = {"optimizer_type": "optimizer", "optimizer_args": "optimizer",
               "network_train_unet_only": "network"}  # where base.toml / fast.toml write them
    lines = ['[profile]', 'extends = "fast"', f'description = "VRAM matrix {name}"', "",
             "[vars]", f"rank = {cond['network_dim']}"]
    for sec in ("network", "optimizer", "training"):
        lines += ["", f"[{sec}]"]
        for k, v in cond.items():
            if k in ds or k in ("network_dim", "network_alpha", "network_module", "t5xxl"):
                continue
            if section.get(k, "training") == sec:
                lines.append(f"{k} = {json.dumps(v)}")
    lines += ["", "[sampling]", "sample_every_n_steps = 0", "", "[dataset]",
              f"resolution = {ds['resolution']}", f"batch_size = {ds['batch_size']}", ""]
    return "\n".join(lines)


def record(run_id: str, cond: dict, manifest: dict, index: int, steps: int) -> dict:
    t = manifest.get("telemetry") or {}
    phases = {}
    for phase, per_gpu in (t.get("phases") or {}).items():
        vals = [v.get("memory_used_mib", 0) for v in per_gpu.values() if isinstance(v, dict)]
        if vals and phase in ("cache_latents", "cache_text_encoder", "prepare", "train", "save"):
            phases[phase] = max(vals)
    gpu = (t.get("gpus") or [{}])[0]
    prog = manifest.get("progress") or {}
    return {"id": run_id, "profile": f"vm-{run_id}", "gpus": 1, "format": "toml",
            "split": "holdout" if index % 4 == 3 else "fit",
            "weight": "full" if manifest.get("status") in ("succeeded", "stopped") else "failed",
            "conditions": {**cond, "max_train_steps": steps},
            "phases_mib": phases, "sec_per_step": prog.get("sec_per_it"),
            "status": manifest.get("status"), "date": dt.date.today().isoformat(),
            "gpu": gpu.get("name"), "gpu_memory_total_mib": gpu.get("memory_total_mib"),
            "driver": t.get("driver_version"), "memory_api": t.get("memory_api"),
            "trainer": "kohya sd-scripts", "trainer_commit": COMMIT,
            "torch": (manifest.get("versions") or {}).get("torch"),
            "script": "flux_train_network.py", "family": "flux1-dev",
            "weights": "synthetic (lorac synth flux1-dev)"}


def run(out: Path, steps: int, only: set[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    todo = [(i, n, c) for i, (n, c) in enumerate(MATRIX) if not only or n in only]
    env = dict(os.environ)
    queue = list(todo)
    running: dict[int, tuple] = {}
    t0 = time.monotonic()
    while queue or running:
        for gpu in (0, 1):
            if gpu not in running and queue:
                i, name, changes = queue.pop(0)
                cond = conditions(changes)
                (ROOT / "profiles" / f"vm-{name}.toml").write_text(profile_text(name, cond))
                runs = out / f"runs-{name}"
                e = {**env, "CUDA_VISIBLE_DEVICES": str(gpu)}
                if gpu == 1:
                    e["DATA_DIR"] = "data/subject2"
                log = open(out / f"{name}.log", "w")  # noqa: SIM115 (open while it runs)
                proc = subprocess.Popen(
                    [sys.executable, "-m", "lorac", "run", f"vm-{name}", "--synthetic",
                     "--max-steps", str(steps), "--display", "plain", "--force",
                     "--runs-dir", str(runs)], cwd=ROOT, env=e, stdout=log,
                    stderr=subprocess.STDOUT)
                running[gpu] = (proc, i, name, cond, runs, log)
        time.sleep(2)
        for gpu, (proc, i, name, cond, runs, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[gpu]
            manifests = sorted(runs.glob("*/manifest.json"))
            if not manifests:
                print(f"{name}: no manifest (exit {proc.returncode})", flush=True)
                continue
            rec = record(name, cond, json.loads(manifests[-1].read_text()), i, steps)
            with open(out / "records.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"[{time.monotonic() - t0:6.0f} s] {name}: {rec['status']} "
                  f"{rec['phases_mib']}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("list", "run"):
        print(__doc__)
        return 2
    if argv[0] == "list":
        for name, changes in MATRIX:
            print(f"{name:<16}{json.dumps(changes)}")
        print(f"{len(MATRIX)} configurations")
        return 0
    steps = int(argv[argv.index("--steps") + 1]) if "--steps" in argv else 4
    only = set(argv[argv.index("--only") + 1].split(",")) if "--only" in argv else set()
    return run(Path(argv[1]), steps, only)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
