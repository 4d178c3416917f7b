"""tests/skip_policy.py: only gpu- and trainer-marked tests may skip, and the skips are counted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.skip_policy import summary

TESTS = '''
import pytest

def test_runs():
    pass

@pytest.mark.gpu
def test_gpu():
    pytest.skip("needs torch with a CUDA GPU")

@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 2])
def test_gpu_twice(n):
    pytest.skip("needs torch with a CUDA GPU")

@pytest.mark.trainer
@pytest.mark.skipif(True, reason="LORAC_SD_SCRIPTS is not set")
def test_trainer():
    pass

def test_missing_file():
    pytest.skip("the corpus is not here")

@pytest.mark.parametrize("path", [])
def test_over_an_empty_folder(path):
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
'''


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.skip_policy",
                           "-p", "no:cacheprovider", "-q", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_only_gpu_and_trainer_skips_pass_and_all_are_counted(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(TESTS, encoding="utf-8")
    run = _pytest(tmp_path)
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    # a skip in setup (a skipif mark) turns into an error, one in the test body into a failure
    assert "1 failed, 1 passed, 4 skipped, 1 xfailed, 1 error" in out, out
    assert ("skipped 4 tests: 3 for a missing GPU (needs torch with a CUDA GPU ×3), "
            "1 for a missing trainer checkout (LORAC_SD_SCRIPTS is not set ×1)\n") in out, out
    assert "FAILED test_sample.py::test_missing_file" in out, out
    assert "skipped (the corpus is not here), but only a test marked gpu or trainer" in out
    assert "ERROR test_sample.py::test_over_an_empty_folder" in out, out


def test_a_module_skipped_while_collecting_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\npytest.importorskip('no_such_module_here')\n\n"
        "def test_never():\n    pass\n", encoding="utf-8")
    run = _pytest(tmp_path)
    assert run.returncode != 0, run.stdout
    assert "skipped while collecting" in run.stdout and "no_such_module_here" in run.stdout


def test_no_skip_is_said_too(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text("def test_runs():\n    pass\n", encoding="utf-8")
    run = _pytest(tmp_path)
    assert run.returncode == 0 and "skipped no test" in run.stdout, run.stdout
    assert summary([]) == "skipped no test"
