"""Measure the VRAM calibration matrix on a 2-GPU machine, several runs per GPU at a time.

    python3 tests/gpu/vram_matrix.py list [--plan h100] [--only ID,ID]  # no GPU needed
    python3 tests/gpu/vram_matrix.py probe                # device "used" minus process memory
    python3 tests/gpu/vram_matrix.py run OUT [--steps 4] [--only ID,ID] [--per-gpu 3]
                                                          [--offset MIB] [--gpus 2]
    python3 tests/gpu/vram_matrix.py run OUT --plan h100 [--only ID,ID] [--deadline 490]
                                                          [--per-gpu 6] [--offset MIB]

``--only`` runs (or lists) those configurations of the plan alone; an id the plan does not have
is an error (exit 2) before anything starts.

``--plan h100`` is the measurement of one H100 in one call of the device (see :data:`H100_PLAN`
and :func:`run_h100`): the two FLUX.1 cases of the memory model's issue and the rank-128 512 px
pair, then SDXL at 512/1024 px, rank 16/128, batch 1/4, checkpointing on/off, AdamW/AdamW8bit,
fp8_base on/off, on a synthetic SDXL checkpoint that ``tests/gpu/sdxl_synth.py`` writes while
the first FLUX.1 runs load (once: it is reused from ``--sdxl-dir``).
Besides lorac's own telemetry (phase peaks, host RSS) every run gets its whole-run peak from
``nvidia-smi`` sampled every 100 ms (its process tree's per-process memory, and the device's),
its steady step time (from sd-scripts' progress bar) and its GPU busy fraction (``nvidia-smi
pmon`` SM share of its processes during the steps). A run is not started when it could not
finish before ``--deadline`` seconds; each finished run is appended to ``OUT/records.jsonl`` at
once.

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
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
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


# ---------------------------------------------------------------------------- the H100 plan

#: SDXL base conditions: sd-scripts' sdxl_train_network.py on the synthetic checkpoint, UNet
#: only with cached latents and text-encoder outputs (what SDXL users on small cards run).
SDXL_BASE = {"resolution": 1024, "batch_size": 1, "network_module": "networks.lora",
             "network_dim": 16, "optimizer_type": "AdamW8bit", "learning_rate": 1e-4,
             "mixed_precision": "bf16", "save_precision": "bf16", "fp8_base": False,
             "gradient_checkpointing": True, "sdpa": True, "network_train_unet_only": True,
             "cache_latents": True, "cache_latents_to_disk": True,
             "cache_text_encoder_outputs": True, "cache_text_encoder_outputs_to_disk": True,
             "gradient_accumulation_steps": 1}
FLUX_NOGC = {"gradient_checkpointing": False, "resolution": 512}
#: (id, family, changes from its base, split). The FLUX.1 runs change the matrix's BASE; the
#: first two are the issue's solo H100 runs (44,083 and 50,191 MiB) again, here with per-phase
#: peaks and host RSS, so they check the method ("check"); the rank-128 pair settles which
#: optimizer the issue's 25,215 MiB run used.
H100_PLAN: list[tuple[str, str, dict, str]] = [
    ("h100-nogc-r512-unet-adamw", "flux1-dev",
     {**FLUX_NOGC, "optimizer_type": "AdamW", "network_train_unet_only": True}, "check"),
    ("h100-nogc-r512", "flux1-dev", dict(FLUX_NOGC), "check"),
    ("r128-r512-unet-adamw", "flux1-dev", {"resolution": 512, "network_dim": 128,
                                           "optimizer_type": "AdamW",
                                           "network_train_unet_only": True}, "fit"),
    ("r128-r512-unet-8bit", "flux1-dev", {"resolution": 512, "network_dim": 128,
                                          "network_train_unet_only": True}, "holdout"),
    ("sdxl-r1024-b1", "sdxl", {}, "fit"),
    ("sdxl-r512-b1", "sdxl", {"resolution": 512}, "fit"),
    ("sdxl-r1024-b4", "sdxl", {"batch_size": 4}, "holdout"),
    ("sdxl-rank128", "sdxl", {"network_dim": 128}, "fit"),
    ("sdxl-nogc", "sdxl", {"gradient_checkpointing": False}, "holdout"),
    ("sdxl-nogc-r512", "sdxl", {"gradient_checkpointing": False, "resolution": 512}, "fit"),
    ("sdxl-adamw", "sdxl", {"optimizer_type": "AdamW"}, "fit"),
    ("sdxl-rank128-adamw", "sdxl", {"network_dim": 128, "optimizer_type": "AdamW"}, "holdout"),
    ("sdxl-fp8", "sdxl", {"fp8_base": True}, "fit"),
    ("sdxl-fp8-nogc", "sdxl", {"fp8_base": True, "gradient_checkpointing": False}, "holdout"),
    ("sdxl-nogc-b4-r512", "sdxl", {"gradient_checkpointing": False, "batch_size": 4,
                                   "resolution": 512}, "fit"),
    ("sdxl-te-live", "sdxl", {"network_train_unet_only": False,
                              "cache_text_encoder_outputs": False,
                              "cache_text_encoder_outputs_to_disk": False}, "holdout"),
    # extras, started only while time is left
    ("sdxl-r512-b4", "sdxl", {"resolution": 512, "batch_size": 4}, "fit"),
    ("sdxl-rank128-b4-r512", "sdxl", {"network_dim": 128, "batch_size": 4,
                                      "resolution": 512}, "holdout"),
    ("sdxl-nogc-b4", "sdxl", {"gradient_checkpointing": False, "batch_size": 4}, "fit"),
]
#: The plan's first entries run first (the issue's cases, then the 12 SDXL points); the rest
#: fill what time is left.
H100_CORE = 16
#: Steps per run: enough for a steady step time after the first (slow) one.
H100_STEPS = {"flux1-dev": 5, "sdxl": 8, "sd3": 8}
#: Seconds a run is expected to take on a busy host (start-up dominates), for the deadline, by
#: family or SD3 variant. An SD3 run adds to SDXL's loading a T5-XXL of 9.5 GB (cast to bf16 on
#: the host) and the hash of its checkpoint: 4.2 GB (medium), 16.3 GB (3.5 large, and the fp8
#: cast of 8 B parameters on the host).
EXPECTED_S = {"flux1-dev": 130.0, "sdxl": 75.0, "sd3-medium": 110.0, "sd3.5-large": 170.0}
#: GPU memory the H100 plan shares out (of 81,559 MiB): 3.5 GB for contexts and slack.
H100_BUDGET_MIB = 78_000.0
#: Host memory a run is charged while scheduling (MiB): FLUX.1 holds the bf16 transformer and
#: its fp8 copy, T5-XXL and CLIP-L; SDXL its checkpoint and fp32 text encoders; SD3 its
#: checkpoint while loading, then T5-XXL (bf16, 9.5 GB), CLIP-L and CLIP-G for the whole run
#: (3.5 large: 16.3 GB of MMDiT and its fp8 copy while loading). The machine has 128 GiB.
HOST_CHARGE = {"flux1-dev": 40_000.0, "sdxl": 14_000.0, "sd3-medium": 20_000.0,
               "sd3.5-large": 34_000.0}
HOST_BUDGET_MIB = 110_000.0
#: Kinds of run that, when their turn comes and they do not fit, keep smaller runs from
#: starting, so that the room they wait for is not taken (SD3.5 large needs two medium runs'
#: host memory).
HOLD_THE_LINE = {"sd3.5-large"}
#: What writing the synthetic SD3 sets takes while it runs: the 3.5-large MMDiT in bf16 on the
#: GPU (15,537 MiB) with the VAE and a CUDA context; one tensor at a time on the host.
SD3_BUILDER_MIB, SD3_BUILDER_HOST_MIB = 17_000.0, 4_000.0
#: What writing the synthetic SDXL checkpoint takes while it runs (fp32 models on the GPU, an
#: fp16 copy on the host).
BUILDER_MIB, BUILDER_HOST_MIB = 16_000.0, 24_000.0


def sdxl_conditions(changes: dict) -> dict:
    cond = {**SDXL_BASE, **changes}
    cond["network_alpha"] = cond["network_dim"]
    return cond


def plan_conditions(family: str, changes: dict) -> dict:
    if family == "sd3":
        return sd3_conditions(changes)
    return sdxl_conditions(changes) if family == "sdxl" else conditions(changes)


def sdxl_profile_text(name: str, cond: dict, checkpoint: str, tokenizers: str,
                      data_dir: str, steps: int) -> str:
    """A standalone SDXL profile (no synthetic swap: the checkpoint is named directly)."""
    return _profile_text("sdxl", name, cond, {"pretrained_model_name_or_path": checkpoint},
                         tokenizers, data_dir, steps)


def _profile_text(family: str, name: str, cond: dict, model: dict, tokenizers: str,
                  data_dir: str, steps: int) -> str:
    """A standalone kohya profile of ``family``: ``model`` is its [model] table, ``cond`` the
    run's conditions (sorted into [network], [optimizer], [training] and [dataset])."""
    ds = ("resolution", "batch_size", *model)
    section = {"network_module": "network", "network_dim": "network",
               "network_alpha": "network", "network_train_unet_only": "network",
               "optimizer_type": "optimizer", "learning_rate": "optimizer"}
    lines = ["[profile]", f'family = "{family}"', f'description = "VRAM matrix {name}"', "",
             "[model]", *(f"{k} = {json.dumps(v)}" for k, v in model.items())]
    for sec in ("network", "optimizer", "training"):
        lines += ["", f"[{sec}]"]
        for k, v in cond.items():
            if k not in ds and section.get(k, "training") == sec:
                lines.append(f"{k} = {json.dumps(v)}")
        if sec == "training":
            lines += [f"tokenizer_cache_dir = {json.dumps(tokenizers)}",
                      f"max_train_steps = {steps}", "seed = 42"]
    lines += ["", "[saving]", 'output_dir = "output"', f'output_name = "vm_{name}"', "",
              "[dataset]", f"resolution = {cond['resolution']}",
              f"batch_size = {cond['batch_size']}", "enable_bucket = true",
              "bucket_no_upscale = true", 'caption_extension = ".txt"', "",
              "[[dataset.subsets]]", f"image_dir = {json.dumps(data_dir)}", "num_repeats = 10",
              ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the SD3 plan

#: SD3 base conditions: sd-scripts' sd3_train_network.py on a synthetic SD3 medium checkpoint
#: (tests/gpu/sd3_synth.py), MMDiT only, latents and text-encoder outputs cached to disk.
#: ``pretrained_model_name_or_path`` is the checkpoint's file name, from which lorac reads the
#: variant (vram_families.sd3_variant); the profile names the file's full path.
SD3_FILES = {"sd3-medium": "sd3_medium-synth.safetensors",
             "sd3.5-large": "sd3.5_large-synth.safetensors"}
SD3_BASE = {"pretrained_model_name_or_path": SD3_FILES["sd3-medium"], "resolution": 1024,
            "batch_size": 1, "network_module": "networks.lora_sd3", "network_dim": 16,
            "optimizer_type": "AdamW8bit", "learning_rate": 1e-4, "mixed_precision": "bf16",
            "save_precision": "bf16", "fp8_base": False, "gradient_checkpointing": True,
            "sdpa": True, "network_train_unet_only": True, "cache_latents": True,
            "cache_latents_to_disk": True, "cache_text_encoder_outputs": True,
            "cache_text_encoder_outputs_to_disk": True, "gradient_accumulation_steps": 1}
LARGE = {"pretrained_model_name_or_path": SD3_FILES["sd3.5-large"]}
TE_LIVE = {"cache_text_encoder_outputs": False, "cache_text_encoder_outputs_to_disk": False}
#: (id, family, changes from SD3_BASE, split): SD3 medium at 512/1024 px, batch 1/4, rank
#: 16/128, checkpointing on/off, AdamW/AdamW8bit, fp8_base on/off, text-encoder outputs cached
#: or encoded every step (CLIP-L/G trained, T5-XXL resident); then SD3.5 large with and
#: without fp8_base, which also tests that one set of constants serves both sizes.
SD3_PLAN: list[tuple[str, str, dict, str]] = [
    ("sd3m-r1024-b1", "sd3", {}, "fit"),
    ("sd3m-r512-b1", "sd3", {"resolution": 512}, "fit"),
    ("sd3m-r1024-b4", "sd3", {"batch_size": 4}, "holdout"),
    ("sd3m-rank128", "sd3", {"network_dim": 128}, "fit"),
    ("sd3m-nogc", "sd3", {"gradient_checkpointing": False}, "holdout"),
    ("sd3m-nogc-r512-b4", "sd3", {"gradient_checkpointing": False, "resolution": 512,
                                  "batch_size": 4}, "fit"),
    ("sd3m-adamw", "sd3", {"optimizer_type": "AdamW"}, "fit"),
    ("sd3m-fp8", "sd3", {"fp8_base": True}, "holdout"),
    ("sd3m-te-live", "sd3", {**TE_LIVE, "network_train_unet_only": False}, "fit"),
    ("sd35l-fp8", "sd3", {**LARGE, "fp8_base": True}, "fit"),
    ("sd35l-bf16-r512", "sd3", {**LARGE, "resolution": 512}, "holdout"),
    # extras, started only while time is left
    ("sd3m-rank128-adamw-r512", "sd3", {"network_dim": 128, "optimizer_type": "AdamW",
                                        "resolution": 512}, "holdout"),
    ("sd3m-fp8-nogc-r512", "sd3", {"fp8_base": True, "gradient_checkpointing": False,
                                   "resolution": 512}, "fit"),
    ("sd35l-fp8-b4-r512", "sd3", {**LARGE, "fp8_base": True, "batch_size": 4,
                                  "resolution": 512}, "holdout"),
]
SD3_CORE = 11


def sd3_conditions(changes: dict) -> dict:
    cond = {**SD3_BASE, **changes}
    cond["network_alpha"] = cond["network_dim"]
    return cond


def sd3_variant_of(cond: dict) -> str:
    """``sd3-medium`` or ``sd3.5-large``: which synthetic checkpoint a run needs."""
    return next(v for v, f in SD3_FILES.items() if f == cond["pretrained_model_name_or_path"])


def sd3_profile_text(name: str, cond: dict, files: dict, data_dir: str, steps: int) -> str:
    """A standalone SD3 profile on the synthetic set ``files`` (sd3_synth.py's JSON: checkpoint,
    clip_l, clip_g, t5xxl, tokenizer_cache_dir)."""
    model = {"pretrained_model_name_or_path": files["checkpoint"],
             **{k: files[k] for k in ("clip_l", "clip_g", "t5xxl")}}
    return _profile_text("sd3", name, cond, model, files["tokenizer_cache_dir"], data_dir, steps)


#: The plans ``run --plan`` knows, and how many of each plan's first entries are its core.
PLANS = {"h100": (H100_PLAN, H100_CORE), "sd3": (SD3_PLAN, SD3_CORE)}


def kind(family: str, cond: dict) -> str:
    """The key of EXPECTED_S / HOST_CHARGE: the family, or the SD3 variant."""
    return sd3_variant_of(cond) if family == "sd3" else family


#: Margin on the model's prediction while scheduling: FLUX.1 is calibrated (a few per cent),
#: SDXL is a first-principles estimate until this plan has measured it.
CHARGE_MARGIN = {"flux1-dev": 1.03, "sdxl": 1.2, "sd3": 1.15}


def h100_charge(family: str, cond: dict) -> float:
    """What a run is assumed to take on the GPU while scheduling: the model's peak with the
    family's margin, plus 1 GB."""
    rec = {"conditions": cond, "gpus": 1, "family": family}
    if family in ("sdxl", "sd3"):
        from lorac.trainers.kohya import vram_families

        est = vram_families.estimate(vram_families.run_from_record(rec))
    else:
        est = vram.estimate(vram.record_config(rec))
    return est.peak_mib * CHARGE_MARGIN[family] + 1000


_STEP = re.compile(r"steps:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)\s*\[[^\],]*,\s*([\d.]+)(s/it|it/s)")


def step_times(log: str) -> tuple[float | None, float | None, int]:
    """(first step's seconds, steady seconds per step after it, steps seen) from sd-scripts'
    progress bar (tqdm, smoothing 0: its rate is the mean since the first step)."""
    rate: dict[int, float] = {}
    for m in _STEP.finditer(log.replace("\r", "\n")):
        n, v, unit = int(m.group(1)), float(m.group(3)), m.group(4)
        if n and v:
            rate[n] = v if unit == "s/it" else 1.0 / v
    if not rate:
        return None, None, 0
    last = max(rate)
    first = rate.get(1)
    if first is None or last < 2:
        return first, rate[last], last
    return first, (rate[last] * last - first) / (last - 1), last


def tree_pids(root: int) -> set[int]:
    """``root`` and its descendants now (through /proc)."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    todo += [int(x) for x in fh.read().split()]
        except (OSError, ValueError):
            continue
    return seen


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _smi_time(text: str) -> float | None:
    try:
        return dt.datetime.strptime(text.strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp()
    except ValueError:
        return None


def smi_peaks(out: Path, pids: set[int], start: float, end: float) -> dict[str, float | None]:
    """From the nvidia-smi logs (100 ms): the peak of the summed per-process memory of
    ``pids`` and the device's peak "used" between ``start`` and ``end`` (wall clock)."""
    per: dict[str, float] = {}
    try:
        for line in (out / "smi-apps.csv").read_text(errors="replace").splitlines():
            parts = [x.strip() for x in line.split(",")]
            if len(parts) < 3 or not parts[1].isdigit() or int(parts[1]) not in pids:
                continue
            t = _smi_time(parts[0])
            if t is None or not start <= t <= end or not _number(parts[2]):
                continue
            per[parts[0]] = per.get(parts[0], 0.0) + float(parts[2])
    except OSError:
        pass
    dev = 0.0
    try:
        for line in (out / "smi-gpu.csv").read_text(errors="replace").splitlines():
            parts = [x.strip() for x in line.split(",")]
            t = _smi_time(parts[0]) if parts else None
            if t is not None and start <= t <= end and len(parts) >= 3 and _number(parts[1]):
                dev = max(dev, float(parts[1]))
    except (OSError, ValueError):
        pass
    return {"process": max(per.values()) if per else None, "device": dev or None}


def pmon_busy(out: Path, pids: set[int], start: float, end: float) -> float | None:
    """Mean SM share (0-1) of ``pids`` in ``nvidia-smi pmon`` samples (1 s) between ``start``
    and ``end``, summed over the processes of each second."""
    by_t: dict[str, float] = {}
    day = dt.date.today()
    try:
        for line in (out / "pmon.txt").read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) < 5 or line.startswith("#") or not parts[2].isdigit():
                continue
            if int(parts[2]) not in pids:
                continue
            t = dt.datetime.combine(day, dt.time.fromisoformat(parts[0])).timestamp()
            if start <= t <= end:
                sm = float(parts[4]) if _number(parts[4]) else 0.0
                by_t[parts[0]] = by_t.get(parts[0], 0.0) + sm
    except (OSError, ValueError):
        return None
    return round(sum(by_t.values()) / len(by_t) / 100.0, 3) if by_t else None


