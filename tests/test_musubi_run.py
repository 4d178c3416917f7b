"""``lorac run`` with the musubi backend: three steps as phases of one run, cache skipping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, write_files
from tests.test_runner import wait_gone

STAND_IN = REPO / "tests" / "stand_in_musubi.py"

PROFILE = """[profile]
family = "wan2.1-t2v-1.3b"
backend = "musubi"

[model]
dit = "models/wan.safetensors"
vae = "models/vae.safetensors"
t5 = "models/t5.pth"

[network]
network_dim = 16
network_alpha = 16

[training]
sdpa = true
max_train_steps = 4

[saving]
output_name = "subject"

[dataset]
resolution = [832, 480]
caption_extension = ".txt"

[[dataset.datasets]]
image_directory = "data"
cache_directory = "cache/subject"
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    from lorac.config.inventory import load_pin

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "accelerate"):
        fake = bin_dir / name
        fake.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = "
                        f"{str(STAND_IN)!r}\nrunpy.run_path({str(STAND_IN)!r}, "
                        "run_name='__main__')\n")
        fake.chmod(0o755)
    musubi = tmp_path / "musubi-tuner"
    (musubi / "src" / "musubi_tuner" / "training").mkdir(parents=True)
    (musubi / "src" / "musubi_tuner" / "training" / "trainer_base.py").write_text("")
    (musubi / ".lorac-commit").write_text(load_pin("musubi").commit)
    project = tmp_path / "project"
    write_files(project, {"profiles/p.toml": PROFILE, "models/wan.safetensors": "x",
                          "models/vae.safetensors": "x", "models/t5.pth": "x",
                          "data/a.png": b"\x89PNG", "data/a.txt": "ohwx",
                          "lorac.toml": 'ignore = ["LRC5"]\n'})
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "LORAC_MUSUBI_TUNER": str(musubi), "FAKE_MUSUBI_LOG": str(tmp_path / "calls.jsonl"),
            "PYTHONPATH": str(REPO), "LORAC_NO_CACHE": "1", "PROJECT": str(project)}


def _lorac(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorac", *args], cwd=env["PROJECT"], env=env,
                          capture_output=True, text=True, timeout=120)


def _calls(env: dict[str, str]) -> list[list[str]]:
    path = Path(env["FAKE_MUSUBI_LOG"])
    calls = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    path.unlink(missing_ok=True)
    return calls


def _manifests(env: dict[str, str]) -> list[dict]:
    runs = sorted((Path(env["PROJECT"]) / "runs").iterdir())
    return [json.loads((r / "manifest.json").read_text()) for r in runs]


def test_three_steps_are_phases_of_one_run(env: dict[str, str]) -> None:
    result = _lorac(env, "run", "p", "--display", "plain")
    assert result.returncode == 0, result.stderr
    calls = _calls(env)
    assert [c[0] for c in calls] == ["latents", "text_encoder", "train"]
    assert calls[0][1] == "wan_cache_latents.py" and "--vae=models/vae.safetensors" in calls[0]
    assert "--t5=models/t5.pth" in calls[1]
    (m,) = _manifests(env)
    assert m["status"] == "succeeded"
    phases = [p["phase"] for p in m["phases"]]
    assert phases[:4] == ["startup", "cache_latents", "cache_text_encoder", "prepare"]
    assert "train" in phases
    assert [s["name"] for s in m["steps"]] == ["cache latents", "cache text-encoder outputs",
                                               "train"]
    assert not any(s["skipped"] for s in m["steps"])
    assert m["progress"]["step"] == 4 and m["progress"]["loss"] is not None
    assert m["cache"]["skipped"] is False
    record = Path(env["PROJECT"]) / "cache" / "subject" / "lorac-cache.json"
    assert m["cache"]["records"] == ["cache/subject/lorac-cache.json"]
    made = json.loads(record.read_text())["made_with"]
    assert made["dataset"]["general"]["resolution"] == [832, 480]
    assert made["latents"]["vae"] == "models/vae.safetensors"
    assert any(o["path"].endswith("subject.safetensors") for o in m["outputs"])
    # networks.lora_wan on Wan 2.1 T2V 1.3B: 30 blocks x 10 Linear layers
    assert m["lora_check"]["expected_modules"] == 300 and m["lora_check"]["problems"] == []


def test_valid_cache_skips_caching_and_the_manifest_says_so(env: dict[str, str]) -> None:
    assert _lorac(env, "run", "p", "--display", "plain").returncode == 0
    _calls(env)
    time.sleep(1.1)  # a fresh run folder name
    result = _lorac(env, "run", "p", "--display", "plain")
    assert result.returncode == 0, result.stderr
    assert [c[0] for c in _calls(env)] == ["train"]
    second = _manifests(env)[-1]
    assert second["cache"]["skipped"] is True
    assert [s["skipped"] is not None for s in second["steps"]] == [True, True, False]
    assert "cache_latents" not in [p["phase"] for p in second["phases"]]


@pytest.mark.parametrize("change", ["resolution", "caption", "vae"])
def test_cache_made_with_other_settings_is_made_again(env: dict[str, str], change: str) -> None:
    assert _lorac(env, "run", "p", "--display", "plain").returncode == 0
    _calls(env)
    project = Path(env["PROJECT"])
    if change == "resolution":
        path = project / "profiles" / "p.toml"
        path.write_text(path.read_text().replace("[832, 480]", "[960, 544]"))
    elif change == "caption":
        time.sleep(0.05)
        (project / "data" / "a.txt").write_text("ohwx, smiling")
    else:
        (project / "models" / "vae2.safetensors").write_text("x")
        path = project / "profiles" / "p.toml"
        path.write_text(path.read_text().replace("vae.safetensors", "vae2.safetensors"))
    time.sleep(1.1)
    result = _lorac(env, "run", "p", "--display", "plain")
    assert result.returncode == 0, result.stderr
    assert [c[0] for c in _calls(env)] == ["latents", "text_encoder", "train"]
    m = _manifests(env)[-1]
    assert m["cache"]["skipped"] is False
    assert "made with other settings or files" in m["cache"]["reason"]


