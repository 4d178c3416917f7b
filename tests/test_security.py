"""Static checks on lorac's own code (nothing that runs a shell, evaluates text or loads YAML
unsafely), and the same promises kept at run time: importing a script never runs it, YAML tags
are refused, and nothing is written through a symbolic link or outside its folder."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, lorac, write_files

PACKAGE = REPO / "lorac"


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def test_no_shell_eval_exec_or_unsafe_yaml() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for call in _calls(tree):
            name = _name(call.func)
            where = f"{path.relative_to(PACKAGE.parent)}:{call.lineno}"
            if name in ("eval", "exec", "os.system", "os.popen", "pickle.load",
                        "pickle.loads", "marshal.loads"):
                problems.append(f"{where}: {name}()")
            for kw in call.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                              and kw.value.value is False):
                    problems.append(f"{where}: shell=…")
            if name in ("yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.full_load"):
                problems.append(f"{where}: {name}() (use yaml.safe_load)")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- importing runs nothing


def _script(marker: Path) -> str:
    m = str(marker)
    return f"""#!/usr/bin/env bash
set -euo pipefail
source ./evil.env
. ./evil.env
OUT="$(touch {m}.subst)"
NAME=`touch {m}.backtick`
eval "touch {m}.eval"
touch {m}.plain
cat <<DOC > /dev/null
$(touch {m}.heredoc)
DOC
bash -c "touch {m}.bashc"
accelerate launch flux_train_network.py --network_dim 4 --output_name "$(touch {m}.arg)" \\
  --output_dir `touch {m}.arg2` --pretrained_model_name_or_path /m/flux.safetensors
"""


def test_importing_a_script_never_runs_it(project: Path) -> None:
    marker = project / "marker"
    write_files(project, {"train.sh": _script(marker),
                          "evil.env": f"X=$(touch {marker}.envfile)\ntouch {marker}.sourced\n"})
    code, _, err = lorac("import", "train.sh", "--env", "evil.env", "-o", "profiles/i.toml")
    assert code in (0, 1) and "Traceback" not in err
    assert (project / "profiles" / "i.toml").is_file()
    assert not list(project.glob("marker*")), "importing ran part of the script"
    code, _, err = lorac("lint", ".")  # the shell rules read scripts; they must not run them
    assert "Traceback" not in err
    assert not list(project.glob("marker*")), "linting ran part of the script"


# --------------------------------------------------------------------------- safe loading

YAML_EXPLOIT = """job: extension
config:
  name: x
  process:
    - type: sd_trainer
      network: !!python/object/apply:os.system ["touch {marker}"]
      model:
        name_or_path: !!python/object/apply:os.system ["touch {marker}"]
"""


def test_yaml_tags_are_refused(project: Path) -> None:
    marker = project / "pwned"
    write_files(project, {"configs/job.yaml": YAML_EXPLOIT.format(marker=marker)})
    code, _, err = lorac("import", "configs/job.yaml", "-o", "profiles/j.toml")
    assert code == 2 and "Traceback" not in err and err.startswith("lorac: error:")
    code, _, err = lorac("lint", ".")
    assert "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize(("name", "text"), [
    ("configs/gui.json", json.dumps({"LoRA_type": "Flux1",
                                     "network_dim": "!!python/object/apply:os.system",
                                     "__class__": {"py/object": "os.system",
                                                   "py/reduce": [["touch {marker}"]]}})),
    ("configs/kohya.toml", 'network_dim = "!!python/object/apply:os.system [\'touch {marker}\']"'
                           '\n[py]\nobject = "os.system"\nreduce = ["touch {marker}"]\n'),
])
def test_json_and_toml_are_plain_data(project: Path, name: str, text: str) -> None:
    marker = project / "pwned"
    write_files(project, {name: text.replace("{marker}", str(marker))})
    code, _, err = lorac("import", name, "-o", "profiles/g.toml")
    assert "Traceback" not in err and code in (0, 1, 2)
    assert not marker.exists()


# ----------------------------------------------------------------------- no writes through links

PROFILE = """[profile]
family = "flux1-dev"
[network]
network_module = "networks.lora_flux"
network_dim = 4
network_alpha = 4
"""


@pytest.mark.parametrize("linked", ["build", "build/p"])
def test_build_refuses_linked_folders(project: Path, tmp_path_factory: pytest.TempPathFactory,
                                      linked: str) -> None:
    outside = tmp_path_factory.mktemp("outside")
    write_files(project, {"profiles/p.toml": PROFILE})
    (project / linked).parent.mkdir(parents=True, exist_ok=True)
    (project / linked).symlink_to(outside, target_is_directory=True)
    code, _, err = lorac("build", "p")
    assert code == 2 and "symbolic link" in err
    assert list(outside.iterdir()) == []


def test_build_to_an_absolute_folder_named_on_purpose(
        project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    write_files(project, {"profiles/p.toml": PROFILE})
    code, _, err = lorac("build", "p", "-o", str(outside / "out"))
    assert code == 0, err
    assert (outside / "out" / "train.sh").is_file()


def test_run_refuses_linked_runs_folder(project: Path, tmp_path_factory: pytest.TempPathFactory,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path_factory.mktemp("outside")
    write_files(project, {"profiles/p.toml": PROFILE})
    monkeypatch.setenv("LORAC_SD_SCRIPTS", str(outside))
    (project / "runs").symlink_to(outside, target_is_directory=True)
    code, _, err = lorac("run", "p", "--force")
    assert code == 2 and "symbolic link" in err
    assert list(outside.iterdir()) == []
    os.unlink(project / "runs")
    (project / "runs").mkdir()
    (project / "runs" / "sub").symlink_to(outside, target_is_directory=True)
    code, _, err = lorac("run", "p", "--force", "--runs-dir", "runs/sub")
    assert code == 2 and "symbolic link" in err
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape.txt", "/tmp/escape.txt", "a/../../escape.txt", ""])
def test_compiled_file_names_stay_inside(tmp_path: Path, name: str) -> None:
    from lorac.core.diagnostics import LoracError
    from lorac.core.outputs import safe_join, write_tree

    with pytest.raises(LoracError):
        write_tree(tmp_path / "out", {"ok.txt": "x", name: "y"})
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()
    with pytest.raises(LoracError):
        safe_join(tmp_path / "run", name)