def start_loggers(out: Path) -> list[subprocess.Popen]:
    """nvidia-smi every 100 ms (device and per-process memory) and pmon every second."""
    if not shutil.which("nvidia-smi"):
        return []
    cmds = {
        "smi-gpu.csv": ["nvidia-smi", "--query-gpu=timestamp,memory.used,utilization.gpu",
                        "--format=csv,noheader,nounits", "-lms", "100"],
        "smi-apps.csv": ["nvidia-smi", "--query-compute-apps=timestamp,pid,used_memory",
                         "--format=csv,noheader,nounits", "-lms", "100"],
        "pmon.txt": ["nvidia-smi", "pmon", "-s", "u", "-d", "1", "-o", "T"],
    }
    procs = []
    for name, cmd in cmds.items():
        fh = open(out / name, "w")  # noqa: SIM115 (open while it runs)
        procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT))
    return procs


#: What each family's records say of their weights.
WEIGHTS = {"sdxl": "synthetic SDXL base (tests/gpu/sdxl_synth.py: sd-scripts' own classes, "
                   "real shapes, random values, fp16)",
           "sd3": "synthetic SD3 set (tests/gpu/sd3_synth.py: sd-scripts' own classes, real "
                  "shapes, random values; MMDiT bf16, VAE, CLIP-L, CLIP-G and T5-XXL fp16)"}


