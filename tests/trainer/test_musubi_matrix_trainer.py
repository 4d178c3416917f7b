"""Every configuration of tests/gpu/musubi_matrix.py, built by lorac, read by musubi-tuner's own
argparse parsers (latent caching, text-encoder caching, and training after
``read_config_from_file``) and its dataset-config reader: each option arrives with its value.

Skipped unless ``LORAC_MUSUBI_TUNER`` points at the pinned checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_musubi_matrix import mm
from tests.trainer.conftest import REPO, checkout
from tests.trainer.test_musubi_trainer import emitted_run

pytestmark = pytest.mark.trainer


@pytest.mark.parametrize("name", [p[0] for p in mm.PLAN])
def test_musubi_parses_each_configuration_of_the_plan(tmp_path: Path, name: str) -> None:
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    (job,) = mm.queue_of({name})
    cond = job["cond"]
    profile = mm.write_profile(tmp_path, job, REPO / "examples" / "subject",
                               tmp_path / "cache")
    *_, got = emitted_run(musubi, profile, tmp_path)
    steps = got["steps"]
    assert set(steps) == {"latents", "text_encoder", "train"}, set(steps)
    train = steps["train"]
    for key in ("network_dim", "optimizer_type", "gradient_checkpointing", "fp8_base",
                "blocks_to_swap", "mixed_precision", "sdpa", "timestep_sampling"):
        assert train[key] == cond[key], (key, train[key], cond[key])
    assert train["network_alpha"] == cond["network_alpha"]
    assert train["learning_rate"] == cond["learning_rate"]
    if job["family"] == "qwen-image":
        assert train["fp8_scaled"] is False and train["fp8_vl"] is cond["fp8_vl"]
        assert steps["text_encoder"]["fp8_vl"] is cond["fp8_vl"]
        assert train["network_module"] == "networks.lora_qwen_image"
    else:
        assert steps["text_encoder"]["fp8_t5"] is cond["fp8_t5"]
        assert train["task"] == "t2v-1.3B"
    (ds,) = got["datasets"]
    assert ds["is_image"]
    assert list(ds["params"]["resolution"]) == cond["resolution"]
    assert ds["params"]["batch_size"] == cond["batch_size"]
    assert ds["params"]["cache_directory"] == str(tmp_path / "cache")
    assert ds["params"]["num_repeats"] == 1
