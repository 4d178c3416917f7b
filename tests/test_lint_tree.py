"""``lorac lint .`` on a repository folder reads more than profiles: the options of the
training launchers in it (LRC097) and the contents of the trainer configurations nothing loads
(LRC098, each naming the profile rule that finds it)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import lorac, write_files

STALE_FLUX = """pretrained_model_name_or_path = "/models/flux1-dev.safetensors"
ae = "/models/ae.safetensors"
clip_l = "/models/clip_l.safetensors"
t5xxl = "/models/t5xxl_fp16.safetensors"
network_module = "networks.lora"
network_dim = 16
network_alpha = 16
learning_rate = 1e-4
frobnicate = 3
"""

LAUNCHER = """#!/bin/bash
accelerate launch flux_train_network.py \\
  --pretrained_model_name_or_path /models/flux1-dev.safetensors \\
  --config_file configs/used.toml
"""


def _codes_at(out: str, path: str) -> list[str]:
    return [line.split(": ", 1)[1].split(" ", 1)[0] for line in out.splitlines()
            if line.startswith(path + ":")]


def test_a_stale_flux_toml_is_linted_when_its_folder_is(project: Path) -> None:
    write_files(project, {"configs/flux_old.toml": STALE_FLUX,
                          "configs/used.toml": STALE_FLUX, "scripts/train.sh": LAUNCHER})
    code, out, err = lorac("lint", ".", "--no-dataset")
    assert "Traceback" not in err
    stale = [x for x in out.splitlines() if x.startswith("configs/flux_old.toml:")]
    assert any(" LRC801 " in x for x in stale)  # nothing loads it
    # networks.lora on FLUX.1, found in the file's own contents, where it is written
    assert any(x.startswith("configs/flux_old.toml:5:1: LRC098 networks.lora is the network "
                            "module of") and "(LRC105 network-module-wrong-family" in x
               for x in stale), out
    # an option flux_train_network.py does not have, as `lorac import` says
    assert any(x.startswith("configs/flux_old.toml:9:1: LRC098 'frobnicate' is not an option")
               for x in stale), out
    # a config a script loads is that script's business (import it to lint it as a profile)
    assert _codes_at(out, "configs/used.toml") == []
    assert code == 1


def test_orphaned_dataset_configs_are_not_read_as_trainer_options(project: Path) -> None:
    write_files(project, {"dataset.toml": "[general]\nenable_bucket = true\n"
                          "[[datasets]]\nresolution = 512\nbatch_size = 2\n"
                          "[[datasets.subsets]]\nimage_dir = 'img'\nnum_repeats = 3\n",
                          "configs/old.toml": STALE_FLUX})
    _, out, _ = lorac("lint", ".", "--no-dataset")
    assert not [c for c in _codes_at(out, "dataset.toml") if c != "LRC801"]
    assert "LRC098" in _codes_at(out, "configs/old.toml")
