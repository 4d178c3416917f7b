"""The musubi-tuner Qwen-Image plan: configurations of the example profile
``profiles/examples/musubi/qwen-image.toml`` that vary what the VRAM model's terms depend on
(float8 or bf16 DiT, ``blocks_to_swap``, rank, resolution, batch size, gradient checkpointing,
optimizer, float8 text encoder), run concurrently on one GPU within GPU and host budgets (as
tests/gpu/aitk_matrix.py's FLUX.1 plan), one JSON record per finished run appended to
``OUT/records.jsonl`` in the format of backends/musubi/vram_measurements.json.

    python3 tests/gpu/musubi_matrix.py list
    python3 tests/gpu/musubi_matrix.py profiles DIR [--synth-dir D] [--data D]
    python3 tests/gpu/musubi_matrix.py run OUT [--deadline 450] [--per-gpu 4] [--offset 0]
        [--only a,b] [--synth-dir /tmp/synth-qwen] [--wan-synth-dir /tmp/synth-wan]

Every run is ``lorac run PROFILE --synthetic --max-steps STEPS``: its three musubi processes
(latent caching, text-encoder caching, training), each phase's peak in the manifest, STEPS
steps, no sampling, one save at the end (the LoRA file is deleted once recorded). The synthetic
set (``lorac synth qwen-image``, 29 GB: the DiT and Qwen2.5-VL in float8, which musubi casts to
bf16 on read unless ``fp8_base`` / ``fp8_vl``) is written before. ``fp8_scaled`` is left out:
musubi refuses to scale weights that are float8 already (a bf16 DiT file, 41 GB more, would
measure it). The Wan 2.1 1.3B configurations (``wan-*``) run only with ``--wan-synth-dir``.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vram_matrix as vm

from lorac.trainers.musubi import vram as mvram

ROOT = vm.ROOT
COMMIT = "30c658c4f4b0bf05038b3346eff9670259b10fc7"
STEPS = 10
EXAMPLES = ROOT / "profiles" / "examples" / "musubi"
SCRIPTS = {"qwen-image": "qwen_image_cache_latents.py, qwen_image_cache_text_encoder_outputs.py, "
                         "qwen_image_train_network.py",
           "wan2.1-t2v-1.3b": "wan_cache_latents.py, wan_cache_text_encoder_outputs.py, "
                              "wan_train_network.py"}
EXAMPLE = {"qwen-image": "qwen-image.toml", "wan2.1-t2v-1.3b": "wan2.1-t2v-1.3b.toml"}

#: The example's options as every run has them (torch's AdamW: the machine has no
#: bitsandbytes; no fp8_scaled, see the module docstring).
BASE_COND = {"network_dim": 32, "network_alpha": 16, "optimizer_type": "adamw",
             "learning_rate": 1e-4, "mixed_precision": "bf16", "sdpa": True,
             "gradient_checkpointing": True, "timestep_sampling": "shift",
             "discrete_flow_shift": 3.0, "fp8_base": True, "fp8_scaled": False, "fp8_vl": False,
             "blocks_to_swap": 0, "resolution": [1024, 1024], "batch_size": 1,
             "num_repeats": 1, "max_train_steps": STEPS, "frames": 1}
WAN_COND = {**BASE_COND, "fp8_base": False, "fp8_t5": False, "resolution": [832, 480],
            "task": "t2v-1.3B"}
WAN_COND.pop("fp8_vl")

#: name, family, option changes, split; in the order they start: the reference and each path
#: the model treats apart first (float8 / bf16 DiT, block swap, float8 text encoder), fit and
#: held-back runs mixed, so that a deadline that cuts the tail leaves both; a run that does not
#: fit the budgets beside those running waits while later ones that do fit start.
PLAN: list[tuple[str, str, dict, str]] = [
    ("bf16-r16-512", "qwen-image", {"fp8_base": False, "network_dim": 16, "network_alpha": 16,
                                    "resolution": [512, 512]}, "fit"),
    ("fp8-r16-1024", "qwen-image", {"network_dim": 16, "network_alpha": 16}, "fit"),
    ("fp8vl-swap30-r16-768", "qwen-image", {"fp8_vl": True, "blocks_to_swap": 30,
                                            "network_dim": 16, "network_alpha": 16,
                                            "resolution": [768, 768]}, "fit"),
    ("fp8-r64-768", "qwen-image", {"network_dim": 64, "network_alpha": 32,
                                   "resolution": [768, 768]}, "fit"),
    ("fp8vl-r32-512", "qwen-image", {"fp8_vl": True, "resolution": [512, 512]}, "fit"),
    ("fp8-adafactor-r32-768", "qwen-image", {"optimizer_type": "adafactor",
                                             "resolution": [768, 768]}, "holdout"),
    ("fp8-r16-1024-b2", "qwen-image", {"network_dim": 16, "network_alpha": 16,
                                       "batch_size": 2}, "holdout"),
    ("bf16-swap30-r32-1024", "qwen-image", {"fp8_base": False, "blocks_to_swap": 30},
     "holdout"),
    ("fp8-nogc-r16-512", "qwen-image", {"gradient_checkpointing": False, "network_dim": 16,
                                        "network_alpha": 16, "resolution": [512, 512]}, "fit"),
    ("fp8vl-swap40-r32-1024", "qwen-image", {"blocks_to_swap": 40, "fp8_vl": True},
     "holdout"),
    ("wan-r64-832", "wan2.1-t2v-1.3b", {"network_dim": 64, "network_alpha": 32}, "fit"),
    ("wan-fp8-r16-512-b2", "wan2.1-t2v-1.3b", {"fp8_base": True, "fp8_t5": True,
                                               "network_dim": 16, "network_alpha": 16,
                                               "resolution": [512, 512], "batch_size": 2},
     "holdout"),
]

#: Profile sections of the options the plan changes.
SECTION = {"network_dim": "network", "network_alpha": "network", "optimizer_type": "optimizer",
           "learning_rate": "optimizer", "resolution": "dataset", "batch_size": "dataset"}

#: Expected wall seconds of a run beside others: three interpreters (~10 s each), caching the
#: 16 example images and captions (Qwen2.5-VL: 8.3 GB read from the page cache, cast to bf16:
#: ~20 s), the DiT read (20 GB from the page cache: ~20 s; to the host first with block swap:
#: 10 s more), STEPS steps (an H100 alone: ~2.5 s per 1024-px batch of Qwen-Image, ~0.6 s of
#: Wan 1.3B at 832x480; ~1 s more per step with block swap), one save; shared, 1.3 times.
LOAD_S = {"qwen-image": 80.0, "wan2.1-t2v-1.3b": 60.0}
STEP_S_1024 = {"qwen-image": 2.5, "wan2.1-t2v-1.3b": 0.6}
SHARED = 1.3
#: Host memory charged per run (MiB): the interpreters, the dataset and the CUDA context; with
#: block swap the DiT is read to the host first (trainer_base.py:1498) and its swapped blocks
#: stay there: the whole DiT in its training dtype.
HOST_BASE_MIB = 10_000.0
HOST_BUDGET_MIB = 110_000.0
GPU_BUDGET_MIB = 79_000.0
#: The Qwen-Image constants are a first-principles estimate: charge 8 % more, + 1 GB.
MARGIN = 1.08


def conditions(family: str, changes: dict) -> dict:
    return {**(BASE_COND if family == "qwen-image" else WAN_COND), **changes}


def _record_stub(family: str, cond: dict) -> dict:
    return {"conditions": cond, "family": family, "gpus": 1}


def charge(family: str, cond: dict) -> float:
    """GPU MiB a run is assumed to take while scheduling: the model's peak with MARGIN, +1 GB."""
    return mvram.estimate(mvram.run_from_record(_record_stub(family, cond))).peak_mib * MARGIN \
        + 1000


