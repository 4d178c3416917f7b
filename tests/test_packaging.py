"""The wheel ships the backend knowledge and the schema."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, has_c_compiler


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lorac wheel, built once for this module."""

    out = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(out), str(REPO)], check=True,
                   capture_output=True)
    return next(out.glob("lorac-*.whl"))


def test_wheel_contains_backends_and_schema(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lorac/_backends/kohya/pin.toml" in names
    assert "lorac/_backends/kohya/inventory/flux_train_network.json" in names
    assert "lorac/_backends/ai-toolkit/pin.toml" in names
    assert "lorac/_backends/parsed.json" in names
    assert "lorac/schema/profile.schema.json" in names
    assert not any(n.startswith("backends/") for n in names)
    # the scan's C loops, built wherever a compiler is (tests/test_dataset_batch.py)
    built = any(n.startswith("lorac/scan/_native.") and n.endswith((".so", ".pyd"))
                for n in names)
    assert built == has_c_compiler()
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "lorac = lorac.__main__:main" in text


def test_installed_wheel_lints_and_builds(wheel: Path, tmp_path: Path) -> None:
    """The wheel alone (no source tree) finds its backend data and schema."""

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    project = tmp_path / "project"
    (project / "profiles").mkdir(parents=True)
    (project / "profiles" / "p.toml").write_text(
        '[profile]\nfamily = "flux1-dev"\n[network]\nnetwork_module = "networks.lora_flux"\n'
        'network_dim = 8\nnetwork_alpha = 8\n[optimizer]\nlearning_rate = 1e-4\n')
    env = {**os.environ, "PYTHONPATH": str(site), "LORAC_NO_CACHE": "1"}
    for args, code in ((["lint", "profiles"], 0), (["build", "p", "--backend", "kohya"], 0)):
        result = subprocess.run([sys.executable, "-m", "lorac", *args], cwd=project, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == code, result.stderr
    probe = subprocess.run([sys.executable, "-c", "import lorac; print(lorac.__file__)"],
                           cwd=project, env=env, capture_output=True, text=True)
    assert probe.stdout.startswith(str(site))
    assert (project / "build" / "p" / "config.toml").is_file()
