"""The plugin contract, through a real third-party package installed into a folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorac.core.diagnostics import LoracError
from lorac.lint.plugins import BUILTIN, get_plugins
from lorac.lint.rules import Rule, validate_rule
from tests.conftest import REPO

PKG = Path(__file__).parent / "plugin_pkg"


def test_builtins_load_and_every_rule_is_documented() -> None:
    plugins = get_plugins(entry_points=False)
    assert [i.name for i in plugins.infos] == list(BUILTIN)
    assert {"kohya", "ai-toolkit"} <= set(plugins.backends)
    for rule in plugins.rules.values():
        validate_rule(rule, "builtin")


def test_malformed_rule_is_refused() -> None:
    class Bad(Rule):
        """no sections"""

        code = "LRC12"
        name = "Bad_Name"

    with pytest.raises(LoracError, match="invalid code"):
        validate_rule(Bad(), "x")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(PKG)],
                   check=True, capture_output=True)
    return target


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}",
           "LORAC_NO_CACHE": "1"}
    return subprocess.run([sys.executable, "-m", "lorac", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_third_party_rule_runs(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "p.toml").write_text('[profile]\ndescription = ""\n')
    listed = _run(installed, tmp_path, "plugins")
    assert "demo" in listed.stdout and "1.2.3" in listed.stdout
    result = _run(installed, tmp_path, "lint", "profiles")
    assert result.returncode == 1
    assert "profiles/p.toml:2:1: LRC899 description is empty" in result.stdout
    explained = _run(installed, tmp_path, "explain", "LRC899")
    assert "Why is this bad?" in explained.stdout


def test_broken_plugin_stops_with_its_name(tmp_path: Path) -> None:
    broken = tmp_path / "site2"
    broken.mkdir()
    dist = broken / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lorac]\nbroken = broken_plugin_module\n")
    (broken / "broken_plugin_module.py").write_text("raise ImportError('boom')\n")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "p.toml").write_text("[profile]\n")
    result = _run(broken, tmp_path, "lint", "profiles")
    assert result.returncode == 3
    assert "plugin 'broken'" in result.stderr and "boom" in result.stderr
    assert "Traceback" not in result.stderr


def test_entry_points_are_read_like_importlib_metadata() -> None:
    from importlib import metadata

    from lorac.lint.plugins import find_entry_points

    ours = sorted((e.name, e.value) for e in find_entry_points("console_scripts"))
    theirs = sorted((e.name, e.value) for e in metadata.entry_points(group="console_scripts"))
    assert ours == theirs and ours


def test_moved_modules_answer_to_their_first_paths() -> None:
    import importlib

    import lorac
    from lorac.lint import hookspecs

    for old, new in lorac.MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
    # what a plugin of the flat layout imports
    assert importlib.import_module("lorac.rules").Rule is Rule
    assert importlib.import_module("lorac.hookspecs").hookimpl is lorac.hookimpl
    backend = importlib.import_module("lorac.backend")
    assert backend.Artifacts is hookspecs.Artifacts and callable(backend.shell_script)


def test_generators_still_run_by_their_first_paths() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "lorac.schema_gen", "--check"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
