"""The SD3 plan of tests/gpu/vram_matrix.py (``--plan sd3``), on the CPU: its configurations
build for sd3_train_network.py with every condition and the synthetic set's files in place,
lorac's SD3 model reads the records' conditions back (variant included), the runner waits for
each variant's set and writes SD3 records, and ``list --plan sd3`` works without a GPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm_standins import built_plan_profile, load_script, merge_records, stand_in_run

ROOT = Path(__file__).resolve().parent.parent
vm = load_script("tests/gpu/vram_matrix.py", "vram_matrix")

FILES = {"checkpoint": "/m/sd3_medium-synth.safetensors", "clip_l": "/m/clip_l.safetensors",
         "clip_g": "/m/clip_g.safetensors", "t5xxl": "/m/t5xxl_fp16.safetensors",
         "tokenizer_cache_dir": "/m/tok"}


def files_for(cond: dict) -> dict:
    return {**FILES, "checkpoint": "/m/" + cond["pretrained_model_name_or_path"]}


def test_the_sd3_plan_covers_the_grid_and_both_sizes() -> None:
    core = vm.SD3_PLAN[:vm.SD3_CORE]
    assert 8 <= len(core) <= 12 and len({n for n, *_ in vm.SD3_PLAN}) == len(vm.SD3_PLAN)
    conds = [vm.plan_conditions(f, c) for _, f, c, _ in core]
    medium = [c for c in conds if vm.sd3_variant_of(c) == "sd3-medium"]
    for key, values in (("resolution", {512, 1024}), ("network_dim", {16, 128}),
                        ("batch_size", {1, 4}), ("gradient_checkpointing", {True, False}),
                        ("optimizer_type", {"AdamW", "AdamW8bit"}), ("fp8_base", {True, False}),
                        ("cache_text_encoder_outputs", {True, False})):
        assert {c[key] for c in medium} == values, key
    assert {vm.sd3_variant_of(c) for c in conds} == {"sd3-medium", "sd3.5-large"}
    assert {s for *_, s in core} == {"fit", "holdout"}
    assert {f for _, f, *_ in vm.SD3_PLAN} == {"sd3"}
    assert vm.names("sd3") == [n for n, *_ in vm.SD3_PLAN]


@pytest.mark.parametrize("entry", vm.SD3_PLAN, ids=[e[0] for e in vm.SD3_PLAN])
def test_each_sd3_point_builds_with_its_conditions(entry, project: Path) -> None:
    name, fam, changes, _ = entry
    cond = vm.plan_conditions(fam, changes)
    (project / "profiles").mkdir()
    text = vm.sd3_profile_text(name, cond, files_for(cond), "data/x", 8)
    (project / "profiles" / f"vm-{name}.toml").write_text(text)
    built, cfg, ds = built_plan_profile(project, name)
    for key in ("network_dim", "optimizer_type", "gradient_checkpointing", "fp8_base",
                "network_train_unet_only", "cache_text_encoder_outputs", "network_module"):
        assert f"{key} = {json.dumps(cond[key])}" in cfg, key
    for key in ("clip_l", "clip_g", "t5xxl"):
        assert f"{key} = {json.dumps(FILES[key])}" in cfg, key
    assert f'pretrained_model_name_or_path = "/m/{cond["pretrained_model_name_or_path"]}"' in cfg
    assert 'tokenizer_cache_dir = "/m/tok"' in cfg and "max_train_steps = 8" in cfg
    assert f"resolution = {cond['resolution']}" in ds
    assert f"batch_size = {cond['batch_size']}" in ds
    assert "sd3_train_network.py" in (built / "train.sh").read_text()


def test_the_sd3_model_reads_the_conditions_back() -> None:
    from lorac.trainers.kohya import vram_families

    for name, fam, changes, _ in vm.SD3_PLAN:
        cond = vm.plan_conditions(fam, changes)
        run = vram_families.run_from_record({"conditions": cond, "family": fam, "gpus": 1})
        assert run.family == vm.kind(fam, cond) == vm.sd3_variant_of(cond), name
        assert run.rank == cond["network_dim"] and run.batch_size == cond["batch_size"]
        assert run.gradient_checkpointing == cond["gradient_checkpointing"]
        assert (run.dit_bytes == 1.0) == cond["fp8_base"]
        assert run.train_te == (not cond["network_train_unet_only"])
        assert run.te_on_gpu_in_training == (not cond["cache_text_encoder_outputs"])
        assert vm.h100_charge(fam, cond) > 5000
        # every kind the runner schedules has its time and host memory
        assert vm.EXPECTED_S[vm.kind(fam, cond)] > 0 and vm.HOST_CHARGE[vm.kind(fam, cond)] > 0


def test_list_plan_sd3_needs_no_gpu() -> None:
    py = [sys.executable, str(ROOT / "tests/gpu/vram_matrix.py")]
    out = subprocess.run([*py, "list", "--plan", "sd3"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"{len(vm.SD3_PLAN)} configurations" in out.stdout and "sd35l-fp8" in out.stdout
    bad = subprocess.run([*py, "list", "--plan", "sd3", "--only", "sd3m-fp8,sdxl-fp8"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no configuration sdxl-fp8 in the sd3 plan" in bad.stderr
    nope = subprocess.run([*py, "list", "--plan", "sd4"], capture_output=True, text=True,
                          timeout=120)
    assert nope.returncode == 2 and "no plan 'sd4'" in nope.stderr


def test_the_runner_waits_for_each_sd3_set(tmp_path: Path, monkeypatch) -> None:
    """run_h100 with --plan sd3 and stand-ins for `lorac run` and sd3_synth.py: the medium
    runs start once the medium set's JSON is there, the large ones once theirs is, each
    profile names its variant's checkpoint, and the records say family sd3 and the variant."""
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "examples" / "subject", root / "examples" / "subject")
    (root / "profiles").mkdir()
    monkeypatch.setattr(vm, "ROOT", root)
    monkeypatch.setattr(vm.time, "sleep", lambda s: None)
    monkeypatch.setattr(vm.shutil, "which", lambda name: None)  # no nvidia-smi loggers
    monkeypatch.setenv("LORAC_SYNTH_DIR", str(tmp_path / "no-flux-set"))
    started: list[str] = []
    synth_cmds: list[list[str]] = []
    real = subprocess.Popen

    def fake(cmd, **kw):
        if str(cmd[1]).endswith("sd3_synth.py"):
            synth_cmds.append([str(c) for c in cmd])
            out = Path(cmd[2])
            code = (f"import json, pathlib; p = pathlib.Path({str(out)!r}); "
                    "p.mkdir(parents=True, exist_ok=True)\n"
                    f"for v, f in {vm.SD3_FILES!r}.items():\n"
                    f"    (p / (v + '.json')).write_text(json.dumps({{**{FILES!r}, "
                    "'checkpoint': '/m/' + f}))")
            return real([sys.executable, "-c", code], **kw)
        name = cmd[cmd.index("run") + 1]
        prof = (root / "profiles" / f"{name}.toml").read_text()
        started.append((name, prof))
        return stand_in_run(real, cmd, kw, steps=8)

    monkeypatch.setattr(vm.subprocess, "Popen", fake)
    only = {"sd3m-r1024-b1", "sd3m-te-live", "sd35l-fp8"}
    assert vm.run_h100(tmp_path / "out", only, 3, 8.8, 1e9, tmp_path / "sdxl", "sd3",
                       tmp_path / "sd3") == 0
    # one writer for both variants, the large one (the longest runs) first, no T5-XXL to reuse
    assert len(synth_cmds) == 1 and "sd3.5-large,sd3-medium" in synth_cmds[0]
    assert "--t5xxl" not in synth_cmds[0]
    recs = [json.loads(x) for x in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert {r["id"] for r in recs} == only == {n.removeprefix("vm-") for n, _ in started}
    by_id = {r["id"]: r for r in recs}
    assert by_id["sd35l-fp8"]["variant"] == "sd3.5-large"
    assert by_id["sd3m-r1024-b1"]["variant"] == "sd3-medium"
    for r in recs:
        assert r["family"] == "sd3" and r["script"] == "sd3_train_network.py"
        assert r["plan"] == "h100" and r["plan_name"] == "sd3"
        assert r["weight"] == "full" and "sd3_synth.py" in r["weights"]
    profiles = dict(started)
    assert "/m/sd3.5_large-synth.safetensors" in profiles["vm-sd35l-fp8"]
    assert "/m/sd3_medium-synth.safetensors" in profiles["vm-sd3m-te-live"]
    # a second call finds both sets written and starts no writer
    synth_cmds.clear()
    assert vm.run_h100(tmp_path / "out3", {"sd35l-fp8"}, 3, 8.8, 1e9, tmp_path / "sdxl", "sd3",
                       tmp_path / "sd3") == 0
    assert synth_cmds == []


def test_a_large_run_holds_the_line(tmp_path: Path, monkeypatch) -> None:
    """An SD3.5 large run whose set arrives while medium runs fill the host: when one medium
    run ends, the room goes to the large run (it waits for the second to end), not to the next
    medium run, which would take it again and again."""
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "examples" / "subject", root / "examples" / "subject")
    (root / "profiles").mkdir()
    sd3 = tmp_path / "sd3"
    sd3.mkdir()
    large = json.dumps({**FILES, "checkpoint": "/m/" + vm.SD3_FILES["sd3.5-large"]})
    (sd3 / "sd3-medium.json").write_text(json.dumps(FILES))
    monkeypatch.setattr(vm, "ROOT", root)
    monkeypatch.setattr(vm.time, "sleep", lambda s: None)
    monkeypatch.setattr(vm.shutil, "which", lambda name: None)
    # room on the host for two medium runs at a time, or one large one
    medium = vm.HOST_CHARGE["sd3-medium"]
    monkeypatch.setattr(vm, "HOST_BUDGET_MIB", 2 * medium)
    monkeypatch.setattr(vm, "SD3_BUILDER_HOST_MIB", 0.0)
    monkeypatch.setattr(vm, "HOST_CHARGE", {**vm.HOST_CHARGE, "sd3.5-large": 2 * medium})
    order: list[str] = []
    real = subprocess.Popen

    def fake(cmd, **kw):
        if str(cmd[1]).endswith("sd3_synth.py"):  # the large set is written by the test
            return real([sys.executable, "-c", "import time; time.sleep(1)"], **kw)
        name = cmd[cmd.index("run") + 1]
        order.append(name)
        if len(order) == 2:  # the large set is there once two medium runs hold the host
            (sd3 / "sd3.5-large.json").write_text(large)
        return stand_in_run(real, cmd, kw, steps=None,
                            wait={1: 0.2, 2: 3.0}.get(len(order), 0.0))

    monkeypatch.setattr(vm.subprocess, "Popen", fake)
    only = {"sd3m-r1024-b1", "sd3m-r512-b1", "sd3m-adamw", "sd35l-fp8"}
    assert vm.run_h100(tmp_path / "out", only, 6, 8.8, 1e9, tmp_path / "sdxl", "sd3", sd3) == 0
    assert len(order) == 4 and order[2] == "vm-sd35l-fp8", order


