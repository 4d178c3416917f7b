"""Which model an imported configuration trains: the family inferred from a plain SD 1.x TOML,
a TOML that is training options and dataset config in one, and a model, script and module
that disagree (``tests/fixtures/shapes/``, README.md there)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lorac.cli import run
from lorac.importers import Settings, read, read_source

SHAPES = Path(__file__).parent / "fixtures" / "shapes"


def _errors(draft) -> list[str]:
    return [d.message for d in draft.diagnostics if d.severity.name == "ERROR"]


@pytest.mark.parametrize("name", ["sd15_plain.toml", "sd15_dataset_and_training.toml"])
def test_sd15_toml_gets_a_family_and_builds(tmp_path: Path, monkeypatch, name: str) -> None:
    shutil.copy(SHAPES / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    assert run(["import", name, "-o", "profiles/p.toml"]) == 0
    text = (tmp_path / "profiles" / "p.toml").read_text(encoding="utf-8")
    assert 'family = "sd15"' in text
    assert run(["build", "p", "--backend", "kohya", "-o", "out"]) == 0
    assert (tmp_path / "out" / "config.toml").is_file()


def test_sd15_family_from_resolution_when_the_model_name_says_nothing() -> None:
    from lorac.importers import Draft, guess_family

    draft = Draft(kind="kohya-toml", source="x.toml")
    options = {"pretrained_model_name_or_path": "/models/myMix_v3.safetensors",
               "network_module": "networks.lora", "resolution": "512,512"}
    assert guess_family(options, draft) == "sd15"
    options["resolution"] = "1024,1024"
    assert guess_family(options, Draft(kind="kohya-toml", source="x.toml")) is None


def test_mixed_toml_imports_options_and_dataset_and_says_what_sd_scripts_does() -> None:
    draft = read(read_source(SHAPES / "sd15_dataset_and_training.toml"), "kohya-toml",
                 Settings())
    assert draft.options["network_dim"].value == 32
    assert draft.options["clip_skip"].value == 2
    assert draft.dataset is not None
    assert draft.dataset["caption_extension"] == ".txt" and draft.dataset["resolution"] == 512
    assert draft.dataset["subsets"][0]["class_tokens"] == "ohwx woman"
    note = next(d for d in draft.diagnostics if "mixes training options" in d.message)
    assert note.line == 28  # the [[datasets]] line
    assert "ignores [[datasets]] (library/args.py:1181-1194)" in note.message
    assert "library/config_util.py:360-365" in note.message


def test_dataset_only_toml_is_still_refused_with_the_right_advice(tmp_path: Path) -> None:
    from lorac.core.diagnostics import LoracError

    path = tmp_path / "dataset.toml"
    path.write_text('[general]\nresolution = 512\n[[datasets]]\n[[datasets.subsets]]\n'
                    'image_dir = "img"\n', encoding="utf-8")
    with pytest.raises(LoracError, match="pass this one with --dataset-config"):
        read(read_source(path), "kohya-toml", Settings())


def test_flux2_through_train_network_is_an_error_naming_model_script_module() -> None:
    draft = read(read_source(SHAPES / "train_flux2_train_network.sh"), "shell", Settings())
    [error] = _errors(draft)
    assert "'black-forest-labs/FLUX.2-dev' is a FLUX.2 model" in error
    assert "train_network.py trains sd15" in error and "networks.lora" in error


def test_flux2_model_in_a_toml_sets_no_family_silently(tmp_path: Path) -> None:
    path = tmp_path / "flux2.toml"
    path.write_text('pretrained_model_name_or_path = "black-forest-labs/FLUX.2-dev"\n'
                    'network_module = "networks.lora"\nresolution = "512,512"\n',
                    encoding="utf-8")
    draft = read(read_source(path), "kohya-toml", Settings())
    assert draft.family is None
    [error] = _errors(draft)
    assert "FLUX.2 model" in error and "networks.lora" in error and "train_network.py" in error


def test_ai_toolkit_is_flux_with_a_flux2_model_is_an_error() -> None:
    draft = read(read_source(SHAPES / "flux2_is_flux.yaml"), "ai-toolkit", Settings())
    [error] = _errors(draft)
    assert "is_flux: true" in error and "'black-forest-labs/FLUX.2-dev'" in error
    assert "arch: flux2" in error and "toolkit/config_modules.py" in error


def test_config_file_values_outside_choices_are_judged_by_what_sd_scripts_does(
        tmp_path: Path) -> None:
    source = SHAPES / "sdxl_config_file_noop_choices.toml"
    draft = read(read_source(source), "kohya-toml", Settings())
    assert not [d for d in draft.diagnostics if d.code == "LRC091"]
    notes = {d.line: d for d in draft.diagnostics if "changes nothing" in d.message}
    assert set(notes) == {21, 22} and all(d.severity.name == "INFO" for d in notes.values())
    assert "library/accelerator_setup.py:116-118" in notes[21].message
    assert "75 + 2" in notes[22].message
    assert "dynamo_backend" not in draft.options and "max_token_length" not in draft.options
    assert {u.key for u in draft.unmapped} == {"dynamo_backend", "max_token_length"}
    # with torch_compile on, 'no' does something: it switches compiling off
    compiled = tmp_path / "c.toml"
    compiled.write_text(source.read_text(encoding="utf-8") + "torch_compile = true\n",
                        encoding="utf-8")
    draft = read(read_source(compiled), "kohya-toml", Settings())
    [bad] = [d for d in draft.diagnostics if d.code == "LRC091"]
    assert "takes it unchecked" in bad.message and "compiles nothing" in bad.message
    # the same file given to a script as --config_file is read the same way
    script = tmp_path / "train.sh"
    script.write_text(f"accelerate launch sdxl_train_network.py --config_file {source}\n",
                      encoding="utf-8")
    draft = read(read_source(script), "shell", Settings())
    assert draft.family == "sdxl"
    assert not [d for d in draft.diagnostics if d.code == "LRC091"]


def test_ai_toolkit_job_is_judged_as_ai_toolkit(tmp_path: Path, monkeypatch) -> None:
    """A hub id and no separate text-encoder files are right for ai-toolkit: the imported
    profile says which trainer it runs on, so the sd-scripts file rules stay silent."""

    source = Path(__file__).parent / "fixtures" / "ai-toolkit-examples" / \
        "train_lora_flux_24gb.yaml"
    monkeypatch.chdir(tmp_path)
    assert run(["import", str(source), "-o", "profiles/p.toml"]) == 0
    text = (tmp_path / "profiles" / "p.toml").read_text(encoding="utf-8")
    assert 'backend = "ai-toolkit"' in text
    code = run(["lint", "profiles", "--no-dataset", "--select", "LRC629,LRC645"])
    assert code == 0
