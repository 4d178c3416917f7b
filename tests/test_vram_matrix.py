"""The H100 measurement plan of tests/gpu/vram_matrix.py, on the CPU: the configurations it
generates build for sd-scripts with every condition in place, the models read the records'
conditions back as meant, and the parsers of nvidia-smi and the progress bar read their logs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from tests.vm_standins import (
    built_plan_profile,
    load_script,
    merge_records,
    plan_job,
    stand_in_run,
)

ROOT = Path(__file__).resolve().parent.parent
vm = load_script("tests/gpu/vram_matrix.py", "vram_matrix")


def test_the_plan_has_sixteen_core_points_and_covers_the_grid() -> None:
    core = vm.H100_PLAN[:vm.H100_CORE]
    assert len(core) >= 16 and len({n for n, *_ in vm.H100_PLAN}) == len(vm.H100_PLAN)
    sdxl = [vm.plan_conditions(f, c) for _, f, c, _ in core if f == "sdxl"]
    for key, values in (("resolution", {512, 1024}), ("network_dim", {16, 128}),
                        ("batch_size", {1, 4}), ("gradient_checkpointing", {True, False}),
                        ("optimizer_type", {"AdamW", "AdamW8bit"}), ("fp8_base", {True, False})):
        assert {c[key] for c in sdxl} == values, key
    names = {n for n, *_ in core}
    assert {"h100-nogc-r512-unet-adamw", "h100-nogc-r512"} <= names
    assert {s for *_, s in vm.H100_PLAN} == {"fit", "holdout", "check"}


@pytest.mark.parametrize("entry", vm.H100_PLAN, ids=[e[0] for e in vm.H100_PLAN])
def test_each_point_builds_with_its_conditions(entry, project: Path) -> None:
    name, fam, changes, _ = entry
    cond = vm.plan_conditions(fam, changes)
    prof = project / "profiles"
    prof.mkdir()
    if fam == "sdxl":
        text = vm.sdxl_profile_text(name, cond, "/m/sdxl.safetensors", "/m/tok", "data/x", 8)
    else:
        for base in ("base.toml", "fast.toml"):
            shutil.copy(ROOT / "profiles" / base, prof / base)
        text = vm.profile_text(name, cond)
    (prof / f"vm-{name}.toml").write_text(text)
    built, cfg, ds = built_plan_profile(project, name)
    for key in ("network_dim", "optimizer_type", "gradient_checkpointing", "fp8_base",
                "network_train_unet_only"):
        if key in cond:
            assert f"{key} = {json.dumps(cond[key])}" in cfg, key
    assert f"resolution = {cond['resolution']}" in ds
    assert f"batch_size = {cond['batch_size']}" in ds
    if fam == "sdxl":
        assert "sdxl_train_network.py" in (built / "train.sh").read_text()
        assert 'tokenizer_cache_dir = "/m/tok"' in cfg and "max_train_steps = 8" in cfg


def test_the_models_read_the_conditions_back() -> None:
    from lorac.trainers.kohya import vram, vram_families

    for name, fam, changes, _ in vm.H100_PLAN:
        cond = vm.plan_conditions(fam, changes)
        rec = {"conditions": cond, "family": fam, "gpus": 1}
        if fam == "sdxl":
            run = vram_families.run_from_record(rec)
            assert run.rank == cond["network_dim"] and run.batch_size == cond["batch_size"]
            assert run.gradient_checkpointing == cond["gradient_checkpointing"]
            assert (run.dit_bytes == 1.0) == cond["fp8_base"]
            assert run.train_te == (not cond["network_train_unet_only"])
        else:
            cfg = vram.record_config(rec)
            assert cfg.rank == cond["network_dim"] and cfg.width == cond["resolution"], name
            assert cfg.train_clip_l == (not cond["network_train_unet_only"])
        assert vm.h100_charge(fam, cond) > 5000


def test_step_times_from_the_progress_bar() -> None:
    log = ("steps:  12%|█▎        | 1/8 [00:02<00:14,  2.00s/it, avr_loss=0.1]\r"
           "steps:  25%|██▌       | 2/8 [00:02<00:08,  1.25s/it, avr_loss=0.1]\r"
           "steps: 100%|██████████| 8/8 [00:06<00:00,  1.30it/s, avr_loss=0.1]\n")
    first, steady, seen = vm.step_times(log)
    assert first == 2.0 and seen == 8
    assert steady == pytest.approx((8 / 1.30 - 2.0) / 7)
    assert vm.step_times("no bar") == (None, None, 0)


def test_nvidia_smi_logs(tmp_path: Path) -> None:
    t = dt.datetime(2026, 12, 6, 9, 0, 0)
    stamp = [(t + dt.timedelta(milliseconds=100 * i)).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]
             for i in range(3)]
    (tmp_path / "smi-apps.csv").write_text(
        f"{stamp[0]}, 11, 1000\n{stamp[0]}, 12, 500\n{stamp[0]}, 99, 9000\n"
        f"{stamp[1]}, 11, 3000\n{stamp[1]}, 12, 600\n{stamp[2]}, 11, [N/A]\n")
    (tmp_path / "smi-gpu.csv").write_text(f"{stamp[0]}, 10600, 40\n{stamp[1]}, 12700, 90\n")
    start, end = t.timestamp() - 1, t.timestamp() + 1
    got = vm.smi_peaks(tmp_path, {11, 12}, start, end)
    assert got == {"process": 3600.0, "device": 12700.0}
    day = dt.date.today()
    (tmp_path / "pmon.txt").write_text(
        "#Time        gpu         pid   type     sm    mem\n"
        "09:00:00       0          11     C     60     10\n"
        "09:00:00       0          12     C     20      5\n"
        "09:00:01       0          11     C     40     10\n"
        "09:00:01       0          77     C     99     10\n")
    t0 = dt.datetime.combine(day, dt.time(9, 0, 0)).timestamp()
    assert vm.pmon_busy(tmp_path, {11, 12}, t0 - 1, t0 + 2) == pytest.approx(0.6)


def test_a_record_carries_every_condition_and_figure(tmp_path: Path) -> None:
    name, fam, changes, split = vm.H100_PLAN[4]
    cond = vm.plan_conditions(fam, changes)
    runs = tmp_path / f"runs-{name}"
    (runs / "r1").mkdir(parents=True)
    (runs / "r1" / "train.log").write_text(
        "steps: 100%|██████████| 8/8 [00:06<00:00,  1.30it/s]\n")
    (tmp_path / f"{name}.log").write_text("")
    manifest = {"status": "succeeded", "progress": {"sec_per_it": 0.8},
                "versions": {"torch": "2.11"},
                "telemetry": {"driver_version": "580", "memory_api": "v2",
                              "gpus": [{"name": "NVIDIA H100 80GB HBM3",
                                        "memory_total_mib": 81559}],
                              "host_rss_mib": {"train": 9000.0}, "host_rss_peak_mib": 9000.0,
                              "phases": {"train": {"0": {"memory_used_mib": 30000.0,
                                                         "process_memory_mib": 9000.0}}}}}
    job = {"name": name, "family": fam, "cond": cond, "split": split, "steps": 8,
           "pids": {1}, "t0": 0.0, "t1": 1.0, "log_path": tmp_path / f"{name}.log",
           "runs": runs}
    rec = vm.h100_record(job, manifest, 8.8, tmp_path, True)
    assert rec["family"] == "sdxl" and rec["script"] == "sdxl_train_network.py"
    assert rec["conditions"]["network_dim"] == cond["network_dim"] and rec["split"] == split
    assert rec["phases_mib"] == {"train": 9008.8} and rec["host_rss_peak_mib"] == 9000.0
    assert rec["sec_per_step"] and rec["gpu_shared"] is True and rec["plan"] == "h100"
    assert rec["trainer_commit"] and rec["gpu"] == "NVIDIA H100 80GB HBM3"


def test_records_merge_and_fit_their_family(tmp_path: Path) -> None:
    """bench/vram_accuracy.py --merge adds the plan's records; an SDXL record then calibrates
    kohya/sdxl (its interval is no longer the first-principles one)."""
    mod = load_script("bench/vram_accuracy.py", "vram_accuracy")
    base = json.loads((ROOT / "backends/kohya/vram_measurements.json").read_text())
    base["records"] = [r for r in base["records"] if r.get("family") != "sdxl"]
    recs = []
    for i, (name, fam, changes, _) in enumerate(vm.H100_PLAN[4:8]):
        cond = vm.plan_conditions(fam, changes)
        recs.append({"id": name, "family": fam, "split": "fit", "weight": "full", "gpus": 1,
                     "conditions": cond, "phases_mib": {"train": 9000.0 + 500 * i},
                     "process_phases_mib": {"train": 8990.0 + 500 * i}, "offset_mib": 10.0,
                     "peak_mib": 9100.0 + 500 * i, "plan": "h100", "gpu_shared": False,
                     "status": "succeeded"})
    merged = merge_records(recs, base, tmp_path)
    assert merged["sdxl-r1024-b1"]["peak_mib"] == 9100.0  # nvidia-smi's figure kept
    rows, _ = mod.generic_sections(list(merged.values()), write=False)
    sdxl = next(r for r in rows if r.startswith("kohya/sdxl"))
    assert "first-principles" not in sdxl and "4 runs" in sdxl


def test_the_runner_schedules_records_and_keeps_the_deadline(tmp_path: Path, monkeypatch) -> None:
    """run_h100 end to end with stand-ins for `lorac run` and the SDXL writer: every started
    run becomes a record in records.jsonl as it finishes, SDXL runs wait for the checkpoint,
    and runs that could not end before the deadline are skipped."""
    import subprocess
    import sys

    root = tmp_path / "tree"
    shutil.copytree(ROOT / "examples" / "subject", root / "examples" / "subject")
    (root / "profiles").mkdir()
    monkeypatch.setattr(vm, "ROOT", root)
    monkeypatch.setattr(vm, "EXPECTED_S", {"flux1-dev": 1.0, "sdxl": 1.0})
    monkeypatch.setattr(vm.time, "sleep", lambda s: None)
    monkeypatch.setattr(vm.shutil, "which", lambda name: None)  # no nvidia-smi loggers
    started: list[str] = []
    real = subprocess.Popen

    def fake(cmd, **kw):
        if str(cmd[1]).endswith("sdxl_synth.py"):
            out = Path(cmd[2])
            code = (f"import json, pathlib; p = pathlib.Path({str(out)!r}); "
                    "p.mkdir(parents=True, exist_ok=True); (p / 'sdxl-synth.json').write_text("
                    "json.dumps({'checkpoint': 'c', 'tokenizer_cache_dir': 't'}))")
            return real([sys.executable, "-c", code], **kw)
        name = cmd[cmd.index("run") + 1]
        started.append(name)
        return stand_in_run(real, cmd, kw, steps=2)

    monkeypatch.setattr(vm.subprocess, "Popen", fake)
    only = {"h100-nogc-r512", "sdxl-r1024-b1", "sdxl-fp8", "sdxl-r512-b1"}
    assert vm.run_h100(tmp_path / "out", only, 3, 8.8, 1e9, tmp_path / "sdxl") == 0
    recs = [json.loads(x) for x in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert {r["id"] for r in recs} == only == {n.removeprefix("vm-") for n in started}
    assert all(r["weight"] == "full" and r["host_rss_peak_mib"] == 5000.0 for r in recs)
    assert (root / "profiles" / "vm-sdxl-fp8.toml").read_text().count('"c"') == 1
    # a deadline already passed: nothing starts, and the runner still ends
    started.clear()
    assert vm.run_h100(tmp_path / "out2", only, 3, 8.8, 0.0, tmp_path / "sdxl") == 0
    assert started == [] and not (tmp_path / "out2" / "records.jsonl").exists()


def test_the_scheduler_keeps_budgets_count_deadline_and_ready_sets() -> None:
    """``schedule_step``, which the ai-toolkit and musubi-tuner plans call with their budgets:
    jobs start in queue order while they fit the GPU and host budgets beside those running,
    at most ``per_gpu`` at once, never when they would end after the deadline (then they are
    dropped), and only once their family's set is ready."""

    queue = [plan_job("big", 50_000, 10_000), plan_job("a", 28_000, 10_000),
             plan_job("b", 30_000, 10_000), plan_job("c", 20_000, 10_000)]
    start, dropped = vm.schedule_step(queue, [], 0.0, 450.0, 4, 79_000, 110_000, expected=60)
    # 50 + 28 GB fit 79 GB; neither 30 nor 20 GB more does
    assert [j["name"] for j in start] == ["big", "a"] and not dropped
    assert [j["name"] for j in queue] == ["b", "c"]
    assert vm.schedule_step(queue, start, 10.0, 450.0, 4, 79_000, 110_000, expected=60) == (
        [], [])
    # the host budget
    many = [plan_job(f"s{i}", 5_000, 22_000) for i in range(6)]
    start3, _ = vm.schedule_step(many, [plan_job("bf16", 5_000, 36_000)], 0.0, 450.0, 9,
                                 79_000, 110_000, expected=60)
    assert len(start3) == 3 and 36_000 + 22_000 * 3 <= 110_000 < 36_000 + 22_000 * 4
    # per_gpu caps the count
    start4, _ = vm.schedule_step([plan_job(f"t{i}", 1, 1) for i in range(5)], [], 0, 450, 2,
                                 79_000, 110_000, expected=60)
    assert len(start4) == 2
    # a job that would end after the deadline is dropped (its own seconds, else the
    # default); a shorter one still starts
    late = [plan_job("long", 1, 1, 200.0), plan_job("short", 1, 1, 90.0), plan_job("x", 1, 1)]
    start5, dropped5 = vm.schedule_step(late, [], 350.0, 450.0, 3, 79_000, 110_000,
                                        expected=120)
    assert [j["name"] for j in start5] == ["short"] and dropped5 == ["long", "x"]
    assert late == []
    # a family whose set is still being written waits; the others go past it
    wait = [plan_job("wan", 1, 1, family="wan2.1-t2v-1.3b"), plan_job("qwen", 1, 1)]
    start6, dropped6 = vm.schedule_step(wait, [], 0.0, 450.0, 3, 79_000, 110_000,
                                        ready={"qwen-image"}, expected=60)
    assert [j["name"] for j in start6] == ["qwen"] and not dropped6
    assert [j["name"] for j in wait] == ["wan"]
