"""Batched scoring: :func:`lorac.scan.dataset.scan_files` (what the pool's workers run) gives
every file exactly the record :func:`lorac.scan.dataset.scan_file` gives it alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from lorac.scan import dataset
from tests.conftest import has_c_compiler


def _image(path: Path, size: tuple[int, int], mode: str, seed: int) -> str:
    rng = np.random.default_rng(seed)
    w, h = size
    grid = rng.integers(0, 256, (max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8)
    im = Image.fromarray(grid, "RGB").resize((w, h), Image.Resampling.BICUBIC)
    noise = rng.integers(-20, 21, (h, w, 3))
    im = Image.fromarray(np.clip(np.asarray(im, np.int16) + noise, 0, 255).astype(np.uint8))
    im = im.convert(mode)
    im.save(path, "JPEG" if path.suffix == ".jpg" else "PNG")
    return str(path)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Images of several shapes (three of each reduced shape, so that shapes repeat and
    interleave), with a truncated JPEG, an empty file and a text file among them."""

    root = tmp_path_factory.mktemp("mixed")
    specs = [((256, 256), "RGB", ".jpg"), ((300, 200), "RGB", ".jpg"),
             ((200, 300), "L", ".png"), ((50, 40), "RGBA", ".png"), ((9, 2), "L", ".png"),
             ((3, 3), "L", ".png"), ((1024, 512), "RGB", ".jpg"), ((64, 64), "P", ".png")]
    paths = []
    for i in range(3):
        for j, (size, mode, ext) in enumerate(specs):
            paths.append(_image(root / f"img_{i}_{j}{ext}", size, mode, 10 * i + j))
    whole = Path(paths[0]).read_bytes()
    cut = root / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_text("not an image")
    middle = len(paths) // 2
    paths[middle:middle] = [str(cut), str(root / "empty.png"), str(root / "notes.jpg")]
    return paths


@pytest.mark.parametrize("batch_pixels", [1, 5000, 1 << 19])
def test_batched_records_are_the_single_image_records(
        mixed: list[str], batch_pixels: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset, "_BATCH_PIXELS", batch_pixels)
    single = [tuple(dataset.scan_file(p).values()) for p in mixed]
    assert dataset.scan_files(mixed) == single
    rows = {row[0]: dataset.ImageRecord(*row) for row in single}
    bad = {p: rows[p].error for p in mixed if not rows[p].ok}
    assert {Path(p).name: e for p, e in bad.items()} == {
        "cut.jpg": "truncated", "empty.png": "empty", "notes.jpg": "not-image"}
    good = [rows[p] for p in mixed if p not in bad]
    assert len(good) == 24 and all(r.blur is not None and r.phash for r in good)
    shapes = {(r.width, r.height) for r in good}
    assert len(shapes) == 8  # the batches did mix shapes


def test_a_chunk_is_its_files_in_order_whatever_fails(mixed: list[str]) -> None:
    chunk = mixed[10:16]
    rows = dataset._scan_chunk((chunk, dataset.PIL_MAX_IMAGE_PIXELS))
    assert [row[0] for row in rows] == chunk
    assert rows == [tuple(dataset.scan_file(p).values()) for p in chunk]


def _stacks() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    out = [rng.integers(0, 256, (k, h, w), dtype=np.uint8)
           for k, h, w in ((5, 256, 256), (3, 171, 256), (4, 256, 129), (2, 3, 3), (3, 2, 9),
                           (2, 40, 65), (1, 1, 1), (2, 4, 2100))]
    checker = np.zeros((3, 64, 48), np.uint8)  # the largest Laplacian: |L| = 1020 everywhere
    checker[:, ::2, ::2] = 255
    checker[:, 1::2, 1::2] = 255
    flat = np.full((2, 30, 30), 255, np.uint8)
    flat[1] = 0
    return [*out, checker, flat]


def test_stacked_scores_equal_each_image_scored_alone() -> None:
    for stack in _stacks():
        alone = [(dataset._laplacian_variance(np.ascontiguousarray(a)),
                  dataset._phash(np.ascontiguousarray(a))) for a in stack]
        assert list(zip(dataset._laplacian_variances(stack), dataset._phashes(stack),
                        strict=True)) == alone, stack.shape
    assert dataset._laplacian_variances(_stacks()[-2])[0] > 0


