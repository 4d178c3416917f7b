"""The ai-toolkit FLUX.1 plan (tests/gpu/aitk_matrix.py), on the CPU: it covers the VRAM
model's terms, every configuration builds for ai-toolkit with its conditions in the job, the
scheduler keeps its budgets and deadline, and a record merges into the measurements file and
reads back into lorac's ai-toolkit model."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import lorac
from tests.vm_standins import load_script, merge_records, plan_job

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "gpu"))
am = load_script("tests/gpu/aitk_matrix.py", "aitk_matrix")


def test_the_plan_covers_the_models_terms() -> None:
    assert 8 <= len(am.PLAN) <= 10 and len({p[0] for p in am.PLAN}) == len(am.PLAN)
    jobs = am.queue_of(set())
    conds = [j["cond"] for j in jobs]
    models = [j["native"]["model"] for j in jobs]
    for key, values in (("network_dim", {16, 64, 128}), ("resolution", {512, 1024}),
                        ("batch_size", {1, 2}), ("gradient_checkpointing", {True, False}),
                        ("cache_text_encoder_outputs", {True, False}),
                        ("fp8_base", {True, False})):
        assert {c[key] for c in conds} == values, key
    assert {m.get("qtype", "qfloat8") for m in models} == {"qfloat8", "uint4"}
    assert {m.get("quantize_te", True) for m in models} == {True, False}
    assert {m.get("low_vram", False) for m in models} == {True, False}
    assert all(j["native"]["train"]["attention_backend"] == "_native_flash" for j in jobs)
    fit = [j for j in jobs if j["split"] == "fit"]
    assert {j["split"] for j in jobs} == {"fit", "holdout"}
    assert 0.5 <= len(fit) / len(jobs) <= 0.7


def _built(tmp_path: Path, job: dict) -> dict:
    folder = tmp_path / "profiles"
    folder.mkdir(exist_ok=True)
    for name in ("base.toml", "final.toml"):
        shutil.copy(ROOT / "profiles" / name, folder / name)
    profile = folder / f"am-{job['name']}.toml"
    profile.write_text(am.profile_text(job["name"], job["cond"], job["native"]))
    out = tmp_path / job["name"]
    code, _, err = lorac("build", str(profile), "--backend", "ai-toolkit", "-o", str(out))
    assert code == 0, err
    return yaml.safe_load((out / "job.yaml").read_text())["config"]["process"][0]


@pytest.mark.parametrize("name", [p[0] for p in am.PLAN])
def test_each_configuration_builds_with_its_conditions(tmp_path: Path, name: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_DIFFUSERS", "/m/flux1-dev")
    (job,) = am.queue_of({name})
    proc = _built(tmp_path, job)
    cond, own = job["cond"], job["native"]
    assert proc["network"]["linear"] == cond["network_dim"]
    assert proc["model"]["quantize"] is cond["fp8_base"]
    for key in ("qtype", "quantize_te", "low_vram"):
        assert proc["model"].get(key) == own["model"].get(key), key
    assert proc["train"]["gradient_checkpointing"] is cond["gradient_checkpointing"]
    assert proc["train"]["cache_text_embeddings"] is cond["cache_text_encoder_outputs"]
    assert proc["train"]["attention_backend"] == "_native_flash"
    assert proc["train"]["disable_sampling"] is True
    assert proc["train"]["steps"] == am.STEPS
    assert proc["save"]["save_every"] == am.STEPS
    (ds,) = proc["datasets"]
    assert cond["resolution"] in ds["resolution"] and proc["train"]["batch_size"] == \
        cond["batch_size"]
    # the record's conditions read back into the model as the build's job says
    run = am.avram.run_from_record({"conditions": cond, "native": own, "gpus": 1,
                                    "family": "flux1-dev"})
    assert run.rank == cond["network_dim"] and run.batch_size == cond["batch_size"]
    assert run.dit_bytes == (0.5 if own["model"].get("qtype") == "uint4" else
                             1.0 if cond["fp8_base"] else 2.0)


@pytest.mark.trainer
@pytest.mark.parametrize("name", [p[0] for p in am.PLAN])
def test_ai_toolkits_config_reader_takes_each_job(tmp_path: Path, name: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.trainer.conftest import checkout, run_worker

    toolkit = checkout("LORAC_AI_TOOLKIT")
    monkeypatch.setenv("FLUX_DIFFUSERS", "/m/flux1-dev")
    (job,) = am.queue_of({name})
    proc = _built(tmp_path, job)
    got = run_worker(toolkit, "ai-toolkit", str(tmp_path / name / "job.yaml"), tmp=tmp_path)
    for section in ("network", "train", "save", "model"):
        for key, value in proc.get(section, {}).items():
            assert got[section][key] == value, (section, key)


def test_the_scheduler_runs_with_this_plans_budgets_and_run_time() -> None:
    """The plan's ``schedule_step`` is ``vram_matrix.schedule_step`` (tested in
    test_vram_matrix.py) with this plan's budgets and ``EXPECTED_S`` per run."""

    queue = [plan_job("big", 50_000, 22_000), plan_job("a", 25_000, 22_000),
             plan_job("b", 25_000, 22_000), plan_job("c", 20_000, 22_000)]
    start, dropped = am.schedule_step(queue, [], 0.0, 480.0, 3)
    # 50 + 25 GB fit 78 GB; the second 25 GB does not, nor the 20 GB after it
    assert [j["name"] for j in start] == ["big", "a"] and not dropped
    assert sum(j["charge"] for j in start) <= am.GPU_BUDGET_MIB
    # the host budget: five runs of 22 GB do not fit 110 GB beside one of 36 GB
    many = [plan_job(f"s{i}", 5_000, 22_000) for i in range(6)]
    start3, _ = am.schedule_step(many, [plan_job("bf16", 5_000, 36_000)], 0.0, 480.0, 9)
    assert len(start3) == 3 and 36_000 + 22_000 * len(start3) <= am.HOST_BUDGET_MIB
    # past the deadline less EXPECTED_S every waiting run is dropped, none started
    late = [plan_job("x", 1, 1), plan_job("y", 1, 1)]
    start5, dropped5 = am.schedule_step(late, [], 480.0 - am.EXPECTED_S + 1, 480.0, 3)
    assert start5 == [] and dropped5 == ["x", "y"] and late == []


