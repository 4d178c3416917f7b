"""A kohya_ss GUI value reaches sd-scripts through the ``--config_file`` the GUI writes
(bmaltais/kohya_ss ``kohya_gui/lora_gui.py``, ``train_model``: ``config_lora-*.toml``), where
argparse's choices are not checked; the same value on a command line is checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorac.importers import Settings, read, read_source


def _gui(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "gui.json"
    data = {"LoRA_type": "Standard", "network_dim": 8, "network_alpha": 8,
            "pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5", **values}
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@pytest.mark.parametrize("value", [75, "75"])
def test_gui_max_token_length_75_is_a_note_not_a_bad_value(tmp_path: Path, value) -> None:
    draft = read(read_source(_gui(tmp_path, max_token_length=value)), "kohya-gui", Settings())
    assert not [d for d in draft.diagnostics if d.code == "LRC091"]
    [note] = [d for d in draft.diagnostics if "changes nothing" in d.message]
    assert note.severity.name == "INFO" and note.line == 6
    assert "the GUI passes it in the --config_file" in note.message and "75 + 2" in note.message
    assert "max_token_length" not in draft.options


def test_gui_value_outside_choices_that_matters_is_still_reported(tmp_path: Path) -> None:
    draft = read(read_source(_gui(tmp_path, max_token_length=100)), "kohya-gui", Settings())
    [bad] = [d for d in draft.diagnostics if d.code == "LRC091"]
    assert "takes it unchecked" in bad.message and "max_token_length" not in draft.options


def test_gui_value_inside_choices_is_set(tmp_path: Path) -> None:
    draft = read(read_source(_gui(tmp_path, max_token_length=225)), "kohya-gui", Settings())
    assert draft.options["max_token_length"].value == 225
    assert not [d for d in draft.diagnostics if d.code == "LRC091"]


def test_command_line_75_is_refused_by_argparse(tmp_path: Path) -> None:
    script = tmp_path / "train.sh"
    script.write_text("accelerate launch train_network.py --network_module=networks.lora "
                      "--pretrained_model_name_or_path=runwayml/stable-diffusion-v1-5 "
                      "--max_token_length=75\n", encoding="utf-8")
    draft = read(read_source(script), "shell", Settings())
    [bad] = [d for d in draft.diagnostics if d.code == "LRC091"]
    assert bad.severity.name == "ERROR" and "75 is not one of" in bad.message
