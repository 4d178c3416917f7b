"""The kohya TOML, kohya_ss GUI JSON and ai-toolkit YAML importers, on the corpus and on
hostile input."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.config.profile import resolve
from lorac.config.validate import validate
from lorac.core.diagnostics import LoracError
from lorac.importers import Settings, detect, read, read_source, render
from tests.conftest import CORPUS

FIXTURES = Path(__file__).parent / "fixtures" / "import"


def _roundtrip(path: Path, tmp_path: Path, **settings):
    source = read_source(path)
    draft = read(source, detect(source), Settings(**settings))
    out = tmp_path / "profiles" / "imported.toml"
    out.parent.mkdir(exist_ok=True)
    out.write_text(render(draft, schema_header=True), encoding="utf-8")
    res = resolve(out, env={})
    assert res.profile is not None and not res.diagnostics
    return draft, res.profile, out.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", sorted((CORPUS / "kohya_ss-gui-presets").glob("*.json")),
                         ids=lambda p: p.stem)
def test_gui_presets(path: Path, tmp_path: Path) -> None:
    draft, profile, text = _roundtrip(path, tmp_path)
    assert text.startswith("#:schema ../lorac/schema/profile.schema.json\n")
    assert [e for e in validate(profile) if e.code == "LRC004"] == []  # every name is real
    opts = profile.options()
    assert "network_module" in opts and "optimizer_type" in opts
    assert "optimizer" not in opts and "LoRA_type" not in opts and "epoch" not in opts
    for item in draft.unmapped:  # nothing dropped silently
        assert f"{item.key.split('.', 1)[-1]} = " in text
    # every key of the preset is either imported, folded into another option, or reported
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    reported = " ".join(d.message for d in draft.diagnostics)
    kept = {u.key for u in draft.unmapped}
    for key in data:
        assert key in opts or key in kept or key in reported or key in {
            "LoRA_type", "LyCORIS_preset", "optimizer", "max_resolution", "xformers",
            "text_encoder_lr", "flux1_checkbox", "sdxl", "v2", "sdxl_no_half_vae",
            "flux1_cache_text_encoder_outputs", "flux1_cache_text_encoder_outputs_to_disk",
            "sdxl_cache_text_encoder_outputs", "num_processes", "num_machines",
            "num_cpu_threads_per_process", "lora_network_weights", "noise_offset_type",
            "additional_parameters",
        } or data[key] in ("", False, 0, None, "0"), key


def test_gui_flux_preset_values(tmp_path: Path) -> None:
    path = CORPUS / "kohya_ss-gui-presets" / "flux1D - adamw8bit fp8.json"
    draft, profile, text = _roundtrip(path, tmp_path)
    assert profile.family == "flux1-dev"
    assert profile.option("network_module") == "networks.lora_flux"
    assert profile.option("optimizer_type") == "AdamW8bit"
    assert profile.option("resolution") == "512,512"
    assert profile.option("sdpa") is True
    assert profile.option("cache_text_encoder_outputs_to_disk") is True
    assert profile.option("max_train_steps") == 1000
    assert profile.option("max_token_length") is None  # the GUI does not pass it for flux
    codes = [d.code for d in draft.diagnostics]
    assert codes.count("LRC094") >= 5  # "put the full path to … here"
    assert "not imported (LRC090 import-unmapped-key): sample_prompts = saruman" in text


@pytest.mark.parametrize("te, unet, flag", [
    (0.0, 1e-6, "network_train_unet_only"), (5e-5, 0.0, "network_train_text_encoder_only"),
    (5e-5, 1e-4, None)])
def test_gui_train_mode_comes_from_the_two_rates(tmp_path: Path, te: float, unet: float,
                                                  flag: str | None) -> None:
    # the GUI passes network_train_unet_only when text_encoder_lr is 0 (kohya_gui/lora_gui.py
    # resolve_network_train_flags): without it SDXL's cached TE outputs would assert
    import json

    source = tmp_path / "gui.json"
    source.write_text(json.dumps({"LoRA_type": "Standard", "sdxl": True, "unet_lr": unet,
                                  "text_encoder_lr": te, "learning_rate": 1e-4}),
                      encoding="utf-8")
    _draft, profile, _text = _roundtrip(source, tmp_path)
    for name in ("network_train_unet_only", "network_train_text_encoder_only"):
        assert profile.option(name) is (True if name == flag else None), name


def test_gui_strings_are_converted(tmp_path: Path) -> None:
    draft, profile, text = _roundtrip(FIXTURES / "gui_strings.json", tmp_path)
    assert profile.family == "sdxl"
    assert profile.option("learning_rate") == 1e-4
    assert profile.option("network_dim") == 32 and isinstance(profile.option("network_dim"), int)
    assert profile.option("network_alpha") == 16.0
    assert profile.option("train_batch_size") == 2
    assert profile.option("text_encoder_lr") == [5e-5]
    assert profile.option("max_train_epochs") == 4  # epoch, since max_train_steps is 0
    assert profile.option("network_args") == ["conv_dim=8", "conv_alpha=4"]
    assert profile.option("optimizer_args") == ["weight_decay=0.1"]
    assert profile.option("max_grad_norm") == 0.5  # from additional_parameters
    assert profile.get("run", "gpus") == 2
    messages = " ".join(d.message for d in draft.diagnostics)
    assert "seed: 'abc' is not an integer" in messages
    assert "--frobnicate is not an option" in messages
    assert "model_list" in messages and "model_list = custom" in text


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}',
                                  '{"LoRA_type": "Standard", ', "[1, 2]", "", "\ufeff{"])
def test_gui_bad_json(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LoracError) as info:
        read(read_source(path), "kohya-gui", Settings())
    assert "\n" not in info.value.message
    if "NaN" in text or "Infinity" in text:
        assert "is not a number JSON allows" in info.value.message


@pytest.mark.parametrize("name", ["dataset.toml", "dataset-multires.toml",
                                  "dataset-finetune.toml", "dataset-masked_loss.toml"])
def test_kohya_toml_with_corpus_datasets(name: str, tmp_path: Path) -> None:
    dataset = CORPUS / "kohya_ss-dataset-toml" / name
    _draft, profile, _ = _roundtrip(FIXTURES / "kohya_config.toml", tmp_path,
                                   dataset_config=dataset)
    assert [e for e in validate(profile) if e.code == "LRC004"] == []
    ds = profile.get("dataset")
    if name == "dataset-multires.toml":
        assert [d["resolution"] for d in ds["datasets"]] == [[1024, 1024], [768, 768],
                                                             [512, 512]]
        assert ds["flip_aug"] is True and ds["keep_tokens_separator"] == "|||"
    else:
        assert ds["resolution"] == 512 and ds["batch_size"] == 4
        assert ds["subsets"][0]["num_repeats"] == 10


def test_kohya_toml_options(tmp_path: Path) -> None:
    draft, profile, text = _roundtrip(FIXTURES / "kohya_config.toml", tmp_path)
    assert profile.family == "flux1-dev"
    assert profile.option("network_alpha") == 16.0  # "16" converted
    assert profile.option("network_args") == ["train_blocks=single"]
    assert profile.get("dataset", "subsets", 0, "class_tokens") == "darius kawasaki person"
    [unknown] = [d for d in draft.diagnostics if d.code == "LRC093"]
    assert unknown.hint == "did you mean 'network_dim'?" and unknown.line == 21
    assert "not imported (LRC093 import-unknown-option): network_dimm = 8" in text


def test_kohya_toml_invalid(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[a]\nb = \n", encoding="utf-8")
    with pytest.raises(LoracError, match=r"c.toml:2:\d+: invalid TOML"):
        read(read_source(path), "kohya-toml", Settings())


@pytest.mark.parametrize("path", sorted((CORPUS / "ai-toolkit-yaml").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_ai_toolkit_corpus(path: Path, tmp_path: Path) -> None:
    _draft, profile, text = _roundtrip(path, tmp_path)
    assert profile.backend == "ai-toolkit"  # `lorac build` then compiles the job back
    assert profile.option("network_dim") == 16 and profile.option("network_alpha") == 16.0
    assert profile.option("learning_rate") == 1e-4
    assert profile.option("max_train_steps") == 2000
    assert profile.option("optimizer_type") == "AdamW8bit"
    assert profile.get("dataset", "batch_size") == 1
    assert "ema_config" in text  # kept as a comment
    if "sd35" in path.name:
        assert profile.family == "sd3"
        assert profile.get("dataset", "resolution") == 1024
    elif "schnell" in path.name:
        assert profile.family == "flux1-schnell"
    else:
        assert [d["resolution"] for d in profile.get("dataset", "datasets")] == [512, 768, 1024]
        assert profile.get("dataset", "datasets", 0, "subsets", 0, "caption_extension") == ".txt"


@pytest.mark.parametrize("text, match", [
    ("config: !!python/object/apply:os.system ['echo hi']\n", "invalid YAML"),
    ("a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
     "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", "more than"),
    ("config: [unclosed\n", "invalid YAML"),
    ("- 1\n", "not an ai-toolkit job"),
    ("config:\n  process: 3\n", "config.process"),
])
def test_ai_toolkit_hostile(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LoracError, match=match) as info:
        read(read_source(path), "ai-toolkit", Settings())
    assert "\n" not in info.value.message


def test_ai_toolkit_says_dataset_config_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("config:\n  name: x\n  process:\n    - type: sd_trainer\n"
                    "      network: {type: lora}\n"
                    "      datasets:\n        - folder_path: /data\n", encoding="utf-8")
    dataset = tmp_path / "dataset.toml"
    dataset.write_text("[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'other'\n",
                       encoding="utf-8")
    draft = read(read_source(path), "ai-toolkit", Settings(dataset_config=dataset))
    assert draft.dataset["subsets"] == [{"image_dir": "/data"}]
    assert any(d.code == "LRC095" and "--dataset-config" in d.message
               for d in draft.diagnostics)


def test_a_credential_holding_dollar_brace_is_still_withheld(tmp_path: Path) -> None:
    """A literal ``${`` in a kohya TOML value is text, not a lorac reference (hypothesis found
    ``huggingface_token = "${"`` copied into the profile)."""
    from lorac.importers import Source

    text = 'huggingface_token = "${"\n'
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    draft = read(Source(path, "config.toml", text), "kohya-toml", Settings(family="flux1-dev"))
    assert draft.options["huggingface_token"].text == "${env:HF_TOKEN}"
