"""The kohya emitter: config.toml / dataset.toml / train.sh and the command line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import tomllib

from lorac.config.profile import Profile
from lorac.core.diagnostics import LoracError
from lorac.trainers.kohya.emitter import (
    BUILD_DIR,
    SD_SCRIPTS,
    KohyaBackend,
    compile_dataset,
    launch_argv,
)
from tests.conftest import REPO, lorac, resolved, write_files
from tests.test_roundtrip_build import FAKE, read_config_like_sd_scripts

BASE = """[profile]
family = "flux1-dev"

[network]
network_module = "networks.lora_flux"
network_dim = 16
network_alpha = 8

[optimizer]
learning_rate = 1
optimizer_args = ["weight_decay=0.01", "betas=0.9,0.99"]

[training]
resolution = "1024,1024"
gradient_checkpointing = true
fp8_base = false
max_train_steps = 100
"""


def _profile(tmp_path: Path, text: str, name: str = "p") -> Profile:
    res = resolved(tmp_path, text, name)
    assert res.profile is not None, res.diagnostics
    return res.profile


def test_toml_format_writes_typed_options_and_keeps_sections(tmp_path: Path) -> None:
    art = KohyaBackend().emit(_profile(tmp_path, BASE), "toml")
    config = tomllib.loads(art.files["config.toml"])
    assert set(config) == {"network", "optimizer", "training"}  # no lorac sections
    flat = read_config_like_sd_scripts(art.files["config.toml"])
    assert flat == art.options
    assert flat["network_alpha"] == 8.0 and isinstance(flat["network_alpha"], float)
    assert flat["learning_rate"] == 1.0 and isinstance(flat["learning_rate"], float)
    assert flat["network_dim"] == 16 and isinstance(flat["network_dim"], int)
    assert flat["fp8_base"] is False
    assert art.argv == ["accelerate", "launch", f"{SD_SCRIPTS}/flux_train_network.py",
                        "--config_file", f"{BUILD_DIR}/config.toml"]
    assert "dataset.toml" not in art.files
    assert art.executable == {"train.sh"}


def test_cli_format_argv(tmp_path: Path) -> None:
    art = KohyaBackend().emit(_profile(tmp_path, BASE + "\n[run]\ngpus = 2\n"
                                       "main_process_port = 29501\n"), "cli")
    assert art.argv is not None
    assert art.argv[:5] == ["accelerate", "launch", "--multi_gpu", "--num_processes=2",
                            "--main_process_port=29501"]
    rest = art.argv[art.argv.index(f"{SD_SCRIPTS}/flux_train_network.py") + 1:]
    assert "--network_alpha=8.0" in rest and "--learning_rate=1.0" in rest
    assert "--gradient_checkpointing" in rest and "--fp8_base" not in rest
    i = rest.index("--optimizer_args")
    assert rest[i + 1:i + 3] == ["weight_decay=0.01", "betas=0.9,0.99"]
    assert "config.toml" not in art.files


def test_cli_format_reports_list_items_argparse_would_misread(tmp_path: Path) -> None:
    text = BASE.replace('"betas=0.9,0.99"', '"-x"')
    art = KohyaBackend().emit(_profile(tmp_path, text), "cli")
    assert [d.code for d in art.diagnostics] == ["LRC604"]
    assert art.diagnostics[0].line == 11
    assert not KohyaBackend().emit(_profile(tmp_path, text), "toml").diagnostics


def test_dataset_types_follow_the_voluptuous_schema(tmp_path: Path) -> None:
    text = BASE + """
[dataset]
resolution = 1024
network_multiplier = 1
caption_extension = ".txt"

[[dataset.subsets]]
image_dir = "data/a"
num_repeats = 10
face_crop_aug_range = [1, 2]