def finish_job(job: dict, out: Path, make_record) -> dict | None:
    """A finished run: its log closed, its end time kept, and the record ``make_record`` makes
    from its newest manifest appended to ``out/records.jsonl``; None (and said) when the run
    wrote no manifest."""
    job["log"].close()
    job["t1"] = time.time()
    manifests = sorted(job["runs"].glob("*/manifest.json"))
    if not manifests:
        print(f"{job['name']}: no manifest (exit {job['proc'].returncode})", flush=True)
        return None
    rec = make_record(json.loads(manifests[-1].read_text()))
    with open(out / "records.jsonl", "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    return rec


def schedule_step(queue: list[dict], running: list[dict], elapsed: float, deadline: float,
                  per_gpu: int, gpu_budget: float, host_budget: float,
                  ready: set[str] | None = None,
                  expected: float = 0.0) -> tuple[list[dict], list[str]]:
    """The jobs of a plan to start now (taken off ``queue``, in its order) and the names dropped
    for the deadline: a job starts when it would end (its ``expected`` seconds, else
    ``expected``) before the deadline, fits ``gpu_budget`` (``charge``) and ``host_budget``
    (``host``) beside those running, and its family's synthetic set is ready (``ready``: the
    families whose set is complete; None: all); at most ``per_gpu`` run at once."""
    start, dropped = [], []
    used = sum(r["charge"] for r in running)
    host = sum(r["host"] for r in running)
    for q in list(queue):
        if len(running) + len(start) >= per_gpu:
            break
        if elapsed + q.get("expected", expected) > deadline:
            queue.remove(q)
            dropped.append(q["name"])
            continue
        if used + q["charge"] > gpu_budget or host + q["host"] > host_budget:
            continue
        if ready is not None and q["family"] not in ready:
            continue
        queue.remove(q)
        start.append(q)
        used += q["charge"]
        host += q["host"]
    return start, dropped


def start_run(q: dict, args: list[str], out: Path, env: dict[str, str], running: list[dict],
              shared: dict[str, bool]) -> None:
    """Start ``lorac run ARGS`` for the plan's job ``q`` on GPU 0 (plain display, its runs in
    ``out/runs-NAME``, its output in ``out/NAME.log``): ``q`` joins ``running``, and ``shared``
    marks it and every run beside it as sharing the GPU."""
    name = q["name"]
    log_path = out / f"{name}.log"
    log = open(log_path, "w")  # noqa: SIM115 (open while it runs)
    runs = out / f"runs-{name}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lorac", "run", *args, "--display", "plain", "--force",
         "--runs-dir", str(runs)],
        cwd=ROOT, env={**env, "CUDA_VISIBLE_DEVICES": "0"}, stdout=log,
        stderr=subprocess.STDOUT)
    q.update(proc=proc, log=log, log_path=log_path, runs=runs, t0=time.time(), pids={proc.pid})
    shared[name] = bool(running)
    for r in running:
        shared[r["name"]] = True
    running.append(q)


