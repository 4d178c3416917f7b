"""LRC8xx rules (case files hold the pass/fail cases)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import lorac, write_files

CONFIG = '[network]\nnetwork_module = "networks.lora"\nnetwork_dim = 32\nnetwork_alpha = 32\n'


def test_config_named_by_another_config_is_used(project: Path) -> None:
    write_files(project, {"configs/a.toml": CONFIG,
                          "configs/b.toml": CONFIG + 'config_file = "a.toml"\n',
                          "train.sh": "accelerate launch flux_train_network.py "
                                      "--config_file=configs/b.toml\n"})
    _, out, _ = lorac("lint", ".", "--select", "LRC801")
    assert "LRC801" not in out


def test_ai_toolkit_yaml_config(project: Path) -> None:
    write_files(project, {"config/job.yaml": "job: extension\nconfig:\n  process:\n"
                          "    - type: sd_trainer\n      network:\n        linear: 16\n"})
    _, out, _ = lorac("lint", ".", "--select", "LRC801")
    assert "config/job.yaml:1:1: LRC801" in out


def test_invalid_toml_config_is_not_a_crash(project: Path) -> None:
    write_files(project, {"configs/bad.toml": "network_dim = = 3\n"})
    code, _, err = lorac("lint", ".", "--select", "LRC8")
    assert "Traceback" not in err and code in (0, 1)
