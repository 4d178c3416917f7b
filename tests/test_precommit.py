"""`pre-commit try-repo` against this repository, in a temporary git repository.

pre-commit builds lorac from a clone of this repository's HEAD into its own environment
(network access to the package index is needed, as on CI), then runs the `lorac-lint` hook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PRE_COMMIT = shutil.which("pre-commit") or str(Path(sys.executable).parent / "pre-commit")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed copy of the working tree: try-repo installs from a revision."""

    if not Path(PRE_COMMIT).exists():
        pytest.fail("pre-commit is not installed (it is part of the dev extra)")
    snap = tmp_path_factory.mktemp("lorac-snapshot")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file():
            dst = snap / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    _git(snap, "init", "-q")
    _git(snap, "add", "-A")
    _git(snap, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot")
    return snap


def _try_repo(snapshot: Path, repo: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(snapshot.parent / "pre-commit-home"),
           "LORAC_NO_CACHE": "1"}
    return subprocess.run([PRE_COMMIT, "try-repo", str(snapshot), "lorac-lint",
                           "--all-files"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.parametrize(("content", "passes"), [
    ('[profile]\nfamily = "flux1-dev"\n[network]\nnetwork_module = "networks.lora_flux"\n'
     'network_dim = 16\nnetwork_alpha = 16\n', True),
    ('[profile]\nfamily = "flux1-dev"\n[network]\nnetwrok_alpha = 16\n', False),
])
def test_hook(snapshot: Path, tmp_path: Path, content: str, passes: bool) -> None:
    repo = tmp_path / "user-repo"
    (repo / "profiles").mkdir(parents=True)
    (repo / "profiles" / "p.toml").write_text(content)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    result = _try_repo(snapshot, repo)
    output = result.stdout + result.stderr
    assert (result.returncode == 0) is passes, output
    if not passes:
        assert "LRC004" in output and "profiles/p.toml:4:1" in output
