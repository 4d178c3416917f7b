"""lorac's ai-toolkit YAML, read by ai-toolkit's own config classes (skipped without
``LORAC_AI_TOOLKIT``): every section of the emitted process is passed as keyword arguments to
the class ``jobs/process/BaseSDTrainProcess.py:107-144`` builds from it (``NetworkConfig``,
``TrainConfig``, ``SaveConfig``, ``ModelConfig``, ``SampleConfig``, ``DatasetConfig`` from
``toolkit/config_modules.py``), and the attributes hold the values written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lorac.config.profile import resolve
from lorac.trainers.ai_toolkit.emitter import AiToolkitBackend
from tests.trainer.conftest import REPO, checkout, run_worker

pytestmark = pytest.mark.trainer


@pytest.mark.parametrize("name", ["fast", "final"])
def test_config_classes_take_the_emitted_sections(tmp_path: Path, name: str) -> None:
    toolkit = checkout("LORAC_AI_TOOLKIT")
    res = resolve(REPO / "profiles" / f"{name}.toml", env={})
    assert res.profile is not None
    art = AiToolkitBackend().emit(res.profile, "yaml")
    path = tmp_path / "job.yaml"
    path.write_text(art.files["job.yaml"], encoding="utf-8")
    proc = yaml.safe_load(art.files["job.yaml"])["config"]["process"][0]
    got = run_worker(toolkit, "ai-toolkit", str(path), tmp=tmp_path)
    for section in ("network", "train", "save", "model", "sample"):
        for key, value in proc.get(section, {}).items():
            assert got[section][key] == value, (section, key)
    assert got["datasets"] == proc["datasets"]
    assert isinstance(got["train"]["lr"], float)
