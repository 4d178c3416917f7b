"""What sd-scripts itself does with the files whose handling ``lorac import`` explains
(``tests/fixtures/shapes/``): a TOML holding training options and dataset tables, in each of
its two roles, and values outside argparse's choices given by a ``--config_file``.

Needs ``LORAC_SD_SCRIPTS``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.conftest import checkout, run_worker

pytestmark = pytest.mark.trainer

SHAPES = Path(__file__).resolve().parent.parent / "fixtures" / "shapes"


def test_mixed_toml_as_config_file_lifts_general_and_ignores_datasets(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS")
    args = run_worker(sd, "config", "train_network",
                      str(SHAPES / "sd15_dataset_and_training.toml"), tmp=tmp_path)
    assert args["network_dim"] == 32 and args["clip_skip"] == 2
    assert args["caption_extension"] == ".txt" and args["shuffle_caption"] is True  # [general]
    assert isinstance(args["datasets"], list)  # an attribute nothing reads
    assert args["dataset_config"] is None and args["train_data_dir"] is None  # no images


def test_mixed_toml_as_dataset_config_is_refused(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS")
    with pytest.raises(AssertionError, match=r"extra keys not allowed|MultipleInvalid"):
        run_worker(sd, "dataset", str(SHAPES / "sd15_dataset_and_training.toml"), tmp=tmp_path)


def test_config_file_values_outside_choices_reach_the_script(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS")
    args = run_worker(sd, "config", "sdxl_train_network",
                      str(SHAPES / "sdxl_config_file_noop_choices.toml"), tmp=tmp_path)
    assert args["dynamo_backend"] == "no" and args["torch_compile"] is False
    assert args["max_token_length"] == 75


def test_ai_toolkit_is_flux_builds_flux1_whatever_the_model(tmp_path: Path) -> None:
    import yaml

    root = checkout("LORAC_AI_TOOLKIT")
    job = yaml.safe_load((SHAPES / "flux2_is_flux.yaml").read_text(encoding="utf-8"))
    model = job["config"]["process"][0]["model"]
    assert model["name_or_path"] == "black-forest-labs/FLUX.2-dev" and model["is_flux"] is True
    model["arch"] = None  # as if unwritten (kwargs.get("arch", None)), so the worker shows it
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    result = run_worker(root, "ai-toolkit", str(path), tmp=tmp_path)
    assert result["model"]["arch"] == "flux"  # FLUX.1's arch, not flux2
