"""The near-duplicate groups kept in the scan cache: read back only for unchanged input."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lorac.scan import dataset, neighbours
from lorac.scan.scancache import FILE_NAME


def _jpeg(seed: int, tweak: int = 0) -> bytes:
    """A 96-px JPEG of a 6×6 colour grid; ``tweak`` brightens that many cells of the first
    row (6: 2 bits from the untweaked image's perceptual hash)."""

    import numpy as np
    from PIL import Image

    grid = np.random.default_rng(seed).integers(0, 200, (6, 6, 3), dtype=np.uint8)
    grid[0, :tweak] += 50
    buf = io.BytesIO()
    Image.fromarray(grid, "RGB").resize((96, 96), Image.Resampling.BICUBIC).save(
        buf, "JPEG", quality=90)
    return buf.getvalue()


def _caption(i: int) -> str:
    words = [f"w{(i * 7 + k * 13) % 97}" for k in range(12)]
    return "ohwx woman, " + ", ".join(words)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Six images: 1 a retouched copy of 0 (near-duplicate), 5 a byte copy of 4 (identical
    files, kept out of the near-duplicate groups); caption 1 is caption 0 and one word."""

    monkeypatch.setattr(dataset, "_MEMO_FROM", 2)
    root = tmp_path / "data"
    root.mkdir()
    for i in range(6):
        data = _jpeg(0, 6) if i == 1 else _jpeg(4) if i == 5 else _jpeg(i)
        (root / f"img{i}.jpg").write_bytes(data)
        text = _caption(0) + ", extra" if i == 1 else _caption(i)
        (root / f"img{i}.txt").write_text(text + "\n")
    return root


def _check(folder: Path, cache: Path | None, **config: Any) -> list[tuple[Any, ...]]:
    spec = dataset.SubsetSpec(image_dir=str(folder), key_path=(), caption_extension=".txt")
    result = dataset.analyse_folder(spec, dataset.DatasetConfig(workers=1, **config),
                                    triggers=["ohwx woman"], cache_dir=cache)
    return [(f.code, f.file, f.message, f.data) for f in result.findings]


def _codes(found: list[tuple[Any, ...]]) -> list[str]:
    return [f[0] for f in found]


def _no_grouping(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("grouped again")

    monkeypatch.setattr(neighbours, "jaccard_groups", fail)
    monkeypatch.setattr(neighbours, "hamming_groups", fail)


def test_unchanged_folder_reads_the_groups_back(folder: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = _check(folder, cache)
    assert "LRC510" in _codes(first) and "LRC520" in _codes(first)
    assert "LRC519" in _codes(first)  # the byte copies: identical, not near-duplicates
    assert first == _check(folder, None)
    _no_grouping(monkeypatch)
    assert _check(folder, cache) == first


def test_a_changed_caption_groups_again(folder: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    assert "LRC510" in _codes(_check(folder, cache))
    (folder / "img1.txt").write_text("ohwx woman, something else entirely\n")
    again = _check(folder, cache)
    assert "LRC510" not in _codes(again)
    assert again == _check(folder, None)


def test_a_changed_image_or_limit_groups_again(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert "LRC520" in _codes(_check(folder, cache))
    assert "LRC520" not in _codes(_check(folder, cache, near_duplicate_distance=1))
    (folder / "img1.jpg").write_bytes(_jpeg(11))
    again = _check(folder, cache)
    assert "LRC520" not in _codes(again)
    assert again == _check(folder, None)


def test_a_renamed_file_keeps_its_groups_right(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _check(folder, cache)
    for ext in (".jpg", ".txt"):  # img1 sorts last now: the same texts in another order
        (folder / f"img1{ext}").rename(folder / f"zz{ext}")
    again = _check(folder, cache)
    assert any(f[0] == "LRC520" and f[1].endswith("zz.jpg") for f in again)
    assert any(f[0] == "LRC510" and f[3]["files"][-1].endswith("zz.txt") for f in again)
    assert again == _check(folder, None)


def test_a_damaged_row_is_computed_again(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _check(folder, cache)
    with sqlite3.connect(cache / FILE_NAME) as db:
        assert db.execute("UPDATE groups SET groups = 'not json'").rowcount == 2
    assert _check(folder, cache) == first


def test_small_folders_are_not_memoised(folder: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset, "_MEMO_FROM", 1000)
    cache = tmp_path / "cache"
    _check(folder, cache)
    with sqlite3.connect(cache / FILE_NAME) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "groups" not in tables
