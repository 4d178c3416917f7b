"""``[run.env]`` reaches the trainer and nothing else: its names cannot redirect or stop the
generated ``train.sh`` (``lorac.trainers.shell_script``), and names the shell, the launcher or
lorac own are refused (``lorac.core.envnames``, LRC209) by lint, build and run alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorac.trainers import BUILD_DIR, shell_script
from tests.conftest import lorac, write_files

PROFILE = """[profile]
family = "flux1-dev"

[network]
network_module = "networks.lora_flux"
network_dim = 4
network_alpha = 4
"""

#: a stand-in ``accelerate``/``python``: records its argv and the environment it got
RECORDER = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["RECORD"], "w") as fh:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, fh)
"""


def _run_script(script: Path, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess,
                                                                    dict]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("accelerate", "python"):
        (bin_dir / name).write_text(RECORDER)
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "record.json"
    record.unlink(missing_ok=True)
    full = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "RECORD": str(record), **env}
    proc = subprocess.run(["bash", str(script)], env=full, capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, check=False)
    return proc, (json.loads(record.read_text()) if record.exists() else {})


@pytest.mark.parametrize("backend", ["kohya", "ai-toolkit"])
def test_run_env_cannot_redirect_train_sh(project: Path, backend: str) -> None:
    """``here`` and the checkout variable in [run.env] reach the trainer, but the script still
    runs the checkout's trainer on its own compiled files (they used to be overwritten by an
    ``export`` and the script ran /somewhere/else/…)."""

    shell = "sd_scripts" if backend == "kohya" else "toolkit"
    write_files(project, {"profiles/p.toml": PROFILE + f'\n[run.env]\nhere = "/somewhere/else"\n'
                          f'{shell} = "/somewhere/else"\nHF_HOME = "/cache/it\'s here"\n'})
    code, _, err = lorac("build", "p", "--backend", backend)
    assert code == 0, err
    checkout = project / "checkout"
    var = "LORAC_SD_SCRIPTS" if backend == "kohya" else "LORAC_AI_TOOLKIT"
    proc, got = _run_script(project / "build" / "p" / "train.sh", project, **{var: str(checkout)})
    assert proc.returncode == 0, proc.stderr
    build = str((project / "build" / "p").resolve())
    assert not any("/somewhere/else" in arg for arg in got["argv"]), got["argv"]
    assert any(arg.startswith(str(checkout) + "/") for arg in got["argv"]), got["argv"]
    assert any(arg.startswith(build + "/") for arg in got["argv"]), got["argv"]
    assert got["env"]["here"] == got["env"][shell] == "/somewhere/else"
    assert got["env"]["HF_HOME"] == "/cache/it's here"


def test_train_sh_never_assigns_a_user_name_in_the_shell(tmp_path: Path) -> None:
    """Even a name lint refuses cannot stop the script: user names are env(1) arguments, not
    shell assignments (``export SHELLOPTS=…`` died with ``SHELLOPTS: readonly variable``)."""

    from lorac.trainers.kohya.emitter import CHECKOUT

    env = {"SHELLOPTS": "braceexpand", "IFS": "/", "here": "/elsewhere", "A": "$(touch x) `y`"}
    argv = ["accelerate", "launch", f"{CHECKOUT.prefix}/train.py", "--config_file",
            f"{BUILD_DIR}/config.toml"]
    script = tmp_path / "train.sh"
    script.write_text(shell_script(argv, env, "header", CHECKOUT, (2, 4)))
    proc, got = _run_script(script, tmp_path, LORAC_SD_SCRIPTS="/sd")
    assert proc.returncode == 0, proc.stderr
    assert got["argv"] == ["launch", "/sd/train.py", "--config_file",
                           f"{tmp_path.resolve()}/config.toml"]
    assert got["env"]["A"] == "$(touch x) `y`" and not (tmp_path / "x").exists()
    assert "export" not in script.read_text()


