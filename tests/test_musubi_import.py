"""``lorac import`` of musubi-tuner commands: three commands, or some, into one profile."""

from __future__ import annotations

from pathlib import Path

import tomllib

from tests.conftest import lorac, write_files

SCRIPT = r"""#!/bin/bash
MODELS=/models/wan
DATASET=dataset.toml

python src/musubi_tuner/wan_cache_latents.py --dataset_config $DATASET \
  --vae $MODELS/vae.safetensors --i2v --clip $MODELS/clip.pth --batch_size 4
python src/musubi_tuner/wan_cache_text_encoder_outputs.py --dataset_config $DATASET \
  --t5 $MODELS/t5.pth --batch_size 16

accelerate launch --num_cpu_threads_per_process 1 --mixed_precision bf16 --dynamo_mode x \
  src/musubi_tuner/wan_train_network.py --task i2v-14B --dit $MODELS/i2v.safetensors \
  --vae $MODELS/vae.safetensors --dataset_config $DATASET --sdpa --fp8_base \
  --network_module networks.lora_wan --network_dim 32 --network_alpha 16 \
  --learning_rate 2e-4 --shuffle_caption --output_dir output --output_name wan_i2v
"""

DATASET = """[general]
resolution = [960, 544]
caption_extension = ".txt"

[[datasets]]
video_directory = "data"
cache_directory = "cache/video"
target_frames = [1, 25, 45]
"""


def test_three_commands_become_one_profile(project: Path) -> None:
    write_files(project, {"train.sh": SCRIPT, "dataset.toml": DATASET})
    code, _, err = lorac("import", "train.sh", "-o", "profiles/wan.toml")
    assert code == 0, err
    prof = tomllib.loads((project / "profiles" / "wan.toml").read_text())
    assert prof["profile"] == {"description": "Imported from train.sh",
                               "family": "wan2.1-i2v-14b", "backend": "musubi"}
    flat = {k: v for s, t in prof.items() if s not in ("profile", "dataset", "run")
            for k, v in t.items()}
    assert flat["vae"] == "/models/wan/vae.safetensors"
    assert flat["clip"] == "/models/wan/clip.pth" and flat["t5"] == "/models/wan/t5.pth"
    assert flat["dit"] == "/models/wan/i2v.safetensors" and flat["learning_rate"] == 2e-4
    assert "task" not in flat and "i2v" not in flat  # the family says both
    assert prof["dataset"]["datasets"][0]["target_frames"] == [1, 25, 45]
    assert prof["run"] == {"num_cpu_threads_per_process": 1, "mixed_precision": "bf16"}
    # what has no place: the second batch_size, an sd-scripts option, an accelerate option
    assert "LRC090 batch_size is 4 for wan_cache_latents.py but 16" in err
    assert "LRC093 --shuffle_caption is not an option of wan_train_network.py" in err
    assert "LRC090 accelerate launch --dynamo_mode has no [run] equivalent" in err
    assert "LRC095 --i2v (wan_cache_latents.py) is implied by family wan2.1-i2v-14b" in err
    code, out, err = lorac("build", "profiles/wan.toml", "--output", "out")
    assert code == 0, out + err
    script = (project / "out" / "train.sh").read_text()
    assert "--i2v" in script and "--clip=/models/wan/clip.pth" in script


def test_variant_picks_the_family(project: Path) -> None:
    write_files(project, {"t.sh": "accelerate launch src/musubi_tuner/flux_2_train_network.py "
                                  "--model_version klein-4b --dit d.safetensors --sdpa\n"})
    code, _, err = lorac("import", "t.sh", "-o", "profiles/f.toml")
    assert code == 0, err
    prof = tomllib.loads((project / "profiles" / "f.toml").read_text())
    assert prof["profile"]["family"] == "flux2-klein-4b"


def test_a_training_config_toml_needs_the_family(project: Path) -> None:
    write_files(project, {"cfg.toml": '[model]\ndit = "d.safetensors"\ntask = "t2v-A14B"\n'
                                      '[training]\nsdpa = true\nnot_an_option = 1\n'})
    code, _, err = lorac("import", "cfg.toml", "--from", "musubi", "-o", "profiles/c.toml")
    assert code == 2 and "pass --family" in err
    code, _, err = lorac("import", "cfg.toml", "--from", "musubi", "--family",
                         "wan2.2-t2v-a14b", "-o", "profiles/c.toml")
    assert code == 0, err
    assert "'not_an_option' is not an option of wan_train_network.py" in err
    prof = tomllib.loads((project / "profiles" / "c.toml").read_text())
    assert prof["profile"]["family"] == "wan2.2-t2v-a14b"


def test_script_without_musubi_command_is_an_error(project: Path) -> None:
    write_files(project, {"t.sh": "python src/musubi_tuner/convert_lora.py --input a\n"})
    code, _, err = lorac("import", "t.sh", "--from", "musubi", "-o", "profiles/x.toml")
    assert code == 2 and "no musubi-tuner command found" in err
    assert not (project / "profiles" / "x.toml").exists()
