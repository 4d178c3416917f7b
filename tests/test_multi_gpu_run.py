"""``lorac run`` with several GPUs, on the CPU: what each backend launches, with what
environment, and what it refuses (docs/multi-gpu.md).

A fake NVML (a ``pynvml`` module first on ``PYTHONPATH``) shows ``$FAKE_NVML_GPUS`` GPUs to
lorac's pre-flight check and its telemetry; stand-in ``accelerate`` and ``python`` executables
record their command line and ``CUDA_VISIBLE_DEVICES`` and run the stand-in trainers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_files
from tests.test_musubi_run import PROFILE as MUSUBI_PROFILE
from tests.test_run_cli import PROFILE as KOHYA_PROFILE
from tests.test_runner import STAND_IN

STAND_IN_MUSUBI = REPO / "tests" / "stand_in_musubi.py"

FAKE_NVML = """
import os
from types import SimpleNamespace

MIB = 1024 * 1024
nvmlMemory_v2 = 2


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlSystemGetDriverVersion():
    return "580.0"


def nvmlSystemGetNVMLVersion():
    return "13.580"


def nvmlDeviceGetCount():
    return int(os.environ["FAKE_NVML_GPUS"])


def nvmlDeviceGetHandleByIndex(i):
    return i


def nvmlDeviceGetName(h):
    return "Fake GPU"


def nvmlDeviceGetUUID(h):
    return f"GPU-{h}"


def nvmlDeviceGetMemoryInfo(h, version=None):
    return SimpleNamespace(total=81559 * MIB, used=(1000 + 100 * h) * MIB)


def nvmlDeviceGetUtilizationRates(h):
    return SimpleNamespace(gpu=50)


def nvmlDeviceGetComputeRunningProcesses(h):
    return []
