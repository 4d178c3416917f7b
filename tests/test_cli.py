"""The CLI end to end, in-process: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, file_modes_bind, lorac, write_files


@pytest.fixture
def shipped(project: Path) -> Path:
    for folder in ("profiles", "configs", "examples"):
        shutil.copytree(REPO / folder, project / folder)
    return project


def test_shipped_profiles_lint_clean(shipped: Path) -> None:
    code, out, err = lorac("lint", "profiles")
    assert code == 0, out + err
    assert out == ""


def test_misspelt_key_has_position_key_path_and_suggestion(shipped: Path) -> None:
    path = shipped / "profiles" / "final.toml"
    path.write_text(path.read_text().replace("network_alpha =", "netwrok_alpha ="))
    code, out, _ = lorac("lint", "profiles/final.toml", "--no-dataset")
    assert code == 1
    assert ("profiles/final.toml:13:1: LRC004 unknown key 'netwrok_alpha' in network "
            "(network.netwrok_alpha) [unknown-key]\n    hint: did you mean 'network_alpha'?") in out


def test_output_formats(shipped: Path) -> None:
    write_files(shipped, {"profiles/bad.toml":
                          "[profile]\nfamily = 'flux1-dev'\n[network]\nnetwork_dim = 'x'\n"})
    for fmt in ("json", "sarif", "github"):
        code, out, _ = lorac("lint", "profiles", "--no-dataset", "--format", fmt)
        assert code == 1
        if fmt != "github":
            json.loads(out)
        else:
            assert out.startswith("::error file=profiles/bad.toml,line=4,col=1")


def test_settings_select_ignore_severity_and_fail_on(project: Path) -> None:
    write_files(project, {"profiles/p.toml": "[profile]\nfamily = 'sdxl'\n[network]\n"
                          "netwrok_alpha = 1\n"})
    assert lorac("lint", "--ignore", "LRC004")[0] == 0
    (project / "pyproject.toml").write_text(
        '[tool.lorac]\nfail-on = "error"\n[tool.lorac.severity]\nLRC004 = "warning"\n')
    code, out, _ = lorac("lint")
    assert code == 0 and "LRC004" in out
    assert lorac("lint", "--fail-on", "warning")[0] == 1
    (project / "lorac.toml").write_text('ignore = ["LRC0", "LRC6"]\n')
    assert lorac("lint", "--fail-on", "info")[0] == 0


def test_bad_settings_is_a_usage_error(project: Path) -> None:
    write_files(project, {"profiles/p.toml": "[profile]\n", "lorac.toml": "selcet = []\n"})
    code, _, err = lorac("lint")
    assert code == 2 and "unknown lorac setting(s): selcet" in err


@pytest.mark.parametrize(("files", "target", "code", "fragment"), [
    ({"profiles/p.toml": "a = [\n"}, "profiles", 1, "LRC001 invalid TOML"),
    ({"profiles/p.toml": "[run]\ngpus = 'two'\n"}, "profiles", 1, "LRC005"),
    ({"profiles/p.toml": "[network]\nnetwork_dim = true\n"}, "profiles", 1, "LRC602"),
    ({"profiles/p.toml": "[network]\nnetwrok_dim = 1\n"}, "profiles", 1, "LRC004"),
    ({"profiles/p.toml": "[profile]\nextends = 'x'\n"}, "profiles", 1, "LRC011"),
    ({"profiles/p.toml": "[profile]\nextends = 'p'\n"}, "profiles", 1, "LRC012"),
    ({"profiles/p.toml": b"[profile]\ndescription = '\xff'\n"}, "profiles", 1, "LRC002"),
    ({"profiles/p.toml": b"\x00\x00\x00"}, "profiles", 1, "LRC002"),
    ({"x/.keep": ""}, "x", 2, "no profiles or configuration files found in x"),
    ({}, "missing", 2, "missing: no such file or directory"),
])
def test_bad_input(project: Path, files: dict, target: str, code: int, fragment: str) -> None:
    write_files(project, files)
    got, out, err = lorac("lint", target)
    assert got == code
    assert fragment in out + err
    assert "Traceback" not in out + err


def test_unreadable_file(project: Path) -> None:
    write_files(project, {"profiles/p.toml": "[profile]\n"})
    (project / "profiles" / "p.toml").chmod(0)
    with file_modes_bind():
        code, out, _ = lorac("lint")
    assert code == 1 and "LRC003" in out and "Permission denied" in out


def test_show_diff_explain_rules_schema(shipped: Path) -> None:
    code, out, _ = lorac("show", "final")
    assert code == 0
    assert "network_dim = 64" in out and "profiles/final.toml:12:1 (var rank)" in out
    code, out, _ = lorac("show", "final", "--format", "json")
    assert json.loads(out)["provenance"]["network.network_alpha"].startswith("profiles/final")
    code, out, _ = lorac("diff", "fast", "final")
    assert code == 0 and "network.network_dim: 32 → 64" in out
    code, out, _ = lorac("explain", "LRC004")
    assert code == 0 and "Why is this bad?" in out and "unknown-key" in out
    assert lorac("explain", "LRC999")[0] == 2
    code, out, _ = lorac("rules")
    assert "LRC004  unknown-key" in out
    code, out, _ = lorac("schema")
    assert json.loads(out)["title"] == "lorac profile"
    assert lorac("show", "nope")[0] == 2


def test_build_writes_atomically(shipped: Path, json_backend: str) -> None:
    code, out, _ = lorac("build", "final", "--backend", "test")
    assert code == 0 and "build/final" in out
    data = json.loads((shipped / "build" / "final" / "options.json").read_text())
    assert data["options"]["network_alpha"] == 64
    write_files(shipped, {"profiles/final.toml": "[network]\nnetwork_dim = 'x'\n"})
    code, _, err = lorac("build", "final", "--backend", "test")
    assert code == 1 and "nothing was built" in err
    # the earlier build is intact and no staging folder is left behind
    assert json.loads((shipped / "build" / "final" / "options.json").read_text())
    assert sorted(p.name for p in (shipped / "build").iterdir()) == ["final"]
    assert lorac("build", "fast", "--backend", "nope")[0] == 2


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=300), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1"))))
def test_arbitrary_text_never_tracebacks(project: Path, text: str) -> None:
    write_files(project, {"profiles/fuzz.toml": text.encode("utf-8", "replace")})
    code, _out, err = lorac("lint", "profiles", "--no-dataset")
    assert code in (0, 1, 2)
    assert "Traceback" not in err and "internal error" not in err


_toml_values = st.recursive(
    st.one_of(st.integers(), st.booleans(), st.text(max_size=10),
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)),
    max_leaves=10)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["profile", "vars", "network", "dataset", "run",
                                        "training", "x"]),
                       st.dictionaries(st.text(min_size=1, max_size=12), _toml_values,
                                       max_size=4), max_size=4))
def test_arbitrary_toml_documents_never_traceback(project: Path, data: dict) -> None:
    import tomlkit

    write_files(project, {"profiles/fuzz.toml": tomlkit.dumps(data)})
    code, _out, err = lorac("lint", "profiles", "--no-dataset")
    assert code in (0, 1, 2), err
    assert "Traceback" not in err and "internal error" not in err


def test_lint_imports_only_what_it_needs(shipped: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "LORAC_NO_CACHE": "1"}
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "lorac", "lint",
                             "profiles", "--no-dataset"], cwd=shipped, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    heavy = {"torch", "PIL", "jsonschema", "yaml", "numpy", "imagehash", "tomlkit", "click",
             "rich", "lorac.scan.dataset", "lorac.scan.markdown", "lorac.scan.shell"} & imported
    assert not heavy, f"lint imported {sorted(heavy)}"
