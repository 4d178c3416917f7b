"""What the several-GPU proof (``tests/gpu/multi_proof.sh``) can show without a GPU: the script
parses, refuses a bad command, its profiles compile to the launches it means to measure, and
its summary computes the per-GPU peaks and the throughput ratio from run folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.gpu import multi_proof

SCRIPT = REPO / "tests" / "gpu" / "multi_proof.sh"


def test_the_script_parses_and_refuses_a_bad_command(tmp_path: Path) -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    env = {**os.environ, "OUT": str(tmp_path / "out")}
    for args in ([], ["run", "kohya", "3"], ["run", "sd-scripts", "2"]):
        result = subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "usage:" in result.stderr
        assert not (tmp_path / "runs-multi").exists()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multi-proof")
    shutil.copytree(REPO / "profiles", root / "profiles")
    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copytree(REPO / "examples" / "subject", root / "examples" / "subject")
    multi_proof.write_profiles(root / "profiles", root / "examples" / "subject", root / "cache")
    return root


def _lorac(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LORAC_NO_CACHE": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run([sys.executable, "-m", "lorac", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=180)


def _dry_run(root: Path, profile: str) -> subprocess.CompletedProcess:
    return _lorac(root, "run", profile, "--synthetic", "--dry-run", "--max-steps", "20")


@pytest.mark.parametrize(("trainer", "script"), [("kohya", "flux_train_network.py"),
                                                  ("musubi", "wan_train_network.py")])
def test_profiles_launch_one_and_two_processes(project: Path, trainer: str, script: str) -> None:
    for gpus, options in ((1, "--num_processes=1"), (2, "--multi_gpu --num_processes=2")):
        result = _dry_run(project, multi_proof.name(trainer, gpus))
        assert result.returncode == 0, result.stderr
        (train,) = [line for line in result.stdout.splitlines() if script in line]
        assert train.startswith(f"accelerate launch {options} ")


def test_musubi_runs_make_their_own_caches(project: Path) -> None:
    import tomllib

    dirs = {tomllib.loads((project / "profiles" / f"{multi_proof.name('musubi', g)}.toml")
                          .read_text())["dataset"]["datasets"][0]["cache_directory"]
            for g in (1, 2)}
    assert len(dirs) == 2


def test_ai_toolkit_two_gpu_profile_is_refused_and_one_gpu_builds(project: Path) -> None:
    refused = _dry_run(project, multi_proof.name("aitk", 2))
    assert refused.returncode == 1 and "LRC691" in refused.stderr
    built = _lorac(project, "build", multi_proof.name("aitk", 1), "--output", "build/aitk")
    assert built.returncode == 0, built.stderr
    assert (project / "build" / "aitk" / "job.yaml").is_file()


def _run_folder(root: Path, profile: str, gpus: int, sec: float, status: str = "succeeded",
                ) -> None:
    folder = root / profile / f"{profile}-20261206-101010"
    folder.mkdir(parents=True)
    peaks = {str(i): 30000.0 + i for i in range(gpus)}
    manifest = {
        "status": status, "exit_code": 0 if status == "succeeded" else 1, "duration_s": 300.0,
        "profile": {"name": profile, "data": {"run": {"gpus": gpus}}},
        "progress": {"step": 20, "total": 20, "sec_per_it": sec},
        "telemetry": {"peak_mib": peaks, "phases": {"train": {
            g: {"memory_used_mib": v - 5} for g, v in peaks.items()}}},
        "outputs": [{"path": f"{folder}/output/lora.safetensors"}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_summary_reports_each_gpu_and_the_throughput_ratio(tmp_path: Path) -> None:
    runs = tmp_path / "runs-multi"
    _run_folder(runs, "multi-kohya-g1", 1, 2.0)
    _run_folder(runs, "multi-kohya-g2", 2, 2.2)
    _run_folder(runs, "multi-musubi-g1", 1, 1.0)
    _run_folder(runs, "multi-musubi-g2", 2, 1.0, status="failed")
    out = tmp_path / "out"
    result = multi_proof.summarise(out, sorted(runs.iterdir()))
    # 2 processes at 2.2 s/step against 1 at 2.0 s/step: (2 / 2.2) / (1 / 2.0)
    assert result["throughput_2_over_1"] == {"kohya": 1.818}  # no ratio from a failed run
    two = next(r for r in result["runs"] if r["profile"] == "multi-kohya-g2")
    assert two["processes"] == 2 and two["peak_mib"] == {"0": 30000.0, "1": 30001.0}
    assert two["train_peak_mib"] == {"0": 29995.0, "1": 29996.0}
    assert json.loads((out / "multi-summary.json").read_text()) == result
    text = multi_proof.render(result)
    assert "multi-kohya-g2: succeeded exit 0, 2 process(es)" in text
    assert "peak MiB: gpu0 30,000, gpu1 30,001" in text
    assert "kohya: throughput of 2 GPUs / 1 GPU = 1.818" in text
