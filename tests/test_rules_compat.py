"""LRC610–LRC622: dataset fallbacks, per-case fix safety, cited source lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lorac.config.profile import resolve
from lorac.lint.plugins import get_plugins
from lorac.trainers.kohya.rules import compat
from tests.conftest import lorac, write_files
from tests.trainer.conftest import checkout

FLUX = '[profile]\nfamily = "flux1-dev"\n'


def test_dataset_values_fall_back_subset_dataset_option(project: Path) -> None:
    write_files(project, {"profiles/p.toml": FLUX + "[training]\nshuffle_caption = true\n"
                          "[dataset]\ncaption_dropout_rate = 0.1\n"
                          "[[dataset.subsets]]\nimage_dir = 'a'\nshuffle_caption = false\n"
                          "[[dataset.subsets]]\nimage_dir = 'b'\ncaption_dropout_rate = 0.0\n"})
    p = resolve(project / "profiles/p.toml", env={}).profile
    assert compat.dataset_values(p, "shuffle_caption") == [
        (False, ("dataset", "subsets", 0, "shuffle_caption")),
        (True, ("training", "shuffle_caption"))]
    assert compat.dataset_values(p, "caption_dropout_rate") == [
        (0.1, ("dataset", "caption_dropout_rate")),
        (0.0, ("dataset", "subsets", 1, "caption_dropout_rate"))]


def test_dataset_values_walk_datasets_tables(project: Path) -> None:
    # subset, then its [[dataset.datasets]] table, then [dataset], then the trainer option
    write_files(project, {"profiles/p.toml": FLUX + "[training]\nshuffle_caption = true\n"
                          "[dataset]\ncaption_dropout_rate = 0.1\n"
                          "[[dataset.datasets]]\nshuffle_caption = false\n"
                          "[[dataset.datasets.subsets]]\nimage_dir = 'a'\n"
                          "[[dataset.datasets.subsets]]\nimage_dir = 'b'\n"
                          "caption_dropout_rate = 0.0\n"
                          "[[dataset.datasets]]\n"
                          "[[dataset.datasets.subsets]]\nimage_dir = 'c'\n"})
    p = resolve(project / "profiles/p.toml", env={}).profile
    assert compat.dataset_values(p, "shuffle_caption") == [
        (False, ("dataset", "datasets", 0, "shuffle_caption")),
        (True, ("training", "shuffle_caption"))]
    assert compat.dataset_values(p, "caption_dropout_rate") == [
        (0.1, ("dataset", "caption_dropout_rate")),
        (0.0, ("dataset", "datasets", 0, "subsets", 1, "caption_dropout_rate"))]


def test_caption_augmentation_in_datasets_subsets_is_reported(project: Path) -> None:
    # bug: only [[dataset.subsets]] was walked, so this linted clean and sd-scripts asserted
    write_files(project, {"profiles/p.toml": FLUX + "[training]\n"
                          "cache_text_encoder_outputs = true\n"
                          "[[dataset.datasets]]\n[[dataset.datasets.subsets]]\n"
                          "image_dir = 'a'\nshuffle_caption = true\n"})
    _, out, _ = lorac("lint", "profiles")
    assert "profiles/p.toml:8:1: LRC611 shuffle_caption = True" in out


def test_te_caching_to_disk_counts_as_caching(project: Path) -> None:
    write_files(project, {"profiles/p.toml": FLUX + "[training]\n"
                          "cache_text_encoder_outputs_to_disk = true\n"
                          "[[dataset.subsets]]\nimage_dir = 'a'\ntoken_warmup_step = 10\n"})
    _, out, _ = lorac("lint", "profiles")
    assert "profiles/p.toml:7:1: LRC611 token_warmup_step = 10" in out


def test_ignored_option_fix_is_unsafe_when_a_sibling_of_another_family_uses_it(
        project: Path) -> None:
    files = {"profiles/base.toml": "[training]\nnoise_offset = 0.1\n",
             "profiles/f.toml": '[profile]\nextends = "base"\nfamily = "flux1-dev"\n',
             "profiles/s.toml": '[profile]\nextends = "base"\nfamily = "sd3"\n'}
    write_files(project, files)
    _, out, _ = lorac("lint", "profiles")
    assert "profiles/base.toml:2:1: LRC618 [*]" in out  # FLUX and SD3 both ignore it
    write_files(project, {"profiles/s.toml": files["profiles/s.toml"].replace("sd3", "sdxl")})
    _, out, _ = lorac("lint", "profiles")
    assert "profiles/base.toml:2:1: LRC618 noise_offset" in out  # no [*]: SDXL uses it
    lorac("lint", "profiles", "--fix")
    assert "noise_offset" in (project / "profiles/base.toml").read_text()


def test_split_mode_fix_goes_where_split_mode_is_written(project: Path) -> None:
    write_files(project, {
        "profiles/base.toml": FLUX + "[memory]\nsplit_mode = true  # old\n",
        "profiles/c.toml": '[profile]\nextends = "base"\n'})
    lorac("lint", "profiles", "--fix")
    assert (project / "profiles/base.toml").read_text() == FLUX + "[memory]\nblocks_to_swap = 18\n"


def test_compat_rules_skip_other_backends(project: Path) -> None:
    options = "[training]\nnoise_offset = 0.1\nfp8_base = true\nsplit_mode = true\n"
    write_files(project, {"profiles/p.toml": FLUX + options})
    out = lorac("lint", "profiles")[1]
    assert {"LRC612", "LRC617", "LRC618"} <= set(re.findall(r": (LRC6\d\d) ", out))
    write_files(project, {"profiles/p.toml": FLUX + 'backend = "ai-toolkit"\n' + options})
    out = lorac("lint", "profiles")[1]
    assert not re.search(r": LRC6(1\d|2[0-2]) ", out), out


CITATION = re.compile(r"``((?:library/|networks/)?[a-z0-9_]+\.py):(\d+)(?:-(\d+))?``")


@pytest.mark.trainer
def test_docstrings_cite_lines_that_exist() -> None:
    rules = [r for code, r in get_plugins(entry_points=False).rules.items()
             if code.startswith(("LRC1", "LRC61", "LRC62"))]
    cited = [(m.group(1), int(m.group(3) or m.group(2))) for r in rules
             for m in CITATION.finditer(r.doc)]
    assert len(cited) > 30
    root = checkout("LORAC_SD_SCRIPTS")
    for name, line in cited:
        path = root / name
        if name.startswith("toolkit/") or not path.is_file():
            assert name in ("lora_special.py", "config_modules.py"), name
            continue
        assert line <= len(path.read_text(encoding="utf-8").splitlines()), (name, line)
