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
    if name == "final":  # accumulation 4: steps of 4 batches, as sd-scripts counts them
        assert got["train"]["gradient_accumulation"] == 4
        assert "gradient_accumulation_steps" not in proc["train"]


def _examples() -> list[str]:
    from tests.test_ai_toolkit_roundtrip import BASES

    return BASES


@pytest.mark.parametrize("name", _examples())
def test_config_classes_take_every_rebuilt_example(tmp_path: Path, name: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``config/examples`` job, imported and built back, passes ai-toolkit's config
    classes with the values written (the arch included)."""

    from tests.conftest import lorac
    from tests.test_ai_toolkit_roundtrip import EXAMPLES

    toolkit = checkout("LORAC_AI_TOOLKIT")
    monkeypatch.chdir(tmp_path)
    code, _, err = lorac("import", str(EXAMPLES / name), "--output", "profiles/p.toml")
    assert code == 0, err
    code, _, err = lorac("build", "p", "--backend", "ai-toolkit", "--output", "o")
    assert code == 0, err
    path = tmp_path / "o" / "job.yaml"
    proc = yaml.safe_load(path.read_text(encoding="utf-8"))["config"]["process"][0]
    got = run_worker(toolkit, "ai-toolkit", str(path), tmp=tmp_path)
    for section in ("network", "train", "save", "sample"):
        for key, value in proc.get(section, {}).items():
            back = got[section][key]
            if "repr" in str(back) and isinstance(value, (dict, list)):
                continue  # read into config objects (EMAConfig, SampleItem)
            assert got[section][key] == value, (section, key)
    assert got["model"]["arch"] == proc["model"]["arch"].split(":")[0]
    assert got["model"]["name_or_path"] == proc["model"]["name_or_path"]
    assert len(got["datasets"]) == len(proc["datasets"])


@pytest.mark.parametrize("path", sorted(
    p for p in (REPO / "profiles" / "examples" / "ai-toolkit").glob("*.toml")
    if p.stem != "common"), ids=lambda p: p.stem)
def test_config_classes_take_the_example_profiles(tmp_path: Path, path: Path) -> None:
    """Each ai-toolkit example profile (one per model family) passes ai-toolkit's config
    classes, its arch included."""

    toolkit = checkout("LORAC_AI_TOOLKIT")
    res = resolve(path, env={})
    assert res.profile is not None
    art = AiToolkitBackend().emit(res.profile, "yaml")
    job = tmp_path / "job.yaml"
    job.write_text(art.files["job.yaml"], encoding="utf-8")
    proc = yaml.safe_load(art.files["job.yaml"])["config"]["process"][0]
    got = run_worker(toolkit, "ai-toolkit", str(job), tmp=tmp_path)
    for section in ("network", "train", "save", "model", "sample"):
        for key, value in proc.get(section, {}).items():
            assert got[section][key] == value, (section, key)
    assert got["datasets"] == proc["datasets"]
