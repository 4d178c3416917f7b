"""The output-folder rule (:mod:`lorac.core.outputs`): lorac replaces only a folder it built itself,
never lets a trainer output path leave the run folder, and never removes or changes a file it
did not write — whatever folder it is pointed at."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorac.core.diagnostics import LoracError
from lorac.core.outputs import BUILD_MARKER, check_folder, output_name_problem, write_tree
from tests.conftest import lorac, write_files

PROFILE = """[profile]
family = "flux1-dev"
[network]
network_module = "networks.lora_flux"
network_dim = 4
network_alpha = 4
[saving]
output_name = "t"
"""


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: a file by its bytes' hash and mode, a link by its target."""

    out: dict[str, tuple] = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    out[rel] = ("file", hashlib.sha256(fh.read()).hexdigest(), st.st_mode)
            else:
                out[rel] = (stat.filemode(st.st_mode),)
    return out


def _project(root: Path) -> None:
    write_files(root, {"profiles/p.toml": PROFILE, "data/a.txt": "mine",
                       "models/flux1-dev.safetensors": b"real weights",
                       "mywork/notes.txt": "precious", "configs/old.toml": "x = 1\n"})


# --------------------------------------------------------------------------- lorac build -o


@pytest.mark.parametrize("out", ["{cwd}", ".", "..", "profiles", "mywork", "data", "models"])
def test_build_refuses_a_folder_it_did_not_make(tmp_path: Path, out: str) -> None:
    project = tmp_path / "project"  # the parent holds nothing else: -o .. is checked too
    _project(project)
    before = snapshot(tmp_path)
    with contextlib.chdir(project):
        code, _, err = lorac("build", "p", "-o", out.format(cwd=project))
    assert code == 2, err
    assert err.count("\n") == 1 and "refusing to" in err
    assert out.format(cwd=project) in err
    assert snapshot(tmp_path) == before


def test_build_replaces_its_own_folder_and_only_that(project: Path) -> None:
    _project(project)
    assert lorac("build", "p")[0] == 0
    made = snapshot(project / "build" / "p")
    record = json.loads((project / "build" / "p" / BUILD_MARKER).read_text())
    assert set(made) == set(record["files"]) | {BUILD_MARKER}
    # a rebuild with another value replaces the folder (atomically, nothing left beside it)
    (project / "profiles" / "p.toml").write_text(PROFILE.replace("= 4", "= 8"))
    assert lorac("build", "p")[0] == 0
    assert "network_dim = 8" in (project / "build" / "p" / "config.toml").read_text()
    assert sorted(p.name for p in (project / "build").iterdir()) == ["p"]
    # a file of the user's beside the build files: refused, the folder stays as it was
    (project / "build" / "p" / "notes.txt").write_text("mine")
    before = snapshot(project)
    code, _, err = lorac("build", "p")
    assert code == 2 and "notes.txt" in err and "move them out" in err
    assert snapshot(project) == before


@pytest.mark.parametrize("record", ["not json", "[]", '{"files": "config.toml"}',
                                    '{"files": ["../profiles/p.toml"]}',
                                    '{"profile": "p"}'])
def test_a_marker_lorac_did_not_write_is_not_lorac_s(project: Path, record: str) -> None:
    _project(project)
    write_files(project, {"out/lorac-build.json": record, "out/config.toml": "mine"})
    before = snapshot(project)
    code, _, err = lorac("build", "p", "-o", "out")
    assert code == 2 and "out" in err
    assert snapshot(project) == before


def test_a_marker_does_not_vouch_for_folders_links_or_unlisted_files(
        project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "keep.txt").write_text("keep")
    _project(project)
    assert lorac("build", "p", "-o", "out")[0] == 0
    for extra in ("config.toml.bak", "sub/x", "link"):
        if extra == "link":
            (project / "out" / "link").symlink_to(outside)
        else:
            write_files(project, {f"out/{extra}": "mine"})
        before = snapshot(project), snapshot(outside)
        code, _, err = lorac("build", "p", "-o", "out")
        assert code == 2 and extra.split("/")[0] in err
        assert (snapshot(project), snapshot(outside)) == before
        os.unlink(project / "out" / extra)
        if extra == "sub/x":
            os.rmdir(project / "out" / "sub")
    assert lorac("build", "p", "-o", "out")[0] == 0


def test_an_empty_or_new_folder_is_fine(project: Path) -> None:
    _project(project)
    (project / "empty").mkdir()
    for out in ("empty", "new/nested/out", "mywork/build"):
        code, _, err = lorac("build", "p", "-o", out)
        assert code == 0, err
        assert (project / out / "train.sh").is_file()
    assert (project / "mywork" / "notes.txt").read_text() == "precious"


