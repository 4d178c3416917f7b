"""accelerate's own launcher on the options lorac emits for several GPUs and machines.

accelerate's ``launch`` parser, its validation and ``prepare_multi_gpu_env`` (what
``accelerate launch`` runs before it hands over to torchrun) read the ``accelerate launch``
options of the kohya and musubi backends, in a separate interpreter that has accelerate
(``LORAC_TRAINER_PYTHON``, e.g. a trainers' virtual environment); nothing is started. The
test checks what each machine then starts: ``gpus`` processes, ``num_machines`` nodes, its
rank, and the rendezvous address.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorac.trainers.kohya.emitter import KohyaBackend
from lorac.trainers.musubi.emitter import MusubiBackend
from tests.conftest import resolved
from tests.test_multinode import BASE as KOHYA_BASE
from tests.test_musubi_run import PROFILE as MUSUBI_BASE

pytestmark = pytest.mark.trainer

WORKER = r'''
import json, sys
from accelerate.commands.launch import launch_command_parser, _validate_launch_command
from accelerate.utils.launch import prepare_multi_gpu_env

args = launch_command_parser().parse_args(json.loads(sys.argv[1]))
args = _validate_launch_command(args)[0]
env = prepare_multi_gpu_env(args)
keys = ("multi_gpu", "num_processes", "nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint",
        "master_addr", "master_port", "training_script", "training_script_args")
result = {k: getattr(args, k, None) for k in keys}
result["env"] = {k: v for k, v in env.items() if k.startswith("ACCELERATE_MIXED")}
print(json.dumps(result))
'''

TWO_BY_FOUR = """
[run]
gpus = 4
num_machines = 2
machine_rank = "${env:MACHINE_RANK:-0}"
main_process_ip = "10.0.0.1"
main_process_port = 29511
mixed_precision = "bf16"
"""


def _python() -> str:
    python = os.environ.get("LORAC_TRAINER_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import accelerate.commands.launch"],
                           capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import accelerate; set LORAC_TRAINER_PYTHON to an "
                    "interpreter that can")
    return python


def _accelerate(tmp_path: Path, argv: list[str]) -> dict:
    assert argv[:2] == ["accelerate", "launch"]
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf")}  # no accelerate config file of ours
    proc = subprocess.run([_python(), "-c", WORKER, json.dumps(argv[2:])], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _emit(tmp_path: Path, backend: str, run: str, env: dict[str, str] | None = None) -> list[str]:
    text = (KOHYA_BASE if backend == "kohya" else MUSUBI_BASE) + run
    res = resolved(tmp_path, text, env=env)
    assert res.profile is not None and not res.diagnostics, res.diagnostics
    emitter = KohyaBackend() if backend == "kohya" else MusubiBackend()
    art = emitter.emit(res.profile, "toml")
    assert art.argv is not None
    return art.argv


@pytest.mark.parametrize("backend", ["kohya", "musubi"])
def test_one_machine_two_gpus(tmp_path: Path, backend: str) -> None:
    got = _accelerate(tmp_path, _emit(tmp_path, backend, "\n[run]\ngpus = 2\n"))
    assert got["multi_gpu"] is True and got["nproc_per_node"] == "2"
    assert got["nnodes"] is None and got["rdzv_endpoint"] is None
    assert got["training_script"].endswith("_train_network.py")
    assert got["training_script_args"][:1] == ["--config_file"]


@pytest.mark.parametrize("backend", ["kohya", "musubi"])
@pytest.mark.parametrize("rank", ["0", "1"])
def test_two_machines_start_gpus_processes_each(tmp_path: Path, backend: str, rank: str) -> None:
    argv = _emit(tmp_path, backend, TWO_BY_FOUR, env={"MACHINE_RANK": rank})
    got = _accelerate(tmp_path, argv)
    assert got["num_processes"] == 8  # the whole job
    assert (got["nproc_per_node"], got["nnodes"], got["node_rank"]) == ("4", "2", int(rank))
    assert got["rdzv_endpoint"] == "10.0.0.1:29511" and got["master_addr"] is None
    assert got["env"] == {"ACCELERATE_MIXED_PRECISION": "bf16"}


def test_same_network_uses_the_address_as_master(tmp_path: Path) -> None:
    argv = _emit(tmp_path, "musubi", TWO_BY_FOUR + 'accelerate_args = ["--same_network"]\n',
                 env={"MACHINE_RANK": "1"})
    got = _accelerate(tmp_path, argv)
    assert (got["master_addr"], got["master_port"]) == ("10.0.0.1", "29511")
    assert got["rdzv_endpoint"] is None
