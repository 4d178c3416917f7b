"""``lorac import`` of musubi-tuner launchers whose paths come from the environment: variables
kept as ``${env:NAME}``, sourced env files followed, and a dataset config behind a variable kept
as ``dataset_config``, which the musubi backend hands to every step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

from tests.conftest import lorac, write_files

#: a launcher in the shape of the musubi-tuner-docker ones: every path under $BASE_DIR, which a
#: sourced env.sh sets
LAUNCHER = """#!/bin/bash
set -euo pipefail

{source}

accelerate launch --num_cpu_threads_per_process 1 \\
    "$MUSUBI_HOME/src/musubi_tuner/wan_train_network.py" \\
    --task t2v-A14B \\
    --dit "$BASE_DIR/models/wan2.2_t2v_low_noise_14B_fp16.safetensors" \\
    --vae "$BASE_DIR/models/wan_2.1_vae.safetensors" \\
    --t5 "$BASE_DIR/models/models_t5_umt5-xxl-enc-bf16.pth" \\
    --dataset_config "$BASE_DIR/dataset/dataset.toml" \\
    --sdpa --mixed_precision bf16 \\
    --network_module networks.lora_wan --network_dim 32 --network_alpha 32 \\
    --output_dir "$BASE_DIR/output" \\
    --output_name low-noise \\
    --min_timestep 0 \\
    --max_timestep 875"""  # no newline at the end, as in the real launchers

DATASET = """[general]
resolution = [960, 544]
caption_extension = ".txt"