def test_the_pool_scans_in_chunks_with_the_same_records(
        mixed: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [Path(p) for p in mixed]
    config = dataset.DatasetConfig(workers=2, cache=False)
    monkeypatch.setattr(dataset, "_POOL_MIN", 10 ** 9)
    alone = dataset.scan(paths, config, cache_dir=None)
    monkeypatch.setattr(dataset, "_POOL_MIN", 2)
    calls: list[tuple] = []
    real = dataset.run_parallel

    def spy(fn, items, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((fn, [item[0] for item in items]))
        return real(fn, items, *args, **kwargs)

    monkeypatch.setattr(dataset, "run_parallel", spy)
    pooled = dataset.scan(paths, config, cache_dir=None)
    [(fn, chunks)] = calls
    assert fn is dataset._scan_chunk  # the workers get chunks of files
    assert [p for chunk in chunks for p in chunk] == mixed
    assert pooled == alone


@pytest.mark.parametrize("count", [1, 2, 16, 17, 100, 500, 10_007])
@pytest.mark.parametrize("workers", [2, 3, 8])
def test_chunks_cover_the_files_once_and_shrink_towards_the_end(count: int,
                                                                 workers: int) -> None:
    bounds = dataset._chunk_bounds(count, workers)
    assert [i for start, stop in bounds for i in range(start, stop)] == list(range(count))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) <= dataset._CHUNK
    assert sizes == sorted(sizes, reverse=True)  # never a large chunk after a small one
    # the pool is never left with a chunk larger than the smallest batch while the other
    # workers have nothing left: the last chunks are at most _CHUNK_MIN images
    left = count
    for size in sizes:
        if left <= dataset._CHUNK_MIN * workers:
            assert size <= dataset._CHUNK_MIN
        left -= size
    if count >= 32 * workers * 4:
        assert sizes[0] == dataset._CHUNK  # few hand-overs while much is left


def test_the_widest_int32_row_of_the_largest_laplacian_is_exact() -> None:
    """Rows of :data:`lorac.scan.dataset._INT32_ROW` pixels are multiplied and summed in int32:
    a checkerboard (|Laplacian| = 1020 at every centre) at that width must not wrap."""

    w = dataset._INT32_ROW
    checker = np.zeros((2, 4, w), np.uint8)
    checker[:, ::2, ::2] = 255
    checker[:, 1::2, 1::2] = 255
    alone = dataset._laplacian_variance(np.ascontiguousarray(checker[0]))
    assert alone > 1000_000 * 0.9
    assert dataset._laplacian_variances(checker) == [alone, alone]


def test_batch_arrays_are_kept_for_the_shapes_used_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shape's batch array is reused while it is among the last ``_KEPT_SHAPES`` shapes;
    no more than that many are held, whatever the dataset's shapes."""

    import threading

    def in_thread(fn: Any) -> Any:  # a fresh thread: its own kept arrays
        out: list[Any] = []
        t = threading.Thread(target=lambda: out.append(fn()))
        t.start()
        t.join()
        return out[0]

    def run() -> tuple[bool, bool, int]:
        first = dataset._batch_array(256, 192)
        for h in range(100, 100 + dataset._KEPT_SHAPES - 1):
            dataset._batch_array(h, 256)
        kept_while_recent = dataset._batch_array(256, 192) is first
        for h in range(200, 200 + dataset._KEPT_SHAPES):
            dataset._batch_array(h, 256)
        evicted = dataset._batch_array(256, 192) is not first
        return kept_while_recent, evicted, len(dataset._SCRATCH.__dict__["batches"])

    assert in_thread(run) == (True, True, dataset._KEPT_SHAPES)


# -- the C loops (lorac/scan/_native.c) against the numpy path


def _native() -> Any:
    """:mod:`lorac.scan._native`; where it is missing, the install had no C compiler."""

    assert dataset._native is not None or not has_c_compiler(), (
        "a C compiler is here but lorac.scan._native was not built: reinstall lorac")
    return dataset._native


def _c_scores(native: Any, pixels: Any, h: int, w: int) -> tuple[float, str, np.ndarray]:
    """The blur score, the hash and the block sums that the C path gives one image."""

    f, g, left, right = dataset._phash_plan(h, w)
    rows = np.full((2, h // f, w // g), np.nan, np.float32)
    blur = dataset._variance(*native.score(pixels, h, w, f, g, rows, 1), h, w)
    assert np.isnan(rows[0]).all()  # only its own slot is written
    return blur, dataset._phash_products(rows[1:], left, right)[0], rows[1]


def _check_c_path(native: Any, a: np.ndarray) -> None:
    h, w = a.shape
    want = dataset._laplacian_variance(a), dataset._phash(a)
    blur, phash, rows = _c_scores(native, a.tobytes(), h, w)
    assert (blur, phash) == want, a.shape
    f, g = dataset._phash_plan(h, w)[:2]
    assert (rows == a.reshape(h // f, f, w // g, g).sum(axis=(1, 3))).all()
    lent = Image.fromarray(a, "L").__arrow_c_array__()  # PIL's own memory, no copy
    assert _c_scores(native, lent, h, w)[:2] == want


def test_the_c_path_gives_the_numpy_values() -> None:
    native = _native()
    if native is None:
        return
    rng = np.random.default_rng(11)
    images = [a for stack in _stacks() for a in stack if stack.shape[2] <= 2064]
    images += [rng.integers(0, 256, shape, dtype=np.uint8) for shape in (
        (256, 256), (128, 256), (192, 100), (256, 64), (320, 7), (64, 256), (256, 2064),
        # columns summed 2, 3, 4, 5 and 8 at a time; blocks of 512 pixels (uint32 in numpy)
        (64, 128), (100, 192), (171, 256), (256, 320), (128, 512), (2048, 1024))]
    images.append(np.where(rng.random((256, 256)) < 0.5, 0, 255).astype(np.uint8))
    for a in images:
        _check_c_path(native, np.ascontiguousarray(a))


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 200), w=st.integers(1, 200), seed=st.integers(0, 2**32 - 1),
       levels=st.sampled_from([2, 16, 256]))
def test_the_c_path_gives_the_numpy_values_at_any_shape(h: int, w: int, seed: int,
                                                         levels: int) -> None:
    native = _native()
    if native is None:
        return
    rng = np.random.default_rng(seed)
    h = h if h % 3 else 64 * (1 + h % 4)  # a third of the heights sum rows for the hash
    _check_c_path(native, (rng.integers(0, levels, (h, w)) * (255 // (levels - 1))).astype(
        np.uint8))


_PASSES = """
import json, sys
import numpy as np
from lorac.scan import _native, dataset
rng = np.random.default_rng(5)
out = [_native.PASS]
for h, w in ((256, 256), (192, 100), (3, 3), (256, 2064), (64, 17), (128, 256), (100, 192)):
    a = rng.integers(0, 256, (h, w), dtype=np.uint8)
    f, g = dataset._phash_plan(h, w)[:2]
    rows = np.zeros((1, h // f, w // g), np.float32)
    out.append([list(_native.score(a.tobytes(), h, w, f, g, rows, 0)), rows.tobytes().hex()])
json.dump(out, sys.stdout)
"""


def test_the_baseline_and_avx2_passes_give_the_same_sums() -> None:
    """The C pass is built twice (baseline and, on x86-64, AVX2, taken where the processor
    has it); ``LORAC_NATIVE_BASELINE`` makes a process take the baseline one."""

    import json
    import os
    import subprocess
    import sys

    if _native() is None:
        return
    runs = {}
    for baseline in (False, True):
        env = {k: v for k, v in os.environ.items() if k != "LORAC_NATIVE_BASELINE"}
        if baseline:
            env["LORAC_NATIVE_BASELINE"] = "1"
        done = subprocess.run([sys.executable, "-c", _PASSES], env=env, capture_output=True,
                              text=True, check=True)
        name, *sums = json.loads(done.stdout)
        runs[name] = sums
    assert "baseline" in runs
    assert all(sums == runs["baseline"] for sums in runs.values())
    cpu = Path("/proc/cpuinfo")
    if cpu.is_file() and " avx2" in cpu.read_text() and os.uname().machine == "x86_64":
        assert set(runs) == {"baseline", "avx2"}


def test_the_c_path_refuses_what_it_cannot_read() -> None:
    native = _native()
    if native is None:
        return
    pixels = np.zeros((64, 64), np.uint8)
    out = np.zeros((2, 16, 64), np.float32)
    with pytest.raises(ValueError, match="4096 bytes for an image of 64 x 65"):
        native.score(pixels, 64, 65, 1, 1, np.zeros(64 * 65, np.float32), 0)
    with pytest.raises(ValueError, match="sides must be positive"):
        native.score(pixels, 0, 64, 1, 1, out, 0)
    with pytest.raises(ValueError, match="rows of 4096 pixels"):
        native.score(np.zeros(4096, np.uint8), 1, 4096, 1, 1, np.zeros(4096, np.float32), 0)
    with pytest.raises(ValueError, match="cannot sum 5 rows"):
        native.score(pixels, 64, 64, 5, 1, out, 0)
    with pytest.raises(ValueError, match="output holds no image 2"):
        native.score(pixels, 64, 64, 4, 1, out, 2)
    with pytest.raises(ValueError, match="output holds no image 1"):
        native.score(pixels, 64, 64, 2, 1, out, 1)  # one image of 32 rows fills both slots
    with pytest.raises(TypeError):  # the output must be writable
        native.score(pixels, 64, 64, 4, 1, b"\0" * out.nbytes, 0)
    with pytest.raises(TypeError, match="capsule pair"):
        native.score(12, 64, 64, 4, 1, out, 0)
    wide = Image.new("I", (64, 64)).__arrow_c_array__()  # 4-byte pixels
    with pytest.raises(ValueError, match="not an Arrow array of 4096 unsigned bytes"):
        native.score(wide, 64, 64, 4, 1, out, 0)
    with pytest.raises(ValueError, match="not an Arrow array of 4095 unsigned bytes"):
        native.score(Image.new("L", (64, 64)).__arrow_c_array__(), 63, 65, 1, 1,
                     np.zeros(63 * 65, np.float32), 0)
    with pytest.raises(ValueError, match="cannot sum 3 columns at a time of 64"):
        native.score(pixels, 64, 64, 4, 3, out, 0)
    with pytest.raises(ValueError, match="cannot sum 0 columns"):
        native.score(pixels, 64, 64, 4, 0, out, 0)
    with pytest.raises(ValueError, match="by 257 rows"):  # 257 * 257 * 255 >= 2**24
        native.score(np.zeros((257, 257), np.uint8), 257, 257, 257, 257,
                     np.zeros(1, np.float32), 0)
    block = np.zeros(1, np.float32)  # 256 * 257 * 255 < 2**24: exact
    assert native.score(np.full((256, 257), 255, np.uint8), 256, 257, 256, 257, block, 0) == (0, 0)
    assert block[0] == 256 * 257 * 255
    assert native.score(pixels + 1, 64, 64, 4, 1, out, 1) == (0, 0)
    assert (out[0] == 0).all() and (out[1] == 4).all()
    blocks = np.zeros((2, 16, 16), np.float32)
    assert native.score(pixels + 1, 64, 64, 4, 4, blocks, 1) == (0, 0)
    assert (blocks[0] == 0).all() and (blocks[1] == 16).all()
    assert native.score(pixels[:2], 2, 64, 1, 1, out, 0) == (0, 0)  # no interior


def test_a_scan_without_the_c_path_gives_the_same_records(
        mixed: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with_c = dataset.scan_files(mixed)
    monkeypatch.setattr(dataset, "_native", None)
    assert dataset.scan_files(mixed) == with_c


def test_a_scan_gives_the_same_records_where_pil_lends_no_memory(
        mixed: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """PIL before 11.2 has no ``__arrow_c_array__``: the C path reads a copy instead."""

    with_arrow = dataset.scan_files(mixed)
    monkeypatch.delattr(Image.Image, "__arrow_c_array__")
    assert dataset.scan_files(mixed) == with_arrow