"""

#: Records ``[name, argv, CUDA_VISIBLE_DEVICES]`` in ``$FAKE_CALLS``, then runs the stand-in.
RECORD = """#!{python}
import json, os, runpy, sys
with open(os.environ["FAKE_CALLS"], "a") as fh:
    fh.write(json.dumps([{name!r}, sys.argv[1:], os.environ.get("CUDA_VISIBLE_DEVICES")]) + "\\n")
{then}
"""

#: sd-scripts' stand-in: the LoRA goes into the output_dir of ``--config_file``.
KOHYA_THEN = """import tomllib
args = sys.argv[1:]
cfg = tomllib.load(open(args[args.index("--config_file") + 1], "rb"))
out = next(t["output_dir"] for t in cfg.values() if isinstance(t, dict) and "output_dir" in t)
os.execv(sys.executable, [sys.executable, {stand_in!r}, "--steps", "3", "--output",
                          os.path.join(out, "lora.safetensors")])"""

MUSUBI_THEN = """sys.argv[0] = {stand_in!r}
runpy.run_path({stand_in!r}, run_name="__main__")"""

TWO_MACHINES = """
[run]
gpus = 2
num_machines = 2
machine_rank = "${env:MACHINE_RANK:-0}"
main_process_ip = "10.0.0.1"
main_process_port = 29500
"""


def _executable(path: Path, name: str, then: str) -> None:
    path.write_text(RECORD.format(python=sys.executable, name=name, then=then))
    path.chmod(0o755)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    from lorac.config.inventory import load_pin

    nvml = tmp_path / "nvml"
    nvml.mkdir()
    (nvml / "pynvml.py").write_text(FAKE_NVML)
    bins = {}
    for trainer, then in (("kohya", KOHYA_THEN.format(stand_in=str(STAND_IN))),
                          ("musubi", MUSUBI_THEN.format(stand_in=str(STAND_IN_MUSUBI)))):
        bin_dir = tmp_path / trainer / "bin"
        bin_dir.mkdir(parents=True)
        _executable(bin_dir / "accelerate", "accelerate", then)
        if trainer == "musubi":
            _executable(bin_dir / "python", "python", then)
        bins[trainer] = str(bin_dir)
    sd = tmp_path / "sd-scripts"
    sd.mkdir()
    (sd / "train_network.py").write_text("")
    (sd / ".lorac-commit").write_text(load_pin("kohya").commit)
    musubi = tmp_path / "musubi-tuner"
    (musubi / "src" / "musubi_tuner" / "training").mkdir(parents=True)
    (musubi / "src" / "musubi_tuner" / "training" / "trainer_base.py").write_text("")
    (musubi / ".lorac-commit").write_text(load_pin("musubi").commit)
    project = tmp_path / "project"
    write_files(project, {
        "models/flux1-dev.safetensors": "x", "models/clip_l.safetensors": "x",
        "models/t5xxl.safetensors": "x", "models/ae.safetensors": "x",
        "models/wan.safetensors": "x", "models/vae.safetensors": "x", "models/t5.pth": "x",
        "data/a.png": b"\x89PNG", "data/a.txt": "ohwx",
        "lorac.toml": 'ignore = ["LRC5"]\n'})
    base = {k: v for k, v in os.environ.items()
            if k not in ("CUDA_VISIBLE_DEVICES", "MACHINE_RANK")}
    return {**base, "FAKE_NVML_GPUS": "2", "FAKE_CALLS": str(tmp_path / "calls.jsonl"),
            "PYTHONPATH": f"{nvml}{os.pathsep}{REPO}", "LORAC_NO_CACHE": "1",
            "LORAC_SD_SCRIPTS": str(sd), "LORAC_MUSUBI_TUNER": str(musubi),
            "FAKE_MUSUBI_LOG": str(tmp_path / "musubi.jsonl"), "PROJECT": str(project),
            "BIN_KOHYA": bins["kohya"], "BIN_MUSUBI": bins["musubi"]}


def _lorac(env: dict[str, str], trainer: str, *args: str,
           **more: str) -> subprocess.CompletedProcess:
    run_env = {**env, **more,
               "PATH": f"{env['BIN_' + trainer.upper()]}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "lorac", *args], cwd=env["PROJECT"],
                          env=run_env, capture_output=True, text=True, timeout=120)


def _profile(env: dict[str, str], text: str) -> None:
    write_files(Path(env["PROJECT"]), {"profiles/p.toml": text})


def _calls(env: dict[str, str]) -> list[list]:
    path = Path(env["FAKE_CALLS"])
    calls = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    path.unlink(missing_ok=True)
    return calls


def _manifest(env: dict[str, str]) -> dict:
    (run,) = sorted((Path(env["PROJECT"]) / "runs").iterdir())
    return json.loads((run / "manifest.json").read_text())


def _options(argv: list[str]) -> list[str]:
    """The ``accelerate launch`` options: between ``launch`` and the entry script."""
    script = next(i for i, a in enumerate(argv) if a.endswith(".py"))
    assert argv[0] == "launch"
    return argv[1:script]


# ---- kohya --------------------------------------------------------------------------------


def test_kohya_two_gpus_launch_two_processes_and_sample_both(env: dict[str, str]) -> None:
    _profile(env, KOHYA_PROFILE + "\n[run]\ngpus = 2\n")
    result = _lorac(env, "kohya", "run", "p", "--display", "plain")
    assert result.returncode == 0, result.stderr
    ((name, argv, visible),) = _calls(env)
    assert name == "accelerate" and visible is None  # accelerate assigns the GPUs itself
    assert _options(argv) == ["--multi_gpu", "--num_processes=2"]
    m = _manifest(env)
    assert m["status"] == "succeeded" and m["exit_code"] == 0
    assert m["command"][1:4] == ["launch", "--multi_gpu", "--num_processes=2"]
    assert sorted(m["telemetry"]["peak_mib"]) == ["0", "1"]  # every GPU, each its own peak
    assert m["telemetry"]["peak_mib"]["1"] > m["telemetry"]["peak_mib"]["0"]
    assert any(o["path"].endswith("lora.safetensors") for o in m["outputs"])


@pytest.mark.parametrize(("rank_env", "rank"), [({}, "0"), ({"MACHINE_RANK": "1"}, "1")])
def test_kohya_two_machines(env: dict[str, str], rank_env: dict[str, str], rank: str) -> None:
    _profile(env, KOHYA_PROFILE + TWO_MACHINES)
    result = _lorac(env, "kohya", "run", "p", "--display", "plain", **rank_env)
    assert result.returncode == 0, result.stderr
    ((_, argv, _),) = _calls(env)
    assert _options(argv) == ["--multi_gpu", "--num_processes=4", "--num_machines=2",
                              f"--machine_rank={rank}", "--main_process_ip=10.0.0.1",
                              "--main_process_port=29500"]


# ---- musubi-tuner -------------------------------------------------------------------------


def test_musubi_two_gpus_train_on_both_and_cache_on_one(env: dict[str, str]) -> None:
    _profile(env, MUSUBI_PROFILE + "\n[run]\ngpus = 2\n")
    result = _lorac(env, "musubi", "run", "p", "--display", "plain",
                    CUDA_VISIBLE_DEVICES="2,3")
    assert result.returncode == 0, result.stderr
    calls = _calls(env)
    assert [(c[0], Path(next(a for a in c[1] if a.endswith(".py"))).name) for c in calls] == [
        ("python", "wan_cache_latents.py"), ("python", "wan_cache_text_encoder_outputs.py"),
        ("accelerate", "wan_train_network.py")]
    for name, argv, visible in calls:
        assert visible == "2,3"  # passed through unchanged to every step
        if name == "python":  # one process: musubi's default device, the first visible GPU
            assert not any(a.startswith(("--device", "--multi_gpu", "--num_processes"))
                           for a in argv)
    assert _options(calls[2][1]) == ["--multi_gpu", "--num_processes=2"]
    m = _manifest(env)
    assert m["status"] == "succeeded"
    train = next(s for s in m["steps"] if s["name"] == "train")
    assert train["command"][:4] == ["accelerate", "launch", "--multi_gpu", "--num_processes=2"]
    assert sorted(m["telemetry"]["peak_mib"]) == ["0", "1"]
    assert any(o["path"].endswith("subject.safetensors") for o in m["outputs"])


@pytest.mark.parametrize(("rank_env", "rank"), [({}, "0"), ({"MACHINE_RANK": "1"}, "1")])
def test_musubi_two_machines(env: dict[str, str], rank_env: dict[str, str], rank: str) -> None:
    _profile(env, MUSUBI_PROFILE + TWO_MACHINES)
    result = _lorac(env, "musubi", "run", "p", "--display", "plain", **rank_env)
    assert result.returncode == 0, result.stderr
    calls = _calls(env)
    assert [c[0] for c in calls] == ["python", "python", "accelerate"]
    assert _options(calls[2][1]) == ["--multi_gpu", "--num_processes=4", "--num_machines=2",
                                     f"--machine_rank={rank}", "--main_process_ip=10.0.0.1",
                                     "--main_process_port=29500"]


def test_musubi_ddp_options_reach_the_training_script_only(env: dict[str, str]) -> None:
    _profile(env, MUSUBI_PROFILE.replace(
        "max_train_steps = 4", "max_train_steps = 4\nddp_timeout = 30\nddp_static_graph = true")
        + "\n[run]\ngpus = 2\n")
    result = _lorac(env, "musubi", "run", "p", "--display", "plain")
    assert result.returncode == 0, result.stderr
    calls = _calls(env)
    assert all(not any(a.startswith("--ddp") for a in c[1]) for c in calls[:2])
    run = sorted((Path(env["PROJECT"]) / "runs").iterdir())[0]
    config = (run / "config.toml").read_text()
    assert "ddp_timeout = 30" in config and "ddp_static_graph = true" in config


# ---- pre-flight and refusals --------------------------------------------------------------


@pytest.mark.parametrize("trainer", ["kohya", "musubi"])
def test_more_gpus_than_visible_launch_nothing(env: dict[str, str], trainer: str) -> None:
    text = KOHYA_PROFILE if trainer == "kohya" else MUSUBI_PROFILE
    _profile(env, text + "\n[run]\ngpus = 2\n")
    result = _lorac(env, trainer, "run", "p", "--display", "plain", FAKE_NVML_GPUS="8",
                    CUDA_VISIBLE_DEVICES="5")
    assert result.returncode == 2
    assert "pre-flight: [run] gpus = 2 but 1 GPU(s) are visible" in result.stderr
    assert "Traceback" not in result.stderr
    assert _calls(env) == []
    assert not list((Path(env["PROJECT"]) / "runs").glob("*/manifest.json"))


AI_TOOLKIT_PROFILE = """[profile]
family = "flux1-dev"
backend = "ai-toolkit"

