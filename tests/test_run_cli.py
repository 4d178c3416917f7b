"""`lorac run` end to end on the CPU: a fake `accelerate` on PATH runs the stand-in trainer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, fake_trainer, write_files
from tests.test_runner import STAND_IN, wait_gone

FAKE_ACCELERATE = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["FAKE_ACCELERATE_LOG"], "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
extra = json.loads(os.environ.get("FAKE_TRAINER_ARGS", "[]"))
out_dir = None
for i, a in enumerate(args):
    if a.startswith("--output_dir="):
        out_dir = a.split("=", 1)[1]
if "--config_file" in args:
    import tomllib
    cfg = tomllib.load(open(args[args.index("--config_file") + 1], "rb"))
    for table in cfg.values():
        if isinstance(table, dict) and "output_dir" in table:
            out_dir = table["output_dir"]
if out_dir:
    extra += ["--output", os.path.join(out_dir, "lora.safetensors")]
os.execv(sys.executable, [sys.executable, {str(STAND_IN)!r}, *extra])
"""

PROFILE = """[profile]
family = "flux1-dev"
[model]
pretrained_model_name_or_path = "models/flux1-dev.safetensors"
clip_l = "models/clip_l.safetensors"
t5xxl = "models/t5xxl.safetensors"
ae = "models/ae.safetensors"
[network]
network_module = "networks.lora_flux"
network_dim = 4
network_alpha = 4
[optimizer]
optimizer_type = "AdamW"
learning_rate = 1e-4
[training]
max_train_steps = 3
mixed_precision = "bf16"
cache_text_encoder_outputs = true
[saving]
output_dir = "output"
output_name = "t"
[dataset]
resolution = 512
[[dataset.subsets]]
image_dir = "data"
class_tokens = "ohwx"
num_repeats = 1
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir, sd = fake_trainer(tmp_path, FAKE_ACCELERATE)
    project = tmp_path / "project"
    write_files(project, {"profiles/p.toml": PROFILE, "models/flux1-dev.safetensors": "x",
                          "models/clip_l.safetensors": "x", "models/t5xxl.safetensors": "x",
                          "models/ae.safetensors": "x", "data/a.txt": "ohwx",
                          # the dataset rules have their own tests; this one is a stand-in
                          "lorac.toml": 'ignore = ["LRC5"]\n'})
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "LORAC_SD_SCRIPTS": str(sd), "FAKE_ACCELERATE_LOG": str(tmp_path / "argv.jsonl"),
            "PYTHONPATH": str(REPO), "LORAC_NO_CACHE": "1", "PROJECT": str(project)}


def _lorac(env: dict[str, str], *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorac", *args], cwd=env["PROJECT"], env=env,
                          capture_output=True, text=True, timeout=120, **kw)


def _manifest(env: dict[str, str]) -> tuple[Path, dict]:
    runs = sorted((Path(env["PROJECT"]) / "runs").iterdir())
    assert len(runs) == 1
    return runs[0], json.loads((runs[0] / "manifest.json").read_text())


@pytest.mark.parametrize("fmt", ["toml", "cli"])
def test_run_succeeds_and_records_everything(env: dict[str, str], fmt: str) -> None:
    result = _lorac(env, "run", "p", "--format", fmt, "--display", "plain")
    assert result.returncode == 0, result.stderr
    run_dir, m = _manifest(env)
    assert run_dir.name.startswith("p-")
    assert m["status"] == "succeeded" and m["exit_code"] == 0
    assert m["trainer"]["backend"] == "kohya" and m["trainer"]["format"] == fmt
    assert m["profile"]["data"]["network"]["network_dim"] == 4
    assert m["profile"]["provenance"]["network.network_dim"].startswith("profiles/p.toml:10")
    assert m["profile"]["overrides"]["output_dir"] == str((run_dir / "output").resolve())
    assert set(m["inputs"]["profile_files"]) == {"profiles/p.toml"}
    paths = {o["path"] for o in m["outputs"]}
    assert "output/lora.safetensors" in paths and "train.log" in paths
    argv = json.loads((Path(env["FAKE_ACCELERATE_LOG"])).read_text().splitlines()[0])
    assert argv[0] == "launch"
    assert any(a.endswith("/flux_train_network.py") for a in argv)
    listed = _lorac(env, "runs")
    assert run_dir.name in listed.stdout and "succeeded" in listed.stdout
    shown = _lorac(env, "runs", "show", run_dir.name[:4])
    assert "status   succeeded" in shown.stdout
    check = m["lora_check"]
    assert check["problems"] == [] and check["expected_modules"] == 376
    (saved,) = check["files"]
    assert (saved["path"], saved["rank"], saved["alpha"], saved["modules"]) == (
        "output/lora.safetensors", 4, 4, 376)
    assert saved["network_module"] == "networks.lora_flux"
    assert "check output/lora.safetensors: rank 4, alpha 4, 376 modules: ok" in result.stderr
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'data-status="succeeded"' in page and "matches the profile" in page
    assert 'http-equiv="refresh"' not in page
    assert f"lorac: report runs/{run_dir.name}/report.html" in result.stderr


@pytest.mark.parametrize(("args", "reason"), [
    (["--lora-alpha", "1"], "network_alpha = 4 but the saved LoRA output/lora.safetensors has 1"),
    (["--lora-rank", "8"], "network_dim = 4 but the saved LoRA output/lora.safetensors has 8"),
    (["--lora-modules", "2"], "output/lora.safetensors has 2 modules; the profile makes 376"),
    (["--lora-zero"], "every up-weight is zero: the LoRA never trained"),
    (["--lora-nan"], "NaN or inf in 1 tensors"),
])
def test_run_checks_the_lora_it_saved(env: dict[str, str], args: list[str], reason: str
                                      ) -> None:
    result = _lorac({**env, "FAKE_TRAINER_ARGS": json.dumps(args)}, "run", "p", "--display",
                    "plain")
    assert result.returncode == 1, result.stderr
    assert reason in result.stderr
    _, m = _manifest(env)
    assert m["status"] == "check failed" and m["exit_code"] == 1
    assert any(reason in p for p in m["lora_check"]["problems"])


def test_lint_gate_stops_before_launch_and_force_records(env: dict[str, str]) -> None:
    p = Path(env["PROJECT"]) / "profiles" / "p.toml"
    p.write_text(p.read_text().replace("network_alpha = 4", "netwrok_alpha = 4"))
    result = _lorac(env, "run", "p")
    assert result.returncode == 1 and "LRC004" in result.stderr
    assert not (Path(env["PROJECT"]) / "runs").exists() or not list(
        (Path(env["PROJECT"]) / "runs").iterdir())
    assert not Path(env["FAKE_ACCELERATE_LOG"]).exists()
    forced = _lorac(env, "run", "p", "--force", "--display", "plain")
    assert forced.returncode == 0, forced.stderr
    _, m = _manifest(env)
    assert m["lint"]["forced"] is True
    assert "LRC004" in {f["code"] for f in m["lint"]["findings"]}


def test_dry_run_prints_command_and_files(env: dict[str, str]) -> None:
    result = _lorac(env, "run", "p", "--dry-run", "--max-steps", "2")
    assert result.returncode == 0, result.stderr
    assert "accelerate launch" in result.stdout and "config.toml" in result.stdout
    assert "override: max_train_steps = 2" in result.stdout
    assert not (Path(env["PROJECT"]) / "runs").exists()


def test_dry_run_without_checkout_names_the_backends_variable(env: dict[str, str]) -> None:
    env = {k: v for k, v in env.items() if k not in ("LORAC_SD_SCRIPTS", "LORAC_AI_TOOLKIT")}
    write_files(Path(env["PROJECT"]), {"profiles/t.toml": PROFILE.replace(
        "[profile]\n", '[profile]\nbackend = "ai-toolkit"\n')})
    result = _lorac(env, "run", "t", "--dry-run", "--force")
    assert result.returncode == 0, result.stderr
    assert "$LORAC_AI_TOOLKIT/run.py" in result.stdout and "SD_SCRIPTS" not in result.stdout


def test_preflight_missing_model(env: dict[str, str]) -> None:
    (Path(env["PROJECT"]) / "models" / "ae.safetensors").unlink()
    result = _lorac(env, "run", "p")
    assert result.returncode == 2 and "ae = 'models/ae.safetensors' does not exist" in \
        result.stderr
    assert not list((Path(env["PROJECT"]) / "runs").iterdir())


def test_trainer_failure_propagates_exit_code(env: dict[str, str]) -> None:
    env = {**env, "FAKE_TRAINER_ARGS": json.dumps(["--fail-at", "2", "--exit-code", "7"])}
    result = _lorac(env, "run", "p", "--display", "plain")
    assert result.returncode == 7
    _, m = _manifest(env)
    assert m["status"] == "failed" and m["exit_code"] == 7


def test_interrupt_leaves_no_process(env: dict[str, str], tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    env = {**env, "FAKE_TRAINER_ARGS": json.dumps(["--steps", "100", "--sleep", "0.2",
                                                   "--grandchild", "--pid-file", str(pids)])}
    proc = subprocess.Popen([sys.executable, "-m", "lorac", "run", "p", "--display", "plain"],
                            cwd=env["PROJECT"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not pids.exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    _, m = _manifest(env)
    assert m["status"] == "interrupted"
    for pid in [int(x) for x in pids.read_text().split()]:
        assert wait_gone(pid), f"process {pid} outlived the run"


def test_runs_show_unknown(env: dict[str, str]) -> None:
    result = _lorac(env, "runs", "show", "nope")
    assert result.returncode == 2 and "no run 'nope'" in result.stderr
    listed = _lorac(env, "runs")
    assert listed.returncode == 0 and "no runs under runs" in listed.stderr


def test_override_goes_where_the_option_is_read(tmp_path: Path) -> None:
    # output_dir in two sections: the trainer (and Profile.options) take the last one, so the
    # run folder redirect must land there, not in the first
    from lorac.config.profile import resolve
    from lorac.run.launch import _set_option

    write_files(tmp_path, {"profiles/p.toml": PROFILE.replace(
        "[training]\n", '[training]\noutput_dir = "a"\n')})
    profile = resolve(tmp_path / "profiles" / "p.toml").profile
    assert profile is not None and profile.option("output_dir") == "output"
    _set_option(profile, "output_dir", "/runs/p/output")
    assert profile.option("output_dir") == "/runs/p/output"
    _set_option(profile, "new_option", 1)
    assert profile.data["lorac_run"]["new_option"] == 1 and profile.option("new_option") == 1


def test_refusal_after_the_run_folder_exists_removes_it(env: dict[str, str]) -> None:
    # the backend refuses config_file (lorac writes its own) after the run folder was made
    p = Path(env["PROJECT"]) / "profiles" / "p.toml"
    p.write_text(p.read_text().replace("[training]\n", '[training]\nconfig_file = "x.toml"\n'))
    result = _lorac(env, "run", "p", "--force")
    assert result.returncode == 2 and "config_file" in result.stderr, result.stderr
    runs = Path(env["PROJECT"]) / "runs"
    assert not runs.exists() or not list(runs.iterdir())


@pytest.mark.parametrize(("run", "message"), [
    ('[run]\ngpus = "abc"\n', "run.gpus must be an integer"),
    ("[run]\ngpus = inf\n", "run.gpus is inf, not a finite number"),
    ("[[run]]\ngpus = 1\n", "run must be a table, not a list"),
    ("[run]\naccelerate_args = 5\n", "run.accelerate_args must be a list"),
    ("[run]\nenv = 5\n", "run.env must be a table"),
    ("[run]\nruns_dir = 5\n", "run.runs_dir must be a string"),
])
@pytest.mark.parametrize("dry_run", [False, True])
def test_force_does_not_launch_from_a_mistyped_run_section(
        project: Path, run: str, message: str, dry_run: bool) -> None:
    from tests.conftest import lorac

    write_files(project, {"profiles/p.toml": PROFILE + run})
    code, out, err = lorac("run", "p", "--force", *(["--dry-run"] if dry_run else []))
    assert code == 2, out + err
    assert "internal error" not in err and "Traceback" not in err
    [line] = [x for x in err.splitlines() if x.startswith("lorac: error:")]
    assert line.startswith("lorac: error: profiles/p.toml:") and message in line, line
    assert not (project / "runs").exists()


def test_show_prints_a_run_array_and_a_top_level_value(project: Path) -> None:
    from tests.conftest import lorac

    write_files(project, {"profiles/p.toml": "x = 1\n" + PROFILE + "[[run]]\ngpus = 2\n"})
    code, out, err = lorac("show", "p")
    assert code == 1 and "LRC005" in err and "internal error" not in err, err
    assert "\nx = 1  # profiles/p.toml:1:1\n" in out
    assert "\n[[run]]\ngpus = 2  # profiles/p.toml:" in out


def _runnable(project: Path) -> None:
    write_files(project, {"profiles/p.toml": PROFILE, "models/flux1-dev.safetensors": "x",
                          "models/clip_l.safetensors": "x", "models/t5xxl.safetensors": "x",
                          "models/ae.safetensors": "x", "data/a.txt": "ohwx",
                          "lorac.toml": 'ignore = ["LRC5"]\n', "afile": "not a folder\n"})


@pytest.mark.parametrize(("runs_dir", "why"), [
    ("afile", "afile: it exists and is not a folder"),
    ("afile/runs", "afile/runs: a part of that path is a file, not a folder"),
    ("locked/runs", "locked/runs: Permission denied"),
    ("readonly/runs", "readonly/runs: Read-only file system"),
])
def test_a_runs_folder_that_cannot_be_made_is_a_one_line_error(
        project: Path, monkeypatch: pytest.MonkeyPatch, runs_dir: str, why: str) -> None:
    import errno

    from tests.conftest import lorac

    _runnable(project)
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args, **kwargs) -> None:  # what root cannot be refused for real
        if self.parts[0] == "locked":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        if self.parts[0] == "readonly":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, out, err = lorac("run", "p", "--runs-dir", runs_dir)
    assert code == 2, out + err
    assert err.splitlines()[-1] == f"lorac: error: cannot create a run folder under {why}"
    assert "internal error" not in err


def test_a_runs_dir_that_is_a_file_in_the_profile_is_a_one_line_error(project: Path) -> None:
    from tests.conftest import lorac

    _runnable(project)
    p = project / "profiles" / "p.toml"
    p.write_text(p.read_text() + '[run]\nruns_dir = "afile"\n')
    code, out, err = lorac("run", "p")
    assert code == 2, out + err
    assert err.splitlines()[-1] == ("lorac: error: cannot create a run folder under afile: "
                                    "it exists and is not a folder")


def test_report_page_follows_the_run(env: dict[str, str]) -> None:
    """The page is there (refreshing, status running) while the trainer runs, and rewritten
    without the refresh at the end."""
    slow = {**env, "FAKE_TRAINER_ARGS": json.dumps(["--sleep", "0.5", "--steps", "8"])}
    proc = subprocess.Popen([sys.executable, "-m", "lorac", "run", "p", "--display", "plain"],
                            cwd=env["PROJECT"], env=slow, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        live = None
        deadline = time.monotonic() + 60
        while live is None and time.monotonic() < deadline and proc.poll() is None:
            for page in (Path(env["PROJECT"]) / "runs").glob("*/report.html"):
                live = page.read_text(encoding="utf-8")
            time.sleep(0.1)
        assert live is not None, "no report.html while the run was going"
        assert 'http-equiv="refresh"' in live and 'data-status="running"' in live
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run_dir, _ = _manifest(env)
    final = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'http-equiv="refresh"' not in final and 'data-status="succeeded"' in final