def test_extras_wait_for_the_whole_core(tmp_path: Path, monkeypatch) -> None:
    """An extra whose set is written (SD3.5 large) does not start while a core run still waits
    for its own set (SD3 medium): it would hold the host memory the core needs."""
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "examples" / "subject", root / "examples" / "subject")
    (root / "profiles").mkdir()
    sd3 = tmp_path / "sd3"
    sd3.mkdir()
    (sd3 / "sd3.5-large.json").write_text(
        json.dumps({**FILES, "checkpoint": "/m/" + vm.SD3_FILES["sd3.5-large"]}))
    monkeypatch.setattr(vm, "ROOT", root)
    monkeypatch.setattr(vm.time, "sleep", lambda s: None)
    monkeypatch.setattr(vm.shutil, "which", lambda name: None)
    order: list[str] = []
    real = subprocess.Popen

    def fake(cmd, **kw):
        if str(cmd[1]).endswith("sd3_synth.py"):  # the medium set, a moment later
            code = (f"import time, pathlib; time.sleep(1); pathlib.Path({str(sd3)!r}, "
                    f"'sd3-medium.json').write_text({json.dumps(json.dumps(FILES))})")
            return real([sys.executable, "-c", code], **kw)
        order.append(cmd[cmd.index("run") + 1])
        return stand_in_run(real, cmd, kw, steps=None)

    monkeypatch.setattr(vm.subprocess, "Popen", fake)
    only = {"sd3m-r1024-b1", "sd35l-fp8-b4-r512"}
    assert vm.run_h100(tmp_path / "out", only, 6, 8.8, 1e9, tmp_path / "sdxl", "sd3", sd3) == 0
    assert order == ["vm-sd3m-r1024-b1", "vm-sd35l-fp8-b4-r512"]


