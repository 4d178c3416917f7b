"""Measure the VRAM calibration matrix on a 2-GPU machine, several runs per GPU at a time.

    python3 tests/gpu/vram_matrix.py list                 # the configurations, no GPU needed
    python3 tests/gpu/vram_matrix.py probe                # device "used" minus process memory
    python3 tests/gpu/vram_matrix.py run OUT [--steps 4] [--only ID,ID] [--per-gpu 3]
                                                          [--offset MIB] [--gpus 2]

Run from the repository root on the device machine after ``tests/gpu/proof.sh setup`` (wheels in
/tmp/site, the synthetic FLUX set in /tmp/synth, bitsandbytes for AdamW8bit). Each
configuration becomes a profile ``profiles/vm-<id>.toml`` extending ``fast`` and is run with
``lorac run vm-<id> --synthetic --max-steps N``; CUDA_VISIBLE_DEVICES pins each run to a GPU.

Most configurations need 10-30 GB of an 80 GB card and a run is mostly start-up (loading and
moving 34 GB of weights), so up to ``--per-gpu`` runs share a GPU: a run starts on a GPU when the
current model's predicted peaks of everything there, times 1.3 plus 1.5 GB each, stay under 76 GB
(``EXCLUSIVE`` configurations run alone). On a shared GPU the device's "used" is the sum of the
jobs, so each record's phase peaks come from the run's own processes (the manifest's
``process_memory_mib``: NVML's per-process ``usedGpuMemory`` summed over the trainer's process
group) plus ``--offset``, the difference between the device's "used" (what nvidia-smi and the
model report) and the process sum for a job alone on a GPU, as ``probe`` measures it. Records
keep the raw process peaks, the device peaks and whether the GPU was shared, so a solo run checks
the offset. Timings of shared runs are not a run's speed.

Every slot has its own copy of the example dataset, so latent and text-encoder caches on disk
are reused by the slot's later runs of equal resolution without two runs writing one file (the
caching phases still load the models onto the GPU: sd-scripts moves them before it checks the
cache). Every finished run appends one record in the format of
``backends/kohya/vram_measurements.json`` to ``OUT/records.jsonl`` at once, so a cut-off session
keeps what finished; merge them with ``bench/vram_accuracy.py --merge OUT/records.jsonl``. Every
third configuration is held back (split "holdout").
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lorac.config.inventory import load_families, load_pin  # noqa: E402
from lorac.trainers.kohya import vram  # noqa: E402 (the repository root is not on the path of a script)

COMMIT = load_pin("kohya").commit
SCRIPT = load_families()["flux1-dev"].script
#: the phases telemetry records (sampling has no log marker: it is inside "train")
RECORDED = tuple(p for p in vram.PHASES if p != "sample")

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
    # sample generation every 2 steps (configs/sample_prompts.txt: 3 prompts, 20 steps, 1024 px
    # and 832x1216), and no checkpointing with a bf16 transformer
    ("sample", {"sample_every_n_steps": 2}),
    ("sample-r64-adamw", {"sample_every_n_steps": 2, "network_dim": 64,
                          "optimizer_type": "AdamW"}),
    ("bf16-nogc-r512", {"fp8_base": False, "gradient_checkpointing": False, "resolution": 512}),
]
# Held back whatever their place: one of the two sampling runs (the other fits the sampling
# slack) and the only bf16 run without checkpointing (it tests that the up-cast copy kept for
# backward is fp8's alone).
HELD_BACK = {"sample-r64-adamw", "bf16-nogc-r512"}


def conditions(changes: dict) -> dict:
    """Every condition of a run: the ``fast`` profile's options, BASE, then ``changes``."""
    cond = {"network_module": "networks.lora_flux", "mixed_precision": "bf16", "sdpa": True,
            "cache_latents": True, "cache_latents_to_disk": True,
            "cache_text_encoder_outputs_to_disk": True, "t5xxl": "t5xxl_fp16.safetensors",
            "gradient_accumulation_steps": 1, **BASE, **changes}
    if not cond.get("cache_text_encoder_outputs"):
        cond["cache_text_encoder_outputs_to_disk"] = False
    cond["network_alpha"] = cond["network_dim"]
    if cond.get("sample_every_n_steps"):
        cond["sample_prompts"] = "configs/sample_prompts.txt"  # base.toml's
    return cond


