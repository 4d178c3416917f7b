"""The musubi emitter: the three steps, one value for every step, musubi's dataset format."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib

from lorac.trainers.musubi import knowledge
from lorac.trainers.musubi.emitter import MusubiBackend
from tests.conftest import REPO, lorac, resolved, write_files

EXAMPLES = sorted((REPO / "profiles" / "examples" / "musubi").glob("*.toml"))

WAN = """[profile]
family = "wan2.1-t2v-1.3b"
backend = "musubi"

[model]
dit = "models/wan.safetensors"
vae = "models/vae.safetensors"
t5 = "models/t5.pth"

[network]
network_dim = 16
network_alpha = 16

[training]
sdpa = true
learning_rate = 1

[dataset]
resolution = [832, 480]
caption_extension = ".txt"

[[dataset.datasets]]
video_directory = "data/clips"
target_frames = [1, 25, 45]
source_fps = 30
"""


def emit(root: Path, text: str):
    res = resolved(root, text)
    assert res.profile is not None
    return MusubiBackend().emit(res.profile, "toml")


# --------------------------------------------------------------------------- knowledge


def test_every_family_names_what_the_generated_knowledge_has() -> None:
    archs = knowledge.architectures()
    modules = knowledge.network_modules()
    assert len(knowledge.families()) >= 14
    for name, fam in knowledge.families().items():
        assert fam.architecture in archs, name
        arch = archs[fam.architecture]
        assert arch["network_module"] in modules, name
        plan = knowledge.plan_for(name)
        assert plan is not None
        for option, value in fam.variant.items():
            assert value in arch["variants"][option]["choices"], (name, option, value)
        for option in fam.latents_required:
            assert option in plan.inventories["latents"].options, (name, option)
        if fam.i2v:
            assert "i2v" in plan.inventories["latents"].options, name
        if fam.experts:
            assert "dit_high_noise" in plan.inventories["train"].options, name
        assert fam.media in ("image", "video")


def test_wan_tasks_come_from_the_parser() -> None:
    wan = knowledge.architectures()["wan"]
    assert {"t2v-1.3B", "t2v-14B", "i2v-14B", "t2v-A14B", "i2v-A14B"} <= set(
        wan["variants"]["task"]["choices"])
    assert wan["steps"]["text_encoder"]["required"] == ["dataset_config", "t5"]


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_builds_three_steps(project: Path, path: Path) -> None:
    shutil.copytree(REPO / "profiles", project / "profiles")
    shutil.copytree(REPO / "examples", project / "examples")
    rel = str(Path("profiles/examples/musubi") / path.name)
    code, out, err = lorac("lint", rel, "--no-dataset")
    assert code == 0 and out == "", out + err
    code, out, err = lorac("build", rel, "--backend", "musubi",
                           "--output", "out")
    assert code == 0, out + err
    files = {p.name for p in (project / "out").iterdir()}
    assert files == {"config.toml", "dataset.toml", "train.sh", "lorac-build.json"}
    dataset = tomllib.loads((project / "out" / "dataset.toml").read_text())
    assert set(dataset) <= {"general", "datasets"} and dataset["datasets"]
    assert all("subsets" not in d for d in dataset["datasets"])
    script = (project / "out" / "train.sh").read_text()
    plan = knowledge.plan_for(tomllib.loads(path.read_text())["profile"]["family"])
    assert plan is not None
    positions = [script.index(f"/{plan.scripts[s]}") for s in knowledge.STEPS]
    assert positions == sorted(positions)
    assert "exec accelerate" in script
    assert subprocess.run(["bash", "-n", str(project / "out" / "train.sh")]).returncode == 0


# --------------------------------------------------------------------------- one value


def test_options_reach_every_step_that_reads_them(project: Path) -> None:
    art = emit(project, WAN)
    steps = dict(art.steps)
    assert "--vae=models/vae.safetensors" in steps["latents"]
    assert "--t5=models/t5.pth" in steps["text_encoder"]
    assert not any(a.startswith("--vae") for a in steps["text_encoder"])
    config = tomllib.loads(art.files["config.toml"])
    flat = {k: v for table in config.values() for k, v in table.items()}
    assert flat["vae"] == "models/vae.safetensors" and flat["t5"] == "models/t5.pth"
    assert flat["task"] == "t2v-1.3B"  # the family's variant
    assert flat["network_module"] == "networks.lora_wan"  # the architecture's module
    assert flat["learning_rate"] == 1.0 and isinstance(flat["learning_rate"], float)


def test_family_variant_goes_to_all_three_steps(project: Path) -> None:
    text = WAN.replace("wan2.1-t2v-1.3b", "flux2-klein-4b").replace("t5 =", "text_encoder =")
    text = text.replace("video_directory", "image_directory").replace(
        "target_frames = [1, 25, 45]\nsource_fps = 30\n", "")
    art = emit(project, text)
    steps = dict(art.steps)
    assert "--model_version=klein-4b" in steps["latents"]
    assert "--model_version=klein-4b" in steps["text_encoder"]
    assert art.step_options["train"]["model_version"] == "klein-4b"


def test_profile_value_wins_over_the_family_default_everywhere(project: Path) -> None:
    text = WAN.replace("wan2.1-t2v-1.3b", "qwen-image").replace("t5 =", "text_encoder =")
    text = text.replace("[training]", "[training]\nmodel_version = \"edit-2511\"")
    text = text.replace("video_directory", "image_directory").replace(
        "target_frames = [1, 25, 45]\nsource_fps = 30\n", "")
    art = emit(project, text)
    for step in knowledge.STEPS:
        assert art.step_options[step]["model_version"] == "edit-2511", step


def test_i2v_family_caches_latents_for_i2v(project: Path) -> None:
    text = WAN.replace("wan2.1-t2v-1.3b", "wan2.1-i2v-14b").replace(
        "t5 =", 'clip = "models/clip.pth"\nt5 =')
    steps = dict(emit(project, text).steps)
    assert "--i2v" in steps["latents"] and "--clip=models/clip.pth" in steps["latents"]
    assert "--i2v" not in steps["train"]


def test_required_train_option_goes_on_the_command_line(project: Path) -> None:
    text = WAN.replace("wan2.1-t2v-1.3b", "kandinsky5").replace(
        't5 = "models/t5.pth"', 'text_encoder_qwen = "q"\ntext_encoder_clip = "c"')
    art = emit(project, text)
    assert "--task=k5-lite-t2v-5s-sd" in dict(art.steps)["train"]
    assert "task" not in art.files["config.toml"]


def test_dataset_keys_get_musubi_types(project: Path) -> None:
    dataset = tomllib.loads(emit(project, WAN).files["dataset.toml"])
    assert dataset["general"] == {"resolution": [832, 480], "caption_extension": ".txt"}
    clip = dataset["datasets"][0]
    assert clip["source_fps"] == 30.0 and isinstance(clip["source_fps"], float)
    assert clip["target_frames"] == [1, 25, 45]


def test_unknown_option_is_an_error_and_nothing_is_written(project: Path) -> None:
    write_files(project, {"profiles/p.toml": WAN.replace("sdpa = true",
                                                         "sdpa = true\nclip_skip = 2")})
    code, _, err = lorac("build", "p", "--backend", "musubi", "--output", "out")
    assert code == 1
    assert "LRC650 clip_skip is not an option of wan_cache_latents.py" in err
    assert not (project / "out").exists()


def test_kohya_family_is_refused_with_the_families_musubi_trains(project: Path) -> None:
    write_files(project, {"profiles/p.toml": WAN.replace("wan2.1-t2v-1.3b", "sdxl")})
    code, _, err = lorac("build", "p", "--backend", "musubi", "--output", "out")
    assert code == 2
    assert "the musubi backend trains the families" in err and "wan2.1-t2v-1.3b" in err
    assert "Traceback" not in err


def test_run_env_reaches_every_step_through_env(project: Path) -> None:
    text = WAN + '\n[run.env]\nPYTORCH_CUDA_ALLOC_CONF = "expandable_segments:True"\n' \
                 'HF_TOKEN = "hf_abcdefghijklmnopqrstuvwxyz"\n'
    script = emit(project, text).files["train.sh"]
    assert script.count("env \\\n  PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True") == 3
    assert "hf_abcdefghijklmnopqrstuvwxyz" not in script
    assert ': "${HF_TOKEN:?set HF_TOKEN in the environment}"' in script
    assert "export" not in script


def test_musubi_family_built_for_kohya_says_sd_scripts_does_not_train_it(project: Path) -> None:
    write_files(project, {"profiles/p.toml": WAN})
    code, _, err = lorac("build", "p", "--backend", "kohya", "--output", "out")
    assert code == 2
    assert "sd-scripts does not train family 'wan2.1-t2v-1.3b'" in err
    assert not (project / "out").exists()


def test_backends_list_shows_the_musubi_pin(project: Path) -> None:
    code, out, _ = lorac("backends", "list")
    assert code == 0
    assert "musubi" in out and "kohya-ss/musubi-tuner @ 30c658c4f4" in out


def test_convert_for_comfyui_is_a_fourth_step(project: Path) -> None:
    text = WAN.replace("[dataset]", '[saving]\noutput_dir = "out"\noutput_name = "subj"\n\n'
                                    '[run]\nconvert_for_comfyui = true\n\n[dataset]')
    art = emit(project, text)
    assert [s for s, _ in art.steps] == ["latents", "text_encoder", "train", "convert"]
    convert = dict(art.steps)["convert"]
    assert convert[1] == "{musubi}/src/musubi_tuner/convert_lora.py"
    assert convert[2:] == ["--input", "out/subj.safetensors", "--output",
                           "out/subj_comfyui.safetensors", "--target", "other"]
    script = art.files["train.sh"]
    assert "# convert for ComfyUI\nexec python" in script
    hv15 = text.replace("wan2.1-t2v-1.3b", "hunyuan-video-1.5").replace(
        't5 = "models/t5.pth"', 'text_encoder = "q"\nbyt5 = "b"')
    convert = dict(emit(project, hv15).steps)["convert"]
    assert convert[1].endswith("networks/convert_hunyuan_video_1_5_lora_to_comfy.py")
    assert convert[2:] == ["out/subj.safetensors", "out/subj_comfyui.safetensors"]


def test_convert_without_output_name_is_an_error(project: Path) -> None:
    write_files(project, {"profiles/p.toml": WAN.replace(
        "[dataset]", "[run]\nconvert_for_comfyui = true\n\n[dataset]")})
    code, _, err = lorac("build", "p", "--backend", "musubi", "--output", "out")
    assert code == 1 and "LRC668 convert_for_comfyui needs output_dir and output_name" in err