def host_charge(family: str, cond: dict) -> float:
    if not cond.get("blocks_to_swap"):
        return HOST_BASE_MIB
    from lorac.trainers.musubi.synth import component_shapes

    params = sum(_numel(s) for s in component_shapes(family)["dit"].values())
    return HOST_BASE_MIB + params * (1 if cond.get("fp8_base") else 2) / 2**20


def expected_s(family: str, cond: dict) -> float:
    w, h = cond["resolution"]
    step = STEP_S_1024[family] * cond["batch_size"] * (w * h / 1024**2) ** 1.2
    if cond.get("blocks_to_swap"):
        step += 1.0
    load = LOAD_S[family] + (10.0 if cond.get("blocks_to_swap") else 0.0)
    return round(SHARED * (load + STEPS * step), 1)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def profile_text(name: str, family: str, cond: dict, data_dir: str, cache_dir: str) -> str:
    """The family's example profile with the run's changes: its dataset (``data_dir``, one
    repeat, the run's own cache folder), no epoch count and no epoch saves (``--max-steps``
    decides; musubi saves once at the end), no sampling."""
    import tomlkit

    text = "\n".join(line for line in (EXAMPLES / EXAMPLE[family]).read_text(
        encoding="utf-8").splitlines() if not line.startswith("#:schema"))
    doc = tomlkit.parse(text)
    doc["profile"]["description"] = f"musubi plan: {name}"
    doc["vars"]["data_dir"] = data_dir
    doc["training"].pop("max_train_epochs", None)
    doc["saving"].pop("save_every_n_epochs", None)
    doc["saving"]["output_name"] = f"mm_{name.replace('-', '_')}"
    for key, value in cond.items():
        if key in ("num_repeats", "frames", "max_train_steps", "task", "learning_rate"):
            continue
        section = SECTION.get(key, "training")
        if key == "fp8_vl" and family != "qwen-image":
            continue
        doc.setdefault(section, tomlkit.table())[key] = value
    doc["optimizer"]["learning_rate"] = cond["learning_rate"]
    (ds,) = doc["dataset"]["datasets"]
    ds["cache_directory"] = cache_dir
    ds["num_repeats"] = cond["num_repeats"]
    return tomlkit.dumps(doc)