[[dataset.datasets]]
resolution = [768, 512]
[[dataset.datasets.subsets]]
image_dir = "data/b"
"""
    profile = _profile(tmp_path, text)
    art = KohyaBackend().emit(profile, "toml")
    data = tomllib.loads(art.files["dataset.toml"])
    assert data == compile_dataset(profile)
    assert data["general"]["network_multiplier"] == 1.0
    assert isinstance(data["general"]["network_multiplier"], float)
    assert data["general"]["resolution"] == 1024
    assert data["datasets"][0]["subsets"][0]["face_crop_aug_range"] == [1.0, 2.0]
    assert data["datasets"][1] == {"resolution": [768, 512], "subsets": [{"image_dir": "data/b"}]}
    assert art.argv[-2:] == ["--dataset_config", f"{BUILD_DIR}/dataset.toml"]


def test_errors_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(LoracError, match="no \\[profile\\] family"):
        KohyaBackend().emit(_profile(tmp_path, "[training]\nseed = 1\n"), "toml")
    with pytest.raises(LoracError, match="set by lorac"):
        KohyaBackend().emit(_profile(tmp_path, BASE + 'config_file = "x.toml"\n'), "toml")
    with pytest.raises(LoracError, match="dataset_config and a \\[dataset\\]"):
        KohyaBackend().emit(_profile(tmp_path, BASE + 'dataset_config = "d.toml"\n'
                                     '[[dataset.subsets]]\nimage_dir = "x"\n'), "toml")
    with pytest.raises(LoracError, match="NUL"):
        KohyaBackend().emit(_profile(tmp_path, BASE + 'output_name = "a\\u0000b"\n'), "cli")


@pytest.mark.parametrize("family,script", [("flux1-dev", "flux_train_network.py"),
                                           ("flux1-schnell", "flux_train_network.py"),
                                           ("sdxl", "sdxl_train_network.py"),
                                           ("sd3", "sd3_train_network.py"),
                                           ("sd15", "train_network.py")])
def test_families_pick_their_script(tmp_path: Path, family: str, script: str) -> None:
    art = KohyaBackend().emit(_profile(tmp_path, f'[profile]\nfamily = "{family}"\n'), "cli")
    assert art.argv == ["accelerate", "launch", f"{SD_SCRIPTS}/{script}"]


def test_launch_argv_substitutes_only_the_placeholders(tmp_path: Path) -> None:
    text = BASE.replace('"betas=0.9,0.99"', '"{build_dir}/config.toml"')
    art = KohyaBackend().emit(_profile(tmp_path, text + '[[dataset.subsets]]\nimage_dir = "x"\n'),
                              "cli")
    real = launch_argv(art.argv, "/sd", "/b")
    assert real[2] == "/sd/flux_train_network.py"
    assert real[3:5] == ["--dataset_config", "/b/dataset.toml"]
    assert "{build_dir}/config.toml" in real  # an option value is never rewritten


def test_train_sh_runs_the_argv(tmp_path: Path) -> None:
    text = BASE + 'output_name = "it\'s $(rm -rf /) `x` \\"q\\" \\n naïve"\n'
    art = KohyaBackend().emit(_profile(tmp_path, text), "cli")
    build = tmp_path / "build dir"
    write_files(build, art.files)
    fake = tmp_path / "bin"
    fake.mkdir()
    record = tmp_path / "argv.json"
    (fake / "accelerate").write_text(FAKE)
    (fake / "accelerate").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
           "LORAC_SD_SCRIPTS": "/opt/sd scripts", "ARGV_OUT": str(record)}
    subprocess.run(["bash", str(build / "train.sh")], check=True, env=env, cwd=tmp_path)
    got = ["accelerate", *json.loads(record.read_text())]
    assert got == launch_argv(art.argv, "/opt/sd scripts", build.resolve())
    env.pop("LORAC_SD_SCRIPTS")
    proc = subprocess.run(["bash", str(build / "train.sh")], env=env, capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "LORAC_SD_SCRIPTS" in proc.stderr


@pytest.mark.parametrize("fmt", ["toml", "cli"])
@pytest.mark.parametrize("name", ["fast", "final"])
def test_shipped_profiles_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                                fmt: str) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    code, _, err = lorac("build", name, "--backend", "kohya", "--format", fmt,
                              "--output", str(out))
    assert code == 0, err
    assert (out / "train.sh").is_file() and (out / "dataset.toml").is_file()
    assert os.access(out / "train.sh", os.X_OK)
