"""Multi-GPU and multi-node launches: ``[run]`` → ``accelerate launch`` options (docs/multi-gpu.md).

accelerate's ``--num_processes`` is the total over all machines (it starts
``num_processes // num_machines`` per machine, accelerate/commands/launch.py
``prepare_multi_gpu_env``), while ``[run] gpus`` is the count of one machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.config.profile import Profile
from lorac.trainers.kohya.emitter import SD_SCRIPTS, KohyaBackend, accelerate_options
from tests.conftest import lorac, resolved, write_files

BASE = """[profile]
family = "flux1-dev"

[network]
network_module = "networks.lora_flux"
network_dim = 16
network_alpha = 16
"""

TWO_BY_EIGHT = BASE + """
[run]
gpus = 8
num_machines = 2
machine_rank = "${env:MACHINE_RANK:-0}"
main_process_ip = "10.0.0.1"
main_process_port = 29500
"""


def _profile(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Profile:
    res = resolved(tmp_path, text, env=env)
    assert res.profile is not None and not res.diagnostics, res.diagnostics
    return res.profile


def _launch_options(argv: list[str]) -> list[str]:
    return argv[2:argv.index(f"{SD_SCRIPTS}/flux_train_network.py")]


@pytest.mark.parametrize(("rank_env", "rank"), [({}, "0"), ({"MACHINE_RANK": "1"}, "1")])
def test_two_machines_of_eight_gpus(tmp_path: Path, rank_env: dict[str, str],
                                    rank: str) -> None:
    art = KohyaBackend().emit(_profile(tmp_path, TWO_BY_EIGHT, rank_env), "toml")
    assert art.argv is not None and art.argv[:2] == ["accelerate", "launch"]
    assert _launch_options(art.argv) == [
        "--multi_gpu", "--num_processes=16", "--num_machines=2", f"--machine_rank={rank}",
        "--main_process_ip=10.0.0.1", "--main_process_port=29500"]


def test_one_machine(tmp_path: Path) -> None:
    one = _profile(tmp_path, BASE + "\n[run]\ngpus = 8\n")
    assert accelerate_options(one) == ["--multi_gpu", "--num_processes=8"]
    single = _profile(tmp_path, BASE + "\n[run]\ngpus = 1\n")
    assert accelerate_options(single) == ["--num_processes=1"]
    assert accelerate_options(_profile(tmp_path, BASE)) == []


def test_machines_without_gpus_count_one_process_each(tmp_path: Path) -> None:
    p = _profile(tmp_path, BASE + "\n[run]\nnum_machines = 2\nmachine_rank = 1\n"
                 'main_process_ip = "10.0.0.1"\n')
    assert accelerate_options(p) == ["--multi_gpu", "--num_processes=2", "--num_machines=2",
                                     "--machine_rank=1", "--main_process_ip=10.0.0.1"]


def test_accelerate_args_pass_through_last(tmp_path: Path) -> None:
    p = _profile(tmp_path, TWO_BY_EIGHT + 'accelerate_args = ["--same_network"]\n')
    assert accelerate_options(p)[-1] == "--same_network"


def test_train_sh_and_lint_accept_the_env_rank(project: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_files(project, {"profiles/p.toml": TWO_BY_EIGHT})
    monkeypatch.setenv("MACHINE_RANK", "1")
    code, out, err = lorac("lint", "--no-dataset", "profiles")
    assert code == 0, out + err
    code, out, err = lorac("build", "p")
    assert code == 0, err
    script = (project / "build" / "p" / "train.sh").read_text()
    assert "--num_processes=16" in script and "--machine_rank=1" in script
    monkeypatch.setenv("MACHINE_RANK", "one")
    code, out, _ = lorac("lint", "--no-dataset", "profiles")
    assert code == 1 and "run.machine_rank" in out and "LRC005" in out
