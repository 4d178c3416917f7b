"""The listing of an image folder: :func:`lorac.scan.dataset.list_folder` sorts the entries
into the images sd-scripts reads, the other images, the other files and the folders, in C
(``_native.list_dir``, lorac/scan/_native.c) or with os.scandir, with the same result."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorac.scan import dataset
from tests.conftest import has_c_compiler


def _both(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dataset.Listing, ...]:
    native = dataset.list_folder(folder)
    with monkeypatch.context() as m:
        m.setattr(dataset, "_native", None)
        python = dataset.list_folder(folder)
    return native, python


def _odd_folder(root: Path) -> Path:
    folder = root / "imgs"
    folder.mkdir()
    for name in ("b.png", "a.jpg", "A.JPG", "c.Jpg", "d.jpeg", "e.webp", "f.BMP", "g.gif",
                 "h.TIFF", "i.txt", "j.caption", ".hidden.png", ".jpg", "noext", "k.", "l.tar.gz",
                 "m.PNG.txt", "ü.png", "space name.png"):
        (folder / name).write_bytes(b"x")
    (folder / os.fsdecode(b"caf\xe9.png")).write_bytes(b"x")  # not UTF-8: surrogate-escaped
    (folder / "sub").mkdir()
    (folder / "sub" / "x.png").write_bytes(b"x")
    (folder / "sub.png").mkdir()  # a folder named like an image is a folder
    (folder / "sub.png" / "y.jpg").write_bytes(b"x")
    (folder / ".dotdir").mkdir()
    (folder / ".dotdir" / "z.png").write_bytes(b"x")
    (folder / "to_sub").symlink_to(folder / "sub")  # a link to a folder is a folder
    (folder / "to_file.png").symlink_to(folder / "b.png")
    (folder / "broken.png").symlink_to(folder / "nowhere.png")  # a file, as scandir says
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    return folder


def test_the_c_listing_is_the_python_listing(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if dataset._native is None:
        assert not has_c_compiler(), "a C compiler is here but lorac.scan._native was not built"
    folder = _odd_folder(tmp_path)
    native, python = _both(folder, monkeypatch)
    assert native == python
    prefix = str(folder) + os.sep
    assert python.images == sorted(prefix + n for n in (
        "A.JPG", "a.jpg", "b.png", "broken.png", "d.jpeg", "e.webp", "f.BMP", "loop.jpg",
        "space name.png", "to_file.png", "ü.png", os.fsdecode(b"caf\xe9.png")))
    assert python.ignored_images == sorted(prefix + n for n in ("c.Jpg", "g.gif", "h.TIFF"))
    assert python.others == sorted(prefix + n for n in (
        "i.txt", "j.caption", "k.", "l.tar.gz", "m.PNG.txt", "noext"))
    assert python.subfolder_images == {"sub": 1, "sub.png": 1, "to_sub": 1}


def test_a_listing_of_what_is_not_a_folder_is_an_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name, error in (("file", "is not a directory"), ("missing", "does not exist"),
                        ("dangling", "is a broken link")):
        native, python = _both(tmp_path / name, monkeypatch)
        assert native.error == python.error == error
    if dataset._native is not None:  # the C listing raises as os.scandir does
        with pytest.raises(NotADirectoryError) as caught:
            dataset._native.list_dir(str(tmp_path / "file"), "", frozenset(), frozenset())
        assert caught.value.filename == str(tmp_path / "file")
        with pytest.raises(FileNotFoundError):
            dataset._native.list_dir(str(tmp_path / "missing"), "", frozenset(), frozenset())
        with pytest.raises(TypeError):
            dataset._native.list_dir(str(tmp_path), "", {".png"}, frozenset())  # a set


_NAME = st.text(st.sampled_from("aB._-ü é0"), min_size=1, max_size=8)
_EXT = st.sampled_from(["", ".png", ".PNG", ".Png", ".jpg", ".JPEG", ".webp", ".gif", ".txt",
                        ".heic", "."])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.sets(st.tuples(_NAME, _EXT, st.booleans()), max_size=25))
def test_any_folder_lists_alike(tmp_path_factory: pytest.TempPathFactory,
                                monkeypatch: pytest.MonkeyPatch,
                                names: set[tuple[str, str, bool]]) -> None:
    folder = tmp_path_factory.mktemp("any")
    made = set()
    for stem, ext, is_dir in names:
        name = stem + ext
        if name in made or name in (".", ".."):
            continue
        made.add(name)
        if is_dir:
            (folder / name).mkdir()
            (folder / name / "in.png").write_bytes(b"x")
        else:
            (folder / name).write_bytes(b"x")
    native, python = _both(folder, monkeypatch)
    assert native == python
    assert len(python.images) + len(python.ignored_images) + len(python.others) == sum(
        1 for n in made if not n.startswith(".") and not (folder / n).is_dir())