def test_write_tree_removes_only_the_files_its_marker_lists(tmp_path: Path) -> None:
    files = {"a.txt": "a", "sub/b.txt": "b", BUILD_MARKER: json.dumps({"files": ["a.txt",
                                                                                "sub/b.txt"]})}
    write_tree(tmp_path / "out", files)
    assert check_folder(tmp_path / "out", BUILD_MARKER, replace=True) is True
    write_tree(tmp_path / "out", {**files, "a.txt": "A"})
    assert (tmp_path / "out" / "a.txt").read_text() == "A"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # a folder written without a record is never lorac's to replace
    write_tree(tmp_path / "bare", {"x.txt": "x"})
    with pytest.raises(LoracError, match="refusing to replace"):
        write_tree(tmp_path / "bare", {"x.txt": "y"})
    assert (tmp_path / "bare" / "x.txt").read_text() == "x"


# --------------------------------------------------------------------------- the property


def built_files(stdout: str, target: str) -> set[str]:
    """The file names ``lorac build`` reports (``  TARGET/NAME`` lines)."""

    return {os.path.relpath(line.strip(), target) for line in stdout.splitlines()[1:]}


FOLDERS = ["{default}", ".", "..", "{cwd}", "profiles", "data", "mywork", "mywork/sub",
           "mywork/new", "build/old", "build/dirty", "build", "empty", "new/nested/out",
           "linkdir", "linkdir/x", "afile", "build/old/lorac-build.json", "{outside}",
           "{outside}/new"]
#: the names lorac writes into a build folder (of every backend here)
LORAC_NAMES = (BUILD_MARKER, "config.toml", "dataset.toml", "train.sh", "job.yaml",
               "options.json")
#: the folders a build may write: new, empty, or a clean lorac build folder
ACCEPTED = {"{default}", "mywork/new", "build/old", "empty", "new/nested/out", "{outside}/new"}


@settings(max_examples=60, deadline=None,
          # json_backend only registers the test backend: nothing to reset between examples
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(out=st.sampled_from(FOLDERS),
       backend=st.sampled_from(["kohya", "ai-toolkit", "test"]),
       dim=st.integers(1, 128),
       name=st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True),
       user_files=st.dictionaries(
           st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True)
           .filter(lambda n: n not in (".", "..", "sub", "new", *LORAC_NAMES)),
           st.binary(max_size=64), min_size=1, max_size=4))
