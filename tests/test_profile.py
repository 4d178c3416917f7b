from __future__ import annotations

from pathlib import Path

from lorac.config.profile import resolve
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


def test_a_value_replacing_a_table_drops_the_tables_provenance(project: Path) -> None:
    write_files(project, {
        "profiles/base.toml": '[vars]\na = 1\nt = { x = 1, y = [1, 2] }\nl = [{ z = 1 }]\n',
        "profiles/c.toml": '[profile]\nextends = "base"\n[vars]\nt = 5\nl = []\nb = 2\n',
    })
    p = _resolve(project, "c").profile
    assert p.get("vars") == {"a": 1, "t": 5, "l": [], "b": 2}
    assert not [kp for kp in p.provenance if kp[:2] in (("vars", "t"), ("vars", "l"))
                and len(kp) > 2]
    assert p.where(("vars", "t")).path == "profiles/c.toml"
    assert p.where(("vars", "a")).path == "profiles/base.toml"


def _merges(monkeypatch, counted: list[str]) -> None:
    from lorac.config import profile as module

    real = module._merge

    def merge(dst, prov, src, doc, base):
        if base == ():
            counted.append(doc.path)
        return real(dst, prov, src, doc, base)

    monkeypatch.setattr(module, "_merge", merge)


def test_each_file_of_a_chain_is_merged_once_per_run(project: Path, monkeypatch) -> None:
    from lorac.config.profile import Resolution

    depth = 1500  # deeper than Python's recursion limit
    files = {"profiles/p0000.toml": '[profile]\nfamily = "sdxl"\n[vars]\nrank = 4\n'}
    for i in range(1, depth + 1):
        files[f"profiles/p{i:04d}.toml"] = (f'[profile]\nextends = "p{i - 1:04d}"\n'
                                            f'[training]\nseed = {i}\n')
    write_files(project, files)
    counted: list[str] = []
    _merges(monkeypatch, counted)
    cache: dict = {}
    chains: dict = {}
    results: dict[int, Resolution] = {}
    for i in [depth, *range(depth)]:  # the deepest first: the walk up is not recursive
        results[i] = resolve(project / "profiles" / f"p{i:04d}.toml", env={}, cache=cache,
                             chains=chains)
    assert sorted(counted) == sorted(files)  # each file merged once, whatever the order
    deepest = results[depth].profile
    assert deepest.get("training", "seed") == depth
    assert deepest.get("vars", "rank") == 4
    assert len(deepest.chain) == depth + 1
    assert deepest.where(("vars", "rank")).path == "profiles/p0000.toml"
    middle = results[700].profile
    assert middle.get("training", "seed") == 700 and len(middle.chain) == 701
    assert middle.chain[0] == "profiles/p0700.toml"
    alone = resolve(project / "profiles" / "p0700.toml", env={}).profile  # no shared memo
    assert (alone.data, alone.provenance, alone.chain) == \
        (middle.data, middle.provenance, middle.chain)


def test_resolutions_sharing_a_memo_do_not_share_data(project: Path) -> None:
    write_files(project, {
        "profiles/base.toml": '[vars]\nrank = 4\n[network]\nnetwork_dim = "${rank}"\n'
                              'network_args = ["a=1"]\n',
        "profiles/c.toml": '[profile]\nextends = "base"\n[vars]\nrank = 8\n',
    })
    cache: dict = {}
    chains: dict = {}
    c = resolve(project / "profiles" / "c.toml", env={}, cache=cache, chains=chains).profile
    c.data["network"]["network_args"].append("b=2")
    c.data["vars"]["rank"] = 99
    again = resolve(project / "profiles" / "c.toml", env={}, cache=cache, chains=chains)
    base = resolve(project / "profiles" / "base.toml", env={}, cache=cache, chains=chains)
    assert again.profile.get("network") == {"network_dim": 8, "network_args": ["a=1"]}
    assert base.profile.get("network") == {"network_dim": 4, "network_args": ["a=1"]}


def test_a_failing_chain_is_reported_from_each_file(project: Path) -> None:
    write_files(project, {
        "profiles/a.toml": '[profile]\nextends = "b"\n',
        "profiles/b.toml": '[profile]\nextends = "c"\n',
        "profiles/c.toml": '[profile]\nextends = "b"\n',
    })
    cache: dict = {}
    chains: dict = {}
    found = {n: resolve(project / "profiles" / f"{n}.toml", env={}, cache=cache, chains=chains)
             for n in "abc"}
    assert all(r.profile is None for r in found.values())
    assert "profiles/a.toml → profiles/b.toml → profiles/c.toml → profiles/b.toml" in \
        found["a"].diagnostics[0].message
    assert "profiles/c.toml → profiles/b.toml → profiles/c.toml" in \
        found["c"].diagnostics[0].message


