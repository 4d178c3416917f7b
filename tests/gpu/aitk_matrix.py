"""The ai-toolkit FLUX.1 plan: configurations of the shipped ``final`` profile that vary
ai-toolkit's quantisation paths and the VRAM model's other terms, run concurrently on one GPU
within GPU and host budgets (as tests/gpu/vram_matrix.py's H100 plans), one JSON record per
finished run appended to ``OUT/records.jsonl`` in the format of
backends/ai-toolkit/vram_measurements.json.

    python3 tests/gpu/aitk_matrix.py list
    python3 tests/gpu/aitk_matrix.py run OUT [--deadline 480] [--per-gpu 3] [--offset 8.8]
        [--only a,b] [--synth-dir /tmp/synth-aitk-flux]

Every run: ``attention_backend = "_native_flash"`` (torch 2.11's cuDNN attention fails in
ai-toolkit's FLUX.1 backward on an H100), STEPS steps, no sampling, one save at the end (the
LoRA file is deleted once recorded).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vram_matrix as vm

from lorac.trainers.ai_toolkit import vram as avram

ROOT = vm.ROOT
COMMIT = "27a03a91f23eb1b757d5ec2e80ee3e129cfcc350"
STEPS = 10

BASE_COND = {"network_dim": 64, "network_alpha": 64, "network_dropout": 0.1,
             "optimizer_type": "AdamW8bit", "learning_rate": 1e-4, "mixed_precision": "bf16",
             "gradient_checkpointing": True, "fp8_base": True, "sdpa": True,
             "cache_latents": True, "cache_latents_to_disk": True,
             "cache_text_encoder_outputs": True, "resolution": 1024, "batch_size": 1,
             "gradient_accumulation_steps": 1, "max_train_steps": STEPS}
#: name, profile option changes, ai-toolkit model keys, ai-toolkit train keys, split; in the
#: order they start (the reference and each quantisation path first, fit and held-back runs
#: mixed, so that a deadline that cuts the tail leaves both); a run that does not fit the
#: budgets beside those running waits while later ones that do fit start.
PLAN: list[tuple[str, dict, dict, dict, str]] = [
    ("q8-r64-1024", {}, {}, {}, "fit"),
    ("bf16-r16-512", {"network_dim": 16, "network_alpha": 16, "resolution": 512,
                      "fp8_base": False}, {"quantize": False}, {}, "holdout"),
    ("uint4-r64-1024", {}, {"qtype": "uint4"}, {}, "fit"),
    ("q8-te-bf16-r64", {}, {"quantize_te": False}, {}, "fit"),
    ("q8-lowvram-r64", {}, {"low_vram": True}, {}, "holdout"),
    ("q8-r128-1024-b2", {"network_dim": 128, "network_alpha": 128, "batch_size": 2}, {}, {},
     "fit"),
    ("q8-tenocache-r64-512", {"resolution": 512, "cache_text_encoder_outputs": False}, {},
     {"cache_text_embeddings": False}, "holdout"),
    ("q8-r16-512", {"network_dim": 16, "network_alpha": 16, "resolution": 512}, {}, {}, "fit"),
    ("q8-nogc-r16-512", {"network_dim": 16, "network_alpha": 16, "resolution": 512,
                         "gradient_checkpointing": False}, {}, {}, "fit"),
    ("uint4-r128-512-b2", {"network_dim": 128, "network_alpha": 128, "resolution": 512,
                           "batch_size": 2}, {"qtype": "uint4"}, {}, "holdout"),
]

#: Expected wall seconds of a run: the proof's 20 steps of 4 batches took 167 s with ~60 s of
#: loading and two rounds of samples; STEPS single batches (1.57 s each at 1024 px alone),
#: caching, one save and no samples ~100 s; shared, more.
EXPECTED_S = 120.0
#: Host RSS charged per run (the proof's peak was 20,047 MiB; bf16 loads more).
HOST_MIB = {"bf16": 36_000.0, "quant": 22_000.0}
HOST_BUDGET_MIB = 110_000.0
GPU_BUDGET_MIB = 78_000.0
#: The model predicted the one measured run 3.8 % low (its load peak, a transient while the
#: transformer is quantised); each charge adds 1 GB besides.
MARGIN = 1.05


def conditions(changes: dict) -> dict:
    return {**BASE_COND, **changes}


def native(model: dict, train: dict) -> dict:
    return {"model": dict(model),
            "train": {"attention_backend": "_native_flash", "disable_sampling": True,
                      "skip_first_sample": True, **train}}


def charge(cond: dict, own: dict) -> float:
    """GPU MiB a run is assumed to take while scheduling: the model's peak with MARGIN, +1 GB."""
    est = avram.estimate(avram.run_from_record({"conditions": cond, "native": own, "gpus": 1,
                                                "family": "flux1-dev"}))
    return est.peak_mib * MARGIN + 1000


