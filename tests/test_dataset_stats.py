"""The stat of every image and caption that a check of an unchanged folder is mostly made of:
:func:`lorac.scan.dataset._stats`, in C on threads (lorac/scan/_native.c) or with os.stat,
gives what os.stat gives."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from lorac.scan import dataset
from tests.conftest import has_c_compiler


def _python_stats(paths: list, monkeypatch: pytest.MonkeyPatch) -> list:
    with monkeypatch.context() as m:
        m.setattr(dataset, "_native", None)
        return dataset._stats(paths, dataset.DatasetConfig(workers=3))


def _odd_paths(root: Path) -> tuple[list, dict[str, int]]:
    """Files, and the paths whose stat fails, with the errno it fails with."""

    (root / "a.txt").write_text("ohwx woman\n")
    (root / "empty.png").write_bytes(b"")
    (root / "sub").mkdir()
    (root / "link").symlink_to(root / "a.txt")
    (root / "broken").symlink_to(root / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    latin = os.fsdecode(b"caf\xe9.txt")  # not UTF-8: a surrogate-escaped str, as listed
    (root / latin).write_text("x")
    good = [str(root / n) for n in ("a.txt", "empty.png", "sub", "link", latin)]
    bad = {str(root / "missing.txt"): errno.ENOENT, str(root / "broken"): errno.ENOENT,
           str(root / "loop"): errno.ELOOP, str(root / "a.txt" / "x"): errno.ENOTDIR,
           str(root / "nul\0name"): errno.EINVAL}
    return [*good, os.fsencode(good[0]), *bad], bad


def test_stats_are_what_os_stat_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, bad = _odd_paths(tmp_path)
    want = []
    for path in paths:
        if path in bad:
            want.append(bad[path])
        else:
            st = os.stat(path)
            want.append((st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode))
    assert _python_stats(paths, monkeypatch) == want
    assert dataset._stats(paths, dataset.DatasetConfig(workers=3)) == want


def test_many_stats_on_threads_keep_their_order(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Enough paths for several threads (2,048 each at least), files and misses mixed."""

    paths = []
    for i in range(7000):
        path = tmp_path / f"f{i:05d}.txt"
        if i % 7:
            path.write_bytes(b"x" * (i % 97))
        paths.append(str(path))
    want = _python_stats(paths, monkeypatch)
    assert sum(isinstance(row, int) for row in want) == 1000
    for workers in (1, 2, 3, 64):
        assert dataset._stats(paths, dataset.DatasetConfig(workers=workers)) == want


def test_the_c_stats_refuse_what_is_not_a_path() -> None:
    if dataset._native is None:
        assert not has_c_compiler(), "a C compiler is here but lorac.scan._native was not built"
        return
    with pytest.raises(TypeError, match="path 1 is not str or bytes"):
        dataset._native.stat_many(["a", 3], 1)
    with pytest.raises(TypeError):
        dataset._native.stat_many(("a",), 1)  # a list, not any sequence
    assert dataset._native.stat_many([], 4) == []
