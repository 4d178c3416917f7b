"""Bad input to the dataset scan is a finding with bounded time and memory."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

from lorac.scan import dataset
from tests.conftest import REPO, lorac
from tests.make_dataset_fixture import build


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


_UNDER_A_GIGABYTE = textwrap.dedent("""
    import resource, sys
    from lorac.scan import dataset
    dataset.scan_file(sys.argv[1])  # imports PIL and numpy before the limit
    limit = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rec = dataset.scan_file(sys.argv[1])
    print(rec["error"], rec["detail"])
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_AS")
def test_a_60000_square_png_header_is_judged_without_its_pixels(tmp_path: Path) -> None:
    """3.6 GB of pixels by its header: reported as a decompression bomb by a process that may
    not use more than 1 GiB of address space."""

    png = tmp_path / "bomb.png"
    png.write_bytes(_png_header(60_000, 60_000))
    proc = subprocess.run([sys.executable, "-c", _UNDER_A_GIGABYTE, str(png)], cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("bomb 60000×60000 = 3,600,000,000 pixels")


def test_big_files_are_hashed_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build(tmp_path / "d", clean=2, only=())
    paths = [str(p) for p in sorted((tmp_path / "d").glob("*.jpg"))]
    whole = [dataset.scan_file(p) for p in paths]
    monkeypatch.setattr(dataset, "_READ_WHOLE", 0)  # every file takes the streaming path
    assert [dataset.scan_file(p) for p in paths] == whole


def test_a_folder_of_files_that_are_not_images(project: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = project / "dump"
    folder.mkdir()
    for i in range(3000):
        (folder / f"record_{i:05d}.json").write_text("{}")

    def boom(*_a: object) -> dict:
        raise AssertionError("scanned a file that is not an image")

    monkeypatch.setattr(dataset, "scan_file", boom)
    code, out, err = lorac("dataset", "check", "dump", "--json")
    assert "Traceback" not in err
    report = json.loads(out)
    assert [d["code"] for d in report["diagnostics"]] == ["LRC521"]
    assert report["images"] == [] and code == 0  # LRC521 is a warning


def test_a_zero_byte_clip_and_image(tmp_path: Path) -> None:
    from lorac.scan import video

    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.mp4").write_bytes(b"")
    assert dataset.scan_file(str(tmp_path / "a.png"))["error"] == "empty"
    assert video.probe_video(str(tmp_path / "a.mp4"))["error"] == "empty"
