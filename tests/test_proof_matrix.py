"""The ``matrix`` step of tests/gpu/proof.sh without a GPU: ``--only NAMES`` reaches
tests/gpu/vram_matrix.py (with or without the h100 plan), an unknown name stops it before
anything starts, and the usage text names every step the script has.

The device's ``python3`` is played by a script on PATH that answers ``probe`` with an offset,
lists configurations with the real vram_matrix.py, and records the arguments of ``run``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "tests" / "gpu" / "proof.sh"
MATRIX = REPO / "tests" / "gpu" / "vram_matrix.py"


@pytest.fixture
def device(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "run-args.txt"
    stand_in = bin_dir / "python3"
    stand_in.write_text(f"""#!/usr/bin/env bash
[[ $1 == tests/gpu/vram_matrix.py ]] || exit 3
case $2 in
probe) echo "OFFSET 12.5" ;;
list) shift; exec {sys.executable} {MATRIX} "$@" ;;
run) shift; echo "$*" > {log}.part && mv {log}.part {log} ;;
*) exit 3 ;;
esac
""")
    stand_in.chmod(0o755)
    work = tmp_path / "tree"
    work.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "OUT": str(tmp_path / "out"), "VM_TREE": str(tmp_path / "vm-tree"),
           "VM_OUT": str(tmp_path / "vm")}
    return {"env": env, "cwd": work, "log": log, "out": tmp_path / "out",
            "vm": tmp_path / "vm"}


def _proof(device: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=device["cwd"], env=device["env"],
                          capture_output=True, text=True, timeout=120)


def _run_args(device: dict) -> str:
    for _ in range(200):  # the run is detached: wait for it to start
        if device["log"].is_file():
            return device["log"].read_text().strip()
        time.sleep(0.05)
    raise AssertionError("vram_matrix.py run was not started")


@pytest.mark.parametrize(("args", "expect", "listed"), [
    (["h100", "300", "--only", "h100-nogc-r512,h100-nogc-r512-unet-adamw"],
     "--plan h100 --deadline 300 --only h100-nogc-r512,h100-nogc-r512-unet-adamw", 2),
    (["--only=r512-b1"], "--only r512-b1", 1),
    (["h100"], "--plan h100 --deadline 490", None),
    ([], "", None),
])
def test_the_selection_reaches_the_matrix(device: dict, args: list[str], expect: str,
                                          listed: int | None) -> None:
    result = _proof(device, "matrix", *args)
    assert result.returncode == 0, result.stderr
    assert "matrix started, offset 12.5 MiB" in result.stdout
    vm = device["vm"]
    assert _run_args(device) == f"run {vm} --steps 4 --offset 12.5 {expect}".strip()
    selection = device["out"] / "selection.txt"
    if listed is None:
        assert not selection.exists()
    else:
        assert selection.read_text().splitlines()[-1] == f"{listed} configurations"


@pytest.mark.parametrize("args", [
    ["h100", "--only", "h100-nogc-r512,no-such-run"], ["--only", "h100-nogc-r512"],
])
def test_an_unknown_name_stops_it_before_anything_starts(device: dict,
                                                         args: list[str]) -> None:
    result = _proof(device, "matrix", *args)
    assert result.returncode == 2
    assert re.search(r"no configuration (h100-nogc-r512|no-such-run) in the", result.stderr)
    assert not device["vm"].exists() and not device["log"].exists()
    assert not (device["out"] / "probe.log").exists()


@pytest.mark.parametrize("args", [["matrix", "--only"], ["matrix", "h100", "300", "400"],
                                  ["matrix", "--plan", "h100"], ["matrix", "300x", "y"],
                                  ["nothing"], []])
def test_a_bad_command_prints_the_usage(device: dict, args: list[str]) -> None:
    result = _proof(device, *args)
    assert result.returncode == 2 and result.stderr.startswith("usage:")
    assert not device["vm"].exists()


def test_the_usage_names_every_step(device: dict) -> None:
    usage = _proof(device).stderr
    steps = re.findall(r"^([a-z]+)\)$", SCRIPT.read_text(), re.M)
    assert len(steps) >= 8
    assert [s for s in steps if not re.search(rf"\b{s}\b", usage)] == []
    assert "matrix [h100 [D]] [--only NAMES]" in usage
    header = SCRIPT.read_text().split("set -uo pipefail")[0]
    assert "tests/gpu/proof.sh matrix [h100 [D]] --only NAMES" in header