def test_failed_caching_stops_the_run_and_writes_no_record(env: dict[str, str]) -> None:
    env = {**env, "FAKE_MUSUBI_FAIL": "text_encoder"}
    result = _lorac(env, "run", "p", "--display", "plain")
    assert result.returncode == 3
    assert [c[0] for c in _calls(env)] == ["latents", "text_encoder"]
    (m,) = _manifests(env)
    assert m["status"] == "failed" and m["progress"]["error"] == "RuntimeError: stand-in failure"
    assert not (Path(env["PROJECT"]) / "cache" / "subject" / "lorac-cache.json").exists()


def test_ctrl_c_stops_the_running_step_and_nothing_after(env: dict[str, str],
                                                         tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    env = {**env, "FAKE_MUSUBI_SLEEP": "0.5", "FAKE_MUSUBI_PIDS": str(pids)}
    proc = subprocess.Popen([sys.executable, "-m", "lorac", "run", "p", "--display", "plain"],
                            cwd=env["PROJECT"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not pids.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert [c[0] for c in _calls(env)] == ["latents"]
    (m,) = _manifests(env)
    assert m["status"] == "interrupted"
    assert not (Path(env["PROJECT"]) / "cache" / "subject" / "lorac-cache.json").exists()
    for pid in [int(x) for x in pids.read_text().split()]:
        assert wait_gone(pid), f"process {pid} outlived the run"


def test_dry_run_prints_the_three_commands(env: dict[str, str]) -> None:
    result = _lorac(env, "run", "p", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stdout.splitlines() if "musubi_tuner/" in ln]
    assert len(lines) == 3
    assert "wan_cache_latents.py" in lines[0] and "wan_train_network.py" in lines[2]
    assert not (Path(env["PROJECT"]) / "runs").exists() or not any(
        (Path(env["PROJECT"]) / "runs").iterdir())


def test_preflight_names_a_missing_model_file_of_any_step(env: dict[str, str]) -> None:
    (Path(env["PROJECT"]) / "models" / "t5.pth").unlink()
    result = _lorac(env, "run", "p")
    assert result.returncode == 2
    assert "t5 = 'models/t5.pth' does not exist" in result.stderr
    assert _calls(env) == []


def test_conversion_for_comfyui_is_the_last_phase(env: dict[str, str]) -> None:
    path = Path(env["PROJECT"]) / "profiles" / "p.toml"
    path.write_text(path.read_text().replace("[dataset]", "[run]\nconvert_for_comfyui = true"
                                                          "\n\n[dataset]"))
    result = _lorac(env, "run", "p", "--display", "plain")
    assert result.returncode == 0, result.stderr
    assert [c[0] for c in _calls(env)] == ["latents", "text_encoder", "train", "convert"]
    (m,) = _manifests(env)
    assert m["phases"][-1]["phase"] == "save"
    names = {Path(o["path"]).name for o in m["outputs"]}
    assert {"subject.safetensors", "subject_comfyui.safetensors"} <= names


def test_synthetic_is_refused_in_one_line_for_another_trainers_set(env: dict[str, str]) -> None:
    path = Path(env["PROJECT"]) / "profiles" / "p.toml"
    path.write_text(path.read_text().replace('backend = "musubi"', 'backend = "musubi"\n'
                                             'family = "flux1-dev"').replace(
        'family = "wan2.1-t2v-1.3b"\n', "", 1))
    result = _lorac(env, "run", "p", "--synthetic", "--dry-run", "--force")
    assert result.returncode == 2
    assert ("--synthetic writes kohya's checkpoints for family flux1-dev; backend musubi "
            "cannot use them") in result.stderr
    assert "Traceback" not in result.stderr


def test_synthetic_wan_set_is_musubis(env: dict[str, str]) -> None:
    result = _lorac(env, "run", "p", "--synthetic", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "override: dit = <synthetic>" in result.stdout


def test_lint_keys_the_cache_on_the_checkout_lorac_runs(env: dict[str, str]) -> None:
    marker = Path(env["LORAC_MUSUBI_TUNER"]) / ".lorac-commit"
    marker.write_text("0123456789abcdef0123456789abcdef01234567\n")  # not the pin
    assert _lorac(env, "run", "p", "--display", "plain").returncode == 0
    record = Path(env["PROJECT"]) / "cache" / "subject" / "lorac-cache.json"
    made = json.loads(record.read_text())["made_with"]
    assert made["musubi_commit"] == "0123456789abcdef0123456789abcdef01234567"
    (Path(env["PROJECT"]) / "cache" / "subject" / "a_0832x0480_wan.safetensors").write_text("x")
    lint = _lorac(env, "lint", "profiles", "--select", "LRC665")
    assert "LRC665" not in lint.stdout, lint.stdout  # the cache was made by that checkout
    marker.write_text("fedcba9876543210fedcba9876543210fedcba98\n")  # the checkout moved on
    lint = _lorac(env, "lint", "profiles", "--select", "LRC665")
    assert "LRC665" in lint.stdout and "musubi_commit" in lint.stdout, lint.stdout
