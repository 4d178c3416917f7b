"""The ai-toolkit emitter: the job YAML, its mapping table and its diagnostics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import tomlkit
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lorac.config.profile import Profile
from lorac.trainers.ai_toolkit.emitter import (
    AiToolkitBackend,
    check_mapping,
    dump_yaml,
    load_mapping,
)
from tests.conftest import CORPUS, REPO, lorac, resolved

EXAMPLE = CORPUS / "ai-toolkit-yaml" / "train_lora_flux_24gb.yaml"

PROFILE = """[profile]
family = "flux1-dev"

[model]
pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"

[network]
network_module = "networks.lora_flux"
network_dim = 16
network_alpha = 16

[optimizer]
optimizer_type = "AdamW8bit"
learning_rate = 1e-4
optimizer_args = ["weight_decay=0.01"]

[training]
max_train_steps = 2000
gradient_checkpointing = true
mixed_precision = "bf16"

[saving]
output_dir = "output"
output_name = "my_lora"
save_every_n_steps = 250

[dataset]
resolution = 1024
caption_extension = ".txt"

[[dataset.subsets]]
image_dir = "data/subject"
num_repeats = 1
"""


def _profile(tmp_path: Path, text: str) -> Profile:
    res = resolved(tmp_path, text)
    assert res.profile is not None
    return res.profile


def _process(art) -> dict:
    job = yaml.safe_load(art.files["job.yaml"])
    assert job["job"] == "extension"
    return job["config"]["process"][0]


def test_every_mapped_key_is_one_ai_toolkit_reads() -> None:
    assert check_mapping() == []
    broken = load_mapping()
    broken = {**broken, "options": {**broken["options"], "seed": {"to": "train.sede"}}}
    assert check_mapping(broken) == ["options.seed: train.sede is not a key ai-toolkit reads"]


def test_job_has_the_shape_of_ai_toolkit_examples(tmp_path: Path) -> None:
    art = AiToolkitBackend().emit(_profile(tmp_path, PROFILE), "yaml")
    proc = _process(art)
    assert proc["type"] == "sd_trainer" and proc["training_folder"] == "output"
    assert proc["network"] == {"type": "lora", "linear": 16, "linear_alpha": 16}
    assert proc["train"]["lr"] == 0.0001 and isinstance(proc["train"]["lr"], float)
    assert proc["train"]["optimizer"] == "adamw8bit"
    assert proc["train"]["optimizer_params"] == {"weight_decay": 0.01}
    assert proc["train"]["steps"] == 2000 and proc["train"]["dtype"] == "bf16"
    assert proc["model"] == {"arch": "flux", "name_or_path": "black-forest-labs/FLUX.1-dev"}
    assert proc["train"]["noise_scheduler"] == "flowmatch"
    assert proc["datasets"] == [{"resolution": [1024], "caption_ext": ".txt",
                                 "folder_path": "data/subject", "num_repeats": 1}]
    assert proc["save"]["save_every"] == 250
    assert art.diagnostics == []
    # the same top-level structure as ai-toolkit's own example
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["config"]["process"][0]
    assert set(proc) <= set(example) | {"trigger_word"}
    for section in ("network", "train", "model", "save", "sample"):
        if section in proc and isinstance(example.get(section), dict):
            common = set(proc[section]) & set(example[section])
            assert common, section
    assert "1e-" not in art.files["job.yaml"]


def test_options_without_equivalent_and_overrides_are_reported(tmp_path: Path) -> None:
    text = PROFILE.replace("network_alpha = 16", "network_alpha = 8").replace(
        '"black-forest-labs/FLUX.1-dev"', '"/m/flux1-dev.safetensors"').replace(
        "max_train_steps = 2000", "max_train_steps = 2000\nseed = 3")
    art = AiToolkitBackend().emit(_profile(tmp_path, text), "yaml")
    found = {(d.code, d.line) for d in art.diagnostics}
    assert ("LRC609", 10) in found  # alpha 8 != rank 16, at network_alpha
    assert ("LRC609", 5) in found  # single-file model path
    assert ("LRC608", 19) not in found  # seed maps to sample.seed and SEED
    assert all(d.severity.name == "WARNING" for d in art.diagnostics)
    assert _process(art)["sample"]["seed"] == 3 and art.env == {"SEED": "3"}
    assert "  SEED=3 \\\n" in art.files["train.sh"]  # through `exec env`, as [run.env]


def test_prompts_files_are_inlined(project: Path) -> None:
    (project / "p.txt").write_text("# comment\n\nohwx, a photo --w 512 --d 7\nsecond\n")
    (project / "p.json").write_text('[{"prompt": "a cat", "width": 768, "seed": 3, '
                                    '"negative_prompt": "blur"}]')
    (project / "p.toml").write_text('[[prompt]]\nprompt = "a dog"\nscale = 3.5\n')
    text = PROFILE.replace("max_train_steps = 2000", "max_train_steps = 2000\n"
                           'sample_prompts = "{}"')
    for name, prompts in [("p.txt", ["ohwx, a photo --w 512 --d 7", "second"]),
                          ("p.json", ["a cat --n blur --w 768 --d 3"]),
                          ("p.toml", ["a dog --l 3.5"])]:
        art = AiToolkitBackend().emit(_profile(project / name[2:], text.format(name)), "yaml")
        assert _process(art)["sample"]["prompts"] == prompts, name
        assert art.diagnostics == []
    art = AiToolkitBackend().emit(_profile(project / "x", text.format("gone.txt")), "yaml")
    assert [d.message for d in art.diagnostics] == [
        "sample_prompts: cannot read gone.txt to inline its prompts (FileNotFoundError); "
        "it is left out"]


def test_trigger_timesteps_and_nearest_settings(tmp_path: Path) -> None:
    text = PROFILE.replace('family = "flux1-dev"', 'family = "flux1-dev"\ntrigger = ["ohwx"]')
    text = text.replace("max_train_steps = 2000", "max_train_steps = 2000\n"
                        'timestep_sampling = "flux_shift"\ndiscrete_flow_shift = 3.0')
    art = AiToolkitBackend().emit(_profile(tmp_path, text), "yaml")
    proc = _process(art)
    assert proc["trigger_word"] == "ohwx" and proc["train"]["timestep_type"] == "flux_shift"
    [diag] = art.diagnostics
    assert diag.code == "LRC608" and "discrete_flow_shift" in diag.message
    assert diag.hint and "custom_flowmatch_sampler.py:134" in diag.hint


def test_values_outside_the_mapping_are_reported(tmp_path: Path) -> None:
    text = PROFILE.replace('"AdamW8bit"', '"SGDNesterov"').replace(
        "resolution = 1024", "resolution = [1024, 768]")
    art = AiToolkitBackend().emit(_profile(tmp_path, text), "yaml")
    messages = [d.message for d in art.diagnostics]
    assert any("optimizer_type: value 'SGDNesterov'" in m for m in messages)
    assert any("resolution" in m and "square" in m for m in messages)
    assert "optimizer" not in _process(art)["train"]


@settings(max_examples=60, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.floats(min_value=1e-30,
                                                                       max_value=1e-3))
def test_floats_load_back_as_the_same_floats(value: float) -> None:
    text = dump_yaml({"lr": value})
    assert "e" not in text.split(":", 1)[1].lower()
    loaded = yaml.safe_load(text)["lr"]
    assert isinstance(loaded, float) and loaded == value


def test_special_floats() -> None:
    loaded = yaml.safe_load(dump_yaml({"a": math.inf, "b": -math.inf, "c": math.nan}))
    assert loaded["a"] == math.inf and loaded["b"] == -math.inf and math.isnan(loaded["c"])


@pytest.mark.parametrize("name", ["fast", "final"])
def test_shipped_profiles_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                name: str) -> None:
    monkeypatch.chdir(REPO)
    code, _, err = lorac("build", name, "--backend", "ai-toolkit", "--output",
                         str(tmp_path / "o"))
    assert code == 0, err
    # [trainers.ai-toolkit] gives ai-toolkit a hub id; kohya keeps the single file
    assert "LRC609" not in err
    proc = yaml.safe_load((tmp_path / "o" / "job.yaml").read_text())["config"]["process"][0]
    assert proc["model"]["name_or_path"] == "black-forest-labs/FLUX.1-dev"
    code, _, err = lorac("build", name, "--backend", "kohya", "--output", str(tmp_path / "k"))
    assert code == 0, err
    assert "flux1-dev.safetensors" in (tmp_path / "k" / "train.sh").read_text() + "".join(
        p.read_text() for p in (tmp_path / "k").glob("*.toml"))


@pytest.mark.parametrize("spelling", ["AdamW8bit", "adamw8bit", "ADAMW8BIT"])
def test_optimizer_names_match_in_any_case(tmp_path: Path, spelling: str) -> None:
    """sd-scripts and ai-toolkit both lower-case the optimizer name: a musubi or kohya profile's
    ``adamw8bit`` is ai-toolkit's ``adamw8bit``, not an option left out."""
    text = PROFILE.replace('optimizer_type = "AdamW8bit"', f'optimizer_type = "{spelling}"')
    art = AiToolkitBackend().emit(_profile(tmp_path, text), "yaml")
    assert _process(art)["train"]["optimizer"] == "adamw8bit"
    assert not any("optimizer_type" in d.message for d in art.diagnostics)