def record(job: dict, manifest: dict, offset: float, out: Path, shared: bool) -> dict:
    """A record in the format of backends/musubi/vram_measurements.json, with the per-process
    and device figures of a shared GPU (as tests/gpu/aitk_matrix.py's)."""
    f = vm.run_figures(job, manifest, offset, out, shared, device_when_alone=True)
    ok = f.pop("ok")
    f.pop("other_phases_mib")
    fam = job["family"]
    head = {
        "id": f"musubi-{'qwen' if fam == 'qwen-image' else 'wan13'}-{job['name']}", "gpus": 1,
        "split": job["split"], "weight": "full" if ok else "failed",
        "trainer": "musubi-tuner", "trainer_commit": COMMIT, "family": fam,
        "script": SCRIPTS[fam],
        "memory_api": "per phase: NVML per-process used memory of the trainer's process tree "
                      "plus offset_mib (the device's used memory when alone on the GPU); "
                      "peak_mib: nvidia-smi's 100 ms samples of the same",
        "weights": f"synthetic (lorac synth {fam}): real shapes, random values"
                   + ("; DiT and Qwen2.5-VL stored in float8 e4m3fn, cast to bf16 on read "
                      "unless fp8_base / fp8_vl" if fam == "qwen-image" else ""),
        "date": time.strftime("%Y-%m-%d", time.gmtime()), "gpu_shared": shared,
        "source": f"tests/gpu/musubi_matrix.py run ({job['name']})",
        "conditions": {**job["cond"], "dataset": "image_directory (examples/subject, 16 "
                                                  "images)"}}
    return {**head, **f, "charged_mib": round(job["charge"]),
            "charged_host_mib": round(job["host"]), "expected_s": job["expected"],
            "plan": "h100", "plan_name": "musubi"}


def queue_of(only: set[str], wan: bool = True) -> list[dict]:
    q = []
    for name, family, changes, split in PLAN:
        if (only and name not in only) or (family != "qwen-image" and not wan):
            continue
        cond = conditions(family, changes)
        q.append({"name": name, "family": family, "cond": cond, "split": split,
                  "charge": charge(family, cond), "host": host_charge(family, cond),
                  "expected": expected_s(family, cond)})
    return q


def schedule_step(queue: list[dict], running: list[dict], elapsed: float, deadline: float,
                  per_gpu: int, ready: set[str] | None = None) -> tuple[list[dict], list[str]]:
    """The jobs to start now (taken off ``queue``) and the names dropped for the deadline
    (:func:`vram_matrix.schedule_step` with this plan's budgets): a job starts when it would
    end (``expected``) before the deadline, fits the budgets beside those running and its
    family's synthetic set is ready (``ready``: the families whose set is complete; None:
    all)."""
    return vm.schedule_step(queue, running, elapsed, deadline, per_gpu, GPU_BUDGET_MIB,
                            HOST_BUDGET_MIB, ready)


def simulate(queue: list[dict], deadline: float, per_gpu: int) -> list[tuple[str, float, float]]:
    """``(name, start, end)`` of the runs :func:`schedule_step` would start, were each to take
    its ``expected`` seconds (the plan's timeline in ``list``)."""
    queue = [dict(q) for q in queue]
    running: list[dict] = []
    done: list[tuple[str, float, float]] = []
    now = 0.0
    while queue or running:
        start, _ = schedule_step(queue, running, now, deadline, per_gpu)
        for q in start:
            q["t_end"] = now + q["expected"]
            running.append(q)
            done.append((q["name"], now, q["t_end"]))
        if not running:
            break
        now = min(r["t_end"] for r in running)
        running = [r for r in running if r["t_end"] > now]
    return done


def _marker(folder: str) -> str:
    try:
        return (Path(folder) / "lorac-synth.json").read_text(encoding="utf-8")
    except OSError:
        return ""


