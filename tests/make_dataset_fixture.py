"""Build the dataset-lint fixture: generated images with one instance of each problem.

Usage: ``python tests/make_dataset_fixture.py DIR [--clean N] [--only NAME ...]
[--profile PROFILE_TOML]``.
``build(folder)`` does the same from Python and returns :data:`EXPECTED` — the (code, file
name) findings ``lorac lint`` and ``lorac dataset check`` must report for the folder, and
nothing else. Everything is generated (PIL only, seeded), so the fixture is identical on every
machine.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from pathlib import Path

TRIGGER = "ohwx woman"
CLEAN = 8
#: (code, file name) of every finding the fixture must produce (for CLEAN ≥ 7 clean images).
EXPECTED = {
    ("LRC518", "blurred.jpg"),
    ("LRC520", "near_dup.jpg"),
    ("LRC514", "small.jpg"),
    ("LRC512", "truncated.jpg"),
    ("LRC503", "uncaptioned.jpg"),
    ("LRC508", "notrigger.txt"),
    ("LRC504", "orphan.txt"),
    ("LRC505", "clash.png"),
}

_WORDS = ("portrait", "smiling", "outdoors", "studio", "window", "daylight", "red", "coat",
          "blue", "scarf", "park", "bench", "city", "street", "night", "neon", "rain",
          "umbrella", "beach", "sunset", "forest", "trail", "kitchen", "coffee", "mug",
          "library", "books", "glasses", "reading", "garden", "flowers", "hat", "bicycle",
          "train", "station", "snow", "winter", "jacket", "mountain", "lake", "boat", "dress",
          "evening", "candle", "guitar", "painting", "museum", "balcony")


def make_image(seed: int, size: tuple[int, int] = (1024, 1024), grain: float = 0.15):
    """A sharp synthetic photo: large random shapes (distinct layout per seed) + fine texture."""

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    w, h = size
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    im = Image.linear_gradient("L").resize(size)
    im = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), im)
    draw = ImageDraw.Draw(im)
    for _ in range(rng.randrange(6, 12)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(w // 8, w // 2), y0 + rng.randrange(h // 8, h // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice(("ellipse", "rectangle", "polygon"))
        if shape == "polygon":
            points = [(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randrange(3, 6))]
            draw.polygon(points, fill=colour)
        else:
            getattr(draw, shape)([x0, y0, x1, y1], fill=colour)
    for _ in range(40):
        x, y = rng.randrange(w), rng.randrange(h)
        draw.line([x, y, x + rng.randrange(-200, 200), y + rng.randrange(-200, 200)],
                  fill=tuple(rng.randrange(256) for _ in range(3)), width=rng.randrange(1, 4))
    return Image.blend(im, _noise(size, rng.randrange(w), rng.randrange(h)), grain)


_NOISE: dict = {}


def _noise(size: tuple[int, int], dx: int, dy: int):
    """Fine grain texture: one noise tile per size, shifted per image (generating Gaussian
    noise is the slow part of making an image)."""

    from PIL import Image, ImageChops

    if size not in _NOISE:
        _NOISE[size] = Image.effect_noise(size, 24).convert("RGB")
    return ImageChops.offset(_NOISE[size], dx, dy)


def jpeg_bytes(im, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def caption(seed: int, trigger: bool = True) -> str:
    rng = random.Random(1000 + seed)
    words = rng.sample(_WORDS, 6)
    text = ", ".join(words[:3]) + ", " + " ".join(words[3:])
    return f"{TRIGGER}, {text}" if trigger else f"a woman, {text}"


def _put(folder: Path, name: str, data: bytes, text: str | None) -> None:
    (folder / name).write_bytes(data)
    if text is not None:
        (folder / (name.rsplit(".", 1)[0] + ".txt")).write_text(text + "\n", encoding="utf-8")


def _near_dup(folder: Path) -> None:
    from PIL import ImageEnhance

    near = ImageEnhance.Brightness(make_image(1)).enhance(1.06).resize((1000, 1000))
    _put(folder, "near_dup.jpg", jpeg_bytes(near, 80), caption(101))


def _blurred(folder: Path) -> None:
    from PIL import ImageFilter

    _put(folder, "blurred.jpg", jpeg_bytes(make_image(102).filter(ImageFilter.GaussianBlur(8))),
         caption(102))


def _small(folder: Path) -> None:
    _put(folder, "small.jpg", jpeg_bytes(make_image(103, (512, 512))), caption(103))


def _truncated(folder: Path) -> None:
    full = jpeg_bytes(make_image(104))
    _put(folder, "truncated.jpg", full[: len(full) * 6 // 10], caption(104))


def _uncaptioned(folder: Path) -> None:
    _put(folder, "uncaptioned.jpg", jpeg_bytes(make_image(105)), None)


def _notrigger(folder: Path) -> None:
    _put(folder, "notrigger.jpg", jpeg_bytes(make_image(106)), caption(106, trigger=False))


def _orphan(folder: Path) -> None:
    (folder / "orphan.txt").write_text(caption(107) + "\n", encoding="utf-8")


def _clash(folder: Path) -> None:
    _put(folder, "clash.jpg", jpeg_bytes(make_image(108)), caption(108))
    png = io.BytesIO()
    make_image(109).save(png, "PNG", compress_level=1)
    (folder / "clash.png").write_bytes(png.getvalue())


# -- extras, not in the default fixture (for the rule case files)


def _rotated(folder: Path) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    make_image(110).save(buf, "JPEG", quality=90, exif=exif)
    _put(folder, "rotated.jpg", buf.getvalue(), caption(110))


def _alpha(folder: Path) -> None:
    im = make_image(111).convert("RGBA")
    im.putalpha(200)
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    _put(folder, "alpha.png", buf.getvalue(), caption(111))


def _huge(folder: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    _put(folder, "huge.png", data, caption(112))


def _wide(folder: Path) -> None:
    _put(folder, "wide.jpg", jpeg_bytes(make_image(113, (2048, 512))), caption(113))


def _duplicate(folder: Path) -> None:
    _put(folder, "copy_of_01.jpg", (folder / "clean_01.jpg").read_bytes(), caption(114))


PROBLEMS = {
    "near_dup": _near_dup, "blurred": _blurred, "small": _small, "truncated": _truncated,
    "uncaptioned": _uncaptioned, "notrigger": _notrigger, "orphan": _orphan, "clash": _clash,
    "rotated": _rotated, "alpha": _alpha, "huge": _huge, "wide": _wide,
    "duplicate": _duplicate,
}
DEFAULT = ("near_dup", "blurred", "small", "truncated", "uncaptioned", "notrigger", "orphan",
           "clash")


def build(folder: Path, clean: int = CLEAN, only: tuple[str, ...] | None = None,
          ) -> set[tuple[str, str]]:
    """Write ``clean`` clean images and the ``only`` problems (default: :data:`DEFAULT`) into
    ``folder`` (created); return the expected findings of the default fixture."""

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, clean + 1):
        size = (1024, 1024) if i % 3 else (1024, 768)
        _put(folder, f"clean_{i:02d}.jpg", jpeg_bytes(make_image(i, size)), caption(i))
    for name in DEFAULT if only is None else only:
        PROBLEMS[name](folder)
    return set(EXPECTED)


PROFILE = """\
[profile]
description = "dataset fixture"
family = "flux1-dev"
trigger = "{trigger}"

[dataset]
resolution = 1024
batch_size = 1
enable_bucket = true
bucket_no_upscale = true
caption_extension = ".txt"

[[dataset.subsets]]
image_dir = "{image_dir}"
class_tokens = "{trigger}"
num_repeats = 10
"""


def write_profile(path: Path, image_dir: str) -> Path:
    """A profile that references ``image_dir`` (relative to where lorac will run)."""

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PROFILE.format(trigger=TRIGGER, image_dir=image_dir), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--clean", type=int, default=CLEAN, help="number of clean images")
    parser.add_argument("--profile", type=Path, help="also write a profile referencing it")
    parser.add_argument("--only", nargs="*", choices=sorted(PROBLEMS),
                        help="problems to add (default: the fixture's eight)")
    args = parser.parse_args(argv)
    build(args.folder, args.clean, None if args.only is None else tuple(args.only))
    if args.profile:
        write_profile(args.profile, str(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
