"""The judging of a scanned folder: identical files (LRC519) without hashing every file —
only the files that share size and scan facts with another are hashed, and their hashes are
kept in the scan cache — and the garbage collector paused while it judges."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from lorac.scan import dataset


def _jpeg(seed: int, comment: bytes = b"") -> bytes:
    import numpy as np
    from PIL import Image

    grid = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grid, "RGB").resize((96, 96), Image.Resampling.BICUBIC).save(
        buf, "JPEG", quality=90, comment=comment)
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """a0-a2: one file three times; b0/b1: one image saved with two comments of one length
    (the same pixels, size and blur score, other bytes); c: alone; n0/n1: one text file
    twice, named .jpg; e0/e1: empty."""

    root = tmp_path / "data"
    root.mkdir()
    for i in range(3):
        (root / f"a{i}.jpg").write_bytes(_jpeg(1))
    (root / "b0.jpg").write_bytes(_jpeg(2, b"first"))
    (root / "b1.jpg").write_bytes(_jpeg(2, b"other"))
    (root / "c.jpg").write_bytes(_jpeg(3))
    for i in range(2):
        (root / f"n{i}.jpg").write_text("not an image\n")
        (root / f"e{i}.jpg").write_bytes(b"")
    return root


def _analyse(folder: Path, cache: Path | None, workers: int = 1) -> dataset.FolderResult:
    spec = dataset.SubsetSpec(image_dir=str(folder), key_path=())
    return dataset.analyse_folder(spec, dataset.DatasetConfig(workers=workers),
                                  cache_dir=cache)


def _identical(result: dataset.FolderResult) -> list[list[str]]:
    return sorted(sorted(os.path.basename(p) for p in f.data["files"])
                  for f in result.findings if f.code == "LRC519")


def _hashed(result: dataset.FolderResult) -> set[str]:
    return {os.path.basename(p) for p, r in result.records.items() if r.sha256}


def test_only_possible_copies_are_hashed(folder: Path) -> None:
    import hashlib

    result = _analyse(folder, None)
    assert _identical(result) == [["a0.jpg", "a1.jpg", "a2.jpg"], ["n0.jpg", "n1.jpg"]]
    # b0/b1 share every scan fact, so they are hashed, and differ; c and the empty files
    # are not hashed at all
    assert _hashed(result) == {"a0.jpg", "a1.jpg", "a2.jpg", "b0.jpg", "b1.jpg", "n0.jpg",
                               "n1.jpg"}
    for path, rec in result.records.items():
        if rec.sha256:
            assert rec.sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    b0, b1 = (result.records[str(folder / n)] for n in ("b0.jpg", "b1.jpg"))
    assert (b0.size, b0.blur, b0.phash) == (b1.size, b1.blur, b1.phash)
    # the identical files are one file to the near-duplicate search; b0/b1 are two
    near = [f for f in result.findings if f.code == "LRC520"]
    assert [sorted(os.path.basename(p) for p in f.data["files"]) for f in near] == [
        ["b0.jpg", "b1.jpg"]]


def test_the_hashes_are_kept_in_the_cache(folder: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = _analyse(folder, cache)

    def fail(rec: Any) -> str:
        raise AssertionError(f"hashed {rec.path} again")

    monkeypatch.setattr(dataset, "_content_hash", fail)
    again = _analyse(folder, cache)
    assert _identical(again) == _identical(first)
    assert {p: r.sha256 for p, r in again.records.items()} == {
        p: r.sha256 for p, r in first.records.items()}


def test_a_file_changed_since_its_scan_is_no_ones_copy(folder: Path) -> None:
    paths = sorted(folder.glob("a*.jpg"))
    records = dataset.scan(paths, dataset.DatasetConfig(workers=1), cache_dir=None)
    os.utime(paths[2], ns=(1, 1))  # the same bytes, another mtime than the scan saw
    hashed = dataset._hash_candidates(list(records.values()), dataset.DatasetConfig())
    assert sorted(os.path.basename(r.path) for r in hashed) == ["a0.jpg", "a1.jpg"]
    assert records[str(paths[2])].sha256 == ""


def test_many_candidates_hash_on_threads_alike(folder: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    serial = _analyse(folder, None)
    monkeypatch.setattr(dataset, "_HASH_PER_THREAD", 1)
    hashing = dataset._content_hash
    threads: set[int] = set()

    def counted(rec: Any) -> str | None:
        threads.add(threading.get_ident())
        return hashing(rec)

    monkeypatch.setattr(dataset, "_content_hash", counted)
    threaded = _analyse(folder, None, workers=4)
    assert threads and threading.get_ident() not in threads  # hashed on the pool's threads
    assert _identical(threaded) == _identical(serial)
    assert {p: r.sha256 for p, r in threaded.records.items()} == {
        p: r.sha256 for p, r in serial.records.items()}


def test_the_collector_is_paused_for_the_analysis(folder: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The analysis pauses Python's cyclic garbage collector while it reads, pairs and judges
    the records, but not while it decodes files (the scan's forked workers also end the
    pause in their own process: tests/test_dataset_pool.py), and leaves it as it found it,
    also when judging fails."""

    import gc

    seen: dict[str, bool] = {}
    scan, judge, task = dataset.scan, dataset._judge_images, dataset._scan_task

    def scanning(*args: Any, **kwargs: Any) -> Any:
        seen["scan"] = gc.isenabled()
        return scan(*args, **kwargs)

    def decoding(*args: Any, **kwargs: Any) -> Any:
        seen["decode"] = gc.isenabled()
        return task(*args, **kwargs)

    def judging(*args: Any, **kwargs: Any) -> Any:
        seen["judge"] = gc.isenabled()
        return judge(*args, **kwargs)

    monkeypatch.setattr(dataset, "scan", scanning)
    monkeypatch.setattr(dataset, "_judge_images", judging)
    monkeypatch.setattr(dataset, "_scan_task", decoding)
    assert gc.isenabled()
    _analyse(folder, None)
    # decoding files (here, in this process: a few files) runs with the collector
    assert seen == {"scan": False, "decode": True, "judge": False} and gc.isenabled()

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("judging failed")

    monkeypatch.setattr(dataset, "_judge_images", failing)
    with pytest.raises(RuntimeError):
        _analyse(folder, None)
    assert gc.isenabled()
    gc.disable()
    try:
        monkeypatch.setattr(dataset, "_judge_images", judging)
        _analyse(folder, None)
        assert not gc.isenabled()  # a caller's own pause stays
    finally:
        gc.enable()
