"""One profile, several trainers: ``[trainers.<trainer>]`` values, how each trainer gets them,
and what lint, show and diff make of them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from lorac.config.trainer_values import for_trainer
from tests.conftest import lorac, resolved, write_files

PROFILE = """[profile]
family = "flux1-dev"

[model]
pretrained_model_name_or_path = "/models/flux1-dev.safetensors"

[network]
network_module = "networks.lora_flux"
network_dim = 16
network_alpha = 16

[optimizer]
learning_rate = 1e-4

[trainers.ai-toolkit]
pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"
learning_rate = 2e-4

[trainers.ai-toolkit.model]
quantize_te = true
"""


def test_a_trainer_gets_its_own_values_in_place(tmp_path: Path) -> None:
    profile = resolved(tmp_path, PROFILE).profile
    assert profile is not None
    seen = for_trainer(profile, "ai-toolkit")
    value, kp = seen.options()["pretrained_model_name_or_path"]
    assert value == "black-forest-labs/FLUX.1-dev"
    assert kp == ("model", "pretrained_model_name_or_path")
    assert seen.where(kp).line == 16  # the [trainers.ai-toolkit] line, not the shared one
    assert seen.option("learning_rate") == 2e-4
    # the shared profile and another trainer's view are untouched
    assert profile.option("learning_rate") == 1e-4
    assert for_trainer(profile, "kohya") is profile
    assert "trainers" not in {s for s, _ in profile.option_sections()}


def test_a_value_only_one_trainer_has_joins_a_section_of_its_name(tmp_path: Path) -> None:
    text = PROFILE + '\n[trainers.kohya]\nt5xxl = "/models/t5xxl.safetensors"\n'
    profile = resolved(tmp_path, text).profile
    assert profile is not None
    seen = for_trainer(profile, "kohya")
    assert seen.options()["t5xxl"] == ("/models/t5xxl.safetensors", ("kohya", "t5xxl"))
    assert seen.where(("kohya", "t5xxl")).line == 23


def test_each_backend_builds_with_its_own_values(project: Path) -> None:
    write_files(project, {"profiles/p.toml": PROFILE})
    code, _, err = lorac("build", "p", "--backend", "ai-toolkit", "--output", "a")
    assert code == 0, err
    proc = yaml.safe_load((project / "a" / "job.yaml").read_text())["config"]["process"][0]
    assert proc["model"]["name_or_path"] == "black-forest-labs/FLUX.1-dev"
    assert proc["model"]["quantize_te"] is True and proc["train"]["lr"] == 0.0002
    assert "LRC609" not in err  # the ai-toolkit value is a hub id, not a single file
    code, _, err = lorac("build", "p", "--backend", "kohya", "--format", "toml", "--output", "k")
    assert code == 0, err
    config = (project / "k" / "config.toml").read_text()
    assert "/models/flux1-dev.safetensors" in config and "FLUX.1-dev\"" not in config
    assert "0.0001" in config or "1e-4" in config.lower() or "1e-04" in config.lower()
    assert "trainers" not in config and "quantize_te" not in config


def test_unknown_and_twice_given_values_stop_the_build(project: Path) -> None:
    text = PROFILE.replace("quantize_te = true", "quantise_te = true\n"
                           "\n[trainers.ai-toolkit.train]\nlr = 0.0003\n")
    write_files(project, {"profiles/p.toml": text})
    code, _, err = lorac("build", "p", "--backend", "ai-toolkit", "--output", "a")
    assert code == 1
    assert "LRC680 model.quantise_te is not a key ai-toolkit reads" in err
    assert "did you mean quantize_te" in err
    assert "LRC684 train.lr is also written from learning_rate" in err
    assert not (project / "a").exists()


def test_lint_checks_each_trainer_table(project: Path) -> None:
    text = PROFILE + '\n[trainers.ai-toolkit.sample]\nprompts = ["a photo"]\n'
    text = text.replace('learning_rate = 2e-4', 'learning_rate = 1e-4\nclip_l = "/m/c.safetensors"')
    write_files(project, {"profiles/p.toml": text})
    code, out, _ = lorac("lint", "profiles")
    assert code == 1
    assert "p.toml:17:1: LRC681 learning_rate is the same as the shared value" in out
    assert "p.toml:18:1: LRC680 clip_l has no ai-toolkit equivalent" in out
    assert "prompts" not in out  # sample.prompts is a key ai-toolkit reads


def test_show_and_diff_display_each_trainers_values(project: Path) -> None:
    write_files(project, {"profiles/p.toml": PROFILE})
    code, out, _ = lorac("show", "p")
    assert code == 0 and "[trainers.ai-toolkit]" in out and "[trainers.ai-toolkit.model]" in out
    code, out, _ = lorac("show", "p", "--trainer", "ai-toolkit")
    assert code == 0 and "(as ai-toolkit gets it)" in out
    assert 'pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"  # ' \
           'profiles/p.toml:16:1' in out
    code, out, _ = lorac("diff", "p@kohya", "p@ai-toolkit", "--format", "json")
    assert code == 0
    rows = {row["key"]: row for row in json.loads(out)}
    assert set(rows) == {"model.pretrained_model_name_or_path", "optimizer.learning_rate"}
    assert rows["optimizer.learning_rate"]["p@ai-toolkit"] == 2e-4
    assert rows["optimizer.learning_rate"]["where"]["p@ai-toolkit"].startswith("profiles/p.toml:17")
