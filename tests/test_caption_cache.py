"""Caption texts in the scan cache: a warm check stats each caption and reads only the ones
whose (size, mtime_ns, inode) changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lorac.scan import dataset
from tests.make_dataset_fixture import build


def _check(folder: Path, cache: Path | None) -> dataset.FolderResult:
    spec = dataset.SubsetSpec(image_dir=str(folder), key_path=(), caption_extension=".txt")
    return dataset.analyse_folder(spec, dataset.DatasetConfig(), triggers=["ohwx"],
                                  cache_dir=cache)


def _codes(result: dataset.FolderResult) -> set[tuple[str, str]]:
    return {(f.code, os.path.basename(f.file or "")) for f in result.findings}


def test_a_warm_check_reads_no_unchanged_caption(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "d"
    build(folder, clean=4, only=())
    cold = _check(folder, tmp_path / "cache")
    assert len(cold.captions) == 4

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("opened an unchanged caption")

    monkeypatch.setattr(dataset, "open", boom, raising=False)
    monkeypatch.setattr(Path, "read_bytes", boom)
    warm = _check(folder, tmp_path / "cache")
    assert warm.captions == cold.captions
    assert _codes(warm) == _codes(cold)


def test_a_changed_caption_is_read_again(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    build(folder, clean=4, only=())
    cache = tmp_path / "cache"
    first = _check(folder, cache)
    assert ("LRC508", "clean_02.txt") not in _codes(first)
    cap = folder / "clean_02.txt"
    st = cap.stat()
    cap.write_text("a caption without the trigger\n")
    os.utime(cap, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = _check(folder, cache)
    assert second.captions[str(cap)] == "a caption without the trigger"
    assert ("LRC508", "clean_02.txt") in _codes(second)
    # a caption that stops decoding is a finding again, not the cached text
    cap.write_bytes(b"caf\xe9 ohwx\n")
    third = _check(folder, cache)
    assert ("LRC507", "clean_02.txt") in _codes(third) and str(cap) not in third.captions
    # and without a cache the same findings come out
    assert _codes(_check(folder, None)) == _codes(third)


def test_deleted_captions_leave_the_cache(tmp_path: Path) -> None:
    from lorac.scan.scancache import ScanCache

    folder = tmp_path / "d"
    build(folder, clean=4, only=())
    cache = tmp_path / "cache"
    _check(folder, cache)
    (folder / "clean_03.txt").unlink()
    result = _check(folder, cache)
    assert ("LRC503", "clean_03.jpg") in _codes(result)
    with ScanCache(cache, dataset._CAPTION_TAG, {"captions": dataset.CaptionRecord}) as db:
        rows = db.load("captions", os.path.realpath(folder))
    assert sorted(rows) == ["clean_01.txt", "clean_02.txt", "clean_04.txt"]
