"""``lorac lint`` registers a trainer's built-in plugins only when a linted profile names the
trainer (``BY_TRAINER`` in lorac/lint/plugins.py), and finds exactly what it finds with all of
them registered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorac.config.settings import Settings
from lorac.lint.driver import lint
from lorac.lint.plugins import BUILTIN, BY_TRAINER, get_plugins
from tests.conftest import REPO, lorac, write_files

KOHYA = '[profile]\nfamily = "flux1-dev"\n[network]\nnetwork_dim = 4\nnetwork_alpha = 4\n'


def _findings(paths: list[Path], lazy: bool) -> tuple[list[tuple], dict]:
    plugins = get_plugins(lazy=lazy)
    report = lint(paths, Settings(), plugins, env={})
    return [(d.path, d.line, d.col, d.code, d.message) for d in report.diagnostics], \
        plugins.pending


def test_trainer_plugins_wait_until_a_profile_names_the_trainer(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                ) -> None:
    assert all(m in BUILTIN for mods in BY_TRAINER.values() for m in mods)
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, {"profiles/p.toml": KOHYA})
    found, pending = _findings([tmp_path / "profiles"], lazy=True)
    assert set(pending) == set(BY_TRAINER)  # nothing named ai-toolkit or musubi: not loaded
    assert found == _findings([tmp_path / "profiles"], lazy=False)[0]
    write_files(tmp_path, {"profiles/q.toml": KOHYA + "[trainers.ai-toolkit.model]\n"
                                              "not_a_key = 1\n"})
    found, pending = _findings([tmp_path / "profiles"], lazy=True)
    assert set(pending) == {"musubi"}  # q.toml names ai-toolkit: its rules ran
    assert [f[3:] for f in found if f[3] == "LRC680"] == [
        ("LRC680", "model.not_a_key is not a key ai-toolkit reads (ModelConfig)")]
    assert found == _findings([tmp_path / "profiles"], lazy=False)[0]


def test_unknown_trainer_knows_the_trainers_it_did_not_load(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            ) -> None:
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, {"profiles/p.toml": KOHYA + "[trainers.musubi_tuner]\nseed = 1\n"})
    found, pending = _findings([tmp_path / "profiles"], lazy=True)
    assert set(pending) == set(BY_TRAINER)
    (msg,) = [f[4] for f in found if f[3] == "LRC683"]
    assert msg.startswith("no trainer is called 'musubi_tuner' (known: ai-toolkit, kohya, musubi)")
    assert found == _findings([tmp_path / "profiles"], lazy=False)[0]


@pytest.mark.parametrize("folder", ["profiles", "profiles/examples/kohya", "tests/fixtures"])
def test_lazy_and_eager_lint_find_the_same(folder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert _findings([REPO / folder], lazy=True)[0] == _findings([REPO / folder], lazy=False)[0]


def test_sarif_lists_every_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, {"profiles/p.toml": KOHYA})
    _, out, _ = lorac("lint", "profiles", "--format", "sarif", "--no-dataset")
    rules = {r["id"] for r in json.loads(out)["runs"][0]["tool"]["driver"]["rules"]}
    assert {"LRC650", "LRC680", "LRC685"} <= rules