def test_extends_through_a_symlink_out_of_the_folder_is_refused(project: Path) -> None:
    import os

    write_files(project, {
        "outside/base.toml": '[vars]\nrank = 4\n',
        "outside/shared/base.toml": '[vars]\nrank = 4\n',
        "profiles/p.toml": '[profile]\nextends = "base"\n',
        "profiles/q.toml": '[profile]\nextends = "linked/base"\n',
        "profiles/inside/base.toml": '[vars]\nrank = 8\n',
        "profiles/r.toml": '[profile]\nextends = "alias"\n',
    })
    os.symlink("../outside/base.toml", project / "profiles" / "base.toml")
    os.symlink("../outside/shared", project / "profiles" / "linked")
    os.symlink("inside/base.toml", project / "profiles" / "alias.toml")  # stays inside
    for name, target in (("p", "outside/base.toml"), ("q", "outside/shared/base.toml")):
        res = _resolve(project, name)
        assert res.profile is None
        [d] = res.diagnostics
        assert (d.code, d.path, d.line, d.col) == ("LRC011", f"profiles/{name}.toml", 2, 1)
        assert "is outside the profile's folder" in d.message
        assert f"it resolves to {target}" in d.message
    assert _resolve(project, "r").profile.get("vars", "rank") == 8


def test_a_default_holding_a_reference_is_expanded(project: Path) -> None:
    text = ('[vars]\nrank = 32\nmodels = "/models"\n[training]\n'
            'a = "${env:NOPE:-${models}}"\nb = "${env:NOPE:-r${rank}-$${x}}"\n'
            'c = "${env:NOPE:-${env:NOPE2:-${rank}}}"\n')
    write_files(project, {"profiles/p.toml": text})
    res = _resolve(project, "p")
    assert res.diagnostics == []
    p = res.profile
    assert p.get("training") == {"a": "/models", "b": "r32-${x}", "c": "32"}
    assert (p.where(("training", "a")).kind, p.where(("training", "a")).detail) == \
        ("env-default", "NOPE unset")
    assert {r.name for r in p.references if r.kind == "var"} == {"models", "rank"}
    used = _resolve(project, "p", {"NOPE": "/mnt"}).profile
    assert used.get("training") == {"a": "/mnt", "b": "/mnt", "c": "/mnt"}
    assert used.where(("training", "a")).kind == "env"
    # the unused defaults still name their variables: nothing is an unused variable
    assert {r.name for r in used.references if r.kind == "var"} == {"models", "rank"}


def test_a_reference_that_does_not_resolve_is_never_passed_on(project: Path) -> None:
    from tests.conftest import lorac

    write_files(project, {"profiles/p.toml": (
        '[profile]\nfamily = "flux1-dev"\n[vars]\na = 1\n[training]\n'
        'output_name = "${env:NOPE:-${typo}}"\nlogging_dir = "logs/${a"\n'
        'log_prefix = "${a{b}"\n')})
    for env in ({}, {"NOPE": "set"}):
        res = _resolve(project, "p", env)
        found = sorted((d.code, d.key_path[-1], d.message) for d in res.diagnostics)
        assert [(c, k) for c, k, _ in found] == (
            [("LRC201", "log_prefix"), ("LRC201", "logging_dir"), ("LRC201", "output_name")])
        assert "undefined variable ${typo}" in found[2][2]
        assert "never closed" in found[1][2]
    code, out, err = lorac("build", "p", "-o", "out")
    assert code == 1 and "LRC201" in out + err and not (project / "out").exists()


def test_references_nested_too_deep_are_a_finding_not_a_crash(project: Path) -> None:
    chain = "".join(f'v{i} = "${{v{i + 1}}}"\n' for i in range(2000)) + "v2000 = 1\n"
    deep = "${env:A:-" * 200 + "x" + "}" * 200
    write_files(project, {"profiles/p.toml": f'[vars]\n{chain}[training]\nseed = "${{v0}}"\n'
                          f'output_name = "{deep}"\n'})
    res = _resolve(project, "p")
    assert res.profile is not None
    messages = [d.message for d in res.diagnostics]
    assert messages and all("nested more than 64 deep" in m for m in messages)
    assert {d.key_path for d in res.diagnostics} >= {("training", "output_name")}
    named = {r.name for r in res.profile.references if r.kind == "var"}
    assert named == {f"v{i}" for i in range(2001)}  # each one is used by the one before
