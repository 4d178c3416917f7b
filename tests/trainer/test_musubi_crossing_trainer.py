"""A profile written for ai-toolkit, built for musubi-tuner (translated, not refused), read by
musubi-tuner's own parsers and dataset-config sanitizer. Skipped unless ``LORAC_MUSUBI_TUNER``
points at the pinned checkout."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.trainer.conftest import REPO, checkout
from tests.trainer.test_musubi_trainer import _musubi_run

pytestmark = pytest.mark.trainer


def test_ai_toolkit_wan_profile_built_for_musubi_reads_as_intended(tmp_path: Path) -> None:
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    from lorac.config.profile import resolve
    from lorac.config.trainer_values import for_trainer
    from lorac.core.diagnostics import Severity
    from lorac.trainers.musubi import knowledge
    from lorac.trainers.musubi.emitter import MusubiBackend

    with contextlib.chdir(REPO):
        res = resolve(Path("profiles/examples/ai-toolkit/wan2.1-t2v-1.3b.toml"), env={})
        assert res.profile is not None and res.profile.backend == "ai-toolkit"
        art = MusubiBackend().emit(for_trainer(res.profile, "musubi"), "toml")
    assert not [d for d in art.diagnostics if d.severity >= Severity.ERROR]
    build = tmp_path / "build"
    build.mkdir()
    for name, text in art.files.items():
        (build / name).write_text(text, encoding="utf-8")
    got = _musubi_run(musubi, build, art.steps, tmp_path)
    for step in knowledge.STEPS:
        ns = got["steps"][step]
        for name, value in art.step_options[step].items():
            assert ns[name] == value, (step, name, ns[name], value)
    train = got["steps"]["train"]
    assert train["task"] == "t2v-1.3B" and train["network_module"] == "networks.lora_wan"
    assert train["network_alpha"] == 16.0 and train["sdpa"] is True
    (dataset,) = got["datasets"]
    assert dataset["is_image"] and dataset["params"]["image_directory"] == "examples/subject"
    assert dataset["params"]["caption_extension"] == ".txt"