def ended(running: list[dict]) -> list[dict]:
    """The jobs of ``running`` whose process has ended, taken off it; every job's process tree
    is added to its ``pids`` first (nvidia-smi's per-process figures are read by pid)."""
    for r in running:
        r["pids"] |= tree_pids(r["proc"].pid)
    done = [r for r in running if r["proc"].poll() is not None]
    for r in done:
        running.remove(r)
    return done


def run_figures(job: dict, manifest: dict, offset: float, out: Path, shared: bool,
                device_when_alone: bool = False) -> dict:
    """The figures every plan's record takes from a finished run's manifest and the
    nvidia-smi logs: per-phase memory (the trainer's own processes plus ``offset``; with
    ``device_when_alone``, the device's figure for a run alone on the GPU), the whole run's
    peak, the card, host memory and the step rate. ``ok``: the run ended well and recorded
    memory; ``other_phases_mib``: sampling, which the models leave out."""
    t = manifest.get("telemetry") or {}
    phases: dict[str, float] = {}
    own: dict[str, float] = {}
    device: dict[str, float] = {}
    for phase, per_gpu in (t.get("phases") or {}).items():
        vals = [v for v in per_gpu.values() if isinstance(v, dict)]
        dev = max((v.get("memory_used_mib") or 0.0 for v in vals), default=0.0)
        proc = max((v.get("process_memory_mib") or 0.0 for v in vals), default=0.0)
        if dev:
            device[phase] = dev
        if proc:  # the trainer's own processes: the device's figure counts the others too
            own[phase] = proc
            phases[phase] = round(proc + offset, 1)
        elif dev and device_when_alone and not shared:
            phases[phase] = dev
    if device_when_alone and not shared and device:  # alone: the device's figure is the run's
        phases = dict(device)
    recorded = {k: v for k, v in phases.items() if k != "sample"}
    smi = smi_peaks(out, job["pids"], job["t0"], job["t1"])
    prog = manifest.get("progress") or {}
    peak = round(smi["process"] + offset, 1) if smi["process"] else (
        max(recorded.values()) if recorded else None)
    if not shared and smi["device"]:
        peak = smi["device"]
    gpu = (t.get("gpus") or [{}])[0]
    return {
        "ok": manifest.get("status") in ("succeeded", "stopped") and bool(recorded),
        "status": manifest.get("status"), "exit_code": manifest.get("exit_code"),
        "gpu": gpu.get("name"), "gpu_memory_total_mib": gpu.get("memory_total_mib"),
        "driver": t.get("driver_version"),
        "torch": (manifest.get("versions") or {}).get("torch"),
        "phases_mib": recorded,
        "other_phases_mib": {k: v for k, v in phases.items() if k == "sample"},
        "process_phases_mib": own, "device_phases_mib": device, "offset_mib": offset,
        "peak_mib": peak, "smi_process_peak_mib": smi["process"],
        "smi_device_peak_mib": smi["device"], "smi_interval_s": 0.1,
        "host_rss_mib": t.get("host_rss_mib"), "host_rss_peak_mib": t.get("host_rss_peak_mib"),
        "host_rss_api": t.get("host_rss_api"),
        "sec_per_batch": prog.get("sec_per_it"), "sec_per_step_shared": shared,
        "steps_done": prog.get("step"), "wall_s": round(job["t1"] - job["t0"], 1)}


