"""lorac.run.process with a stand-in trainer; units of lorac.run.progress, .telemetry and
.manifest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lorac.run.manifest import new_manifest, read_manifest, redact_env, write_manifest
from lorac.run.process import launch
from lorac.run.progress import ProgressParser, split_lines
from lorac.run.telemetry import GpuSampler
from tests.conftest import REPO

STAND_IN = REPO / "tests" / "stand_in_trainer.py"


def stand_in(*args: str) -> list[str]:
    return [sys.executable, str(STAND_IN), *args]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); count it as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


# ---- progress --------------------------------------------------------------------------------

REAL_LINES = [
    "10:00:01 INFO Checking the state dict: Diffusers or BFL, dev or  flux_utils.py:43",
    "10:00:01 INFO Building Flux model dev from BFL checkpoint  flux_utils.py:107",
    "10:00:02 INFO Loading state dict from /m/flux1-dev.safetensors  flux_utils.py:124",
    "10:00:12 INFO caching latents with caching strategy.  library/dataset.py:752",
    "10:00:12 INFO caching latents...  library/dataset.py:802",
    "100%|██████████| 4/4 [00:01<00:00,  3.21it/s]",
    "10:00:13 INFO move vae and unet to cpu to save memory  flux_train_network.py:237",
    "10:00:13 INFO move text encoders to gpu  flux_train_network.py:245",
    "10:00:14 INFO caching Text Encoder outputs with caching strategy. library/dataset.py:863",
    "100%|██████████| 4/4 [00:02<00:00,  1.90it/s]",
    "import network module: networks.lora_flux",
    "10:00:20 INFO create LoRA network. base dim (rank): 16, alpha: 16 lora_flux.py:782",
    "prepare optimizer, data loader etc.",
    "running training / 学習開始",
    "steps:   0%|          | 0/20 [00:00<?, ?it/s]",
    "steps:  45%|████▌     | 9/20 [00:12<00:15,  1.40s/it, avr_loss=0.123]",
    "steps: 100%|██████████| 20/20 [00:27<00:00,  1.38s/it, avr_loss=0.0981]",
    "saving checkpoint: /runs/x/out/lora.safetensors",
    "10:01:00 INFO model saved.  train_network.py:1863",
]


def test_progress_phases_steps_and_loss() -> None:
    p = ProgressParser()
    events = p.feed_all(REAL_LINES)
    phases = [e.phase for e in events if e.kind == "phase"]
    assert phases == [
        "load",
        "cache_latents",
        "cache_text_encoder",
        "prepare",
        "train",
        "save",
        "done",
    ]
    steps = [e for e in events if e.kind == "step"]
    assert [(e.step, e.total) for e in steps] == [(0, 20), (9, 20), (20, 20)]
    assert steps[0].sec_per_it is None and steps[0].loss is None
    assert steps[1].sec_per_it == pytest.approx(1.40) and steps[1].loss == pytest.approx(0.123)
    assert (p.step, p.total, p.loss) == (20, 20, pytest.approx(0.0981))
    bars = [e for e in events if e.kind == "bar"]
    assert [b.phase for b in bars] == ["cache_latents", "cache_text_encoder"]
    assert bars[0].sec_per_it == pytest.approx(1 / 3.21)


def test_progress_it_per_s_scientific_loss_and_extra_postfix() -> None:
    p = ProgressParser()
    (ev,) = [
        e
        for e in p.feed(
            "steps:  10%|█  | 2/20 [00:01<00:09,  2.00it/s, Keys Scaled=0, avr_loss=1.5e-05]"
        )
        if e.kind == "step"
    ]
    assert ev.sec_per_it == pytest.approx(0.5) and ev.loss == pytest.approx(1.5e-5)


def test_progress_save_mid_run_returns_to_train() -> None:
    p = ProgressParser()
    p.feed_all(["running training / 学習開始", "saving checkpoint: a.safetensors"])
    assert p.phase == "save"
    p.feed("steps:  50%|█████     | 10/20 [00:10<00:10,  1.00s/it, avr_loss=0.2]")
    assert p.phase == "train"
    # phases never go back otherwise
    p.feed("2026 INFO Loading state dict from x")
    assert p.phase == "train"


def test_progress_traceback_error_line() -> None:
    p = ProgressParser()
    lines = textwrap.dedent(
        """\
        Traceback (most recent call last):
          File "/sd-scripts/flux_train_network.py", line 547, in <module>
            trainer.train(args)
        torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.
        """
    ).splitlines()
    events = p.feed_all(lines)
    assert [e.kind for e in events] == ["traceback", "error"]
    assert p.error is not None and p.error.startswith("torch.OutOfMemoryError: CUDA out of memory")


def test_split_lines_on_carriage_returns() -> None:
    lines, rest = split_lines("a\rb\r\nc\nd")
    assert lines == ["a", "b", "c"] and rest == "d"


# ---- manifest --------------------------------------------------------------------------------


def test_redact_env_hides_secret_looking_values() -> None:
    env = {
        "HF_TOKEN": "hf_x",
        "WANDB_API_KEY": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "DB_PASSWORD": "p",
        "KEY": "v",
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "0",
        "MONKEY_BUSINESS": "ok",
    }
    red = redact_env(env)
    assert set(red) == set(env)
    for name in ("HF_TOKEN", "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "KEY"):
        assert red[name] is None
    assert red["HF_HUB_OFFLINE"] == "1" and red["MONKEY_BUSINESS"] == "ok"


def test_manifest_extra_keys_and_atomic_write(tmp_path: Path) -> None:
    m = new_manifest(["x"], tmp_path, {}, extra={"profile": {"network_dim": 16}})
    write_manifest(tmp_path / "manifest.json", m)
    assert read_manifest(tmp_path / "manifest.json")["profile"] == {"network_dim": 16}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temp file left
    with pytest.raises(ValueError, match="status"):
        new_manifest(["x"], tmp_path, {}, extra={"status": "mine"})


def test_sampler_without_nvml_states_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` fails, GPU or not
    s = GpuSampler(interval=0.05)
    with s:
        s.set_phase("train")
        time.sleep(0.1)
    summary = s.summary()
    json.dumps(summary)
    assert not s.available and s.reason and summary["phases"] == {}


def test_sampler_sums_only_the_run_groups_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared GPU: the device reads 30 GiB, the run's own group 12 GiB over two processes."""
    import types

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             start_new_session=True)
    try:
        mib = 1024 * 1024
        procs = [types.SimpleNamespace(pid=child.pid, usedGpuMemory=10240 * mib),
                 types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=18432 * mib),  # not ours
                 types.SimpleNamespace(pid=2**22 + 7, usedGpuMemory=999 * mib),  # unknown pid
                 types.SimpleNamespace(pid=child.pid, usedGpuMemory=None)]  # not reported
        fake = types.SimpleNamespace(
            nvmlInit=lambda: None, nvmlShutdown=lambda: None,
            nvmlSystemGetDriverVersion=lambda: "580", nvmlSystemGetNVMLVersion=lambda: "13",
            nvmlDeviceGetCount=lambda: 1, nvmlDeviceGetHandleByIndex=lambda i: i,
            nvmlDeviceGetName=lambda h: "Fake GPU", nvmlDeviceGetUUID=lambda h: "GPU-0",
            nvmlDeviceGetMemoryInfo=lambda h, version=None: types.SimpleNamespace(
                total=81559 * mib, used=30720 * mib),
            nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=50),
            nvmlDeviceGetComputeRunningProcesses=lambda h: procs, nvmlMemory_v2=2)
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        monkeypatch.setattr("lorac.run.telemetry.MAX_POINTS", 4)
        s = GpuSampler(interval=0.02)
        with s:
            s.set_phase("prepare")
            time.sleep(0.1)  # no group yet: nothing per process
            s.group = child.pid
            s.set_phase("train")
            time.sleep(0.1)
        phases = s.summary()["phases"]
        assert phases["prepare"]["0"]["process_memory_mib"] is None
        assert phases["train"]["0"]["memory_used_mib"] == 30720.0
        assert phases["train"]["0"]["process_memory_mib"] == 10240.0
        series = s.summary()["series"]["0"]  # memory over time, thinned to MAX_POINTS
        assert 2 <= len(series) <= 4 and {p[1] for p in series} == {30720.0}
        assert series[0][2] in ("startup", "prepare") and series[-1][2] == "train"
        assert [p[0] for p in series] == sorted(p[0] for p in series)
    finally:
        child.kill()
        child.wait()