def test_scheduler_names_stay_case_sensitive(tmp_path: Path) -> None:
    text = PROFILE.replace("[optimizer]", '[optimizer]\nlr_scheduler = "Cosine"')
    art = AiToolkitBackend().emit(_profile(tmp_path, text), "yaml")
    assert any("lr_scheduler: value 'Cosine'" in d.message for d in art.diagnostics)


def test_accumulation_keeps_optimizer_steps(tmp_path: Path) -> None:
    """sd-scripts' steps are optimizer steps of N batches: ai-toolkit's gradient_accumulation
    says the same; its gradient_accumulation_steps would make each step one batch and train
    N times fewer optimizer steps (jobs/process/BaseSDTrainProcess.py:2604-2611)."""
    text = PROFILE.replace("max_train_steps = 2000",
                           "max_train_steps = 2000\ngradient_accumulation_steps = 4")
    proc = _process(AiToolkitBackend().emit(_profile(tmp_path, text), "yaml"))
    assert proc["train"]["gradient_accumulation"] == 4 and proc["train"]["steps"] == 2000
    assert "gradient_accumulation_steps" not in proc["train"]


def test_legacy_accumulation_imports_in_optimizer_steps(project: Path) -> None:
    job = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    train = job["config"]["process"][0]["train"]
    train.pop("gradient_accumulation", None)
    train.update(gradient_accumulation_steps=4, steps=1001)
    job["config"]["process"][0]["save"]["save_every"] = 250
    (project / "job.yaml").write_text(yaml.safe_dump(job), encoding="utf-8")
    code, _, err = lorac("import", "job.yaml", "--output", "profiles/p.toml")
    assert code == 0, err
    assert "train.gradient_accumulation_steps 4 makes each ai-toolkit step one batch" in err
    assert "max_train_steps 1001 → 251" in err and "save_every_n_steps 250 → 63" in err
    options = tomlkit.parse((project / "profiles" / "p.toml").read_text(encoding="utf-8")
                           ).unwrap()
    flat = {k: v for table in options.values() if isinstance(table, dict) for k, v in
            table.items()}
    assert flat["max_train_steps"] == 251 and flat["gradient_accumulation_steps"] == 4
    assert flat["save_every_n_steps"] == 63
