"""Settings: one spelling per key, whichever the file uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.config.settings import load_settings
from lorac.core.diagnostics import LoracError, Severity


def test_underscore_keys_mean_the_dashed_ones(tmp_path: Path) -> None:
    (tmp_path / "lorac.toml").write_text(
        'env_files = ["deploy/prod.env"]\nfail_on = "warning"\nextend_select = ["X1"]\n'
        'sd_scripts = "../sd"\n')
    settings = load_settings(tmp_path)
    # readers ask for the dashed name (hygiene: raw.get("env-files"))
    assert settings.raw["env-files"] == ["deploy/prod.env"]
    assert settings.fail_on is Severity.WARNING
    assert settings.select == ("LRC", "X1")
    assert settings.sd_scripts == tmp_path.resolve() / "../sd"


def test_the_dashed_spelling_wins_and_overrides_win_over_both(tmp_path: Path) -> None:
    (tmp_path / "lorac.toml").write_text('fail-on = "info"\nfail_on = "warning"\n')
    assert load_settings(tmp_path).fail_on is Severity.INFO
    assert load_settings(tmp_path, {"fail-on": "error"}).fail_on is Severity.ERROR


def test_unknown_setting_is_named_as_written(tmp_path: Path) -> None:
    (tmp_path / "lorac.toml").write_text("sel_cet = []\n")
    with pytest.raises(LoracError, match="unknown lorac setting\\(s\\): sel_cet"):
        load_settings(tmp_path)
