"""A profile written for ai-toolkit, built for musubi-tuner (translated, not refused), read by
musubi-tuner's own parsers and dataset-config sanitizer. Skipped unless ``LORAC_MUSUBI_TUNER``
points at the pinned checkout."""

from __future__ import annotations

import contextlib
import re
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


CITATION = re.compile(r"((?:src/musubi_tuner/|toolkit/|jobs/|networks/)[\w/]*\.py):(\d+)"
                      r"(?:-(\d+))?")


def _cited(text: str, root: Path) -> list[str]:
    """Each ``file.py:N[-M]`` of ``text`` that is not a line range of a file in ``root``."""
    stale = []
    for m in CITATION.finditer(text):
        path = next((root / c for c in (m.group(1), f"src/musubi_tuner/{m.group(1)}")
                     if (root / c).is_file()), None)
        last = int(m.group(3) or m.group(2))
        if path is None or last > len(path.read_text(encoding="utf-8").splitlines()):
            stale.append(m.group(0))
    return stale


def test_meaning_citations_exist_at_both_pins() -> None:
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    toolkit = checkout("LORAC_AI_TOOLKIT", pinned="ai-toolkit")
    import tomllib

    crossing = tomllib.loads((REPO / "backends/musubi/crossing.toml").read_text("utf-8"))
    mapping = tomllib.loads((REPO / "backends/ai-toolkit/mapping.toml").read_text("utf-8"))
    musubi_text = " ".join([*crossing["cite"]["musubi"].values(),
                            *crossing["native"]["ai-toolkit"].values(),
                            *(v for v in mapping["from"]["musubi"].values()
                              if isinstance(v, str))])
    toolkit_text = " ".join([*crossing["cite"]["ai-toolkit"].values(),
                             *mapping["from"]["ai-toolkit"].values()])
    assert len(CITATION.findall(musubi_text)) >= 10 and len(CITATION.findall(toolkit_text)) >= 10
    assert _cited(musubi_text, musubi) == []
    assert _cited(toolkit_text, toolkit) == []
