"""How many lines of a caption file sd-scripts reads (LRC524), as _read_caption sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.scan import dataset


@pytest.mark.parametrize(("text", "wildcard", "caption", "code"), [
    ("ohwx woman, red coat\n", False, "ohwx woman, red coat", None),
    ("ohwx woman, red coat\n\n  \n", False, "ohwx woman, red coat", None),  # blank lines
    ("ohwx woman\nsecond line\n", False, "ohwx woman", "LRC524"),
    ("ohwx woman\n\nsecond line", False, "ohwx woman", "LRC524"),
    ("ohwx woman\nsecond line\n", True, "ohwx woman\nsecond line", None),
    ("\nohwx woman\n", False, "", "LRC506"),  # an empty first line
])
def test_caption_lines(tmp_path: Path, text: str, wildcard: bool, caption: str,
                       code: str | None) -> None:
    path = tmp_path / "a.txt"
    path.write_text(text)
    spec = dataset.SubsetSpec(image_dir=str(tmp_path), key_path=(), caption_extension=".txt",
                              enable_wildcard=wildcard)
    [row] = dataset._stats([str(path)], dataset.DatasetConfig())
    got, finding = dataset._read_caption(str(path), spec, row)
    assert (finding.code if finding else None, got) == (code, caption)
    # the cached text of the unchanged file gives the same answer, without reading the file
    st = path.stat()
    hit = (st.st_size, st.st_mtime_ns, st.st_ino, text)
    path.unlink()  # read now, it would be LRC507
    assert dataset._read_caption(str(path), spec, row, hit) == (got, finding)