def h100_record(job: dict, manifest: dict, offset: float, out: Path, shared: bool) -> dict:
    """A record in the format of the measurements file, with the H100 plan's extra figures."""
    fam = job["family"]
    split = {"check": "check", "fit": "fit", "holdout": "holdout"}[job["split"]]
    rec = record(job["name"], job["cond"], manifest, 0, job["steps"], offset, shared)
    t = manifest.get("telemetry") or {}
    smi = smi_peaks(out, job["pids"], job["t0"], job["t1"])
    log = (job["log_path"]).read_text(errors="replace")
    runs = sorted(job["runs"].glob("*/train.log"))
    if runs:
        log += runs[-1].read_text(errors="replace")
    first, steady, seen = step_times(log)
    busy = None
    end = job.get("steps_t1")
    if end and steady:
        # the steps ended at most one poll (~1-4 s) before the runner saw the last one
        start = min(job.get("steps_t0", end), end - steady * max(seen - 1, 1) - 1.0)
        busy = pmon_busy(out, job["pids"], start, end)
    rec.update({
        "split": split if rec["weight"] == "full" else rec["split"],
        "family": fam,
        "script": load_families()[fam].script,
        "trainer_commit": COMMIT,
        "weights": WEIGHTS.get(fam, "synthetic (lorac synth flux1-dev)"),
        "smi_process_peak_mib": smi["process"],
        "smi_device_peak_mib": smi["device"],
        "smi_interval_s": 0.1,
        "peak_mib": (round(smi["process"] + offset, 1) if smi["process"] else
                     rec.get("peak_mib")),
        "host_rss_mib": t.get("host_rss_mib"),
        "host_rss_peak_mib": t.get("host_rss_peak_mib"),
        "host_rss_api": t.get("host_rss_api"),
        "sec_per_step": round(steady, 3) if steady else rec.get("sec_per_step"),
        "sec_per_step_first": round(first, 3) if first else None,
        "steps_timed": seen,
        "gpu_busy": busy,
        "gpu_busy_api": "nvidia-smi pmon SM % of the run's processes, mean over the steps",
        "sec_per_step_shared": shared,
        "wall_s": round(job["t1"] - job["t0"], 1),
        # "h100": the method (one H100, nvidia-smi's 100 ms whole-run peak), which
        # bench/vram_accuracy.py --merge keeps; which plan of that method: plan_name
        "plan": "h100",
        "plan_name": job.get("plan", "h100"),
    })
    if fam == "sd3":
        rec["variant"] = job["kind"]
    if not shared and smi["device"]:
        rec["peak_mib"] = smi["device"]
    return rec


