"""Linting against the configured sd-scripts checkout's version (lorac.config.kohya_version)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lorac.config import inventory, kohya_version
from lorac.config.settings import Settings
from lorac.core.diagnostics import LoracError
from tests.conftest import lorac, write_files

OLD = "48d368fa557731ad0488c07304dfeba8c07910eb"
V0111 = "6721028c79ee85a78b3a06dfd8954dae310a1cce"

PROFILE = """[profile]
family = "sdxl"

[network]
network_module = "networks.lora"
network_dim = 16
network_alpha = 16

[optimizer]
learning_rate = 1e-4

[training]
mixed_precision = "bf16"
train_inpainting = true
"""


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("LORAC_SD_SCRIPTS", raising=False)
    monkeypatch.delenv(inventory.ENV_VAR, raising=False)
    monkeypatch.setenv(kohya_version.CACHE_ENV, str(tmp_path / "user-cache"))
    yield
    inventory.use_version_root(None)


def _fake_checkout(root: Path, commit: str) -> Path:
    write_files(root, {"train_network.py": "", ".lorac-commit": commit + "\n"})
    return root


def test_versions_are_listed_oldest_first_with_the_default_last() -> None:
    versions = inventory.kohya_versions()
    assert [v.name for v in versions] == ["48d368fa", "v0.11.1", "37a1cbbc"]
    assert versions[-1].commit == inventory.load_pin("kohya").commit
    assert versions[-1].root == inventory.backends_dir()
    for v in versions:
        assert inventory.load_kohya_inventory("train_network", v.root).commit == v.commit


def test_no_checkout_reads_the_default_pin(tmp_path: Path) -> None:
    assert kohya_version.select(Settings()) is None
    assert kohya_version.active_commit() == inventory.load_pin("kohya").commit


def test_a_shipped_commit_reads_its_shipped_inventory(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sd = _fake_checkout(tmp_path / "sd", OLD)
    monkeypatch.setenv("LORAC_SD_SCRIPTS", str(sd))
    active = kohya_version.select(Settings())
    assert active is not None and active.shipped and active.commit == OLD
    assert kohya_version.active_commit() == OLD
    assert "train_inpainting" not in inventory.load_kohya_inventory("sdxl_train_network")
    assert not (tmp_path / "user-cache").exists()  # nothing generated for a shipped version
    kohya_version.select(Settings())  # unset again: back to the default
    monkeypatch.delenv("LORAC_SD_SCRIPTS")
    kohya_version.select(Settings())
    assert "train_inpainting" in inventory.load_kohya_inventory("sdxl_train_network")


def test_an_unreadable_unknown_checkout_is_a_clear_error(tmp_path: Path) -> None:
    sd = _fake_checkout(tmp_path / "sd", "f" * 40)
    with pytest.raises(LoracError, match="cannot generate the option inventory of sd-scripts "
                                         "ffffffff"):
        kohya_version.select(Settings(sd_scripts=sd))
    assert not list((tmp_path / "user-cache" / "sd-scripts").iterdir())  # no half folder


def test_the_lint_cache_follows_the_checkout_commit(project: Path) -> None:
    write_files(project, {"profiles/p.toml": PROFILE,
                          "pyproject.toml": '[tool.lorac]\nsd-scripts = "sd"\n'})
    _fake_checkout(project / "sd", OLD)
    code, out, _ = lorac("lint", "--no-dataset")
    assert code == 1 and "LRC623 --train_inpainting is not accepted by sd-scripts 48d368fa; " \
                         "it exists from v0.11.1" in out
    time.sleep(0.01)
    (project / "sd" / ".lorac-commit").write_text(V0111 + "\n")
    code, out, _ = lorac("lint", "--no-dataset")
    assert code == 0 and "LRC623" not in out, out