def test_a_required_credential_is_checked_not_written(tmp_path: Path) -> None:
    from lorac.trainers.kohya.emitter import CHECKOUT

    argv = ["accelerate", "launch", f"{CHECKOUT.prefix}/train.py"]
    script = tmp_path / "train.sh"
    script.write_text(shell_script(argv, {"HF_TOKEN": "hf_x" * 10}, "h", CHECKOUT, (2,)))
    assert "hf_x" not in script.read_text()
    proc, got = _run_script(script, tmp_path, LORAC_SD_SCRIPTS="/sd", HF_TOKEN="")
    assert proc.returncode != 0 and "set HF_TOKEN in the environment" in proc.stderr and not got
    proc, got = _run_script(script, tmp_path, LORAC_SD_SCRIPTS="/sd", HF_TOKEN="tok")
    assert proc.returncode == 0 and got["env"]["HF_TOKEN"] == "tok"


def test_the_scripts_own_names_never_read_like_credentials() -> None:
    """A required credential is checked as ``${NAME:?…}`` in the shell; that only reads the
    caller's value because the script's own variables never read like credentials."""

    from lorac.core.secrets import looks_secret_name
    from lorac.trainers.ai_toolkit.emitter import CHECKOUT as TOOLKIT
    from lorac.trainers.kohya.emitter import CHECKOUT as KOHYA

    for name in ("here", KOHYA.shell, TOOLKIT.shell):
        assert not looks_secret_name(name), name


@pytest.mark.parametrize("name", [
    "SHELLOPTS", "BASHOPTS", "BASH_ENV", "BASH_VERSINFO", "BASHPID", "EUID", "UID", "PPID",
    "IFS", "CDPATH", "GLOBIGNORE", "ENV", "PWD", "SHLVL", "_", "OMP_NUM_THREADS", "MASTER_ADDR",
    "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID",
    "ACCELERATE_MIXED_PRECISION", "ACCELERATE_USE_CPU", "ACCELERATE_DYNAMO_BACKEND",
    "LORAC_SD_SCRIPTS", "LORAC_AI_TOOLKIT", "BAD-NAME", "A=B", "1X", "", "É", "A\nB"])
def test_names_the_shell_launcher_or_lorac_own_are_refused(name: str) -> None:
    from lorac.core.envnames import problem

    assert problem(name) is not None


@pytest.mark.parametrize("name", [
    "PATH", "HOME", "HF_HOME", "HF_TOKEN", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
    "NCCL_SOCKET_IFNAME", "ACCELERATE_LOG_LEVEL", "PYTORCH_CUDA_ALLOC_CONF", "here",
    "sd_scripts", "toolkit", "_private"])
def test_the_trainers_own_names_are_allowed(name: str) -> None:
    from lorac.core.envnames import problem

    assert problem(name) is None


def test_lint_and_build_stop_at_the_key(project: Path) -> None:
    write_files(project, {"profiles/p.toml": PROFILE + '\n[run.env]\nHF_HOME = "/c"\n'
                          'SHELLOPTS = "braceexpand"\n'})
    code, out, _ = lorac("lint", "--no-dataset", "profiles")
    assert code == 1
    assert "profiles/p.toml:11:1: LRC209 [run.env] SHELLOPTS is read-only in bash" in out
    code, _, err = lorac("build", "p")
    assert code == 1 and "LRC209" in err and not (project / "build").exists()


def test_run_stops_even_when_forced(project: Path) -> None:
    """``--force`` runs past lint errors, never past a name the launch cannot survive."""

    write_files(project, {"profiles/p.toml": PROFILE + '\n[run.env]\nBASH_ENV = "/tmp/x"\n'})
    code, out, err = lorac("run", "p", "--force", "--dry-run")
    assert code == 2, out + err
    assert "lorac: error: profiles/p.toml: [run.env] BASH_ENV is bash's" in err
    assert "accelerate" not in out