def written_set(path: Path) -> dict | None:
    """A synthetic set's JSON once it is complete (None while absent or being written)."""
    try:
        return json.loads(path.read_text()) or None
    except (OSError, ValueError):
        return None


def run_h100(out: Path, only: set[str], per_gpu: int, offset: float, deadline: float,
             sdxl_dir: Path, plan_name: str = "h100", sd3_dir: Path = Path("/tmp/sd3")) -> int:
    """The plan ``plan_name`` (``h100`` or ``sd3``) on GPU 0: its synthetic checkpoints first
    (once; SDXL into ``sdxl_dir``, SD3 into ``sd3_dir``, the 3.5-large set first; each
    variant's runs start as soon as its set is there), then the runs: the core first, largest
    first within it, as many at a time as the memory budgets and ``per_gpu`` allow; the
    plan's extras once the whole core has started."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    loggers = start_loggers(out)
    entries, n_core = PLANS[plan_name]
    plan = [(n, f, c, s) for n, f, c, s in entries if not only or n in only]
    builders: dict[str, tuple[subprocess.Popen, float, float]] = {}
    info: dict[str, dict] = {}  # kind -> the synthetic set's JSON
    if (sdxl_dir / "sdxl-synth.json").is_file():
        info["sdxl"] = json.loads((sdxl_dir / "sdxl-synth.json").read_text())
    elif any(f == "sdxl" for _, f, _, _ in plan):
        # written beside the first FLUX.1 runs, which spend their first minute on the host
        build_log = open(out / "sdxl_synth.log", "w")  # noqa: SIM115 (open while it runs)
        builders["sdxl"] = (subprocess.Popen(
            [sys.executable, str(ROOT / "tests/gpu/sdxl_synth.py"), str(sdxl_dir)], cwd=ROOT,
            stdout=build_log, stderr=subprocess.STDOUT), BUILDER_MIB, BUILDER_HOST_MIB)
    variants = [v for v in SD3_FILES if any(f == "sd3" and sd3_variant_of(plan_conditions(
        f, c)) == v for _, f, c, _ in plan)]
    # the large set first (after the text encoders): its runs are the longest, so they start
    # first and the medium runs fill the room beside them (a FLUX.1 set's T5-XXL on the
    # machine is the same file)
    missing = sorted((v for v in variants if not (sd3_dir / f"{v}.json").is_file()),
                     key=lambda v: v not in HOLD_THE_LINE)
    if missing:
        t5 = Path(os.environ.get("LORAC_SYNTH_DIR", "/tmp/synth")) / "t5xxl_fp16.safetensors"
        build_log = open(out / "sd3_synth.log", "w")  # noqa: SIM115 (open while it runs)
        builders["sd3"] = (subprocess.Popen(
            [sys.executable, str(ROOT / "tests/gpu/sd3_synth.py"), str(sd3_dir), "--variants",
             ",".join(missing), *(["--t5xxl", str(t5)] if t5.is_file() else [])], cwd=ROOT,
            stdout=build_log, stderr=subprocess.STDOUT), SD3_BUILDER_MIB, SD3_BUILDER_HOST_MIB)
    queue = []
    core = {n for n, *_ in entries[:n_core]}
    for name, fam, changes, split in plan:
        cond = plan_conditions(fam, changes)
        queue.append({"name": name, "family": fam, "kind": kind(fam, cond), "cond": cond,
                      "split": split, "plan": plan_name, "charge": h100_charge(fam, cond),
                      "steps": H100_STEPS[fam], "extra": name not in core})
    # the core first, the runs that hold the line (below) first within it, then the largest
    # first (small runs fill the gaps)
    queue.sort(key=lambda q: (q["extra"], q["kind"] not in HOLD_THE_LINE, -q["charge"]))
    running: list[dict] = []
    ever_shared: dict[str, bool] = {}
    k = 0
    while queue or running:
        elapsed = time.monotonic() - t0
        for v in variants:
            if v not in info and (got := written_set(sd3_dir / f"{v}.json")):
                info[v] = got
                print(f"[{elapsed:6.0f} s] {v} set written", flush=True)
        for what, (builder, _, _) in list(builders.items()):
            if builder.poll() is None:
                continue
            rc = builder.returncode
            print(f"[{elapsed:6.0f} s] {what} checkpoints: exit {rc}", flush=True)
            if what == "sdxl" and rc == 0 and (sdxl_dir / "sdxl-synth.json").is_file():
                info["sdxl"] = json.loads((sdxl_dir / "sdxl-synth.json").read_text())
            for v in variants:
                if v not in info and (got := written_set(sd3_dir / f"{v}.json")):
                    info[v] = got
            dropped = [q["name"] for q in queue if q["family"] in (what,) and
                       q["kind"] not in info]
            queue = [q for q in queue if q["name"] not in dropped]
            if dropped:
                print(f"[{elapsed:6.0f} s] no set for {', '.join(dropped)}", flush=True)
            del builders[what]
        used = sum(r["charge"] for r in running) + sum(b[1] for b in builders.values())
        host = sum(HOST_CHARGE[r["kind"]] for r in running) + sum(
            b[2] for b in builders.values())
        for q in list(queue):
            if q["family"] in ("sdxl", "sd3") and q["kind"] not in info:
                continue
            if q["extra"] and any(not x["extra"] for x in queue):
                continue  # extras only once the whole core has started
            if len(running) >= per_gpu:
                break
            if elapsed + EXPECTED_S[q["kind"]] > deadline:
                queue.remove(q)
                print(f"[{elapsed:6.0f} s] skip {q['name']}: would end after the deadline",
                      flush=True)
                continue
            if used + q["charge"] > H100_BUDGET_MIB or \
                    host + HOST_CHARGE[q["kind"]] > HOST_BUDGET_MIB:
                if q["kind"] in HOLD_THE_LINE:
                    break  # nothing smaller takes the room it waits for
                continue
            queue.remove(q)
            k += 1
            data = ROOT / "data" / f"h100slot{k}"
            if not data.exists():
                shutil.copytree(ROOT / "examples" / "subject", data)
            name = q["name"]
            if q["family"] == "sdxl":
                text = sdxl_profile_text(name, q["cond"], info["sdxl"].get("checkpoint", ""),
                                         info["sdxl"].get("tokenizer_cache_dir", ""),
                                         str(data), q["steps"])
                extra: list[str] = []
            elif q["family"] == "sd3":
                text = sd3_profile_text(name, q["cond"], info[q["kind"]], str(data),
                                        q["steps"])
                extra = []
            else:
                text = profile_text(name, q["cond"])
                extra = ["--synthetic"]
            (ROOT / "profiles" / f"vm-{name}.toml").write_text(text)
            start_run(q, [f"vm-{name}", *extra, "--max-steps", str(q["steps"])], out,
                      {**os.environ, "DATA_DIR": str(data)}, running, ever_shared)
            used += q["charge"]
            host += HOST_CHARGE[q["kind"]]
            print(f"[{elapsed:6.0f} s] start {name} ({q['charge']:.0f} MiB charged, "
                  f"{len(running)} running)", flush=True)
            time.sleep(3)  # stagger the weight loading
        time.sleep(1)
        for r in running:
            tails = sorted(r["runs"].glob("*/train.log"))
            if tails:
                _, _, seen = step_times(tails[-1].read_text(errors="replace")[-20000:])
                if seen >= 1 and "steps_t0" not in r:
                    r["steps_t0"] = time.time()
                if seen >= r["steps"] and "steps_t1" not in r:
                    r["steps_t1"] = time.time()
        for r in ended(running):
            rec = finish_job(r, out, lambda m, r=r: h100_record(r, m, offset, out,
                                                                ever_shared[r["name"]]))
            if rec is None:
                continue
            print(f"[{time.monotonic() - t0:6.0f} s] {r['name']}: {rec['status']} "
                  f"shared={rec['gpu_shared']} peak {rec.get('peak_mib')} (smi process "
                  f"{rec['smi_process_peak_mib']}, device {rec['smi_device_peak_mib']}) "
                  f"phases {rec['phases_mib']} s/step {rec['sec_per_step']} busy "
                  f"{rec['gpu_busy']} host {rec['host_rss_peak_mib']}", flush=True)
    for builder, _, _ in builders.values():
        builder.terminate()
    for p in loggers:
        p.terminate()
    print(f"DONE in {time.monotonic() - t0:.0f} s", flush=True)
    return 0


def names(plan: str) -> list[str]:
    """The configuration ids of ``plan`` (``h100``, ``sd3``, or the two-GPU matrix when
    empty)."""
    return [n for n, *_ in PLANS[plan][0]] if plan in PLANS else [n for n, _ in MATRIX]


def option(argv: list[str], flag: str, default: str) -> str:
    """The value after ``flag`` in a plan script's arguments, else ``default``."""
    return argv[argv.index(flag) + 1] if flag in argv else default


