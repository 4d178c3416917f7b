"""Image/caption scanning: the dataset as sd-scripts will read it, with a per-file score cache.

The module has three layers, each usable on its own:

* :func:`subsets_of` — the subsets a resolved profile trains on, with every setting resolved the
  way sd-scripts' ``BlueprintGenerator`` does it (subset → dataset → general → the trainer's
  command-line options → the dataclass default; library/config_util.py:414-477);
* :func:`scan` — a pure scan of image files into :class:`ImageRecord` values (size, mode, EXIF
  orientation, a blur score, a perceptual hash, or the reason the file does not decode),
  spread over processes and cached under ``.lorac_cache/dataset/`` keyed by
  (path, size, mtime_ns, inode); a content hash only for the files that may be copies of
  another (:func:`_hash_candidates`, at analysis);
* :func:`analyse_folder` / :func:`analyse_profile` — the findings (:class:`Finding`, codes
  LRC501–LRC524) computed from a folder listing, the records and :class:`DatasetConfig`.

The lint rules in :mod:`lorac.lint.rules.dataset` and ``lorac dataset check`` both call
:func:`analyse_profile` / :func:`analyse_folder`. PIL and numpy are imported only when images
are actually scanned or grouped; the near-duplicate groups (exact, perceptual-hash, caption)
come from :mod:`lorac.scan.neighbours` in near-linear time.

Facts about sd-scripts (commit 37a1cbbc, the default pin) this module relies on:

* images are ``glob(image_dir/*EXT)`` for the case-sensitive extensions of
  ``IMAGE_EXTENSIONS`` (library/dataset.py:77, 1448-1457): no recursion, no dot-files,
  ``.Jpg`` is not read;
* the caption of ``a.png`` is ``a`` + ``caption_extension``
  (library/dreambooth_dataset.py:90-97), whose default is ``.caption`` (config_util.py:86 for
  the dataset config, library/args.py:913 for the command line) — a folder of ``.txt``
  files without ``caption_extension = ".txt"`` trains with
  no captions at all; an image without a caption gets ``class_tokens`` or ``""``
  (library/dreambooth_dataset.py:230-241);
* a caption file is read as UTF-8 and raises on anything else; an empty file fails an
  assertion; only the first line is used unless ``enable_wildcard``
  (library/dreambooth_dataset.py:99-112);
* ``caption_prefix``/``caption_suffix`` are joined with a space (library/dataset.py:503-506);
  ``keep_tokens`` keeps the first N ``caption_separator`` tokens in place, or the part before
  ``keep_tokens_separator`` (library/dataset.py:548-568);
* images are opened with PIL and converted to RGB without applying EXIF orientation
  (library/utils.py:170-179); PIL refuses images above 2 × ``Image.MAX_IMAGE_PIXELS``;
* bucketing follows ``BucketManager.select_bucket`` (library/dataset.py:251-311) and
  ``make_bucket_resolutions`` (library/model_util.py:1388-1416), with min/max bucket sizes
  rounded to ``bucket_reso_steps`` (library/dataset.py:430-456); without ``enable_bucket`` every
  image is scaled to cover ``resolution`` and centre-cropped (library/dataset.py:678-680,
  2965-2993).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import hashlib
import math
import os
import re
import stat
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from lorac.config.profile import parse_resolution
from lorac.core.diagnostics import KeyPath, LoracError
from lorac.scan import neighbours

try:  # the scan's per-pixel loops in C, built with lorac where a C compiler was at hand
    from lorac.scan import _native
except ImportError:  # pragma: no cover - installed without it: numpy gives the same values
    _native = None

#: sd-scripts' image extensions, matched case-sensitively (library/dataset.py:77).
SD_IMAGE_EXTENSIONS = frozenset(
    e for ext in (".png", ".jpg", ".jpeg", ".webp", ".bmp") for e in (ext, ext.upper()))
#: Extensions that are images but that sd-scripts' glob does not pick up (or only with a plugin).
OTHER_IMAGE_EXTENSIONS = frozenset((
    ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif", ".jxl",
    ".heic", ".heif"))
DEFAULT_CAPTION_EXTENSION = ".caption"  # library/config_util.py:86, library/args.py:913
PIL_MAX_IMAGE_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS; PIL fails at twice this
NORM_SIZE = 256  # the long side of the normalised downscale that blur and phash are scored on
SCAN_VERSION = 5
CACHE_DIR = Path(".lorac_cache") / "dataset"
_POOL_MIN = 16  # fewer uncached images than this are scanned in-process


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DatasetConfig:
    """Thresholds of the dataset rules: ``[tool.lorac.dataset]`` (pyproject) or
    ``[dataset]`` (lorac.toml). Keys are written with dashes; defaults below.

    ``blur-ratio`` (0.2): an image is blurred when its sharpness is below this fraction of the
    set's median. ``blur-min`` (0): and also when it is below this absolute score.
    ``blur-min-images`` (5): the relative test needs this many decodable images.
    ``near-duplicate-distance`` (6): perceptual-hash Hamming distance (of 64 bits) at or under
    which two images are near-duplicates. ``caption-similarity`` (0.9): word-set overlap
    (Jaccard) at or above which two captions are near-duplicates. ``min-images`` (15): fewer
    images than this is too few; ``min-images-by-tag`` (``{style = 30}``): a larger minimum
    for profiles whose ``[profile] tags`` name the goal. ``min-resolution-ratio`` (0.8): an
    image is too small when it reaches its bucket at under this fraction of the training
    resolution (linear). ``max-crop`` (0.15): the largest fraction of an image that bucketing
    may crop away. ``max-pixels`` (89478485, PIL's limit): larger images are decompression
    bombs. ``workers`` (0 = one per CPU): scanning processes. ``cache`` (true): keep scores
    under ``.lorac_cache/dataset/``.
    """

    blur_ratio: float = 0.2
    blur_min: float = 0.0
    blur_min_images: int = 5
    near_duplicate_distance: int = 6
    caption_similarity: float = 0.9
    min_images: int = 15
    min_images_by_tag: dict[str, int] = field(default_factory=lambda: {"style": 30})
    min_resolution_ratio: float = 0.8
    max_crop: float = 0.15
    max_pixels: int = PIL_MAX_IMAGE_PIXELS
    workers: int = 0
    cache: bool = True


_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "blur_ratio": (int, float), "blur_min": (int, float), "blur_min_images": (int,),
    "near_duplicate_distance": (int,), "caption_similarity": (int, float),
    "min_images": (int,), "min_images_by_tag": (dict,), "min_resolution_ratio": (int, float),
    "max_crop": (int, float), "max_pixels": (int,), "workers": (int,), "cache": (bool,),
}


def _is_kind(value: Any, kinds: tuple[type, ...]) -> bool:
    """``isinstance``, except that a bool is an int only where ``kinds`` names bool."""

    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def load_config(raw: Mapping[str, Any] | None, source: str | None = None) -> DatasetConfig:
    """Build a :class:`DatasetConfig` from the ``dataset`` settings table; bad values are a
    :class:`~lorac.core.diagnostics.LoracError` naming the key."""

    where = source or "settings"
    if raw is None:
        return DatasetConfig()
    if not isinstance(raw, Mapping):
        raise LoracError(f"{where}: [tool.lorac.dataset] must be a table")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        types = _CONFIG_TYPES.get(name)
        if types is None:
            known = ", ".join(k.replace("_", "-") for k in _CONFIG_TYPES)
            raise LoracError(f"{where}: unknown dataset setting {key!r} (known: {known})")
        if not _is_kind(value, types):
            raise LoracError(f"{where}: dataset setting {key} has the wrong type "
                             f"({type(value).__name__})")
        if name == "min_images_by_tag" and not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
            raise LoracError(f"{where}: dataset setting {key} must map tags to integers")
        if not isinstance(value, (bool, dict)) and value < 0:
            raise LoracError(f"{where}: dataset setting {key} must not be negative")
        values[name] = dict(value) if isinstance(value, dict) else value
    return DatasetConfig(**values)


# --------------------------------------------------------------------------- subsets


@dataclass(frozen=True)
class SubsetSpec:
    """One subset as sd-scripts resolves it; ``*_at`` are the key paths the values came from
    (``None``: sd-scripts' default)."""

    image_dir: str
    key_path: KeyPath
    caption_extension: str = DEFAULT_CAPTION_EXTENSION
    caption_extension_at: KeyPath | None = None
    class_tokens: str | None = None
    class_tokens_at: KeyPath | None = None
    keep_tokens: int = 0
    keep_tokens_separator: str | None = None
    keep_tokens_at: KeyPath | None = None
    caption_separator: str = ","
    shuffle_caption: bool = False
    caption_prefix: str | None = None
    caption_suffix: str | None = None
    enable_wildcard: bool = False
    metadata_file: str | None = None
    is_reg: bool = False
    num_repeats: int = 1
    resolution: tuple[int, int] | None = None
    enable_bucket: bool = False
    bucket_no_upscale: bool = False
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    batch_size: int = 1
    batch_size_at: KeyPath | None = None

    @property
    def folder(self) -> Path:
        return Path(self.image_dir)


def subsets_of(profile: Any) -> list[SubsetSpec]:
    """The subsets of ``profile``'s ``[dataset]`` (``[[dataset.subsets]]`` or
    ``[[dataset.datasets]]`` → ``subsets``) that name an ``image_dir``."""

    dataset = profile.get("dataset")
    if not isinstance(dataset, dict):
        return []
    options = profile.options()
    general = {k: v for k, v in dataset.items() if k not in ("subsets", "datasets")}
    groups: list[tuple[dict, KeyPath, list, KeyPath]] = []
    if isinstance(dataset.get("datasets"), list):
        for i, ds in enumerate(dataset["datasets"]):
            if isinstance(ds, dict) and isinstance(ds.get("subsets"), list):
                groups.append((ds, ("dataset", "datasets", i), ds["subsets"],
                               ("dataset", "datasets", i, "subsets")))
    if isinstance(dataset.get("subsets"), list):
        groups.append(({}, ("dataset",), dataset["subsets"], ("dataset", "subsets")))

    out: list[SubsetSpec] = []
    for ds, ds_path, subsets, sub_base in groups:
        for j, sub in enumerate(subsets):
            if not isinstance(sub, dict) or not isinstance(sub.get("image_dir"), str):
                continue
            levels = [(sub, (*sub_base, j)), (ds, ds_path), (general, ("dataset",))]

            def look(key: str, default: Any, kinds: tuple[type, ...],
                     levels: list = levels) -> tuple[Any, KeyPath | None]:
                for table, base in levels:
                    value = table.get(key)
                    if value is not None:
                        return (value if _is_kind(value, kinds) else default), (*base, key)
                found = options.get(key)
                if found is not None and found[0] is not None:
                    value = found[0]
                    return (value if _is_kind(value, kinds) else default), found[1]
                return default, None

            def val(key: str, default: Any, *kinds: type) -> Any:
                return look(key, default, kinds)[0]

            ext, ext_at = look("caption_extension", DEFAULT_CAPTION_EXTENSION, (str,))
            if ext and not ext.startswith("."):
                ext = "." + ext  # library/subset.py:144-145
            class_tokens, class_at = look("class_tokens", None, (str,))
            keep, keep_at = look("keep_tokens", 0, (int,))
            keep_sep, sep_at = look("keep_tokens_separator", None, (str,))
            batch, batch_at = look("batch_size", 1, (int,))
            res_raw, _ = look("resolution", None, (int, str, list))
            out.append(SubsetSpec(
                image_dir=sub["image_dir"], key_path=(*sub_base, j, "image_dir"),
                caption_extension=ext, caption_extension_at=ext_at,
                class_tokens=class_tokens or None, class_tokens_at=class_at,
                keep_tokens=max(0, keep), keep_tokens_separator=keep_sep or None,
                keep_tokens_at=keep_at if keep else sep_at,
                caption_separator=val("caption_separator", ",", str) or ",",
                shuffle_caption=bool(val("shuffle_caption", False, bool)),
                caption_prefix=val("caption_prefix", None, str),
                caption_suffix=val("caption_suffix", None, str),
                enable_wildcard=bool(val("enable_wildcard", False, bool)),
                metadata_file=val("metadata_file", None, str),
                is_reg=bool(val("is_reg", False, bool)),
                num_repeats=val("num_repeats", 1, int),
                resolution=parse_resolution(res_raw),
                enable_bucket=bool(val("enable_bucket", False, bool)),
                bucket_no_upscale=bool(val("bucket_no_upscale", False, bool)),
                min_bucket_reso=val("min_bucket_reso", 256, int),
                max_bucket_reso=val("max_bucket_reso", 1024, int),
                bucket_reso_steps=max(1, val("bucket_reso_steps", 64, int)),
                batch_size=max(1, batch), batch_size_at=batch_at,
            ))
    return out


def triggers_of(profile: Any) -> list[str]:
    """``[profile] trigger`` as a list of non-empty strings."""

    value = profile.get("profile", "trigger")
    if isinstance(value, str):
        value = [value]
    return [v.strip() for v in value if isinstance(v, str) and v.strip()] if isinstance(
        value, list) else []


# --------------------------------------------------------------------------- scanning


@dataclass
class ImageRecord:
    """What one scan learnt about one image file (every score the report shows)."""

    path: str
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    error: str | None = None  # unreadable | empty | not-image | truncated | bomb | decode
    detail: str = ""
    width: int = 0
    height: int = 0
    format: str = ""
    mode: str = ""
    bit_depth: int = 8
    has_alpha: bool = False
    orientation: int = 1
    blur: float | None = None
    phash: str | None = None
    sha256: str = ""  # only where another file may be its copy (:func:`_hash_candidates`)

    @property
    def ok(self) -> bool:
        return self.error is None


def _png_bit_depth(head: bytes) -> int:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) > 24:
        return head[24]
    return 8


def scan_file(path: str, max_pixels: int = PIL_MAX_IMAGE_PIXELS) -> dict[str, Any]:
    """Scan one image file (see :class:`ImageRecord`); never raises for a bad file."""

    return dict(zip(ImageRecord.__dataclass_fields__, scan_files([path], max_pixels)[0],
                    strict=True))


def scan_files(paths: list[str], max_pixels: int = PIL_MAX_IMAGE_PIXELS) -> list[tuple[Any, ...]]:
    """The records of ``paths`` (see :class:`ImageRecord`), each as its values in field
    order; never raises for a bad file. The reduced grey images are scored as they are
    decoded, in batches of one shape (:class:`_Batches`)."""

    recs: list[ImageRecord] = []
    batches = _Batches()
    for path in paths:
        rec, gray = _load(path, max_pixels)
        recs.append(rec)
        if gray is not None:
            batches.add(rec, gray)
    batches.close()
    return [tuple(rec.__dict__.values()) for rec in recs]


class _Batches:
    """Scores reduced grey images (PIL images, mode ``L``) gathered by shape into batch
    arrays kept between batches (:func:`_batch_array`: a fresh half-megabyte per batch is
    fresh pages from the kernel), so that numpy's fixed cost per call is paid once per batch.

    With :mod:`lorac.scan._native` each image is read once, where PIL decoded it (Arrow's C
    data interface, no copy), right after its decoding while its pixels are in cache: the
    blur score's sums come back and the rows the perceptual hash starts from go into a float32
    batch, whose hashes are taken together. Without it the pixels are copied into a uint8
    batch scored by numpy (:func:`_score_batch`). Either way each image gets the values
    :func:`_score` gives it alone, bit for bit."""

    def __init__(self) -> None:
        self.native = _native is not None
        self.groups: dict[tuple[int, int], tuple[list[ImageRecord], Any]] = {}

    def add(self, rec: ImageRecord, gray: Any) -> None:
        w, h = gray.size
        group = self.groups.get((h, w))
        if group is None:
            try:
                group = self.groups[(h, w)] = ([], _batch_array(h, w, self.native))
            except Exception:  # no memory for a batch: scored alone
                _score(rec, gray)
                return
        members, batch = group
        try:
            if self.native:
                rec.blur = _variance(*_native_score(gray, h, w, batch, len(members)), h, w)
            else:
                batch[len(members)] = memoryview(gray.tobytes()).cast("B", (h, w))
        except Exception:
            _score(rec, gray)
            return
        members.append(rec)
        if len(members) == len(batch):
            self._score(members, batch, h, w)
            members.clear()

    def close(self) -> None:
        for (h, w), (members, batch) in self.groups.items():
            if members:
                self._score(members, batch[:len(members)], h, w)
        self.groups.clear()

    def _score(self, members: list[ImageRecord], batch: Any, h: int, w: int) -> None:
        if not self.native:
            _score_batch(members, batch)
            return
        try:
            hashes = _phash_products(batch, *_phash_plan(h, w)[2:])
        except Exception as exc:  # e.g. no memory for the products
            for rec in members:
                rec.error, rec.detail = "decode", f"{exc.__class__.__name__}: {exc}"
            return
        for rec, phash in zip(members, hashes, strict=True):
            rec.phash = phash


def _native_score(gray: Any, h: int, w: int, batch: Any, index: int) -> tuple[int, int]:
    """:func:`lorac.scan._native.score` of a grey PIL image into row ``index`` of ``batch``:
    from PIL's own memory where PIL lends it (11.2 and later, an image in one block), else
    from a copy."""

    f, g = _phash_plan(h, w)[:2]
    try:
        pixels = gray.__arrow_c_array__()
    except Exception:  # an older PIL, or an image PIL cannot lend
        pixels = gray.tobytes()
    return _native.score(pixels, h, w, f, g, batch, index)


def _variance(s1: int, s2: int, h: int, w: int) -> float:
    """The blur score from the Laplacian's sum and sum of squares over the interior."""

    if h < 3 or w < 3:
        return 0.0
    n = (h - 2) * (w - 2)
    return round(max(0.0, (s2 - s1 * s1 / n) / n), 3)


_BATCH_PIXELS = 1 << 19  # pixels scored in one batch: its work arrays stay a few MB


def _batch_array(h: int, w: int, native: bool = False) -> Any:
    """The array that a batch of ``h`` × ``w`` images is gathered in: ``(k, h, w)`` uint8
    pixels, with ``k`` images of :data:`_BATCH_PIXELS` at most, or for
    :mod:`lorac.scan._native` ``(k, h / f, w / g)`` float32 block sums (:func:`_phash_plan`),
    as many images again as fit in :data:`_BATCH_PIXELS` × 4 bytes (numpy's cost per call
    is then paid once per 32 images of 256 × 256); kept per shape and thread, for the
    :data:`_KEPT_SHAPES` shapes used last (a set of photos cropped every which way has
    hundreds of shapes: kept all, they would hold 0.5 MB each)."""

    import numpy as np

    kept = _SCRATCH.__dict__.setdefault("batches", {})
    k = max(1, _BATCH_PIXELS // (h * w))
    shape = (k, h, w)
    if native:
        f, g = _phash_plan(h, w)[:2]
        k = max(k, _BATCH_PIXELS // (4 * (h // f) * (w // g)))
        shape = (k, h // f, w // g)
    key = (h, w, native)  # two image shapes can have one batch shape: never one array
    stack = kept.pop(key, None)
    if stack is None:
        stack = np.empty(shape, np.float32 if native else np.uint8)
        if len(kept) >= _KEPT_SHAPES:
            del kept[next(iter(kept))]  # the shape used longest ago
    kept[key] = stack  # last in the order: the most recently used
    return stack


_KEPT_SHAPES = 16


def _score(rec: ImageRecord, gray: Any) -> None:
    """The blur score and the perceptual hash of one reduced grey image (a PIL image or a
    2-D uint8 array), by numpy: what every faster path must give."""

    try:
        import numpy as np

        # one 8-bit array of the reduced image serves the sharpness and the hash
        pixels = np.asarray(gray, dtype=np.uint8)
        rec.blur = _laplacian_variance(pixels)
        rec.phash = _phash(pixels)
    except Exception as exc:
        rec.error, rec.detail = "decode", f"{exc.__class__.__name__}: {exc}"


def _score_batch(recs: list[ImageRecord], stack: Any) -> None:
    """:func:`_score` of images of one shape (a ``(k, h, w)`` uint8 array) at once; each
    image gets the value :func:`_score` gives it, bit for bit (a failure falls back to it
    image by image)."""

    try:
        blurs = _laplacian_variances(stack)
        hashes = _phashes(stack)
    except Exception:  # e.g. out of memory for the batch: image by image
        for rec, pixels in zip(recs, stack, strict=True):
            _score(rec, pixels)
        return
    for rec, blur, phash in zip(recs, blurs, hashes, strict=True):
        rec.blur, rec.phash = blur, phash


def _load(path: str, max_pixels: int) -> tuple[ImageRecord, Any]:
    """The record of ``path`` but its scores, and its reduced grey image (a PIL image, mode
    ``L``, at most :data:`NORM_SIZE` on the long side) when it decodes. No content hash: most
    files of a folder have no possible copy, and hashing costs 4-8 % of the reduced decode (a
    256-px or 2,048-px JPEG, a 1,024-px PNG)."""

    rec = ImageRecord(path=path)
    try:
        st = os.stat(path)
        rec.size, rec.mtime_ns, rec.inode = st.st_size, st.st_mtime_ns, st.st_ino
        if not stat.S_ISREG(st.st_mode):
            rec.error = "unreadable"
            rec.detail = "not a regular file"
            return rec, None
        with open(path, "rb") as fh:
            # a big file is decoded from the disk: memory stays at the decoder's buffers
            data: bytes | Path = fh.read() if st.st_size <= _READ_WHOLE else Path(path)
    except OSError as exc:
        rec.error = "unreadable"
        rec.detail = _os_reason(exc)
        return rec, None
    if isinstance(data, bytes) and not data:
        rec.error, rec.detail = "empty", "zero-byte file"
        return rec, None
    return rec, _decode(rec, data, max_pixels)


_READ_WHOLE = 32 << 20  # files up to this size are read into memory once


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(32)


def _os_reason(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.EISDIR:
        return "is a directory"
    return exc.strerror or exc.__class__.__name__


def _decode(rec: ImageRecord, data: bytes | Path, max_pixels: int) -> Any:
    """Fill ``rec`` from the file's header and decode it to its reduced grey image (a PIL
    image, mode ``L``); ``None`` (and ``rec.error``) when it does not decode."""

    import io

    from PIL import Image, ImageFile, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # the size is judged below, before any pixel is decoded
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        im = Image.open(data if isinstance(data, Path) else io.BytesIO(data))
    except UnidentifiedImageError:
        rec.error, rec.detail = "not-image", "not an image file PIL can identify"
        return None
    except Exception as exc:  # any decoder failure is a finding, not a crash
        rec.error, rec.detail = "decode", f"{exc.__class__.__name__}: {exc}"
        return None
    try:
        rec.width, rec.height = im.size
        rec.format, rec.mode = im.format or "", im.mode
        rec.bit_depth = 16 if im.mode in ("I;16", "I;16B", "I;16L", "I") else 8
        if im.format == "PNG":
            head = data[:32] if isinstance(data, bytes) else _head(data)
            rec.bit_depth = max(rec.bit_depth, _png_bit_depth(head))
        rec.has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            im.mode in ("P", "L", "RGB") and "transparency" in im.info)
        if rec.width * rec.height > max_pixels:
            rec.error = "bomb"
            rec.detail = f"{rec.width}×{rec.height} = {rec.width * rec.height:,} pixels"
            return None
        if _may_have_orientation(im, Image.Image.getexif):
            try:
                rec.orientation = int(im.getexif().get(0x0112, 1) or 1)
            except Exception:  # a broken EXIF block is not worth a finding
                rec.orientation = 1
        long_side = max(rec.width, rec.height)
        scale = min(1.0, NORM_SIZE / long_side)
        target = (max(1, round(rec.width * scale)), max(1, round(rec.height * scale)))
        if im.format == "JPEG":
            im.draft("L", target)
        im.load()
    except Exception as exc:
        text = str(exc)
        rec.error = "truncated" if "truncated" in text.lower() or isinstance(
            exc, EOFError) else "decode"
        rec.detail = text or exc.__class__.__name__
        return None
    try:
        gray = im if im.mode == "L" else _to_gray(im)
        if gray.size != target:
            gray = gray.resize(target, Image.Resampling.BOX)
        return gray
    except Exception as exc:
        rec.error, rec.detail = "decode", f"{exc.__class__.__name__}: {exc}"
    return None


def _may_have_orientation(im: Any, base_getexif: Any) -> bool:
    """Whether ``im.getexif()`` may find an orientation: PIL's ``Image.getexif`` reads it
    only from the header's EXIF or XMP blocks (``info`` keys such as ``exif``, ``Raw profile
    type exif``, ``xmp``, ``XML:com.adobe.xmp``) or a TIFF's own tags; without any, building
    the empty ``Exif`` costs more than the rest of the header facts. A format whose plugin
    reads EXIF its own way (PNG looks for an ``eXIf`` chunk after the pixels) is always
    asked."""

    if getattr(type(im), "getexif", None) is not base_getexif or hasattr(im, "tag_v2"):
        return True
    return any(not isinstance(key, str) or "exif" in key.lower() or "xmp" in key.lower()
               for key in im.info)


def _to_gray(im: Any) -> Any:
    try:
        return im.convert("L")
    except (ValueError, OSError):
        return im.convert("RGB").convert("L")


def _laplacian_variance(gray: Any) -> float:
    """Variance of the 4-neighbour Laplacian of an 8-bit grey image (PIL image or 2-D array
    of values 0–255) over its interior, where every pixel has four neighbours: 0 when it has
    none. See :func:`_laplacian_variances`, which this is for a stack of one."""

    import numpy as np

    a = np.asarray(gray)
    return _laplacian_variances(a.reshape(1, *a.shape))[0]


def _laplacian_variances(stack: Any) -> list[float]:
    """:func:`_laplacian_variance` of each image of a ``(k, h, w)`` stack of 8-bit grey
    images, in one pass of each numpy step over the whole stack, in exact integer arithmetic
    (the C path, :mod:`lorac.scan._native`, does the same in one pass per image).

    The stack is laid out flat in int16 between ``w`` zeros on each side, so the north,
    south, west and east neighbours are fixed offsets for every centre; the first and last
    row and column of each image (whose neighbours lie outside it) are zeroed. The plain sum
    telescopes to the first and last two interior rows and columns, so it costs no pass at
    all. The squares are made and summed per row in one ``einsum`` pass in int32 (a row of at
    most 2,064 squares of at most 1020² stays below 2³¹), then per image: summing the int32
    squares into int64 directly costs more than all the rest. Every pass writes into work
    arrays kept between calls: a fresh array per step costs more in page faults than the
    arithmetic on it."""

    import numpy as np

    k, h, w = stack.shape
    if w < 3 or h < 3:
        return [0.0] * k
    size = k * h * w
    pixels, lap, squares = _scratch(np, size + 2 * w, size)
    centre = squares.view(np.int16)[:size]  # the squares' memory is free until they are made
    pixels[:w] = 0
    pixels[size + w:] = 0
    np.copyto(pixels[w:size + w].reshape(k, h, w), stack, casting="unsafe")
    np.add(pixels[w - 1:size + w - 1], pixels[w + 1:size + w + 1], out=lap)
    np.add(lap, pixels[:size], out=lap)
    np.add(lap, pixels[2 * w:size + 2 * w], out=lap)
    np.multiply(pixels[w:size + w], 4, out=centre)
    np.subtract(lap, centre, out=lap)
    images = lap.reshape(k, h, w)
    images[:, 0] = 0
    images[:, h - 1] = 0
    images[:, :, 0] = 0
    images[:, :, w - 1] = 0
    # Σ over the interior of (N + S - 2C) is r0 - r1 - r[h-2] + r[h-1] with r the row sums
    # over the interior columns; likewise (W + E - 2C) with the column sums
    r = stack[:, [0, 1, h - 2, h - 1], 1:w - 1].sum(axis=2, dtype=np.int64)
    c = stack[:, 1:h - 1, [0, 1, w - 2, w - 1]].sum(axis=1, dtype=np.int64)
    s1s = (r[:, 0] - r[:, 1] - r[:, 2] + r[:, 3] + c[:, 0] - c[:, 1] - c[:, 2]
           + c[:, 3]).tolist()
    np.copyto(squares, lap)
    if w <= _INT32_ROW:  # each row's squares multiplied and summed in one pass
        rows = squares.reshape(k * h, w)
        s2s = np.einsum("ij,ij->i", rows, rows).reshape(k, h).sum(
            axis=1, dtype=np.int64).tolist()
    else:
        np.multiply(squares, squares, out=squares)
        s2s = squares.reshape(k, h * w).sum(axis=1, dtype=np.int64).tolist()
    return [_variance(s1, s2, h, w) for s1, s2 in zip(s1s, s2s, strict=True)]


_INT32_ROW = (2**31 - 1) // 1020**2  # the longest row whose squared Laplacian sums in int32


_SCRATCH = threading.local()  # work arrays per thread: two threads never share one


def _scratch(np: Any, size: int, inner: int) -> tuple[Any, Any, Any]:
    """Work arrays of :func:`_laplacian_variances` (int16 pixels, int16 Laplacian, int32
    squares), kept between calls and grown when a stack needs more."""

    kept = _SCRATCH.__dict__
    if kept.get("size", 0) < size:
        kept.update(size=size, pixels=np.empty(size, np.int16),
                    lap=np.empty(size, np.int16), squares=np.empty(size, np.int32))
    return kept["pixels"][:size], kept["lap"][:inner], kept["squares"][:inner]


_PHASH_SIDES: dict[tuple[int, bool], Any] = {}


def _pil_weights(src: int, dst: int, support: float,
                 kernel: Callable[[float], float]) -> Any:
    """The resampling weights PIL uses to scale ``src`` samples to ``dst``
    (``precompute_coeffs`` in libImaging/Resample.c), as a dense ``dst × src`` float64 array
    (each row's few weights computed as PIL does, in Python, and put in place)."""

    import numpy as np

    scale = src / dst
    filterscale = max(1.0, scale)
    support *= filterscale
    out = np.zeros((dst, src))
    for xx in range(dst):
        centre = (xx + 0.5) * scale
        lo = max(0, int(centre - support + 0.5))
        hi = min(src, int(centre + support + 0.5))
        ws = [kernel((x - centre + 0.5) / filterscale) for x in range(lo, hi)]
        total = sum(ws) or 1.0
        out[xx, lo:hi] = [v / total for v in ws]
    return out


def _box(x: float) -> float:
    return 1.0 if -0.5 <= x < 0.5 else 0.0


def _lanczos(x: float) -> float:
    def sinc(v: float) -> float:
        return 1.0 if v == 0 else math.sin(math.pi * v) / (math.pi * v)

    return sinc(x) * sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


def _phash_side(length: int, boxed: bool) -> Any:
    """The 8×``length`` float32 matrix that takes one side of an image to the first 8 DCT-II
    coefficients (scipy's) of its 32-sample Lanczos downscale — after a box downscale to 64
    samples first when ``boxed`` — with PIL's own resampling weights (:func:`_pil_weights`).
    Kept per side length: a dataset of many aspect ratios has a few hundred at most."""

    import numpy as np

    side = _PHASH_SIDES.get((length, boxed))
    if side is None:
        if boxed:  # the DCT of the Lanczos 64 → 32 is one matrix for every length
            side = _phash_head() @ _pil_weights(length, 64, 0.5, _box)
        else:
            side = _dct8() @ _pil_weights(length, 32, 3.0, _lanczos)
        side = np.ascontiguousarray(side, dtype=np.float32)
        if len(_PHASH_SIDES) < 1024:
            _PHASH_SIDES[(length, boxed)] = side
    return side


@functools.cache
def _dct8() -> Any:
    """The first 8 rows of scipy's unnormalised DCT-II matrix of 32 samples."""

    import numpy as np

    n = np.arange(32)
    return (2.0 * np.cos(np.pi * np.outer(n, 2 * n + 1) / 64.0))[:8]


@functools.cache
def _phash_head() -> Any:
    """:func:`_dct8` of PIL's Lanczos 64 → 32: what every boxed side ends with."""

    return _dct8() @ _pil_weights(64, 32, 3.0, _lanczos)


_PHASH_ROWS = 262_144  # rows × width × 8 per matrix product: OpenBLAS stays on one thread


def _phash(gray: Any) -> str:
    """imagehash's ``phash`` (hash_size 8, highfreq_factor 4) of the 64×64 box downscale of a
    grey image (PIL image or 2-D array; of the image itself when neither side exceeds 64), up
    to rounding: the 8×8 low-frequency DCT-II coefficients of its 32×32 Lanczos downscale
    compared with their median, written as imagehash writes it (16 hex digits).

    The box and Lanczos weights (PIL's own, :func:`_pil_weights`) and the DCT are linear, so
    they fold into an 8×height and a width×8 matrix (:func:`_phash_side`) and the hash is two
    matrix products on the pixels themselves: no PIL resize, no DCT of 32×32, no 8-bit image
    in between. PIL rounds its 64×64 and 32×32 images to 8 bits, this does not: a coefficient
    within rounding of the median may swap its bit with another (``tests/test_dataset.py``
    bounds the difference to ``imagehash.phash``). No scipy: its import costs ~0.6 s in every
    scanning process. See :func:`_phashes`, which this is for a stack of one.
    """

    import numpy as np

    a = np.asarray(gray)
    return _phashes(a.reshape(1, *a.shape))[0]


def _phashes(stack: Any) -> list[str]:
    """:func:`_phash` of each image of a ``(k, h, w)`` stack of 8-bit grey images, in one
    pass of each numpy step over the stack: the rows of :func:`_phash_plan` in float32 (the
    C path, :mod:`lorac.scan._native`, sums them in one pass per image), then
    :func:`_phash_products`."""

    import numpy as np

    k, h, w = stack.shape
    f, g, left, right = _phash_plan(h, w)
    pixels = _phash_scratch(np, k * (h // f) * (w // g)).reshape(k, h // f, w // g)
    # block sums, exact in integers and then in float32 (f * g * 255 < 2**24); one reduction
    # over both axes of a (k, h/f, f, w/g, g) view costs ten times these two steps
    wide = np.uint16 if f * g * 255 < 1 << 16 else np.uint32
    rows = np.add.reduce(stack.reshape(k, h // f, f, w), axis=2, dtype=wide) if f > 1 else stack
    if g > 1:
        blocks = rows[..., 0::g].astype(wide)
        for j in range(1, g):
            blocks += rows[..., j::g]
        rows = blocks
    np.copyto(pixels, rows, casting="unsafe")
    return _phash_products(pixels, left, right)


@functools.lru_cache(maxsize=1024)
def _phash_plan(h: int, w: int) -> tuple[int, int, Any, Any]:
    """How the perceptual hash of an ``h`` × ``w`` image is taken: ``(f, g, left, right)``,
    the hash being the signs about their median of ``left @ blocks @ right``, where
    ``blocks`` are the sums of the image's blocks of ``f`` rows by ``g`` columns (8 × h/f and
    w/g × 8 float32 matrices).

    When the height is a multiple of 64 (the 256-px box and its 4:3 and 2:1 shapes), the box
    to 64 rows is exact sums of ``f = h / 64`` rows in integers, and its weights ``1/f`` fold
    into the left matrix; the width likewise, with ``g = w / 64`` and the right matrix: the
    products run on a sixteenth of the pixels of a 256-px square. Otherwise ``f`` (or ``g``)
    is 1 and the box is in the matrices. Kept per shape: a dataset of many aspect ratios has
    a few hundred at most."""

    import numpy as np

    boxed = w > 64 or h > 64
    if w > 64 and w % 64 == 0:
        g, right = w // 64, (_phash_side(64, True) / np.float32(w // 64)).T
    else:
        g, right = 1, _phash_side(w, boxed).T
    if h > 64 and h % 64 == 0:
        return h // 64, g, _phash_side(64, True) / np.float32(h // 64), right
    return 1, g, _phash_side(h, boxed), right


def _phash_products(pixels: Any, left: Any, right: Any) -> list[str]:
    """The hashes of a ``(k, rows, columns)`` float32 stack of :func:`_phash_plan` block
    sums: the 8×8 low frequencies ``left @ blocks @ right`` of each image against their
    median, as imagehash writes them (16 hex digits). An image's hash does not depend on the
    others in its stack (numpy's stacked ``matmul`` makes the same BLAS call for each image).
    The products run in rows of at most :data:`_PHASH_ROWS` multiply-adds, below the size at
    which OpenBLAS starts threads that would spin on the cores the other scanning processes
    use."""

    import numpy as np

    k, h, w = pixels.shape
    cols = np.empty((k, h, 8), np.float32)
    step = max(1, _PHASH_ROWS // (8 * w))
    for top in range(0, h, step):
        np.matmul(pixels[:, top:top + step], right, out=cols[:, top:top + step])
    low = np.matmul(left, cols).reshape(k, 64)
    middle = np.partition(low, (31, 32), axis=1)
    median = (middle[:, 31] + middle[:, 32]) / 2
    text = np.packbits(low > median[:, None], axis=1).tobytes().hex()
    return [text[i:i + 16] for i in range(0, 16 * k, 16)]


def _phash_scratch(np: Any, size: int) -> Any:
    kept = _SCRATCH.__dict__
    if kept.get("float_size", 0) < size:
        kept.update(float_size=size, floats=np.empty(size, np.float32))
    return kept["floats"][:size]


# -- the cache (lorac/scan/scancache.py)


def _cache_tag(config: DatasetConfig) -> str:
    return f"v{SCAN_VERSION}:norm{NORM_SIZE}:max{config.max_pixels}"


_FLUSH_EVERY = 256  # scanned records are committed to the cache in batches of this many,
# while the pool scans the next ones: the last batch, written after the pool has ended, is small


def worker_count(config: DatasetConfig) -> int:
    """Processes to scan with: ``workers`` or the CPUs this process may run on."""

    if config.workers:
        return config.workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _scan_task(args: tuple[str, int]) -> tuple[Any, ...]:
    """:func:`scan_file` as the record's values in field order: the cache row after the path,
    and smaller to send back from a worker than the dict."""

    return tuple(scan_file(*args).values())


def _scan_chunk(args: tuple[list[str], int]) -> list[tuple[Any, ...]]:
    """:func:`scan_files` of a chunk of paths (a pool worker's task)."""

    return scan_files(*args)


_CHUNK = 32  # images per pool task at most: scored together, sent back together
_CHUNK_MIN = 8  # and at least (but for the last ones of a small set): one scoring batch


def _chunk_bounds(count: int, workers: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the pool tasks for ``count`` images: each a quarter of what is
    left per worker, between :data:`_CHUNK_MIN` and :data:`_CHUNK` — large while much is
    left (fewer hand-overs), shrinking towards the end, so that the workers finish together
    instead of one scanning a whole last chunk while the other waits."""

    bounds = []
    start = 0
    while start < count:
        left = count - start
        size = min(_CHUNK, max(min(_CHUNK_MIN, -(-left // workers)), left // (workers * 4)))
        bounds.append((start, start + size))
        start += size
    return bounds


def run_parallel(fn: Callable[[Any], Any], items: list[Any], workers: int,
                 on_done: Callable[[int], None] | None = None,
                 on_result: Callable[[Any], None] | None = None,
                 pool_min: int | None = None, chunksize: int | None = None) -> list[Any]:
    """``fn`` over ``items`` in ``workers`` processes (in-process when fewer than
    ``pool_min``, default :data:`_POOL_MIN`), results in order, with Python's cyclic
    collector running either way (a caller may have paused it: :func:`_collector_paused`);
    ``chunksize`` items per hand-over to a worker (default: up to 16, fewer for few items).
    ``on_done(count)`` and ``on_result(value)`` are called as each result arrives; with
    ``on_result`` the results are handed over only there (the list returned is empty)."""

    if not items:
        return []
    if workers <= 1 or len(items) < (_POOL_MIN if pool_min is None else pool_min):
        out = []
        with _collector_running():
            for i, item in enumerate(items, 1):
                value = fn(item)
                if on_result:
                    on_result(value)
                else:
                    out.append(value)
                if on_done:
                    on_done(i)
        return out
    import multiprocessing

    try:
        import numpy  # noqa: F401 - imported once here so that forked workers share it
    except ImportError:  # pragma: no cover
        pass
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    chunk = chunksize or max(1, min(16, len(items) // (workers * 8)))
    results: list[Any] = [] if on_result else [None] * len(items)
    with _quiet_pool()(workers, context=ctx, initializer=gc.enable) as pool:
        for done, (i, value) in enumerate(
                pool.imap_unordered(_indexed, [(fn, i, it) for i, it in enumerate(items)],
                                    chunksize=chunk), 1):
            if on_result:
                on_result(value)
            else:
                results[i] = value
            if on_done:
                on_done(done)
    return results


@functools.cache
def _quiet_pool() -> type:
    """``multiprocessing.pool.Pool`` whose worker-handler thread waits only for a worker to
    end or the pool to change, as ``ThreadPool``'s does. The stock one also waits for the
    result pipe to become readable, so between a worker's write and the result thread's read
    it loops on ``wait`` and ``waitpid`` in the parent: about a tenth of a core for as long as
    results keep coming, taken from the two the workers scan on. Nothing here needs that
    wake-up: a worker that ends wakes the handler through its own sentinel (there is no
    ``maxtasksperchild``), and the pool's close and drained cache through its notifier."""

    from multiprocessing.pool import Pool

    class QuietPool(Pool):
        def _get_sentinels(self) -> list[Any]:
            # private to CPython's pool (3.8+): without it, the stock behaviour
            notifier = getattr(self, "_change_notifier", None)
            reader = getattr(notifier, "_reader", None)
            return [reader] if reader is not None else super()._get_sentinels()

    return QuietPool


def _indexed(args: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, Any]:
    fn, i, item = args
    return i, fn(item)


class Progress:
    """A one-line progress bar on ``stream`` (stderr), drawn only when it is a terminal."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.label = label
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = (bool(isatty and isatty()) if enabled is None else enabled) and total > 0
        self._last = 0.0

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < self.total and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{done}/{self.total}")
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def scan(paths: Iterable[Path], config: DatasetConfig | None = None, *,
         cache_dir: Path | None = CACHE_DIR, progress: TextIO | None = None,
         show_progress: bool | None = None) -> dict[str, ImageRecord]:
    """Scan image files → records by path string, in the order of ``paths``.

    Unchanged files (same size, mtime_ns and inode) are read from the cache
    (:class:`lorac.scan.scancache.ScanCache`); the rest are scanned by :func:`scan_file` in a
    process pool and committed to the cache in batches as they arrive. ``cache_dir=None``
    disables the cache.
    """

    from lorac.scan.scancache import ScanCache

    config = config or DatasetConfig()
    use_cache = cache_dir is not None and config.cache
    cache = ScanCache(cache_dir, _cache_tag(config), {"images": ImageRecord}) if (
        use_cache) else None  # type: ignore[arg-type]
    try:
        return _scan_with(paths, config, cache, progress, show_progress)
    finally:
        if cache is not None:
            cache.close()


def _stats(paths: list[str], config: DatasetConfig) -> list[tuple[int, int, int, int] | int]:
    """Each path's ``(size, mtime_ns, inode, mode)`` as :func:`os.stat` gives them, or the
    errno of its failure: on up to ``workers`` threads in C where :mod:`lorac.scan._native`
    is built (a check of an unchanged folder is mostly these stats)."""

    many = getattr(_native, "stat_many", None)
    if many is not None:
        return many(paths, worker_count(config))
    out: list[tuple[int, int, int, int] | int] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as exc:
            out.append(exc.errno or errno.EIO)
        except ValueError:  # a NUL in the name
            out.append(errno.EINVAL)
        else:
            out.append((st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode))
    return out


def _preload_decoders() -> None:
    """PIL and the plugins that ``Image.open`` loads first (JPEG, PNG, BMP, GIF, PPM),
    imported here before the pool forks: each worker would import them on its first image,
    about 25 ms of a core each, a twentieth of a first scan of 2,000 small images."""

    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - a run-time dependency
        return
    Image.preinit()


def _cached_records(order: list[str], config: DatasetConfig, cache: Any) -> tuple[
        dict[str, ImageRecord], list[str], dict[str, str], list[tuple[str, list[str]]]]:
    """The records of the unchanged files in ``order`` from the cache, the paths to scan, the
    cache key (the folder's real path) of each path's head (the text up to its file name),
    and each folder's cache key with its cached names no longer listed."""

    # grouped by the text up to the last separator (os.path.basename is what follows it on
    # POSIX): one os.path.dirname per group, not per file; a folder's files come in a run
    sep = os.sep if os.altsep is None else None
    by_head: dict[str, tuple[list[str], list[str]]] = {}
    head, cut, group = None, 0, ([], [])
    for name in order:
        if sep is None:  # pragma: no cover - Windows paths have two separators and drives
            group = by_head.setdefault(os.path.dirname(name), ([], []))
            group[0].append(name)
            group[1].append(os.path.basename(name))
            continue
        end = name.rfind(sep) + 1
        if end != cut or head is None or not name.startswith(head):
            head, cut = name[:end], end
            group = by_head.setdefault(head, ([], []))
        group[0].append(name)
        group[1].append(name[cut:])
    by_folder: dict[str, tuple[list[str], list[str]]] = {}
    folder_of: dict[str, str] = {}
    for head, (names, bases) in by_head.items():
        folder_of[head] = folder = os.path.dirname(names[0])
        into = by_folder.setdefault(folder, ([], []))
        into[0].extend(names)
        into[1].extend(bases)
    del by_head
    real = {folder: _real(Path(folder or ".")) for folder in by_folder}
    keys = {head: real[folder] for head, folder in folder_of.items()}
    records: dict[str, ImageRecord] = {}
    todo: list[str] = []
    stale: list[tuple[str, list[str]]] = []
    for folder, (names, bases) in by_folder.items():
        key = real[folder]
        entries = cache.load("images", key) if cache is not None else {}
        pop = entries.pop
        hits = [pop(base, None) for base in bases]
        stats = iter(_stats([name for name, hit in zip(names, hits, strict=True)
                             if hit is not None], config))
        for name, hit in zip(names, hits, strict=True):
            if hit is not None:
                st = next(stats)
                if type(st) is tuple and hit[:3] == st[:3]:  # else an errno, or changed
                    rec = records[name] = ImageRecord(name, *hit)
                    rec.has_alpha = bool(rec.has_alpha)
                    continue
            todo.append(name)
        stale.append((key, list(entries)))  # cached files no longer in the listing
    return records, todo, keys, stale


def _scan_with(paths: Iterable[Path], config: DatasetConfig, cache: Any,
               progress: TextIO | None, show_progress: bool | None) -> dict[str, ImageRecord]:
    order = [str(p) for p in paths]
    with _collector_paused():
        records, todo, keys, stale = _cached_records(order, config, cache)
    if cache is not None:
        # a record's values after its path are the cache row (ScanCache's columns are the
        # fields of ImageRecord but the first, path)
        pending: list[tuple[Any, ...]] = []

        sep = os.sep if os.altsep is None else None

        def flush() -> None:
            by_key: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
            for row in pending:
                name = row[0]
                if sep is None:  # pragma: no cover - Windows: heads are os.path.dirname's
                    head, base = os.path.dirname(name), os.path.basename(name)
                else:  # the head as _cached_records cut it
                    cut = name.rfind(sep) + 1
                    head, base = name[:cut], name[cut:]
                by_key.setdefault(keys[head], []).append((base, row[1:]))
            for key, rows in by_key.items():
                cache.store("images", key, rows)
            pending.clear()

    def arrived(row: tuple[Any, ...]) -> None:
        rec = records[row[0]] = ImageRecord(*row)
        if cache is not None and rec.error != "unreadable":
            pending.append(row)
            if len(pending) >= _FLUSH_EVERY:
                flush()

    _scan_todo(todo, config, arrived, progress, show_progress)
    if cache is not None:
        flush()
        for key, names in stale:
            if names:
                cache.store("images", key, (), stale=names)
    if list(records) != order:  # the cache's hits came first, or another folder's files
        records = {name: records[name] for name in order if name in records}
    return records


def _scan_todo(todo: list[str], config: DatasetConfig, arrived: Callable[[Any], None],
               progress: TextIO | None, show_progress: bool | None) -> None:
    """Scan ``todo``, in the pool or (few files, one worker) here, each row to ``arrived``."""

    workers = worker_count(config)
    if not todo:
        return
    if workers > 1 and len(todo) >= _POOL_MIN:
        _preload_decoders()
    if workers <= 1 or len(todo) < _POOL_MIN:
        bar = Progress(len(todo), "scanning images", progress, show_progress)
        run_parallel(_scan_task, [(p, config.max_pixels) for p in todo], 1, bar, arrived)
    elif todo:  # the pool scans chunks, enough of them to keep every worker busy to the end
        bar = Progress(len(todo), "scanning images", progress, show_progress)
        done = 0

        def arrived_chunk(rows: list[tuple[Any, ...]]) -> None:
            nonlocal done
            for row in rows:
                arrived(row)
            done += len(rows)
            bar(done)

        run_parallel(_scan_chunk, [(todo[i:j], config.max_pixels)
                                   for i, j in _chunk_bounds(len(todo), workers)],
                     workers, None, arrived_chunk, pool_min=1, chunksize=1)


# --------------------------------------------------------------------------- listing


@dataclass
class Listing:
    """A folder as sd-scripts sees it: its images, the other files, the problems. The files
    are path strings (``str(folder / name)``): a folder of 100,000 images made as many
    ``Path`` objects, and every later step turned them back into strings."""

    folder: Path
    error: str | None = None
    images: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    ignored_images: list[str] = field(default_factory=list)
    subfolder_images: dict[str, int] = field(default_factory=dict)


def _real(folder: Path) -> str:
    """``folder`` with links resolved, never raising (loops, NUL bytes, names too long)."""

    try:
        return os.path.realpath(folder)
    except (OSError, ValueError):
        return str(folder)


def list_folder(folder: Path) -> Listing:
    """List ``folder`` without following it anywhere sd-scripts would not go."""

    out = Listing(folder)
    try:
        if not folder.exists():
            out.error = "does not exist" if not folder.is_symlink() else "is a broken link"
            return out
        if not folder.is_dir():
            out.error = "is not a directory"
            return out
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        out.error = f"cannot be listed ({_os_reason(exc) if isinstance(exc, OSError) else exc})"
        return out
    prefix = _child_prefix(folder)
    try:
        out.images, out.ignored_images, out.others, dirs = _entries(folder, prefix)
    except OSError as exc:
        out.error = f"cannot be listed ({_os_reason(exc)})"
        return out
    for name in sorted(dirs):
        if not name.startswith("."):
            count = _count_images(prefix + name)
            if count:
                out.subfolder_images[name] = count
    return out


def _entries(folder: Path, prefix: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """The entries of ``folder`` (but ``.`` and ``..``) by kind: the files that sd-scripts
    reads as images, the other images, the other files (each ``prefix + name``, sorted;
    without dot-files, which ``glob("*")`` skips), and the names of the folders — what
    :meth:`os.DirEntry.is_dir` calls one (a directory, or a link to one). In C where
    :mod:`lorac.scan._native` is built: 100,000 images and their captions made as many
    ``DirEntry`` objects, then a path string each in the interpreter's loop."""

    native = getattr(_native, "list_dir", None)
    if native is not None:
        return native(folder, prefix, SD_IMAGE_EXTENSIONS, OTHER_IMAGE_EXTENSIONS)
    files: list[str] = []
    dirs: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(entry.name)
    images: list[str] = []
    ignored: list[str] = []
    others: list[str] = []
    for name in sorted(files):
        if name[0] == ".":
            continue
        dot = name.rfind(".")
        ext = name[dot:] if dot > 0 else ""  # os.path.splitext for names not starting with "."
        if ext in SD_IMAGE_EXTENSIONS:
            images.append(prefix + name)
        elif ext.lower() in OTHER_IMAGE_EXTENSIONS:
            ignored.append(prefix + name)
        else:
            others.append(prefix + name)
    return images, ignored, others, dirs


def _child_prefix(folder: Path) -> str:
    """What ``str(folder / name)`` puts before ``name``."""

    base = str(folder)
    return "" if base == "." else base if base.endswith(os.sep) else base + os.sep


def _count_images(folder: str) -> int:
    try:
        return sum(1 for e in os.scandir(folder)
                   if os.path.splitext(e.name)[1].lower() in OTHER_IMAGE_EXTENSIONS)
    except OSError:
        return 0


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One dataset finding. ``file`` is the file it is about (``None``: the folder or the
    profile); ``anchor`` names the profile key it belongs to in ``lorac lint``."""

    code: str
    message: str
    file: str | None = None
    anchor: str = "image_dir"  # image_dir | caption_extension | class_tokens | keep_tokens
    hint: str | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class FolderResult:
    """Everything one folder yielded: listing, records, caption texts, findings, stats."""

    spec: SubsetSpec
    listing: Listing
    records: dict[str, ImageRecord] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)  # caption path → text as trained
    findings: list[Finding] = field(default_factory=list)
    blur_median: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "image_dir": self.spec.image_dir,
            "caption_extension": self.spec.caption_extension,
            "error": self.listing.error,
            "images": [asdict(self.records[p]) if p in self.records else {"path": p}
                       for p in self.listing.images],
            "captions": self.captions,
            "blur_median": self.blur_median,
            "findings": [{"code": f.code, "file": f.file, "message": f.message,
                          "data": f.data} for f in self.findings],
        }


def _word_re(token: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in token.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(parts) + r"(?!\w)", re.I)


@dataclass
class CaptionRecord:
    """A caption file's whole text (UTF-8) as last read, valid while its (size, mtime_ns,
    inode) are these: a warm check stats the caption instead of opening and reading it."""

    path: str
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    text: str = ""


_CAPTION_TAG = "captions-v1"


def _read_caption(path: str, spec: SubsetSpec, st: tuple[int, int, int, int] | int,
                  hit: tuple[Any, ...] | None = None,
                  fresh: list[tuple[str, tuple[Any, ...]]] | None = None,
                  base: str | None = None) -> tuple[str | None, Finding | None]:
    """The caption as sd-scripts trains it (before shuffling), or the finding that stops it.
    ``st``: the caption's :func:`_stats` row, taken before the read (a change during the read
    shows at the next stat). ``hit``: the file's cache row (size, mtime_ns, inode, text),
    whose text is taken while the file is unchanged; a file read afresh is appended to
    ``fresh``. ``base``: the file name of ``path``, when the caller has it."""

    name = str(path)
    if base is None:
        base = os.path.basename(name)
    try:
        if isinstance(st, int):
            raise OSError(st, os.strerror(st))
        if not stat.S_ISREG(st[3]):
            return None, Finding("LRC507", f"caption {name} cannot be read (not a regular "
                                 "file)", name)
        if hit is not None and hit[:3] == st[:3]:
            raw = None
            text = hit[3]
        else:
            with open(name, "rb") as fh:
                raw = fh.read()
    except OSError as exc:
        return None, Finding("LRC507", f"caption {name} cannot be read "
                             f"({_os_reason(exc)})", name)
    if raw is not None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, Finding(
                "LRC507", f"caption {name} is not UTF-8 (byte 0x{raw[exc.start]:02x} at "
                f"offset {exc.start}); sd-scripts stops with UnicodeDecodeError when it reads "
                "it", name, hint="re-save the caption as UTF-8")
        if fresh is not None:
            fresh.append((base, (*st[:3], text)))
    return _caption_of(text, name, spec)


def _caption_of(text: str, name: str, spec: SubsetSpec) -> tuple[str | None, Finding | None]:
    """The caption that sd-scripts trains from the text of caption file ``name``, or the
    finding that stops it (:func:`_read_caption`)."""

    lines = text.splitlines()
    if len(lines) == 1 and not spec.enable_wildcard:  # most captions: one line, no wildcards
        caption = lines[0].strip()
        if caption:
            return (_decorate(caption, spec) if spec.caption_prefix or spec.caption_suffix
                    else caption), None
    if not lines:
        return None, Finding(
            "LRC506", f"caption {name} is empty: sd-scripts stops with an assertion "
            "(library/dreambooth_dataset.py:107)", name, hint="write a caption or delete the file")
    caption = ("\n".join(ln.strip() for ln in lines if ln.strip()) if spec.enable_wildcard
               else lines[0].strip())
    if not caption:
        return "", Finding("LRC506", f"caption {name} has an empty first line: the image "
                           "trains with an empty caption", name)
    if not spec.enable_wildcard and len(lines) > 1 and sum(1 for ln in lines if ln.strip()) > 1:
        return _decorate(caption, spec), Finding(
            "LRC524", f"caption {name} has {sum(1 for ln in lines if ln.strip())} lines; "
            "sd-scripts reads only the first (unless enable_wildcard = true)", name)
    return _decorate(caption, spec), None


def _decorate(caption: str, spec: SubsetSpec) -> str:
    if spec.caption_prefix:
        caption = spec.caption_prefix + " " + caption
    if spec.caption_suffix:
        caption = caption + " " + spec.caption_suffix
    return caption


def _fixed_part(caption: str, spec: SubsetSpec) -> str | None:
    """The part of the caption that ``keep_tokens``/``keep_tokens_separator`` keep in place."""

    sep = spec.keep_tokens_separator
    if sep and sep in caption:
        return caption.split(sep, 1)[0]
    if spec.keep_tokens > 0:
        tokens = [t.strip() for t in caption.strip().split(spec.caption_separator)]
        return spec.caption_separator.join(tokens[: spec.keep_tokens])
    return None


def make_bucket_resolutions(reso: tuple[int, int], min_size: int, max_size: int,
                            step: int) -> list[tuple[int, int]]:
    """sd-scripts' predefined buckets (library/model_util.py:1388-1416)."""

    max_area = reso[0] * reso[1]
    resos = {(int(math.sqrt(max_area) // step) * step,) * 2}
    width = min_size
    while width <= max_size:
        height = min(max_size, int((max_area // width) // step) * step)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += step
    return sorted(resos)


def select_bucket(width: int, height: int, spec: SubsetSpec,
                  buckets: list[tuple[int, int]] | None = None,
                  ) -> tuple[tuple[int, int], tuple[int, int]]:
    """(bucket, resized size) of a ``width``×``height`` image (library/dataset.py:251-311)."""

    assert spec.resolution is not None
    aspect = width / height
    step = spec.bucket_reso_steps
    if spec.enable_bucket and spec.bucket_no_upscale:
        max_area = spec.resolution[0] * spec.resolution[1]
        if width * height > max_area:
            rw = math.sqrt(max_area * aspect)
            rh = max_area / rw

            def rnd(x: float) -> int:
                x = int(x + 0.5)
                return x - x % step

            bw = rnd(rw)
            bh_w = max(1, rnd(bw / aspect))
            bh = rnd(rh)
            bw_h = rnd(bh * aspect)
            if bh and abs(bw / bh_w - aspect) < abs(bw_h / bh - aspect):
                resized = (bw, int(bw / aspect + 0.5))
            else:
                resized = (int(max(bh, step) * aspect + 0.5), max(bh, step))
        else:
            resized = (width, height)
        return (max(step, resized[0] - resized[0] % step),
                max(step, resized[1] - resized[1] % step)), resized
    if buckets is None:
        buckets = bucket_list(spec)
    if (width, height) in buckets:
        reso = (width, height)
    else:
        reso = min(buckets, key=lambda b: abs(b[0] / b[1] - aspect))
    scale = reso[1] / height if aspect > reso[0] / reso[1] else reso[0] / width
    return reso, (int(width * scale + 0.5), int(height * scale + 0.5))


def bucket_list(spec: SubsetSpec) -> list[tuple[int, int]]:
    """The predefined buckets of ``spec`` (one, the resolution, without ``enable_bucket``)."""

    assert spec.resolution is not None
    if not spec.enable_bucket:
        return [spec.resolution]
    step = spec.bucket_reso_steps
    lo = spec.min_bucket_reso - spec.min_bucket_reso % step
    hi = spec.max_bucket_reso
    if hi % step:
        hi = hi + step - hi % step
    return make_bucket_resolutions(spec.resolution, lo, hi, step)


def analyse_folder(spec: SubsetSpec, config: DatasetConfig, *, triggers: Iterable[str] = (),
                   memo: dict[str, Any] | None = None, cache_dir: Path | None = CACHE_DIR,
                   progress: TextIO | None = None,
                   show_progress: bool | None = None) -> FolderResult:
    """All findings of one subset folder (LRC501–LRC520, LRC523–LRC524).

    ``memo`` shares listings and scans between subsets and profiles that name the same folder.
    """

    with _collector_paused():
        return _analyse_folder(spec, config, triggers, memo, cache_dir, progress, show_progress)


def _analyse_folder(spec: SubsetSpec, config: DatasetConfig, triggers: Iterable[str],
                    memo: dict[str, Any] | None, cache_dir: Path | None,
                    progress: TextIO | None, show_progress: bool | None) -> FolderResult:
    memo = {} if memo is None else memo
    folder = spec.folder
    key = ("listing", _real(folder))
    listing = memo.get(key)
    if listing is None:
        listing = memo[key] = list_folder(folder)
    result = FolderResult(spec, listing)
    add = result.findings.append

    def bar(total: int, label: str) -> Progress | None:
        shown = Progress(total, label, progress, show_progress)
        return shown if shown.enabled else None  # nothing to draw: no call per item

    if listing.error:
        add(Finding("LRC501", f"image_dir {spec.image_dir} {listing.error}", None,
                    hint="sd-scripts warns 'not directory' and trains on nothing from it"))
        return result

    scan_key = ("scan", key[1])
    records = memo.get(scan_key)
    if records is None:
        records = memo[scan_key] = scan(listing.images, config, cache_dir=cache_dir,
                                        progress=progress, show_progress=show_progress)
    result.records = dict(records)  # a scan of listing.images: one record each, in its order

    for path in listing.ignored_images:
        add(Finding("LRC523", f"{path} is not read by sd-scripts: it globs only "
                    f"{', '.join(sorted(e for e in SD_IMAGE_EXTENSIONS if e.islower()))} "
                    "(case-sensitive, lower or upper case)", path,
                    hint="rename or convert the file"))
    for name, count in sorted(listing.subfolder_images.items()):
        add(Finding("LRC523", f"{folder / name} holds {count} image(s) that sd-scripts does "
                    "not read: it does not look into subfolders of image_dir", str(folder / name),
                    hint="make the subfolder a subset of its own"))

    if spec.metadata_file is None:
        _pair(result, triggers, config, bar, cache_dir)
    _judge_images(result, config, bar, cache_dir)
    return result


@contextlib.contextmanager
def _collector_running() -> Iterator[None]:
    """Python's cyclic garbage collector running (work of :func:`run_parallel` inside a
    paused analysis), then as it was."""

    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not was:
            gc.disable()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused, then resumed as it was. Reading 100,000
    records from the cache, pairing and judging them allocate several small objects per
    record and no cycles, and the collections those allocations trigger walk every record
    again and again: a tenth of a warm analysis. The scan of the files not in the cache runs
    with the collector (:func:`run_parallel`, in the pool's workers or here): a file that
    fails to decode can leave a cycle behind."""

    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _pair(result: FolderResult, triggers: Iterable[str], config: DatasetConfig,
          bar: Callable[[int, str], Progress | None] | None = None,
          cache_dir: Path | None = None) -> None:
    spec, listing = result.spec, result.listing
    triggers = list(triggers)
    add = result.findings.append
    ext = spec.caption_extension
    # every listed path is ``prefix + name``: a slice gives the name without os.path.basename
    cut = len(_child_prefix(listing.folder))
    captions = {p[: -len(ext)]: p for p in listing.others if ext and p.endswith(ext)
                and len(p) - cut > len(ext)}
    by_base: dict[str, str] = {}  # an image's name has an extension, after its first character
    shared: dict[str, list[str]] = {}  # the stems of more than one image → those images
    for img in listing.images:
        base = img[:img.rfind(".")]
        first = by_base.setdefault(base, img)
        if first is not img:
            shared.setdefault(base, [first]).append(img)

    paired = {base: captions.get(base) for base in by_base}
    for base in [base for base, cap in paired.items() if cap is None]:
        tokens = base.split("_")
        if len(tokens) >= 5:
            paired[base] = captions.get("_".join(tokens[:-4]))
    if listing.images and not any(paired.values()):
        others: dict[str, int] = {}
        for p in listing.others:
            base, oext = os.path.splitext(p)
            if base in by_base and oext:
                others[oext] = others.get(oext, 0) + 1
        if others:
            best, count = max(others.items(), key=lambda kv: (kv[1], kv[0]))
            where = ("is the default (library/config_util.py:86)" if
                     spec.caption_extension_at is None else "is what this profile sets")
            add(Finding(
                "LRC502", f"no image in {spec.image_dir} has a {ext!r} caption, and "
                f"{ext!r} {where}; {count} image(s) have a {best!r} file beside them, which "
                "sd-scripts never reads: the run trains without captions",
                None, anchor="caption_extension",
                hint=f"set caption_extension = {best!r}", data={"found": others}))
            return

    uncaptioned = [base for base, cap in paired.items() if cap is None]
    for base in sorted({*shared, *uncaptioned}):
        cap = paired[base]
        imgs = shared.get(base) or [by_base[base]]
        if len(imgs) > 1:
            names = " and ".join(imgs)
            reads = f"both read {cap}" if cap else "they cannot have separate captions"
            add(Finding("LRC505", f"{names} share the stem {os.path.basename(base)!r}: {reads}",
                        imgs[1], hint="rename one of them (or delete the duplicate)"))
        if cap is None:
            fallback = (f"the class tokens {spec.class_tokens!r} as its caption"
                        if spec.class_tokens else "an empty caption")
            for img in imgs:
                add(Finding("LRC503", f"{img} has no caption {os.path.basename(base)}{ext}: "
                            f"sd-scripts trains it with {fallback}", img))
    # the captions read, each once, sorted (in the images' order, so nearly sorted already)
    used = sorted(dict.fromkeys(cap for cap in paired.values() if cap is not None))
    if len(used) < len(captions):
        read = set(used)
        for stem in sorted(stem for stem, cap in captions.items() if cap not in read):
            add(Finding("LRC504", f"caption {captions[stem]} has no image beside it (no "
                        f"{os.path.basename(stem)}.png/.jpg/… that sd-scripts reads)",
                        captions[stem], hint="add the image, or delete the caption"))

    tokens: list[str] = []
    for t in [*triggers, *([spec.class_tokens] if spec.class_tokens else [])]:
        if t.strip() and t.strip().lower() not in (x.lower() for x in tokens):
            tokens.append(t.strip())
    patterns = [(t, _word_re(t).search) for t in tokens]
    lowered = {t.strip().lower() for t in triggers}
    fixing = bool(spec.keep_tokens_separator) or spec.keep_tokens > 0
    shown = bar(len(used), "reading captions") if bar and len(used) >= _SHOW_FROM else None
    from lorac.scan.scancache import ScanCache

    cache = ScanCache(cache_dir, _CAPTION_TAG, {"captions": CaptionRecord}) if (
        cache_dir is not None and config.cache and used) else None
    folder_key = _real(listing.folder)
    cached = cache.load("captions", folder_key) if cache is not None else None
    known = cached.get if cached else {}.get
    fresh: list[tuple[str, tuple[Any, ...]]] = []
    texts = result.captions
    for done, (cap, st) in enumerate(zip(used, _stats(used, config), strict=True), 1):
        if shown is not None:
            shown(done)
        base = cap[cut:]
        text, problem = _read_caption(cap, spec, st, known(base), fresh, base)
        if problem is not None:
            add(problem)
        if text is None:
            continue
        texts[cap] = text
        if not text:
            continue
        missing: list[str] = []
        for t, search in patterns:  # a loop, not a comprehension: no frame per caption
            if not search(text):
                missing.append(t)
        if missing:
            add(Finding("LRC508", f"caption {cap} does not contain the trigger "
                        f"{' / '.join(repr(m) for m in missing)}", cap,
                        anchor="trigger" if any(m.lower() in lowered for m in missing)
                        else "class_tokens"))
        fixed = _fixed_part(text, spec) if fixing else None
        if fixed is not None:
            late = [t for t, search in patterns if t not in missing and not search(fixed)]
            if late:
                kept = (f"before {spec.keep_tokens_separator!r}" if spec.keep_tokens_separator
                        and spec.keep_tokens_separator in text
                        else f"the first {spec.keep_tokens} token(s)")
                shuffled = ("shuffle_caption moves it" if spec.shuffle_caption else
                            "it is not where keep_tokens expects it")
                add(Finding("LRC509", f"caption {cap}: the trigger "
                            f"{' / '.join(repr(m) for m in late)} is not in {kept} that "
                            f"keep_tokens holds in place; {shuffled}", cap,
                            anchor="keep_tokens",
                            hint="put the trigger first in the caption"))
    if cache is not None:
        assert cached is not None
        stale = set(cached).difference(c[cut:] for c in used) if len(
            cached) + len(fresh) > len(used) else ()
        if fresh or stale:
            cache.store("captions", folder_key, fresh, stale=stale)
        cache.close()
    _similar_captions(result, config, bar, cache_dir)


_WORDS = re.compile(r"\w+")
_SHOW_FROM = 5000  # phases over fewer items than this finish too fast for a progress bar


@dataclass
class GroupMemo:
    """The near-duplicate groups of one folder's captions (``path`` "captions") or perceptual
    hashes ("images") as last computed, valid while ``digest`` — a SHA-256 of everything the
    grouping reads (the caption texts or the hashes and content hashes, in order, the
    threshold, the grouping code) — is unchanged: a check of an unchanged folder reads the
    groups back instead of searching 100,000 items again. ``groups``: JSON, a list of
    ``[indices, distance]``."""

    path: str
    digest: str = ""
    groups: str = ""


_GROUP_TAG = "groups-v1"
_GROUP_CODE: list[str] = []  # the digest of neighbours.py, read once per process
_MEMO_FROM = 1000  # fewer items than this are grouped again: it costs less than the digest


def _group_code() -> str:
    if not _GROUP_CODE:
        try:
            code = hashlib.sha256(Path(neighbours.__file__).read_bytes()).hexdigest()
        except (OSError, TypeError):  # pragma: no cover - no source file (a frozen build)
            code = ""
        _GROUP_CODE.append(code)
    return _GROUP_CODE[0]


def _memo_groups(cache_dir: Path | None, config: DatasetConfig, folder: Path, what: str,
                 payload: str, compute: Callable[[], list[tuple[list[int], int]]],
                 ) -> list[tuple[list[int], int]]:
    """``compute()`` — a pure function of ``payload`` — or the result it gave last time for
    the same ``payload``, kept in the scan cache under the folder's real path."""

    if cache_dir is None or not config.cache:
        return compute()
    import json

    from lorac.scan.scancache import ScanCache

    digest = hashlib.sha256(
        f"{_GROUP_TAG}\0{_group_code()}\0".encode() + payload.encode("utf-8", "surrogatepass")
    ).hexdigest()
    key = _real(folder)
    with ScanCache(cache_dir, _GROUP_TAG, {"groups": GroupMemo}) as cache:
        hit = cache.load("groups", key).get(what)
        if hit is not None and hit[0] == digest:
            try:
                return [(list(g), int(d)) for g, d in json.loads(hit[1])]
            except (ValueError, TypeError):  # a damaged row: computed again
                pass
        groups = compute()
        cache.store("groups", key, [(what, (digest, json.dumps(groups)))])
    return groups


def _similar_captions(result: FolderResult, config: DatasetConfig,
                      bar: Callable[[int, str], Progress | None] | None = None,
                      cache_dir: Path | None = None) -> None:
    captions = result.captions
    names = sorted(captions)  # _pair reads them in this order: a linear check, no reordering
    items = [(p, captions[p]) for p in names if captions[p]]
    t = config.caption_similarity
    if len(items) < 2 or t <= 0:
        return

    def compute() -> list[tuple[list[int], int]]:
        findall = _WORDS.findall  # compiled once: re.findall looks the pattern up per call
        words = [findall(text.lower()) for _, text in items]
        shown = bar(1, "grouping captions") if bar and len(items) >= _SHOW_FROM else None
        return [(g, 0) for g in neighbours.jaccard_groups(words, t, progress=shown)]

    if len(items) >= _MEMO_FROM:
        texts = [text for _, text in items]
        # the texts, unambiguously: their lengths, then the texts themselves (JSON escaping
        # 10 MB of text cost more than the rest of reading the groups back)
        lengths = ",".join(map(str, map(len, texts)))
        groups = _memo_groups(cache_dir, config, result.listing.folder, "captions",
                              f"{t!r}\0{lengths}\0" + "\0".join(texts), compute)
    else:
        groups = compute()
    for group, _ in groups:
        names = ", ".join(items[i][0] for i in group)
        result.findings.append(Finding(
            "LRC510", f"{len(group)} captions are near-duplicates (word overlap ≥ "
            f"{t:.0%}): {names}", items[group[0]][0],
            hint="describe what differs between the images", data={"files": [
                items[i][0] for i in group]}))


def _judge_images(result: FolderResult, config: DatasetConfig,
                  bar: Callable[[int, str], Progress | None] | None = None,
                  cache_dir: Path | None = None) -> None:
    spec = result.spec
    add = result.findings.append
    recs = list(result.records.values())  # in the listing's order (analyse_folder)
    buckets = bucket_list(spec) if spec.resolution and not (
        spec.enable_bucket and spec.bucket_no_upscale) else None
    sizes: dict[tuple[int, int], list[tuple[Any, ...]]] = {}
    for rec in recs:
        if rec.error in ("unreadable", "empty", "not-image", "decode"):
            add(Finding("LRC511", f"{rec.path} cannot be decoded: {rec.detail}", rec.path,
                        hint="replace or delete the file", data={"error": rec.error}))
        elif rec.error == "truncated":
            add(Finding("LRC512", f"{rec.path} is truncated ({rec.detail})", rec.path,
                        hint="re-export or re-download the image"))
        elif rec.error == "bomb":
            add(Finding("LRC513", f"{rec.path} is {rec.detail}, over the "
                        f"{config.max_pixels:,}-pixel limit: PIL refuses or warns about "
                        "images this large (decompression bomb)", rec.path,
                        hint="downscale it to the training resolution"))
        if not rec.ok:
            continue
        if rec.orientation not in (0, 1):
            add(Finding("LRC516", f"{rec.path} has EXIF orientation {rec.orientation}: viewers "
                        "rotate it, sd-scripts trains it unrotated", rec.path,
                        hint="apply the rotation to the pixels (e.g. PIL ImageOps.exif_transpose)"
                        " and drop the tag"))
        unusual = []
        if rec.mode == "CMYK":
            unusual.append("CMYK (converted to RGB with a naive formula)")
        if rec.bit_depth > 8:
            unusual.append(f"{rec.bit_depth}-bit (reduced to 8 bits)")
        if rec.has_alpha:
            unusual.append("an alpha channel (dropped unless alpha_mask = true)")
        if unusual:
            add(Finding("LRC517", f"{rec.path} ({rec.mode}) has {', '.join(unusual)}",
                        rec.path))
        if spec.resolution:
            _judge_size(rec, spec, config, buckets, add, sizes)

    scored = [r for r in recs if r.ok and r.blur is not None]
    if scored:
        result.blur_median = round(statistics.median(r.blur for r in scored), 3)  # type: ignore
    relative = len(scored) >= max(1, config.blur_min_images) and result.blur_median
    for rec in scored:
        assert rec.blur is not None
        if relative and rec.blur < config.blur_ratio * result.blur_median:  # type: ignore
            share = rec.blur / result.blur_median  # type: ignore[operator]
            add(Finding("LRC518", f"{rec.path} looks blurred: sharpness {rec.blur:.1f} is "
                        f"{share:.0%} of the set's median {result.blur_median:.1f} "
                        f"(threshold {config.blur_ratio:.0%})", rec.path,
                        data={"blur": rec.blur, "median": result.blur_median}))
        elif rec.blur < config.blur_min:
            add(Finding("LRC518", f"{rec.path} looks blurred: sharpness {rec.blur:.1f} is "
                        f"under blur-min {config.blur_min:g}", rec.path,
                        data={"blur": rec.blur}))

    _remember(cache_dir, config, _hash_candidates(recs, config, bar))
    hashed = [r for r in recs if r.sha256]  # never an unreadable or empty file (_copy_key)
    same_file: dict[str, str] = {}
    for group in neighbours.keyed_groups(r.sha256 for r in hashed):
        paths = [hashed[i].path for i in group]
        same_file.update((p, paths[0]) for p in paths)
        add(Finding("LRC519", f"{len(paths)} files are identical: {', '.join(paths)}",
                    paths[1], hint="keep one of them", data={"files": paths}))
    phashed = [r for r in scored if r.phash]
    limit = config.near_duplicate_distance
    ints = [int(r.phash, 16) for r in phashed]  # type: ignore[arg-type]

    def distinct_files(members: list[int]) -> bool:
        # images with one hash are near-duplicates of each other unless they are all one file
        return len({same_file.get(phashed[i].path, phashed[i].path) for i in members}) > 1

    def compute() -> list[tuple[list[int], int]]:
        shown = bar(1, "grouping images") if bar and len(ints) >= _SHOW_FROM else None
        return [(group, neighbours.max_distance([ints[i] for i in group]))
                for group in neighbours.hamming_groups(ints, limit, linked_same=distinct_files,
                                                       progress=shown)]

    if len(phashed) >= _MEMO_FROM:
        # the groups read the hashes and, through distinct_files, which of them are one file
        groups = _memo_groups(cache_dir, config, result.listing.folder, "images", f"{limit}\0"
                              + "\n".join(f"{r.phash} {r.sha256}" for r in phashed), compute)
    else:
        groups = compute()
    for group, dist in groups:
        paths = [phashed[i].path for i in group]
        add(Finding("LRC520", f"{len(paths)} images are near-duplicates (perceptual-hash "
                    f"distance ≤ {dist}, limit {limit}): {', '.join(paths)}", paths[1],
                    hint="keep the best one", data={"files": paths, "distance": dist}))


def _copy_key(rec: ImageRecord) -> tuple[Any, ...] | None:
    """What byte-identical files share, from the scan alone: size, and the error of a file
    that does not decode, or the size in pixels and blur score of one that does (exact
    integer arithmetic: the same on every machine, unlike the perceptual hash's floats).
    ``None`` for a file that cannot be read or is empty."""

    if rec.error in ("unreadable", "empty"):
        return None
    return rec.size, rec.error, rec.width, rec.height, rec.blur


def _hash_candidates(recs: list[ImageRecord], config: DatasetConfig,
                     bar: Callable[[int, str], Progress | None] | None = None) -> list[ImageRecord]:
    """Fill the content hash (``sha256``) of every record that shares :func:`_copy_key` with
    another and has none yet: byte-identical files always do, files of other content almost
    never (a folder of flat single-colour images of one size is the exception, and costs
    only their hashing). The records hashed now, for the cache; a file changed since its
    scan (another size, mtime or inode) keeps no hash and is no one's copy."""

    # first counted by (size, blur score), then grouped by the whole key only where that
    # pair repeats: on 100,000 distinct generated images, 0.8 % of them
    firsts = Counter((r.size, r.blur) for r in recs)
    by_key: dict[tuple[Any, ...], list[ImageRecord]] = {}
    for rec in recs:
        if firsts[(rec.size, rec.blur)] > 1 and (key := _copy_key(rec)) is not None:
            by_key.setdefault(key, []).append(rec)
    todo = [r for group in by_key.values() if len(group) > 1 for r in group if not r.sha256]
    if not todo:
        return []
    shown = bar(len(todo), "hashing possible copies") if bar and len(todo) >= _SHOW_FROM \
        else None
    workers = min(worker_count(config), -(-len(todo) // _HASH_PER_THREAD))
    if workers > 1:  # reading and hashing release the GIL
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            digests = list(pool.map(_content_hash, todo, chunksize=_HASH_PER_THREAD))
    else:
        digests = [_content_hash(r) for r in todo]
    hashed = []
    for i, (rec, digest) in enumerate(zip(todo, digests, strict=True), 1):
        if digest:
            rec.sha256 = digest
            hashed.append(rec)
        if shown:
            shown(i)
    return hashed


_HASH_PER_THREAD = 64  # files per thread of _hash_candidates at least


def _content_hash(rec: ImageRecord) -> str | None:
    """SHA-256 of the file of ``rec`` if it is still the file scanned, else ``None``."""

    try:
        with open(rec.path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if (st.st_size, st.st_mtime_ns, st.st_ino) != (rec.size, rec.mtime_ns, rec.inode):
                return None
            digest = hashlib.sha256()
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _remember(cache_dir: Path | None, config: DatasetConfig, recs: list[ImageRecord]) -> None:
    """Store ``recs`` (whose content hash was just computed) in the scan cache, so that the
    next check of the folder reads the hashes back."""

    if cache_dir is None or not config.cache or not recs:
        return
    from lorac.scan.scancache import ScanCache

    by_key: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    for rec in recs:
        folder, name = os.path.split(rec.path)
        by_key.setdefault(_real(Path(folder or ".")), []).append(
            (name, tuple(rec.__dict__.values())[1:]))
    with ScanCache(cache_dir, _cache_tag(config), {"images": ImageRecord}) as cache:
        for key, rows in by_key.items():
            cache.store("images", key, rows)


def _judge_size(rec: ImageRecord, spec: SubsetSpec, config: DatasetConfig,
                buckets: list[tuple[int, int]] | None, add: Callable[[Finding], None],
                memo: dict[tuple[int, int], list[tuple[Any, ...]]] | None = None) -> None:
    """LRC514 / LRC515 for ``rec``. The verdict depends only on the image's size: ``memo``
    keeps it per (width, height), so a folder of 100,000 images of a few sizes selects a
    few buckets, not 100,000."""

    w, h = rec.width, rec.height
    if not w or not h:
        return
    verdicts = memo.get((w, h)) if memo is not None else None
    if verdicts is None:
        verdicts = _size_verdicts(w, h, spec, config, buckets)
        if memo is not None:
            memo[(w, h)] = verdicts
    for code, tail, hint, key, value, bucket in verdicts:
        add(Finding(code, rec.path + tail, rec.path, hint=hint,
                    data={key: value, "bucket": list(bucket)}))


def _size_verdicts(w: int, h: int, spec: SubsetSpec, config: DatasetConfig,
                   buckets: list[tuple[int, int]] | None) -> list[tuple[Any, ...]]:
    """(code, message after the path, hint, data key, data value, bucket) of each size
    finding of a ``w``×``h`` image."""

    assert spec.resolution is not None
    out: list[tuple[Any, ...]] = []
    bucket, resized = select_bucket(w, h, spec, buckets)
    rw, rh = spec.resolution
    scale = resized[0] / w
    if spec.enable_bucket and spec.bucket_no_upscale:
        ratio = min(1.0, math.sqrt(bucket[0] * bucket[1] / (rw * rh)))
        how = (f"it trains in a {bucket[0]}×{bucket[1]} bucket "
               f"({bucket[0] * bucket[1] / (rw * rh):.0%} of the training area)")
    else:
        ratio = min(1.0, 1 / scale) if scale > 0 else 1.0
        how = f"it is upscaled ×{scale:.2f} into the {bucket[0]}×{bucket[1]} bucket"
    if ratio < config.min_resolution_ratio:
        out.append(("LRC514", f" is {w}×{h}, below the training resolution {rw}×{rh}: {how}",
                    None, "ratio", round(ratio, 3), bucket))
    crop = 1 - (bucket[0] * bucket[1]) / max(1, resized[0] * resized[1])
    if crop > config.max_crop:
        out.append(("LRC515", f" ({w}×{h}, aspect {w / h:.2f}) fits no bucket well: the "
                    f"nearest, {bucket[0]}×{bucket[1]}, crops {crop:.0%} of it",
                    "crop the image to a bucket's aspect ratio yourself", "crop",
                    round(crop, 3), bucket))
    return out


# --------------------------------------------------------------------------- profiles


@dataclass
class ProfileAnalysis:
    """The dataset findings of one profile: per-subset folder results + the counts, and the
    video datasets that :func:`lorac.scan.video.add_videos` adds."""

    folders: list[FolderResult]
    findings: list[tuple[Finding, KeyPath]]
    videos: list[Any] = field(default_factory=list)


def min_images_for(profile: Any, config: DatasetConfig) -> int:
    """The image minimum for ``profile``'s goal (``[profile] tags``)."""

    tags = profile.get("profile", "tags")
    tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    return max([config.min_images, *(config.min_images_by_tag.get(t, 0) for t in tags)])


def accumulation_of(profile: Any) -> tuple[int, KeyPath | None]:
    """``profile``'s ``gradient_accumulation_steps`` (1 unless an integer is set) and the key
    path it is set at (None when it is not an integer or not set)."""

    found = profile.options().get("gradient_accumulation_steps")
    if found and isinstance(found[0], int):
        return found[0], found[1]
    return 1, None


def _grouped(found: list[tuple[Finding, KeyPath]]) -> list[tuple[Finding, KeyPath]]:
    """One finding where several subsets name the same folder with the same settings (an
    ai-toolkit dataset trained at three resolutions is three subsets of one folder): the first,
    saying how many more subsets it stands for."""

    first: dict[tuple[str, str, str | None], int] = {}
    more: dict[int, int] = {}
    out: list[tuple[Finding, KeyPath]] = []
    for f, kp in found:
        key = (f.code, f.message, f.file)
        if key in first:
            more[first[key]] = more.get(first[key], 0) + 1
            continue
        first[key] = len(out)
        out.append((f, kp))
    for i, n in more.items():
        f, kp = out[i]
        out[i] = (replace(f, message=f"{f.message} (and in {n} more subset(s) naming the same "
                                     "folder)"), kp)
    return out


def analyse_profile(profile: Any, config: DatasetConfig, *, memo: dict[str, Any] | None = None,
                    cache_dir: Path | None = CACHE_DIR, show_progress: bool | None = None,
                    ) -> ProfileAnalysis:
    """Findings of every dataset folder ``profile`` references, each with the key path it is
    reported at in ``lorac lint``, plus the image-count findings (LRC521, LRC522)."""

    memo = {} if memo is None else memo
    triggers = triggers_of(profile)
    folders: list[FolderResult] = []
    out: list[tuple[Finding, KeyPath]] = []
    trigger_at: KeyPath = ("profile", "trigger")
    for spec in subsets_of(profile):
        res = analyse_folder(spec, config, triggers=triggers, memo=memo, cache_dir=cache_dir,
                             show_progress=show_progress)
        folders.append(res)
        for f in res.findings:
            if f.anchor == "caption_extension" and spec.caption_extension_at:
                kp = spec.caption_extension_at
            elif f.anchor == "class_tokens" and spec.class_tokens_at:
                kp = spec.class_tokens_at
            elif f.anchor == "keep_tokens" and spec.keep_tokens_at:
                kp = spec.keep_tokens_at
            elif f.anchor == "trigger" and triggers:
                kp = trigger_at
            elif f.anchor == "trigger" and spec.class_tokens_at:
                kp = spec.class_tokens_at
            else:
                kp = spec.key_path
            out.append((f, kp))
    out = _grouped(out)

    train = [r for r in folders if not r.spec.is_reg and not r.listing.error]
    if train:
        seen: set[str] = set()
        count = 0
        for r in train:
            for p in r.listing.images:
                real = os.path.realpath(p)
                if real not in seen:
                    seen.add(real)
                    count += 1
        minimum = min_images_for(profile, config)
        spec = max(train, key=lambda r: r.spec.batch_size).spec
        accum, accum_at = accumulation_of(profile)
        anchor = train[0].spec.key_path
        for f in count_findings(count, minimum, spec.batch_size, accum):
            if f.code == "LRC522":
                kp = accum_at if accum_at and accum > 1 else spec.batch_size_at or anchor
                out.append((f, kp))
            else:
                out.append((f, anchor))
    return ProfileAnalysis(folders, out)


def count_findings(count: int, minimum: int, batch_size: int = 1,
                   accumulation: int = 1) -> list[Finding]:
    """LRC521 (fewer than ``minimum`` images) and LRC522 (fewer than one optimizer step)."""

    out = []
    if count < minimum:
        out.append(Finding(
            "LRC521", f"the dataset has {count} image(s), fewer than the {minimum} this goal "
            "needs (dataset setting min-images)", None,
            hint="add images, or lower min-images in [tool.lorac.dataset]",
            data={"images": count, "minimum": minimum}))
    per_step = max(1, batch_size) * max(1, accumulation)
    if 0 < count < per_step:
        out.append(Finding(
            "LRC522", f"the dataset has {count} distinct image(s), fewer than one optimizer "
            f"step takes (batch_size {batch_size} × gradient_accumulation_steps "
            f"{accumulation} = {per_step}): every step repeats images", None,
            hint="lower batch_size or gradient_accumulation_steps, or add images",
            data={"images": count, "per_step": per_step}))
    return out


def dependencies(analysis: ProfileAnalysis) -> tuple[set[str], set[str]]:
    """(files, folders) the findings depend on, for the lint result cache."""

    files: set[str] = set()
    dirs: set[str] = set()
    for r in [*analysis.folders, *analysis.videos]:
        dirs.add(str(r.listing.folder))
        if r.listing.error:
            continue
        files |= {str(p) for p in (*r.listing.images, *r.listing.others,  # video: Paths
                                   *r.listing.ignored_images)}
    return files, dirs


#: extensions of files beside images that are not captions (latent caches, metadata, masks)
NOT_CAPTIONS = frozenset((".npz", ".json", ".jsonl", ".safetensors", ".pt", ".bin", ".toml",
                          ".yaml", ".yml"))
#: the smallest side a supported family trains at (SD 1.x, 512 px): without a resolution,
#: ``lorac dataset check`` judges image sizes against it
SMALLEST_TRAINING_RESOLUTION = 512


def detect_caption_extension(listing: Listing) -> tuple[str | None, int]:
    """The extension of the files that sit beside the images under the same stem — the caption
    extension the folder really uses — and how many images have one (``None, 0`` when none
    has; a tie goes to ``.txt``, then ``.caption``, then the name)."""

    stems = {os.path.splitext(str(img))[0] for img in listing.images}
    counts: dict[str, int] = {}
    for other in listing.others:
        base, ext = os.path.splitext(str(other))
        ext = ext.lower() if ext.lower() in (".txt", ".caption") else ext
        if base in stems and ext and ext.lower() not in NOT_CAPTIONS \
                and ext.lower() not in SD_IMAGE_EXTENSIONS | OTHER_IMAGE_EXTENSIONS:
            counts[ext] = counts.get(ext, 0) + 1
    if not counts:
        return None, 0
    order = {".txt": 0, ".caption": 1}
    best = min(counts, key=lambda e: (-counts[e], order.get(e, 2), e))
    return best, counts[best]


def tiny_image_findings(result: FolderResult, config: DatasetConfig) -> list[Finding]:
    """LRC514 for images too small for any training resolution, when none is given: their
    size against :data:`SMALLEST_TRAINING_RESOLUTION` squared, with the ratio of
    ``config.min_resolution_ratio`` that LRC514 uses against a real resolution."""

    side = SMALLEST_TRAINING_RESOLUTION
    out = []
    for path, rec in sorted(result.records.items()):
        w, h = rec.width, rec.height
        if not w or not h:
            continue
        ratio = math.sqrt(w * h / (side * side))
        if ratio < config.min_resolution_ratio:
            out.append(Finding(
                "LRC514", f"{path} is {w}×{h}, below {side}×{side}, the smallest resolution "
                f"any supported family trains at (SD 1.x): it is upscaled ×{1 / ratio:.1f} "
                "even there", path, hint="replace it with a larger image, or pass "
                "--resolution to judge it against your own",
                data={"ratio": round(ratio, 3)}))
    return out


def folder_spec(folder: str, *, base: SubsetSpec | None = None, **changes: Any) -> SubsetSpec:
    """A :class:`SubsetSpec` for ``folder`` (for ``lorac dataset check``): ``base``'s settings
    (or sd-scripts' defaults) with ``changes`` applied."""

    spec = base or SubsetSpec(image_dir=folder, key_path=())
    return replace(spec, image_dir=folder, **{k: v for k, v in changes.items()
                                              if v is not None})