def write_profile(folder: Path, q: dict, data: Path, cache: Path) -> Path:
    path = folder / f"mm-{q['name']}.toml"
    path.write_text(profile_text(q["name"], q["family"], q["cond"], str(data), str(cache)),
                    encoding="utf-8")
    return path


def run(out: Path, only: set[str], per_gpu: int, offset: float, deadline: float,
        synth: dict[str, str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    loggers = vm.start_loggers(out)  # none without nvidia-smi (a CPU try of the plumbing)
    queue = queue_of(only, wan="wan2.1-t2v-1.3b" in synth)
    running: list[dict] = []
    shared: dict[str, bool] = {}
    (out / "profiles").mkdir(exist_ok=True)
    data = ROOT / "examples" / "subject"
    while queue or running:
        elapsed = time.monotonic() - t0
        # a set may still be being written (tests/gpu/musubi_proof.sh writes Wan's beside)
        ready = {f for f, d in synth.items() if '"complete": true' in _marker(d)}
        start, dropped = schedule_step(queue, running, elapsed, deadline, per_gpu, ready)
        for name in dropped:
            print(f"[{elapsed:6.0f} s] skip {name}: would end after the deadline", flush=True)
        for q in start:
            name = q["name"]
            profile = write_profile(out / "profiles", q, data, out / f"cache-{name}")
            vm.start_run(q, [str(profile), "--synthetic", "--synth-dir", synth[q["family"]],
                             "--max-steps", str(STEPS)], out,
                         {**os.environ, "LORAC_NO_CACHE": "1"}, running, shared)
            print(f"[{elapsed:6.0f} s] start {name} ({q['charge']:.0f} MiB, {q['host']:.0f} "
                  f"MiB host charged, ~{q['expected']:.0f} s, {len(running)} running)",
                  flush=True)
            time.sleep(5)  # stagger the weight loading
        time.sleep(1)
        for r in vm.ended(running):
            rec = vm.finish_job(r, out, lambda m, r=r: record(r, m, offset, out,
                                                              shared[r["name"]]))
            for f in r["runs"].rglob("*.safetensors"):
                f.unlink()  # keep logs and manifests only
            shutil.rmtree(out / f"cache-{r['name']}", ignore_errors=True)
            if rec is None:
                continue
            print(f"[{time.monotonic() - t0:6.0f} s] {r['name']}: {rec['status']} shared="
                  f"{rec['gpu_shared']} peak {rec['peak_mib']} phases {rec['phases_mib']} "
                  f"s/batch {rec['sec_per_batch']} host {rec['host_rss_peak_mib']} "
                  f"wall {rec['wall_s']} s", flush=True)
    for p in loggers:
        p.terminate()
    print(f"DONE in {time.monotonic() - t0:.0f} s", flush=True)
    return 0


def main(argv: list[str]) -> int:
    parsed = vm.plan_arguments(argv, ("list", "run", "profiles"), (p[0] for p in PLAN),
                               "musubi_matrix", __doc__)
    if parsed is None:
        return 2
    opt, only = parsed
    if argv[0] == "list":  # with --deadline D: the timeline were each run to take its expected s
        queue = queue_of(only, wan="--wan-synth-dir" in argv)
        timeline = {n: (a, b) for n, a, b in simulate(queue, float(opt("--deadline", "450")),
                                                    int(opt("--per-gpu", "4")))}
        for q in queue:
            a, b = timeline.get(q["name"], (None, None))
            when = f"{a:>5.0f}-{b:>4.0f} s" if a is not None else "  not started"
            print(f"{q['name']:<24}{q['split']:<9}{q['charge']:>7.0f} MiB{q['host']:>7.0f} MiB "
                  f"host ~{q['expected']:>4.0f} s {when}")
        print(f"{len(queue)} configurations, {len(timeline)} started before the deadline")
        return 0
    if len(argv) < 2:
        print(f"musubi_matrix: {argv[0]} needs a folder", file=sys.stderr)
        return 2
    if argv[0] == "profiles":  # the profiles a run would use, for checking them elsewhere
        folder = Path(argv[1])
        folder.mkdir(parents=True, exist_ok=True)
        data = Path(opt("--data", str(ROOT / "examples" / "subject")))
        for q in queue_of(only):
            print(write_profile(folder, q, data, folder / f"cache-{q['name']}"))
        return 0
    synth = {"qwen-image": opt("--synth-dir", "/tmp/synth-qwen")}
    if "--wan-synth-dir" in argv:
        synth["wan2.1-t2v-1.3b"] = opt("--wan-synth-dir", "")
    return run(Path(argv[1]), only, int(opt("--per-gpu", "4")), float(opt("--offset", "0")),
               float(opt("--deadline", "450")), synth)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