def test_no_file_lorac_did_not_write_is_ever_removed_or_changed(
        json_backend: str, out: str, backend: str, dim: int, name: str,
        user_files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        root, outside = top / "project", top / "outside"
        profile = PROFILE.replace("= 4", f"= {dim}").replace('"t"', f'"{name}"')
        write_files(root, {"profiles/p.toml": profile, "afile": b"a file"})
        write_files(outside, {"keep.txt": b"keep"})
        (root / "empty").mkdir()
        (root / "linkdir").symlink_to(outside)
        with contextlib.chdir(root):
            for folder in ("build/old", "build/dirty"):
                assert lorac("build", "p", "--backend", backend, "-o", folder)[0] == 0
            for folder in ("data", "mywork", "mywork/sub", "build/dirty"):
                write_files(root, {f"{folder}/{n}": b for n, b in user_files.items()})
            before = snapshot(top)
            lorac_made = {k for k in before if k.startswith(("project/build/old/",
                                                             "project/build/dirty/"))
                          and k[len("project/build/dirty/"):] not in user_files}
            target = out.format(default="build/p", cwd=root, outside=outside)
            args = ["build", "p", "--backend", backend]
            args += [] if out == "{default}" else ["-o", target]
            code, stdout, err = lorac(*args)
        after = snapshot(top)
    assert "Traceback" not in err and "internal error" not in err
    assert code == (0 if out in ACCEPTED else 2), f"{out}: {err}"
    if code != 0:
        assert after == before, f"{out}: a refused build changed something"
        assert err.count("\n") == 1
        return
    for path, entry in before.items():
        if path not in lorac_made:
            assert after.get(path) == entry, f"{out}: {path} was removed or changed"
    # the folder holds exactly what its record lists: the next build may replace it
    folder = os.path.relpath(Path(target) if Path(target).is_absolute() else root / target,
                             top)
    inside = {k[len(folder) + 1:] for k, v in after.items()
              if k.startswith(folder + os.sep) and v[0] == "file"}
    record = stdout.splitlines()[0]
    assert record.startswith("built p for ") and BUILD_MARKER in inside
    assert inside == {BUILD_MARKER, *built_files(stdout, target)}


# --------------------------------------------------------------------------- lorac run


def test_run_refuses_a_name_that_leaves_the_run_folder_even_forced(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAC_SD_SCRIPTS", str(project / "nowhere"))
    write_files(project, {"profiles/p.toml": PROFILE.replace(
        '"t"', '"../../p-20250101-120000/output/t"')})
    code, _, err = lorac("run", "p")
    assert code == 1 and "LRC008" in err and "nothing was launched" in err
    code, _, err = lorac("run", "p", "--force")
    assert code == 2 and err.splitlines()[-1].startswith("lorac: error: output_name = ")
    assert "(profiles/p.toml:8:1)" in err.splitlines()[-1] and "--force does not override" in err
    assert not (project / "runs").exists()


def test_run_puts_every_output_path_in_the_run_folder(project: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from lorac.core.outputs import RUN_FOLDER_PATHS

    write_files(project, {"profiles/p.toml": PROFILE + (
        '[logging]\noutput_dir = "/elsewhere/out"\nlogging_dir = "../../logs"\n'
        'console_log_file = "/home/someone/notes.txt"\n')})
    code, out, err = lorac("lint", "profiles")
    assert code == 0, out + err  # an output folder anywhere is fine: lorac run replaces it
    code, out, err = lorac("run", "p", "--dry-run")
    assert code == 0, err
    overrides = dict(line.removeprefix("override: ").split(" = ", 1)
                     for line in out.splitlines() if line.startswith("override: "))
    run_dir = project / "runs" / "p-DRY-RUN"
    assert {k: v for k, v in overrides.items() if k in RUN_FOLDER_PATHS} == {
        name: str(run_dir / inside) for name, inside in RUN_FOLDER_PATHS.items()}
    # what the profile does not set stays unset; output_dir is always redirected
    monkeypatch.setattr("lorac.run.launch.tensorboard_installed", lambda: False)
    write_files(project, {"profiles/p.toml": PROFILE})
    out = lorac("run", "p", "--dry-run")[1]
    assert "override: output_dir = " in out and "logging_dir" not in out
    assert "console_log_file" not in out


def test_run_logs_to_its_folder_for_the_report_only_where_the_profile_logs_nowhere(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With TensorBoard installed, a kohya run names ``logging_dir`` in its folder (the trainer
    then writes event files, and the report draws loss and learning rate from them); a profile
    that logs elsewhere (``log_with = "wandb"``) or a machine without TensorBoard gets none."""

    monkeypatch.setattr("lorac.run.launch.tensorboard_installed", lambda: True)
    write_files(project, {"profiles/p.toml": PROFILE})
    out = lorac("run", "p", "--dry-run")[1]
    assert f"override: logging_dir = {project / 'runs' / 'p-DRY-RUN' / 'logs'}" in out
    write_files(project, {"profiles/p.toml": PROFILE + '[logging]\nlog_with = "wandb"\n'})
    out = lorac("run", "p", "--dry-run")[1]
    assert "logging_dir" not in out
    monkeypatch.setattr("lorac.run.launch.tensorboard_installed", lambda: False)
    write_files(project, {"profiles/p.toml": PROFILE})
    assert "logging_dir" not in lorac("run", "p", "--dry-run")[1]


@pytest.mark.parametrize(("option", "value", "bad"), [
    ("output_name", "flux.v2", False), ("output_name", "a..b", False),
    ("output_name", "a/b", True), ("output_name", "a\\b", True), ("output_name", "..", True),
    ("output_name", "/x", True), ("output_name", "C:/x", True), ("output_name", "D:\\x", True),
    ("log_prefix", "run-", False), ("log_prefix", "../x", True), ("log_prefix", "x/..", True),
    ("output_dir", "/mnt/out", False), ("network_dim", "/x", False), ("output_name", 3, False),
])
def test_output_name_problem(option: str, value: object, bad: bool) -> None:
    assert (output_name_problem(option, value) is not None) == bad


# --------------------------------------------------------------------------- synth, import


def test_synth_never_writes_over_real_checkpoints(project: Path) -> None:
    _project(project)
    before = snapshot(project)
    code, _, err = lorac("synth", "flux1-dev", "models", "--tiny", "--device", "cpu")
    assert code == 2 and "models" in err and "lorac-synth.json" in err
    assert snapshot(project) == before


def test_synth_claims_its_folder_first_and_finishes_an_interrupted_set(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from lorac.run import launch as run
    from lorac.trainers.kohya import synth

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "write_synthetic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.make_synthetic("flux1-dev", project / "s", tiny=True, device="cpu")
    claim = json.loads((project / "s" / run.SYNTH_MARKER).read_text())
    assert claim == {"family": "flux1-dev", "trainer": "kohya", "complete": False}
    monkeypatch.undo()
    made = run.make_synthetic("flux1-dev", project / "s", tiny=True, device="cpu")
    assert made.pretrained_model_name_or_path.is_file()
    record = json.loads((project / "s" / run.SYNTH_MARKER).read_text())
    assert record["complete"] is True and record["trainer_args"]


@pytest.mark.parametrize("flag", [[], ["--force"]])
def test_import_never_writes_over_its_own_input(project: Path, flag: list[str]) -> None:
    write_files(project, {"config.toml": "[model]\nnetwork_dim = 4\n"})
    code, _, err = lorac("import", "config.toml", "-o", "./config.toml", *flag)
    assert code == 2 and "input of this import" in err
    assert (project / "config.toml").read_text() == "[model]\nnetwork_dim = 4\n"