# ---- runner ----------------------------------------------------------------------------------


def test_launch_succeeded(tmp_path: Path) -> None:
    out = tmp_path / "run" / "output" / "lora.safetensors"
    seen: list[str] = []
    r = launch(
        stand_in("--steps", "4", "--output", str(out)),
        tmp_path / "run",
        env={"LORAC_TEST": "1", "HF_TOKEN": "hf_secret"},
        display="plain",
        on_event=lambda e: seen.append(e.kind),
    )
    assert r.status == "succeeded" and r.exit_code == 0
    assert (r.step, r.total) == (4, 4) and r.loss is not None and r.sec_per_it is not None
    assert r.phase == "done"
    m = json.loads(r.manifest_path.read_text())
    assert m["status"] == "succeeded" and m["exit_code"] == 0 and m["duration_s"] >= 0
    assert m["env"]["LORAC_TEST"] == "1" and m["env"]["HF_TOKEN"] is None
    assert "hf_secret" not in r.manifest_path.read_text()
    assert [p["phase"] for p in m["phases"]][:2] == ["startup", "load"]
    outputs = {o["path"]: o for o in m["outputs"]}
    assert outputs["output/lora.safetensors"]["bytes"] == out.stat().st_size
    assert len(outputs["output/lora.safetensors"]["sha256"]) == 64
    assert "train.log" in outputs and "manifest.json" not in outputs
    assert "steps" in r.log_path.read_text(encoding="utf-8")
    assert "step" in seen and "phase" in seen
    assert m["versions"]["python"] and m["lorac_version"]


