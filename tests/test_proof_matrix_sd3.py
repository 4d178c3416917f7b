"""``tests/gpu/proof.sh matrix sd3 [D]`` without a GPU: the plan name and its deadline reach
tests/gpu/vram_matrix.py, ``--only`` selects within the SD3 plan, and an unknown plan or a bad
``setup`` argument stops before anything starts (the stand-in device of test_proof_matrix)."""

from __future__ import annotations

import pytest

from tests import test_proof_matrix as tpm

device = tpm.device  # the same stand-in device machine


@pytest.mark.parametrize(("args", "expect", "listed"), [
    (["sd3", "300"], "--plan sd3 --deadline 300", None),
    (["sd3"], "--plan sd3 --deadline 490", None),
    (["sd3", "420", "--only", "sd3m-fp8,sd35l-fp8"],
     "--plan sd3 --deadline 420 --only sd3m-fp8,sd35l-fp8", 2),
])
def test_the_sd3_plan_reaches_the_matrix(device: dict, args: list[str], expect: str,
                                         listed: int | None) -> None:
    result = tpm._proof(device, "matrix", *args)
    assert result.returncode == 0, result.stderr
    vm = device["vm"]
    assert tpm._run_args(device) == f"run {vm} --steps 4 --offset 12.5 {expect}"
    selection = device["out"] / "selection.txt"
    if listed is None:
        assert not selection.exists()
    else:
        assert selection.read_text().splitlines()[-1] == f"{listed} configurations"


@pytest.mark.parametrize("args", [["matrix", "sd4", "300"], ["matrix", "sd3", "--only", "r512-b1"],
                                  ["setup", "sd4"]])
def test_an_unknown_plan_or_setup_stops_it(device: dict, args: list[str]) -> None:
    result = tpm._proof(device, *args)
    assert result.returncode == 2
    assert not device["vm"].exists() and not device["log"].exists()
    assert not (device["out"] / "probe.log").exists()


def test_the_usage_names_the_sd3_plan(device: dict) -> None:
    usage = tpm._proof(device).stderr
    assert "matrix sd3 [D] [--only NAMES]" in usage and "setup [sd3]" in usage