def profile_text(name: str, cond: dict) -> str:
    ds = {"resolution": cond["resolution"], "batch_size": cond["batch_size"]}
    section = {"optimizer_type": "optimizer", "optimizer_args": "optimizer",
               "network_train_unet_only": "network",
               "sample_every_n_steps": "sampling"}  # where base.toml / fast.toml write them
    lines = ['[profile]', 'extends = "fast"', f'description = "VRAM matrix {name}"', "",
             "[vars]", f"rank = {cond['network_dim']}"]
    cond = {"sample_every_n_steps": 0, **cond}
    for sec in ("network", "optimizer", "training", "sampling"):
        lines += ["", f"[{sec}]"]
        for k, v in cond.items():
            if k in ds or k in ("network_dim", "network_alpha", "network_module", "t5xxl",
                                "sample_prompts"):
                continue
            if section.get(k, "training") == sec:
                lines.append(f"{k} = {json.dumps(v)}")
    lines += ["", "[dataset]",
              f"resolution = {ds['resolution']}", f"batch_size = {ds['batch_size']}", ""]
    return "\n".join(lines)


def record(run_id: str, cond: dict, manifest: dict, index: int, steps: int, offset: float,
           shared: bool) -> dict:
    t = manifest.get("telemetry") or {}
    phases: dict[str, float] = {}
    own: dict[str, float] = {}
    device: dict[str, float] = {}
    for phase, per_gpu in (t.get("phases") or {}).items():
        if phase not in RECORDED:
            continue
        vals = [v for v in per_gpu.values() if isinstance(v, dict)]
        dev = max((v.get("memory_used_mib") or 0.0 for v in vals), default=0.0)
        proc = max((v.get("process_memory_mib") or 0.0 for v in vals), default=0.0)
        if dev:
            device[phase] = dev
        if proc:
            own[phase] = proc
            phases[phase] = round(proc + offset, 1)
    gpu = (t.get("gpus") or [{}])[0]
    prog = manifest.get("progress") or {}
    ok = manifest.get("status") in ("succeeded", "stopped") and bool(phases)
    return {"id": run_id, "profile": f"vm-{run_id}", "gpus": 1, "format": "toml",
            "split": "holdout" if index % 3 == 2 or run_id in HELD_BACK else "fit",
            "weight": "full" if ok else "failed",
            "conditions": {**cond, "max_train_steps": steps},
            "phases_mib": phases, "process_phases_mib": own, "device_phases_mib": device,
            "offset_mib": offset, "gpu_shared": shared,
            "sec_per_step": prog.get("sec_per_it"), "sec_per_step_shared": shared,
            "status": manifest.get("status"), "date": dt.date.today().isoformat(),
            "gpu": gpu.get("name"), "gpu_memory_total_mib": gpu.get("memory_total_mib"),
            "driver": t.get("driver_version"), "memory_api": t.get("memory_api"),
            "trainer": "kohya sd-scripts", "trainer_commit": COMMIT,
            "torch": (manifest.get("versions") or {}).get("torch"),
            "script": SCRIPT, "family": "flux1-dev",
            "weights": "synthetic (lorac synth flux1-dev)"}


EXCLUSIVE = {"nogc-r1024"}
BUDGET_MIB = 76_000


def charge(cond: dict) -> float:
    """What a run is assumed to take on its GPU while scheduling: the model's peak, with margin."""
    est = vram.estimate(vram.record_config({"conditions": cond, "gpus": 1}))
    return max(est.phases.values()) * 1.3 + 1500


def probe() -> int:
    """Device "used" minus the process's own usedGpuMemory, for one job alone on GPU 0."""
    import pynvml
    import torch

    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    idle = pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2).used / 2**20
    rows = []
    for gib in (1, 8, 24):
        x = torch.empty(gib * 2**30, dtype=torch.uint8, device="cuda:0")
        torch.cuda.synchronize()
        dev = pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2).used / 2**20
        own = sum(p.usedGpuMemory for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h)
                  if p.pid == os.getpid()) / 2**20
        rows.append((gib, dev, own, dev - own))
        del x
        torch.cuda.empty_cache()
    print(f"idle device used: {idle:.1f} MiB")
    for gib, dev, own, off in rows:
        print(f"{gib:>3} GiB tensor: device used {dev:.1f} MiB, process {own:.1f} MiB, "
              f"offset {off:.1f} MiB")
    print(f"OFFSET {statistics.median(r[3] for r in rows):.1f}")
    return 0