def test_launch_masks_known_secrets_in_the_manifest_env(tmp_path: Path) -> None:
    # the name does not look secret and 64 hex digits are no token format: only the value
    # being one of the run's known secrets says it must not be recorded
    value = "9f2c" * 16
    r = launch(stand_in("--steps", "1"), tmp_path / "run", env={"R2_CREDS": value},
               display="none", secrets=[value])
    assert r.status == "succeeded"
    assert value not in r.manifest_path.read_text()
    assert json.loads(r.manifest_path.read_text())["env"]["R2_CREDS"].startswith("9f2c…")


def test_launch_failed_propagates_exit_code_and_shows_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = launch(
        stand_in("--steps", "5", "--fail-at", "3", "--exit-code", "7"),
        tmp_path / "run",
        display="plain",
    )
    assert r.status == "failed" and r.exit_code == 7
    assert r.error and "CUDA out of memory" in r.error
    err = capsys.readouterr().err
    assert "last lines of" in err and "CUDA out of memory at step 3" in err
    assert json.loads(r.manifest_path.read_text())["progress"]["error"] == r.error


def test_launch_max_steps_stops(tmp_path: Path) -> None:
    r = launch(
        stand_in("--steps", "50", "--sleep", "0.05"), tmp_path / "run", display="none", max_steps=3
    )
    assert r.status == "stopped" and r.step is not None and 3 <= r.step < 50


def test_launch_missing_executable_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        launch(["/nonexistent/trainer"], tmp_path / "run", display="none")