def test_sd3_records_merge_and_fit_their_family(tmp_path: Path) -> None:
    """bench/vram_accuracy.py --merge takes the SD3 plan's records; fitted ones then calibrate
    kohya/sd3 (no longer the first-principles estimate)."""
    mod = load_script("bench/vram_accuracy.py", "vram_accuracy")
    base = json.loads((ROOT / "backends/kohya/vram_measurements.json").read_text())
    base["records"] = [r for r in base["records"] if r.get("family") != "sd3"]
    recs = []
    for i, (name, fam, changes, _) in enumerate(vm.SD3_PLAN[:5]):
        cond = vm.plan_conditions(fam, changes)
        recs.append({"id": name, "family": fam, "variant": vm.kind(fam, cond), "split": "fit",
                     "weight": "full", "gpus": 1, "conditions": cond,
                     "phases_mib": {"cache_text_encoder": 12000.0, "train": 9000.0 + 900 * i},
                     "process_phases_mib": {"train": 8990.0 + 900 * i}, "offset_mib": 10.0,
                     "peak_mib": 12100.0 + 900 * i, "plan": "h100", "plan_name": "sd3",
                     "gpu_shared": False,
                     "status": "succeeded"})
    merged = merge_records(recs, base, tmp_path)
    assert merged["sd3m-r1024-b1"]["peak_mib"] == 12100.0  # nvidia-smi's figure kept
    rows, _ = mod.generic_sections(list(merged.values()), write=False)
    sd3 = next(r for r in rows if r.startswith("kohya/sd3"))
    # sd3m-nogc alone fits act_scale_nogc: left out, its peak would rest on the prior, which
    # the fitted model does not use, so it is not judged and 4 runs make the interval
    assert "first-principles" not in sd3 and "4 runs" in sd3
