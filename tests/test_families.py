"""The Chroma, Lumina, HunyuanImage and Anima families: example profiles and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lorac.config.inventory import load_families
from tests.conftest import REPO, lorac

EXAMPLES = sorted((REPO / "profiles" / "examples" / "kohya").glob("*.toml"))


@pytest.fixture
def shipped(project: Path) -> Path:
    for folder in ("profiles", "configs", "examples"):
        shutil.copytree(REPO / folder, project / folder)
    return project


def test_there_is_an_example_per_new_family() -> None:
    families = {p.stem for p in EXAMPLES}
    assert families == {"chroma", "lumina", "hunyuan-image", "anima"}
    assert families <= set(load_families())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_lints_clean_and_builds(shipped: Path, path: Path) -> None:
    rel = f"profiles/examples/kohya/{path.name}"
    code, out, err = lorac("lint", rel)
    assert (code, out) == (0, ""), out + err
    code, out, err = lorac("build", rel, "-o", "build/out")
    assert code == 0, out + err
    config = (shipped / "build" / "out" / "config.toml").read_text(encoding="utf-8")
    script = load_families()[path.stem].script
    assert f"for {script}" in config.splitlines()[0]
    assert (shipped / "build" / "out" / "dataset.toml").is_file()
    assert f"/{script}" in (shipped / "build" / "out" / "train.sh").read_text(encoding="utf-8")


def _variant(shipped: Path, old: str, new: str) -> str:
    text = (shipped / "profiles" / "examples" / "kohya" / "lumina.toml").read_text(encoding="utf-8")
    assert old in text
    (shipped / "profiles" / "bad.toml").write_text(text.replace(old, new), encoding="utf-8")
    code, out, err = lorac("lint", "profiles/bad.toml", "--no-dataset")
    assert code == 1 and "Traceback" not in err, out + err
    return out


def test_unknown_family_has_position_and_did_you_mean(shipped: Path) -> None:
    out = _variant(shipped, 'family = "lumina"', 'family = "lumnia"')
    assert "profiles/bad.toml:6:1: LRC005 profile.family is 'lumnia'" in out
    assert "hint: did you mean 'lumina'?" in out
    assert "LRC603" not in out  # lumina's own timestep choice stays valid without a family


def test_module_the_script_does_not_load(shipped: Path) -> None:
    out = _variant(shipped, 'network_module = "networks.lora_lumina"',
                   'network_module = "networks.lora_flux"')
    assert ("profiles/bad.toml:19:1: LRC105 networks.lora_flux is the network module of "
            "chroma, flux1-dev, flux1-schnell, not lumina (which uses networks.lora_lumina, "
            "networks/lora_lumina.py:305)") in out
    assert 'hint: network_module = "networks.lora_lumina"' in out


def test_option_of_another_family_names_the_script(shipped: Path) -> None:
    out = _variant(shipped, 'gemma2 = "${model_dir}/gemma_2_2b_fp16.safetensors"',
                   'gemma = "${model_dir}/gemma_2_2b_fp16.safetensors"')
    assert "LRC004 unknown key 'gemma' in model" in out or "LRC601" in out, out
    assert "LRC629 family lumina needs gemma2" in out


@pytest.mark.parametrize(("name", "text", "family"), [
    ("chroma.sh", "accelerate launch flux_train_network.py --model_type chroma "
     "--pretrained_model_name_or_path /m/c.safetensors --t5xxl /m/t5.safetensors "
     "--ae /m/ae.safetensors --apply_t5_attn_mask --network_module networks.lora_flux\n",
     "chroma"),
    ("flux.sh", "accelerate launch flux_train_network.py --pretrained_model_name_or_path "
     "/m/flux1-dev.safetensors --network_module networks.lora_flux\n", "flux1-dev"),
    ("lumina.sh", "accelerate launch lumina_train_network.py --gemma2 /m/g.safetensors "
     "--network_module networks.lora_lumina --timestep_sampling nextdit_shift\n", "lumina"),
    ("hunyuan.sh", "python hunyuan_image_train_network.py --byt5 /m/b.safetensors "
     "--network_module networks.lora_hunyuan_image\n", "hunyuan-image"),
    ("anima.toml", 'qwen3 = "/m/q.safetensors"\nnetwork_module = "networks.lora_anima"\n',
     "anima"),
    ("lumina.toml", 'gemma2 = "/m/g.safetensors"\nnetwork_dim = 8\n', "lumina"),
])
def test_import_finds_the_family(project: Path, name: str, text: str, family: str) -> None:
    (project / name).write_text(text, encoding="utf-8")
    code, out, err = lorac("import", name, "-o", "profiles/imported.toml")
    assert code == 0, out + err
    written = (project / "profiles" / "imported.toml").read_text(encoding="utf-8")
    assert f'family = "{family}"' in written
