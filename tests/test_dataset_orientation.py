"""EXIF orientation: the scanner asks PIL's ``getexif`` only when the header holds a block it
could come from, and finds the same orientation as ``getexif`` in every format."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, features

from lorac.scan import dataset

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
       b'22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
       b'tiff:Orientation="8"/></rdf:RDF></x:xmpmeta>')


def _files(root: Path) -> dict[str, int]:
    """File name → the orientation written into it."""

    exif = Image.Exif()
    exif[0x0112] = 6
    im = Image.new("RGB", (40, 30), (90, 120, 30))
    im.save(root / "exif.jpg", exif=exif)
    im.save(root / "plain.jpg")
    im.save(root / "xmp.jpg", xmp=XMP)
    im.save(root / "exif.png", exif=exif)
    im.save(root / "plain.png")
    im.save(root / "exif.tif", exif=exif)
    im.save(root / "plain.bmp")
    out = {"exif.jpg": 6, "plain.jpg": 1, "xmp.jpg": 8, "exif.png": 6, "plain.png": 1,
           "exif.tif": 6, "plain.bmp": 1}
    if features.check("webp"):
        im.save(root / "exif.webp", exif=exif)
        im.save(root / "plain.webp")
        out.update({"exif.webp": 6, "plain.webp": 1})
    return out


def test_orientation_is_what_getexif_finds(tmp_path: Path) -> None:
    expected = _files(tmp_path)
    for name, orientation in expected.items():
        with Image.open(tmp_path / name) as im:
            assert int(im.getexif().get(0x0112, 1) or 1) == orientation, name
        assert dataset.scan_file(str(tmp_path / name))["orientation"] == orientation, name


def test_getexif_is_skipped_only_without_an_exif_or_xmp_block(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _files(tmp_path)
    real = Image.Image.getexif
    asked: list[int] = []

    def spy(self: Image.Image) -> Image.Exif:
        asked.append(1)
        return real(self)

    monkeypatch.setattr(Image.Image, "getexif", spy)
    counts = {}
    for name in expected:
        asked.clear()
        dataset.scan_file(str(tmp_path / name))
        counts[name] = len(asked)
    plain = {name for name, orientation in expected.items() if name.startswith("plain")}
    assert {name for name, n in counts.items() if n == 0} == plain - {"plain.png"}
