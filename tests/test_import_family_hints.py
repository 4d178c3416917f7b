"""A kohya TOML that names no model kind still says its family in other ways: ``sdxl = true``
(the kohya_ss GUI's key, which some users keep in their TOMLs) or its own file name
(``sdxl_inpainting_test_lora.toml``); neither overrides a model name that says a kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.cli import run
from lorac.importers import Settings, read, read_source

OPTIONS = 'network_module = "networks.lora"\nnetwork_dim = 4\nresolution = "1024,1024"\n'


def _family(path: Path, text: str) -> str | None:
    path.write_text(text, encoding="utf-8")
    return read(read_source(path), "kohya-toml", Settings()).family


def test_sdxl_true_says_sdxl(tmp_path: Path) -> None:
    assert _family(tmp_path / "config.toml", OPTIONS + "sdxl = true\n") == "sdxl"
    assert _family(tmp_path / "config.toml", OPTIONS + "sdxl = false\n") is None


@pytest.mark.parametrize(("name", "family"), [
    ("sdxl_inpainting_test_lora.toml", "sdxl"), ("my-sd15-lora.toml", "sd15"),
    ("lora.toml", None), ("sdxlturbo.toml", None)])
def test_the_file_name_says_the_family(tmp_path: Path, name: str, family: str | None) -> None:
    assert _family(tmp_path / name, OPTIONS) == family


def test_a_model_name_wins_over_the_file_name(tmp_path: Path) -> None:
    text = OPTIONS + 'pretrained_model_name_or_path = "runwayml/stable-diffusion-v1-5"\n'
    assert _family(tmp_path / "sdxl_lora.toml", text) == "sd15"


def test_a_toml_named_for_sdxl_builds(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "sdxl_lora.toml").write_text(OPTIONS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert run(["import", "sdxl_lora.toml", "-o", "profiles/p.toml"]) == 0
    assert 'family = "sdxl"' in (tmp_path / "profiles" / "p.toml").read_text(encoding="utf-8")
    assert run(["build", "p", "--backend", "kohya", "-o", "out"]) == 0