def host_charge(own: dict) -> float:
    return HOST_MIB["bf16" if own["model"].get("quantize") is False else "quant"]


#: ai-toolkit keys that the build writes from profile options: in the record, not the profile.
DERIVED = {"quantize", "cache_text_embeddings"}


def _toml(value: object) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def profile_text(name: str, cond: dict, own: dict) -> str:
    """A profile extending ``final`` with the run's changes (STEPS steps, one save at the end,
    no sampling)."""
    lines = ["[profile]", 'extends = "final"', f'description = "ai-toolkit plan: {name}"']
    if own["model"].get("quantize") is False:
        lines.append('gpu = "80GB"')
    lines += ["", "[network]"] + [f"{k} = {_toml(cond[k])}" for k in
                                  ("network_dim", "network_alpha")]
    lines += ["", "[training]"] + [f"{k} = {_toml(cond[k])}" for k in
                                   ("gradient_checkpointing", "fp8_base",
                                    "cache_text_encoder_outputs",
                                    "gradient_accumulation_steps")]
    if not cond["cache_text_encoder_outputs"]:
        lines.append("cache_text_encoder_outputs_to_disk = false")
    lines += [f"max_train_steps = {STEPS}", "", "[saving]", f'output_name = "am_{name}"',
              f"save_every_n_steps = {STEPS}", "", "[sampling]",
              f"sample_every_n_steps = {STEPS * 100}", "", "[dataset]",
              f"resolution = {cond['resolution']}", f"batch_size = {cond['batch_size']}"]
    for table in ("model", "train"):
        # the build writes these from fp8_base and cache_text_encoder_outputs (LRC684)
        keys = {k: v for k, v in own[table].items() if k not in DERIVED}
        if keys:
            lines += ["", f"[trainers.ai-toolkit.{table}]"] + [
                f"{k} = {_toml(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def record(job: dict, manifest: dict, offset: float, out: Path, shared: bool) -> dict:
    """A record in the format of backends/ai-toolkit/vram_measurements.json."""
    f = vm.run_figures(job, manifest, offset, out, shared)
    ok = f.pop("ok")
    head = {
        "id": f"aitk-flux-{job['name']}", "gpus": 1, "split": job["split"],
        "weight": "full" if ok else "failed",
        "trainer": "ai-toolkit", "trainer_commit": COMMIT, "family": "flux1-dev",
        "script": "run.py (extensions_built_in/sd_trainer)",
        "memory_api": "per phase: NVML per-process used memory of the trainer's process tree "
                      "plus offset_mib; peak_mib: nvidia-smi's 100 ms samples of the same "
                      "(the device's used memory when alone on the GPU)",
        "weights": "synthetic (lorac synth flux1-dev --backend ai-toolkit): real shapes and "
                   "dtypes, random values",
        "date": time.strftime("%Y-%m-%d", time.gmtime()), "gpu_shared": shared,
        "source": f"tests/gpu/aitk_matrix.py run ({job['name']})",
        "conditions": job["cond"], "native": job["native"]}
    return {**head, **f, "plan": "h100", "plan_name": "aitk"}


def queue_of(only: set[str]) -> list[dict]:
    q = []
    for name, changes, model, train, split in PLAN:
        if only and name not in only:
            continue
        cond, own = conditions(changes), native(model, train)
        q.append({"name": name, "cond": cond, "native": own, "split": split,
                  "charge": charge(cond, own), "host": host_charge(own)})
    return q


def schedule_step(queue: list[dict], running: list[dict], elapsed: float, deadline: float,
                  per_gpu: int) -> tuple[list[dict], list[str]]:
    """The jobs to start now (taken off ``queue``) and the names dropped for the deadline
    (:func:`vram_matrix.schedule_step` with this plan's budgets, each run ``EXPECTED_S``)."""
    return vm.schedule_step(queue, running, elapsed, deadline, per_gpu, GPU_BUDGET_MIB,
                            HOST_BUDGET_MIB, expected=EXPECTED_S)


def run(out: Path, only: set[str], per_gpu: int, offset: float, deadline: float,
        synth: str) -> int:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    loggers = vm.start_loggers(out)
    queue = queue_of(only)
    running: list[dict] = []
    shared: dict[str, bool] = {}
    k = 0
    folder = ROOT / "profiles"
    while queue or running:
        elapsed = time.monotonic() - t0
        start, dropped = schedule_step(queue, running, elapsed, deadline, per_gpu)
        for name in dropped:
            print(f"[{elapsed:6.0f} s] skip {name}: would end after the deadline", flush=True)
        for q in start:
            k += 1
            data = ROOT / "data" / f"aitkslot{k}"
            if not data.exists():
                shutil.copytree(ROOT / "examples" / "subject", data)
            name = q["name"]
            (folder / f"am-{name}.toml").write_text(profile_text(name, q["cond"], q["native"]))
            vm.start_run(q, [f"am-{name}", "--backend", "ai-toolkit", "--synthetic",
                             "--synth-dir", synth, "--max-steps", str(STEPS)], out,
                         {**os.environ, "DATA_DIR": str(data)}, running, shared)
            print(f"[{elapsed:6.0f} s] start {name} ({q['charge']:.0f} MiB, {q['host']:.0f} "
                  f"MiB host charged, {len(running)} running)", flush=True)
            time.sleep(5)  # stagger the weight loading
        time.sleep(1)
        for r in vm.ended(running):
            rec = vm.finish_job(r, out, lambda m, r=r: record(r, m, offset, out,
                                                              shared[r["name"]]))
            if rec is None:
                continue
            for f in r["runs"].rglob("*.safetensors"):
                f.unlink()  # the disk holds the FLUX set; keep logs and manifests only
            for f in (ROOT / "output").glob(f"am_{r['name']}*"):
                shutil.rmtree(f, ignore_errors=True) if f.is_dir() else f.unlink()
            print(f"[{time.monotonic() - t0:6.0f} s] {r['name']}: {rec['status']} shared="
                  f"{rec['gpu_shared']} peak {rec['peak_mib']} phases {rec['phases_mib']} "
                  f"s/batch {rec['sec_per_batch']} host {rec['host_rss_peak_mib']}",
                  flush=True)
    for p in loggers:
        p.terminate()
    print(f"DONE in {time.monotonic() - t0:.0f} s", flush=True)
    return 0


def main(argv: list[str]) -> int:
    parsed = vm.plan_arguments(argv, ("list", "run"), (p[0] for p in PLAN), "aitk_matrix", __doc__)
    if parsed is None:
        return 2
    opt, only = parsed
    if argv[0] == "list":
        for q in queue_of(only):
            print(f"{q['name']:<24}{q['split']:<9}{q['charge']:>8.0f} MiB  "
                  f"{json.dumps(q['native']['model'])}")
        print(f"{len(queue_of(only))} configurations")
        return 0
    if len(argv) < 2:
        print("aitk_matrix: run needs an output folder", file=sys.stderr)
        return 2
    return run(Path(argv[1]), only, int(opt("--per-gpu", "3")), float(opt("--offset", "0")),
               float(opt("--deadline", "480")), opt("--synth-dir", "/tmp/synth-aitk-flux"))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