[model]
pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"

[network]
network_dim = 16
network_alpha = 16

[dataset]
resolution = 512
[[dataset.subsets]]
image_dir = "data"
"""


@pytest.mark.parametrize("run", ["gpus = 2", 'num_machines = 2\nmain_process_ip = "10.0.0.1"'])
def test_ai_toolkit_refuses_several_gpus(env: dict[str, str], run: str) -> None:
    _profile(env, AI_TOOLKIT_PROFILE + f"\n[run]\n{run}\n")
    result = _lorac(env, "kohya", "run", "p", "--display", "plain")
    assert result.returncode == 1, result.stderr
    assert "LRC691 [run] asks for 2 GPU processes; ai-toolkit trains on one GPU" in result.stderr
    assert "nothing was launched" in result.stderr and "Traceback" not in result.stderr
    assert _calls(env) == []
    built = _lorac(env, "kohya", "build", "p")
    assert built.returncode == 1 and "LRC691" in built.stderr
    assert not (Path(env["PROJECT"]) / "build").exists()


def test_ai_toolkit_backend_of_a_kohya_profile_refuses_too(env: dict[str, str]) -> None:
    """The lint rule leaves a kohya profile alone; building it for ai-toolkit does not."""
    _profile(env, KOHYA_PROFILE + "\n[run]\ngpus = 2\n")
    lint = _lorac(env, "kohya", "lint", "profiles/p.toml")
    assert "LRC691" not in lint.stdout + lint.stderr
    built = _lorac(env, "kohya", "build", "p", "--backend", "ai-toolkit")
    assert built.returncode == 1
    assert "LRC691 [run] asks for 2 GPU processes" in built.stderr
    assert "nothing was written" in built.stderr
    run = _lorac(env, "kohya", "run", "p", "--backend", "ai-toolkit", "--display", "plain")
    assert run.returncode == 1 and "LRC691" in run.stderr
    assert "the backend reported errors; nothing was launched" in run.stderr
    assert _calls(env) == []


def test_musubi_device_option_moves_only_the_caching_steps(tmp_path: Path) -> None:
    """``device`` is an option of the caching scripts only: it picks their GPU and leaves the
    training step to accelerate."""
    from lorac.trainers.musubi.emitter import MusubiBackend
    from tests.conftest import resolved

    text = MUSUBI_PROFILE.replace("sdpa = true", 'sdpa = true\ndevice = "cuda:1"')
    res = resolved(tmp_path, text + "\n[run]\ngpus = 2\n")
    assert res.profile is not None
    steps = dict(MusubiBackend().emit(res.profile, "toml").steps)
    assert "--device=cuda:1" in steps["latents"] and "--device=cuda:1" in steps["text_encoder"]
    assert not any(a.startswith("--device") for a in steps["train"])
    assert steps["train"][2:4] == ["--multi_gpu", "--num_processes=2"]
