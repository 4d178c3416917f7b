"""The musubi-tuner Qwen-Image plan (tests/gpu/musubi_matrix.py), on the CPU: it covers the VRAM
model's terms, every configuration builds for musubi with its conditions in the build, the
scheduler keeps its budgets and deadline and waits for a set still being written, the plan's
timeline (each run its expected seconds) starts six Qwen-Image runs or more, and a record merges
into the measurements file and reads back into lorac's musubi model. musubi's own argparse reads
each build in tests/trainer/test_musubi_matrix_trainer.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tomllib

from tests.conftest import lorac
from tests.vm_standins import load_script, merge_records, plan_job

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "gpu"))
mm = load_script("tests/gpu/musubi_matrix.py", "musubi_matrix")

QWEN = [p[0] for p in mm.PLAN if p[1] == "qwen-image"]


def test_the_plan_covers_the_models_terms() -> None:
    assert len(QWEN) >= 8 and len({p[0] for p in mm.PLAN}) == len(mm.PLAN)
    jobs = [j for j in mm.queue_of(set()) if j["family"] == "qwen-image"]
    conds = [j["cond"] for j in jobs]
    for key, values in (("fp8_base", {True, False}), ("fp8_vl", {True, False}),
                        ("blocks_to_swap", {0, 30, 40}), ("network_dim", {16, 32, 64}),
                        ("batch_size", {1, 2}), ("gradient_checkpointing", {True, False}),
                        ("optimizer_type", {"adamw", "adafactor"})):
        assert {c[key] for c in conds} == values, key
    assert {c["resolution"][0] for c in conds} == {512, 768, 1024}
    # musubi refuses to scale float8 weights: the plan never asks it to
    assert not any(c["fp8_scaled"] for c in conds)
    assert {j["split"] for j in jobs} == {"fit", "holdout"}
    assert sum(j["split"] == "holdout" for j in jobs) == 4
    # the first runs cover the bf16 DiT, the float8 one, block swap and the float8 encoder
    first = conds[:3]
    assert {c["fp8_base"] for c in first} == {True, False}
    assert any(c["blocks_to_swap"] for c in first) and any(c["fp8_vl"] for c in first)


def _built(tmp_path: Path, job: dict) -> tuple[Path, dict, dict]:
    profile = mm.write_profile(tmp_path, job, ROOT / "examples" / "subject",
                               tmp_path / f"cache-{job['name']}")
    out = tmp_path / job["name"]
    code, _, err = lorac("build", str(profile), "-o", str(out))
    assert code == 0, err
    # musubi reads the config's sections as one namespace (read_config_from_file)
    config = {k: v for table in tomllib.loads((out / "config.toml").read_text(
        encoding="utf-8")).values() for k, v in table.items()}
    dataset = tomllib.loads((out / "dataset.toml").read_text(encoding="utf-8"))
    return out, config, dataset


@pytest.mark.parametrize("name", [p[0] for p in mm.PLAN])
def test_each_configuration_builds_with_its_conditions(tmp_path: Path, name: str) -> None:
    (job,) = mm.queue_of({name})
    out, config, dataset = _built(tmp_path, job)
    cond = job["cond"]
    for key in ("network_dim", "optimizer_type", "gradient_checkpointing", "fp8_base",
                "blocks_to_swap", "mixed_precision", "sdpa"):
        assert config.get(key, {"blocks_to_swap": 0}.get(key)) == cond[key], key
    assert config["network_alpha"] == cond["network_alpha"]
    assert "max_train_epochs" not in config and "save_every_n_epochs" not in config
    assert not any(k.startswith("sample_") for k in config)
    assert dataset["general"]["resolution"] == cond["resolution"]
    assert dataset["general"]["batch_size"] == cond["batch_size"]
    (ds,) = dataset["datasets"]
    assert ds["cache_directory"] == str(tmp_path / f"cache-{name}")
    assert ds["image_directory"] == str(ROOT / "examples" / "subject")
    script = (out / "train.sh").read_text(encoding="utf-8")
    if job["family"] == "qwen-image":
        assert config["network_module"] == "networks.lora_qwen_image"
        assert config.get("fp8_scaled", False) is False
        assert config.get("fp8_vl", False) is cond["fp8_vl"]
        # the text-encoder caching step loads Qwen2.5-VL as training does
        assert ("--fp8_vl" in script) is cond["fp8_vl"]
        assert "qwen_image_cache_latents.py" in script
    else:
        assert config["network_module"] == "networks.lora_wan"
        assert config.get("fp8_t5", False) is cond["fp8_t5"]
    # the record's conditions read back into the model as the build says
    run = mm.mvram.run_from_record({"conditions": cond, "family": job["family"], "gpus": 1})
    assert run.rank == cond["network_dim"] and run.batch_size == cond["batch_size"]
    assert (run.width, run.height) == tuple(cond["resolution"])
    assert run.dit_bytes == (1.0 if cond["fp8_base"] else 2.0)
    assert run.blocks_to_swap == cond["blocks_to_swap"]
    assert run.te_bytes == (1.0 if cond.get("fp8_vl") or cond.get("fp8_t5") else 2.0)


def test_the_scheduler_runs_with_this_plans_budgets() -> None:
    """The plan's ``schedule_step`` is ``vram_matrix.schedule_step`` (tested in
    test_vram_matrix.py) with this plan's budgets, each run's own expected seconds and the
    families whose synthetic set is ready."""

    queue = [plan_job("big", 50_000, 10_000, 100.0), plan_job("a", 28_000, 10_000, 100.0),
             plan_job("b", 30_000, 10_000, 100.0)]
    start, dropped = mm.schedule_step(queue, [], 0.0, 450.0, 4)
    # 50 + 28 GB fit 79 GB; 30 GB more does not
    assert [j["name"] for j in start] == ["big", "a"] and not dropped
    assert sum(j["charge"] for j in start) <= mm.GPU_BUDGET_MIB
    # the host budget: a bf16 DiT swapped to the host (~49 GB) beside float8 ones (~29 GB)
    swaps = [plan_job(f"s{i}", 5_000, 29_484, 100.0) for i in range(4)]
    start3, _ = mm.schedule_step(swaps, [plan_job("bf16", 5_000, 48_968)], 0.0, 450.0, 9)
    assert len(start3) == 2 and mm.HOST_BUDGET_MIB >= 48_968 + 29_484 * 2
    # each run's own seconds against the deadline, and the ready families
    late = [plan_job("long", 1, 1, 200.0), plan_job("short", 1, 1, 90.0)]
    start5, dropped5 = mm.schedule_step(late, [], 350.0, 450.0, 3)
    assert [j["name"] for j in start5] == ["short"] and dropped5 == ["long"]
    wait = [plan_job("wan", 1, 1, 100.0, "wan2.1-t2v-1.3b"), plan_job("qwen", 1, 1, 100.0)]
    start6, _ = mm.schedule_step(wait, [], 0.0, 450.0, 3, ready={"qwen-image"})
    assert [j["name"] for j in start6] == ["qwen"] and [j["name"] for j in wait] == ["wan"]


def test_the_timeline_starts_six_qwen_image_runs() -> None:
    """With each run taking its expected seconds (shared-GPU figures), 400 s of plan (the
    call's ~520 s less ~120 s of setup and synthetic set) start six Qwen-Image runs or more,
    both splits among them, and a deadline of 0 none."""
    queue = mm.queue_of(set(), wan=False)
    timeline = mm.simulate(queue, 400.0, 4)
    assert len(timeline) >= 6
    by_name = {j["name"]: j for j in queue}
    assert {by_name[n]["split"] for n, _, _ in timeline} == {"fit", "holdout"}
    assert all(end <= 400.0 for _, _, end in timeline)
    # never over the budgets at any start
    for name, t0, _ in timeline:
        live = [by_name[n] for n, a, b in timeline if a <= t0 < b]
        assert sum(j["charge"] for j in live) <= mm.GPU_BUDGET_MIB, name
        assert sum(j["host"] for j in live) <= mm.HOST_BUDGET_MIB, name
    assert mm.simulate(queue, 0.0, 4) == []


def _manifest() -> dict:
    return {"status": "succeeded", "exit_code": 0,
            "progress": {"step": 10, "total": 10, "sec_per_it": 2.1},
            "versions": {"torch": "2.11.0+cu130"},
            "telemetry": {"driver_version": "580.1", "host_rss_peak_mib": 31000.0,
                          "host_rss_api": "Pss",
                          "gpus": [{"name": "NVIDIA H100 80GB HBM3",
                                    "memory_total_mib": 81559}],
                          "phases": {
                              "cache_latents": {"0": {"memory_used_mib": 40000.0,
                                                      "process_memory_mib": 3100.0}},
                              "cache_text_encoder": {"0": {"memory_used_mib": 52000.0,
                                                           "process_memory_mib": 17200.0}},
                              "prepare": {"0": {"memory_used_mib": 60000.0,
                                                "process_memory_mib": 21000.0}},
                              "train": {"0": {"memory_used_mib": 70000.0,
                                              "process_memory_mib": 27500.0}}}}}


def test_a_record_merges_and_reads_back(tmp_path: Path) -> None:
    (job,) = mm.queue_of({"fp8vl-swap30-r16-768"})
    job.update(pids={4242}, t0=1000.0, t1=1150.0)
    (tmp_path / "smi-apps.csv").write_text("")
    rec = mm.record(job, _manifest(), 8.8, tmp_path, shared=True)
    # shared: the trainer's own memory plus the offset, every phase
    assert rec["phases_mib"] == {"cache_latents": 3108.8, "cache_text_encoder": 17208.8,
                                 "prepare": 21008.8, "train": 27508.8}
    assert rec["device_phases_mib"]["train"] == 70000.0
    assert rec["peak_mib"] == 27508.8 and rec["weight"] == "full" and rec["gpu_shared"]
    assert rec["id"] == "musubi-qwen-fp8vl-swap30-r16-768" and rec["split"] == "fit"
    assert rec["trainer"] == "musubi-tuner" and rec["family"] == "qwen-image"
    assert rec["conditions"]["blocks_to_swap"] == 30 and rec["conditions"]["fp8_vl"] is True
    assert rec["host_rss_peak_mib"] == 31000.0 and rec["sec_per_batch"] == 2.1
    alone = mm.record(job, _manifest(), 8.8, tmp_path, shared=False)
    assert alone["phases_mib"]["train"] == 70000.0  # alone: the device's figure
    committed = ROOT / "backends/musubi/vram_measurements.json"
    before = {r["id"] for r in json.loads(committed.read_text())["records"]}
    merged = merge_records([rec], committed, tmp_path)
    assert set(merged) == before | {rec["id"]}  # a record of the same id is replaced
    got = merged[rec["id"]]
    assert got["phases_mib"] == {"train": 27508.8}  # shared: train only, as the other plans
    assert got["process_phases_mib"]["cache_text_encoder"] == 17200.0
    run = mm.mvram.run_from_record(got)
    assert run.family == "qwen-image" and run.blocks_to_swap == 30 and run.te_bytes == 1.0
    assert (run.width, run.height, run.rank) == (768, 768, 16)
    assert mm.mvram.estimate(run).peak_mib > 0


def test_the_qwen_image_records_fit_their_own_constants(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Merged fit records of the plan give ``--write`` a ``qwen-image`` architecture beside
    ``wan``, with an interval for the family."""
    from lorac.trainers.musubi import vram as mvram

    bench = load_script("bench/vram_accuracy.py", "vram_accuracy")
    from lorac.trainers.ai_toolkit import vram as avram

    recs = [r for r in mvram.load_measurements() if r["family"] != "qwen-image"]
    tmp_path.joinpath("smi-apps.csv").write_text("")
    for job in mm.queue_of(set(), wan=False):
        job.update(pids={1}, t0=0.0, t1=100.0)
        pred = mvram.estimate(mvram.run_from_record({"conditions": job["cond"], "gpus": 1,
                                                     "family": "qwen-image"}))
        manifest = _manifest()
        for phase, per in manifest["telemetry"]["phases"].items():
            per["0"]["memory_used_mib"] = round(pred.phases[phase] * 1.07, 1)
        recs.append(mm.record(job, manifest, 0.0, tmp_path, shared=False))
    monkeypatch.setattr(mvram, "load_measurements", lambda: recs)
    monkeypatch.setattr(mvram, "backends_file", lambda name: tmp_path / name)
    monkeypatch.setattr(avram, "backends_file", lambda name: tmp_path / "ai-toolkit" / name)
    bench.generic_sections([], write=True)
    wrote = json.loads((tmp_path / "vram_model.json").read_text())["architectures"]
    assert set(wrote) == {"wan", "qwen-image"}
    assert "qwen-image" in wrote["qwen-image"]["intervals"]
    assert len(wrote["qwen-image"]["fitted_on"]) == sum(p[3] == "fit" for p in mm.PLAN
                                                        if p[1] == "qwen-image")