def chosen(only: str, known: Iterable[str]) -> tuple[set[str], list[str]]:
    """The ids of ``--only`` (comma-separated; empty: every configuration), and those of them
    not in ``known``."""
    picked = {n.strip() for n in only.split(",")} - {""}
    return picked, sorted(picked - set(known))


def plan_arguments(argv: list[str], commands: tuple[str, ...], known: Iterable[str],
                   prog: str, usage: str) -> tuple[Callable[[str, str], str], set[str]] | None:
    """A plan script's option reader and its ``--only`` ids; None (the usage or the unknown
    ids said) when ``argv`` names none of ``commands`` or an id the plan does not have."""
    if not argv or argv[0] not in commands:
        print(usage)
        return None
    only, unknown = chosen(option(argv, "--only", ""), known)
    if unknown:
        print(f"{prog}: no configuration {', '.join(unknown)}", file=sys.stderr)
        return None
    return (lambda flag, default: option(argv, flag, default)), only


def selection(only: str, plan: str) -> set[str]:
    """The ids of ``--only`` (comma-separated; empty: every configuration), or a ValueError
    naming those the plan does not have."""
    chosen_ids, unknown = chosen(only, names(plan))
    if unknown:
        raise ValueError(f"no configuration {', '.join(unknown)} in the "
                         f"{plan + ' plan' if plan in PLANS else 'matrix'} (python3 "
                         f"tests/gpu/vram_matrix.py list{' --plan ' + plan if plan else ''} "
                         f"lists them)")
    return chosen_ids


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("list", "probe", "run"):
        print(__doc__)
        return 2

    def opt(flag: str, default: str) -> str:
        return option(argv, flag, default)

    plan = opt("--plan", "")
    if argv[0] == "probe":
        return probe()
    try:
        only = selection(opt("--only", ""), plan)
    except ValueError as e:
        print(f"vram_matrix: {e}", file=sys.stderr)
        return 2
    if plan and plan not in PLANS:
        print(f"vram_matrix: no plan {plan!r} (known: {', '.join(PLANS)})", file=sys.stderr)
        return 2
    if argv[0] == "list":
        if plan in PLANS:
            chosen = [e for e in PLANS[plan][0] if not only or e[0] in only]
            for name, fam, changes, split in chosen:
                print(f"{name:<28}{fam:<11}{split:<9}{json.dumps(changes)}")
            print(f"{len(chosen)} configurations")
            return 0
        rows = [(n, c) for n, c in MATRIX if not only or n in only]
        for name, changes in rows:
            print(f"{name:<16}{json.dumps(changes)}")
        print(f"{len(rows)} configurations")
        return 0
    if plan in PLANS:
        return run_h100(Path(argv[1]), only, int(opt("--per-gpu", "6")),
                        float(opt("--offset", "0")), float(opt("--deadline", "490")),
                        Path(opt("--sdxl-dir", "/tmp/sdxl")), plan,
                        Path(opt("--sd3-dir", "/tmp/sd3")))
    return run(Path(argv[1]), int(opt("--steps", "4")), only, int(opt("--per-gpu", "3")),
               float(opt("--offset", "0")), int(opt("--gpus", "2")))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