def test_signal_during_start_up_is_forwarded_not_escalated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One SIGTERM that lands before the child's group is known is passed on as SIGTERM once
    the group is known; it is not counted a second time (which would send SIGKILL)."""
    import lorac.run.process

    real_popen = subprocess.Popen

    def popen_then_signal(*args: object, **kw: object) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kw)  # type: ignore[call-overload]
        if kw.get("start_new_session"):  # the trainer, not a helper such as nvidia-smi
            signal.raise_signal(signal.SIGTERM)  # lorac's handler runs before pgid is set
        return proc

    monkeypatch.setattr(lorac.run.process.subprocess, "Popen", popen_then_signal)
    r = launch(stand_in("--steps", "1000", "--sleep", "0.05"), tmp_path / "run", display="none")
    assert r.status == "interrupted" and r.exit_code == 128 + signal.SIGTERM


# Signals are sent to a separate lorac process (a driver script), as a user's Ctrl-C would be.
DRIVER = """
import sys, json
from pathlib import Path
from lorac.run.process import launch
r = launch(sys.argv[2:], Path(sys.argv[1]), display="plain")
print(json.dumps({"status": r.status, "exit_code": r.exit_code}), flush=True)
sys.exit(r.exit_code)
"""


def run_driver(tmp_path: Path, trainer_args: list[str]) -> tuple[subprocess.Popen[str], Path, Path]:
    run_dir = tmp_path / "run"
    pid_file = tmp_path / "pids"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(driver),
            str(run_dir),
            *stand_in(*trainer_args, "--pid-file", str(pid_file)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    end = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < end, (
            proc.stderr.read() if proc.poll() is not None else "no pid file"
        )
        time.sleep(0.05)
    time.sleep(0.3)  # let the trainer reach its step loop
    return proc, run_dir, pid_file


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_interrupts_and_leaves_nothing_behind(tmp_path: Path, sig: signal.Signals) -> None:
    proc, run_dir, pid_file = run_driver(
        tmp_path, ["--steps", "1000", "--sleep", "0.05", "--grandchild"]
    )
    pids = [int(p) for p in pid_file.read_text().split()]
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "interrupted"
    assert result["exit_code"] == 128 + sig  # the trainer died of the forwarded signal
    assert proc.returncode == 128 + sig
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "interrupted" and m["exit_code"] == 128 + sig
    for pid in pids:  # the trainer and its grandchild are gone
        assert wait_gone(pid), f"pid {pid} outlived the run"


def test_second_sigint_kills(tmp_path: Path) -> None:
    proc, run_dir, pid_file = run_driver(
        tmp_path, ["--steps", "1000", "--sleep", "0.05", "--ignore-sigint"]
    )
    trainer = int(pid_file.read_text().split()[0])
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert pid_alive(trainer)  # it ignores the first one
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"status": "interrupted", "exit_code": 128 + signal.SIGKILL}
    assert wait_gone(trainer)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"


SPLIT_TOKEN = "hf_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3x"


@pytest.mark.parametrize("line", [SPLIT_TOKEN, f"HF_TOKEN={'9f3a1c7e5b2d8f4a6c0e9b3d7f1a5c2e'}"])
def test_a_long_line_is_never_cut_inside_a_credential(tmp_path: Path, line: str) -> None:
    """A line over LINE_LIMIT is logged in pieces; the piece boundary used to fall inside a
    token that was still arriving, and each half — unrecognisable on its own — was logged."""

    from lorac.run.process import LINE_LIMIT

    half = len(line) // 2
    script = tmp_path / "trainer.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.stdout.write("x" * {LINE_LIMIT - 6} + " " + {line[:half]!r})
        sys.stdout.flush()
        time.sleep(0.5)
        sys.stdout.write({line[half:]!r} + " done\\n")
    """))
    r = launch([sys.executable, str(script)], tmp_path / "run", display="none")
    assert r.status == "succeeded"
    log = r.log_path.read_text(encoding="utf-8")
    assert log.endswith(" done\n") and log.count("x") >= LINE_LIMIT - 6
    value = line.split("=")[-1]
    assert value[4:14] not in log and value[-10:] not in log, log[-200:]
    assert "…[redacted]" in log


def test_cut_long_line_keeps_a_tail_and_splits_no_assignment() -> None:
    from lorac.run.process import LINE_KEEP, _cut_long_line

    value = "9f3a1c7e5b2d8f4a6c0e9b3d7f1a5c2e"
    data = ("x" * 10_000 + " R2_SECRET_ACCESS_KEY=" + value + " " + "y" * (LINE_KEEP - 20)
            ).encode()
    head, rest = _cut_long_line(data, set())
    assert head.decode() == "x" * 10_000 + " " and rest.decode().startswith("R2_SECRET")
    known = "k3y-" + "Ab9" * 10
    data = ("x" * 10_000 + known + "y" * (LINE_KEEP - 20)).encode()
    head, rest = _cut_long_line(data, {known})
    assert head.decode() == "x" * 10_000 and rest.decode().startswith(known)
    plain = ("z" * 20_000).encode()
    head, rest = _cut_long_line(plain, set())
    assert head + rest == plain and len(rest) == LINE_KEEP