[[datasets]]
video_directory = "data"
cache_directory = "cache"
target_frames = [1, 25, 45]
"""


def _import(name: str = "scripts/train.sh") -> tuple[int, dict, str]:
    code, _, err = lorac("import", name, "-o", "profiles/w.toml")
    path = Path("profiles/w.toml")
    return code, tomllib.loads(path.read_text()) if path.exists() else {}, err


def _flat(prof: dict) -> dict:
    return {k: v for s, t in prof.items() if s not in ("profile", "dataset", "run", "vars")
            for k, v in t.items()}


def test_unresolved_variables_are_kept_as_env_references(project: Path) -> None:
    # env.sh is not there: one warning at the source line names what stays unresolved, and
    # every value built from $BASE_DIR is kept, not dropped
    write_files(project, {"scripts/train.sh": LAUNCHER.format(
        source='source "$MUSUBI_SCRIPTS_DIR/env.sh"')})
    code, prof, err = _import()
    assert code == 0, err
    flat = _flat(prof)
    assert flat["dit"] == "${env:BASE_DIR}/models/wan2.2_t2v_low_noise_14B_fp16.safetensors"
    assert flat["vae"] == "${env:BASE_DIR}/models/wan_2.1_vae.safetensors"
    assert flat["t5"] == "${env:BASE_DIR}/models/models_t5_umt5-xxl-enc-bf16.pth"
    assert flat["output_dir"] == "${env:BASE_DIR}/output"
    assert flat["dataset_config"] == "${env:BASE_DIR}/dataset/dataset.toml"
    assert flat["max_timestep"] == 875  # the last word of a file without a final newline
    assert "dataset" not in prof
    sourced = [line for line in err.splitlines() if "source" in line]
    assert len(sourced) == 1 and sourced[0].startswith("scripts/train.sh:4:"), err
    assert "$MUSUBI_SCRIPTS_DIR, which nothing sets" in sourced[0]
    assert "MUSUBI_HOME, BASE_DIR stay unresolved" in sourced[0]
    assert "LRC092" not in err  # nothing is unknown: it is in the environment


def test_a_value_behind_an_unset_variable_is_unknown_not_missing(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # linted with BASE_DIR unset: LRC202 says so where each value reads it; LRC661 (model file
    # missing) and LRC668 (output_dir missing) do not claim the values are absent
    write_files(project, {"scripts/train.sh": LAUNCHER.format(
        source='source "$MUSUBI_SCRIPTS_DIR/env.sh"')})
    assert _import()[0] == 0
    monkeypatch.delenv("BASE_DIR", raising=False)
    code, out, _ = lorac("lint", "--no-dataset", "-f", "json", "profiles/w.toml")
    found = json.loads(out)
    codes = {d["code"] for d in found}
    assert "LRC661" not in codes and "LRC668" not in codes, found
    assert {tuple(d["key_path"]) for d in found if d["code"] == "LRC202"} == {
        ("model", "vae"), ("training", "dit"), ("training", "t5"),
        ("training", "dataset_config"), ("saving", "output_dir")}
    # and the build stops on it in one line, writing nothing
    code, _, err = lorac("build", "w", "-o", "out")
    assert code == 1 and "nothing was built" in err and "Traceback" not in err
    assert not Path("out").exists()


def test_the_dataset_config_behind_a_variable_reaches_every_step(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # built with BASE_DIR set, where the dataset config does not exist at build time: every
    # step gets its path as it is (musubi-tuner reads it when each step starts), no
    # dataset.toml is written
    write_files(project, {"scripts/train.sh": LAUNCHER.format(
        source='source "$MUSUBI_SCRIPTS_DIR/env.sh"')})
    assert _import()[0] == 0
    monkeypatch.setenv("BASE_DIR", "/srv/musubi")
    code, out, err = lorac("build", "w", "-o", "out")
    assert code == 0, out + err
    assert not (project / "out" / "dataset.toml").exists()
    built = json.loads((project / "out" / "lorac-build.json").read_text())
    assert built["argv"][-2:] == ["--dataset_config", "/srv/musubi/dataset/dataset.toml"]
    script = (project / "out" / "train.sh").read_text()
    assert script.count("/srv/musubi/dataset/dataset.toml") == 3  # latents, text encoder, train
    config = tomllib.loads((project / "out" / "config.toml").read_text())
    assert config["training"]["dit"] == (
        "/srv/musubi/models/wan2.2_t2v_low_noise_14B_fp16.safetensors")
    assert config["saving"]["output_dir"] == "/srv/musubi/output"


@pytest.mark.parametrize("line", ['source "$(dirname "$0")/env.sh"', ". ./env.sh",
                                  "source env.sh"])
def test_a_sourced_env_file_beside_the_launcher_is_followed(project: Path, line: str) -> None:
    # env.sh lies beside the launcher (not in the current folder): read like --env, so the
    # values keep their wiring with env.sh's value as the default, and the dataset config it
    # points to is imported into [dataset]
    data = project / "musubi"
    write_files(project, {
        "scripts/train.sh": LAUNCHER.format(source=line),
        "scripts/env.sh": f'export BASE_DIR="${{MUSUBI_HOME:-{data}}}"\n',
        "musubi/dataset/dataset.toml": DATASET})
    code, prof, err = _import()
    assert code == 0, err
    flat = _flat(prof)
    assert flat["vae"] == f"${{env:BASE_DIR:-{data}}}/models/wan_2.1_vae.safetensors"
    assert flat["output_dir"] == f"${{env:BASE_DIR:-{data}}}/output"
    assert "dataset_config" not in flat
    assert prof["dataset"]["datasets"][0]["target_frames"] == [1, 25, 45]
    assert "source" not in err and "LRC092" not in err
    code, out, err = lorac("build", "w", "-o", "out")
    assert code == 0, out + err
    assert (project / "out" / "dataset.toml").exists()


def test_a_profile_naming_the_dataset_twice_does_not_build(project: Path) -> None:
    write_files(project, {"profiles/w.toml": """[profile]
family = "wan2.1-t2v-1.3b"
backend = "musubi"
[model]
dit = "d.safetensors"
[training]
dataset_config = "elsewhere/dataset.toml"
[dataset]
caption_extension = ".txt"
[[dataset.datasets]]
image_directory = "data"
"""})
    code, _, err = lorac("build", "w", "-o", "out")
    assert code == 2 and "dataset_config and a [dataset] section both name the dataset" in err
    assert "Traceback" not in err and not Path("out").exists()


def test_env_files_are_read_for_musubi_launchers(project: Path) -> None:
    # --env names the env file the script sources from elsewhere: read as for sd-scripts
    write_files(project, {
        "scripts/train.sh": LAUNCHER.format(source='source "$MUSUBI_SCRIPTS_DIR/env.sh"'),
        "docker/env.sh": "BASE_DIR=/srv/musubi\n"})
    code, _, err = lorac("import", "scripts/train.sh", "--env", "docker/env.sh",
                         "-o", "profiles/w.toml")
    assert code == 0, err
    assert "--env is read only" not in err
    flat = _flat(tomllib.loads((project / "profiles" / "w.toml").read_text()))
    assert flat["vae"] == "${env:BASE_DIR:-/srv/musubi}/models/wan_2.1_vae.safetensors"
    assert flat["dataset_config"] == "${env:BASE_DIR:-/srv/musubi}/dataset/dataset.toml"
    assert "source" not in err  # the file it sources is the --env file (same name)