def run(out: Path, steps: int, only: set[str], per_gpu: int, offset: float,
        gpus: int = 2) -> int:
    out.mkdir(parents=True, exist_ok=True)
    queue = [(i, n, cond, charge(cond)) for i, (n, c) in enumerate(MATRIX)
             if not only or n in only for cond in (conditions(c),)]
    # the exclusive runs first, alone, then the largest first: small runs fill the gaps
    queue.sort(key=lambda q: (q[1] not in EXCLUSIVE, -q[3]))
    env = dict(os.environ)
    slots = [(gpu, k) for k in range(per_gpu) for gpu in range(gpus)]
    for gpu, k in slots:
        data = ROOT / "data" / f"slot{gpu}{k}"
        if not data.exists():
            shutil.copytree(ROOT / "examples" / "subject", data)
    running: dict[tuple[int, int], dict] = {}
    ever_shared: dict[str, bool] = {}
    t0 = time.monotonic()

    def on_gpu(gpu: int) -> list[dict]:
        return [r for (g, _), r in running.items() if g == gpu]

    while queue or running:
        for gpu, k in slots:
            if (gpu, k) in running or not queue:
                continue
            here = on_gpu(gpu)
            if any(r["name"] in EXCLUSIVE for r in here):
                continue
            used = sum(r["charge"] for r in here)
            pick = next((q for q in queue if (q[1] not in EXCLUSIVE or not here)
                         and used + q[3] <= BUDGET_MIB), None)
            if pick is None:
                continue
            queue.remove(pick)
            i, name, cond, cost = pick
            (ROOT / "profiles" / f"vm-{name}.toml").write_text(profile_text(name, cond))
            e = {**env, "CUDA_VISIBLE_DEVICES": str(gpu), "DATA_DIR": f"data/slot{gpu}{k}"}
            log = open(out / f"{name}.log", "w")  # noqa: SIM115 (open while it runs)
            runs = out / f"runs-{name}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "lorac", "run", f"vm-{name}", "--synthetic",
                 "--max-steps", str(steps), "--display", "plain", "--force",
                 "--runs-dir", str(runs)], cwd=ROOT, env=e, stdout=log,
                stderr=subprocess.STDOUT)
            running[(gpu, k)] = {"proc": proc, "i": i, "name": name, "cond": cond,
                                 "runs": runs, "log": log, "charge": cost}
            ever_shared[name] = bool(here)
            for r in here:
                ever_shared[r["name"]] = True
            print(f"[{time.monotonic() - t0:6.0f} s] start {name} on GPU {gpu} slot {k}",
                  flush=True)
            time.sleep(8)  # stagger the weight loading
        time.sleep(2)
        for key, r in list(running.items()):
            if r["proc"].poll() is None:
                continue
            r["log"].close()
            del running[key]
            name = r["name"]
            manifests = sorted(r["runs"].glob("*/manifest.json"))
            if not manifests:
                print(f"{name}: no manifest (exit {r['proc'].returncode})", flush=True)
                continue
            rec = record(name, r["cond"], json.loads(manifests[-1].read_text()), r["i"],
                         steps, offset, ever_shared[name])
            with open(out / "records.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"[{time.monotonic() - t0:6.0f} s] {name}: {rec['status']} "
                  f"shared={rec['gpu_shared']} {rec['phases_mib']} "
                  f"device {rec['device_phases_mib']}",
                  flush=True)
    print(f"DONE in {time.monotonic() - t0:.0f} s", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("list", "probe", "run"):
        print(__doc__)
        return 2
    if argv[0] == "list":
        for name, changes in MATRIX:
            print(f"{name:<16}{json.dumps(changes)}")
        print(f"{len(MATRIX)} configurations")
        return 0
    if argv[0] == "probe":
        return probe()

    def opt(flag: str, default: str) -> str:
        return argv[argv.index(flag) + 1] if flag in argv else default

    only = set(opt("--only", "").split(",")) - {""}
    return run(Path(argv[1]), int(opt("--steps", "4")), only, int(opt("--per-gpu", "3")),
               float(opt("--offset", "0")), int(opt("--gpus", "2")))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
