from __future__ import annotations

from pathlib import Path

from lorac.profile import resolve
from tests.conftest import write_files


def _resolve(root: Path, name: str, env: dict[str, str] | None = None):
    return resolve(root / "profiles" / f"{name}.toml", env=env or {})


def test_extends_vars_env_and_provenance(project: Path) -> None:
    write_files(project, {
        "profiles/base.toml": '[vars]\nrank = 16\nroot = "${env:ROOT:-/m}"\n'
                              '[network]\nnetwork_dim = "${rank}"\nnetwork_alpha = 8\n'
                              '[model]\nae = "${root}/ae.safetensors"\n',
        "profiles/child.toml": '[profile]\nextends = "base"\n[vars]\nrank = 32\n'
                               '[network]\nnetwork_alpha = "${rank}"\n'
                               'note = "rank is ${rank}, literal $${rank}"\n',
    })
    res = _resolve(project, "child", {"ROOT": "/models"})
    assert res.diagnostics == []
    p = res.profile
    assert p.get("network", "network_dim") == 32  # whole-string reference keeps the int
    assert p.get("network", "network_alpha") == 32
    assert p.get("network", "note") == "rank is 32, literal ${rank}"
    assert p.get("model", "ae") == "/models/ae.safetensors"
    assert p.chain == ("profiles/child.toml", "profiles/base.toml")
    dim = p.where(("network", "network_dim"))
    assert (dim.path, dim.line, dim.kind, dim.detail) == ("profiles/base.toml", 5, "var", "rank")
    alpha = p.where(("network", "network_alpha"))
    assert (alpha.path, alpha.line) == ("profiles/child.toml", 6)
    env = p.where(("vars", "root"))
    assert (env.kind, env.detail) == ("env", "ROOT")
    assert _resolve(project, "child").profile.get("model", "ae") == "/m/ae.safetensors"


def test_arrays_replace_and_tables_merge(project: Path) -> None:
    write_files(project, {
        "profiles/base.toml": '[dataset]\nresolution = 512\n[[dataset.subsets]]\nimage_dir = "a"\n'
                              '[[dataset.subsets]]\nimage_dir = "b"\n',
        "profiles/c.toml": '[profile]\nextends = "base"\n[dataset]\nbatch_size = 2\n'
                           '[[dataset.subsets]]\nimage_dir = "c"\n',
    })
    p = _resolve(project, "c").profile
    assert p.get("dataset") == {"resolution": 512, "batch_size": 2,
                                "subsets": [{"image_dir": "c"}]}
    assert p.where(("dataset", "subsets", 0, "image_dir")).path == "profiles/c.toml"
    assert p.where(("dataset", "resolution")).path == "profiles/base.toml"


def test_missing_parent_and_cycle(project: Path) -> None:
    write_files(project, {
        "profiles/a.toml": '[profile]\nextends = "b"\n',
        "profiles/b.toml": '[profile]\nextends = "c"\n',
        "profiles/c.toml": '[profile]\nextends = "a"\n',
        "profiles/d.toml": '[profile]\nextends = "nope"\n',
    })
    res = _resolve(project, "a")
    assert res.profile is None
    assert [d.code for d in res.diagnostics] == ["LRC012"]
    assert "a.toml → profiles/b.toml → profiles/c.toml → profiles/a.toml" in \
        res.diagnostics[0].message
    res = _resolve(project, "d")
    assert [d.code for d in res.diagnostics] == ["LRC011"]
    assert "nope.toml" in res.diagnostics[0].message


def test_undefined_references_are_errors(project: Path) -> None:
    write_files(project, {"profiles/p.toml": '[vars]\nrank = 1\n[network]\n'
                          'network_dim = "${rnak}"\nx = "${env:NOPE_NOT_SET}"\ny = "${}"\n'})
    res = _resolve(project, "p")
    codes = sorted(d.code for d in res.diagnostics)
    assert codes == ["LRC201", "LRC201", "LRC202"]
    hint = next(d.hint for d in res.diagnostics if "rnak" in d.message)
    assert hint == "did you mean ${rank}?"


def test_a_symlink_loop_among_other_tomls_is_a_finding(project: Path) -> None:
    import os

    from tests.conftest import lorac

    (project / "cfg").mkdir()
    os.symlink("loop.toml", project / "cfg" / "loop.toml")
    code, out, err = lorac("lint", "cfg")
    assert "internal error" not in err, err
    assert code == 1 and "cfg/loop.toml: LRC003" in out, out + err