def test_a_record_merges_and_reads_back(tmp_path: Path) -> None:
    (job,) = am.queue_of({"uint4-r64-1024"})
    job.update(pids={4242}, t0=1000.0, t1=1100.0)
    (tmp_path / "smi-apps.csv").write_text("")
    manifest = {"status": "succeeded", "exit_code": 0,
                "progress": {"step": 10, "total": 10, "sec_per_it": 1.4},
                "versions": {"torch": "2.11.0+cu130"},
                "telemetry": {"driver_version": "580.1", "host_rss_peak_mib": 19000.0,
                              "host_rss_api": "Pss", "gpus": [{"name": "NVIDIA H100 80GB HBM3",
                                                               "memory_total_mib": 81559}],
                              "phases": {"load": {"0": {"memory_used_mib": 40000.0,
                                                        "process_memory_mib": 21000.0}},
                                         "train": {"0": {"memory_used_mib": 38000.0,
                                                         "process_memory_mib": 16000.0}}}}}
    rec = am.record(job, manifest, 8.8, tmp_path, shared=True)
    # shared: the trainer's own memory, not the device's
    assert rec["phases_mib"] == {"load": 21008.8, "train": 16008.8}
    assert rec["peak_mib"] == 21008.8 and rec["weight"] == "full"
    assert rec["trainer"] == "ai-toolkit" and rec["native"]["model"]["qtype"] == "uint4"
    assert rec["host_rss_peak_mib"] == 19000.0 and rec["sec_per_batch"] == 1.4
    committed = ROOT / "backends/ai-toolkit/vram_measurements.json"
    before = {r["id"] for r in json.loads(committed.read_text())["records"]}
    merged = merge_records([rec], committed, tmp_path)
    assert set(merged) == before | {rec["id"]}  # a record of the same id is replaced
    got = merged[rec["id"]]
    # shared: train, as the kohya plans, and load, the plateau of quantising the transformer
    assert got["phases_mib"] == {"load": 21008.8, "train": 16008.8}
    run = am.avram.run_from_record(got)
    assert run.dit_bytes == 0.5 and run.rank == 64


def test_fitted_ai_toolkit_records_get_a_model_file_of_their_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the plan's fit records are merged, ``--write`` stores ai-toolkit's fitted FLUX.1
    constants in ai-toolkit's model file, and musubi-tuner's file keeps musubi-tuner's
    architectures only."""
    from lorac.trainers.musubi import vram as mvram

    bench = load_script("bench/vram_accuracy.py", "vram_accuracy")
    (base,) = [r for r in am.avram.load_measurements() if r["id"] == "aitk-flux-final-flash"]
    recs = []
    for i, (rank, res) in enumerate(((16, 512), (64, 1024), (128, 1024), (64, 512))):
        scale = rank / 64 * 300 + res / 1024 * 1000
        recs.append({**base, "id": f"aitk-t{i}", "split": "fit",
                     "conditions": {**base["conditions"], "network_dim": rank,
                                    "resolution": res},
                     "phases_mib": {k: v + scale for k, v in base["phases_mib"].items()}})
    monkeypatch.setattr(am.avram, "load_measurements", lambda: recs)
    musubi_recs = mvram.load_measurements()
    monkeypatch.setattr(mvram, "load_measurements", lambda: musubi_recs)
    (tmp_path / "musubi").mkdir()
    (tmp_path / "ai-toolkit").mkdir()
    real_m, real_a = mvram.backends_file, am.avram.backends_file
    monkeypatch.setattr(mvram, "backends_file", lambda name: tmp_path / "musubi" / name)
    monkeypatch.setattr(am.avram, "backends_file", lambda name: tmp_path / "ai-toolkit" / name)
    bench.generic_sections([], write=True)
    wrote_m = json.loads((tmp_path / "musubi" / "vram_model.json").read_text())["architectures"]
    musubi = {mvram.CALIBRATED_BY.get(r["family"], r["family"])
              for r in musubi_recs if r.get("split") == "fit"}
    assert musubi and set(wrote_m) == musubi and "flux1" not in wrote_m
    wrote_a = json.loads((tmp_path / "ai-toolkit" / "vram_model.json").read_text())
    flux = wrote_a["architectures"]["flux1"]
    assert set(wrote_a["architectures"]) == {"flux1"}
    assert flux["fitted_on"] == [r["id"] for r in recs]
    assert set(flux["intervals"]) == {"flux1-dev"}
    assert real_m("x").parent.name == "musubi" and real_a("x").parent.name == "ai-toolkit"
