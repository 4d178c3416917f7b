"""Benchmark the dataset check at 1k, 10k and 100k images, and its grouping stage at 1M.

Usage::

    python bench/dataset_scan.py [--sizes 1000,10000,100000] [--grouping 1000000]
                                 [--ceiling-sizes 256,512,1024] [--bad 100000] [--dir DIR]
                                 [--repeat N] [--ceiling-repeat N]

For each size, in a fresh process (so that its peak RSS is its own), the bench generates that
many distinct 256-px JPEGs with ``.txt`` captions into DIR (kept and reused; 1 % of them
near-duplicates of another image and 1 % of captions near-duplicates of another caption), puts
them in the page cache, and times, on the same worker pool:

* ``ceiling``: a bare PIL decode at the reduced size the scanner asks for (``draft`` to the
  256-px box, ``load``) of every file;
* ``first``: :func:`lorac.scan.dataset.scan` with an empty cache;
* ``rescan``: the same call on the unchanged set (warm cache), after a first rescan (timed
  and printed apart) that also kept the folder's rows as one snapshot;
* ``analysis``: the whole folder analysis on a warm cache, i.e. after two analyses (timed and
  printed apart) have filled it (the caption texts, then their snapshot), as a check finds
  it that runs after earlier ones: listing, cache, captions, findings,
  exact / perceptual / caption near-duplicate groups (on a warm cache the perceptual and
  caption groups of an unchanged folder are read back from it), and the grouping part
  alone, computed afresh on the same hashes and captions;

then prints the ratios (rescan / first, analysis / first, ceiling / first, i.e. the first
scan's throughput as a share of the bare decode's), the peak RSS of the parent process and
of the pool, and the growth exponent of each stage between sizes (time ∝ n^k).
Each timing is the best of ``--repeat`` runs (the rescan and the analysis, which take
seconds, of 3 at least). ``--ceiling-sizes`` repeats the ceiling / first-scan ratio on
``--ceiling-count`` images of each size (best of ``--ceiling-repeat``, default 5), and gives
the ratio of a first scan whose blur score and perceptual hash are constants: the share of
the decode ceiling that the rest of the scan leaves.
``--grouping N`` times the grouping stage alone on N generated perceptual hashes
and captions. ``--bad N`` times a folder of N files that are not images, a 60,000 × 60,000 PNG
header and a truncated clip. Busy machines slow every stage alike within a run; compare the
ratios, not the seconds, across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lorac.scan import dataset, neighbours

VOCAB = [f"tag{i}" for i in range(3000)]


def _caption(i: int) -> str:
    rng = random.Random(i)
    return "ohwx woman, " + ", ".join(rng.sample(VOCAB, 10)) + f", image {i}"


_NOISE = None


def _make(args: tuple[str, int, int]) -> None:
    """One distinct JPEG: a random 6×6 colour grid scaled up, plus noise; image ``i`` with
    ``i % 100 == 1`` is a lightly noised copy of image ``i - 1``'s grid (a near-duplicate)."""

    import numpy as np
    from PIL import Image

    global _NOISE
    path, i, size = args
    grid = np.random.default_rng(i - 1 if i % 100 == 1 else i).integers(
        0, 256, (6, 6, 3), dtype=np.uint8)
    im = Image.fromarray(grid, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    if _NOISE is None or _NOISE.shape[0] < 2 * size:  # one noise tile per process, windows
        _NOISE = np.random.default_rng(size).integers(-12, 13, (2 * size, 2 * size, 3),
                                                      dtype=np.int16)  # of it per image
    oy, ox = (i * 37) % size, (i * 91) % size
    pixels = np.asarray(im, dtype=np.int16) + _NOISE[oy:oy + size, ox:ox + size]
    np.clip(pixels, 0, 255, out=pixels)
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(path, "JPEG", quality=90)
    text = _caption(i - 1) + ", extra" if i % 100 == 2 and i > 2 else _caption(i)
    Path(path).with_suffix(".txt").write_text(text + "\n")


def generate(folder: Path, count: int, size: int, workers: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img_{i:06d}.jpg" for i in range(count)]
    todo = [(str(p), i, size) for i, p in enumerate(paths) if not p.exists()]
    if todo:
        t = time.perf_counter()
        bar = dataset.Progress(len(todo), f"generating {size}-px JPEGs", enabled=None)
        dataset.run_parallel(_make, todo, workers, bar)
        print(f"generated {len(todo)} {size}-px JPEGs in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
    return paths


def _bare_decode(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        scale = min(1.0, dataset.NORM_SIZE / max(w, h))
        im.draft("L", (max(1, round(w * scale)), max(1, round(h * scale))))
        im.load()
        return im.size


def _warm(paths: list[Path]) -> int:
    return sum(len(p.read_bytes()) for p in paths)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _rss() -> dict[str, float]:
    """Peak resident memory in MB of this process and of its finished children (the pool)."""

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"rss_mb": round(own, 1), "pool_rss_mb": round(children, 1)}


# --------------------------------------------------------------------------- one size


def one_size(count: int, root: Path, workers: int, repeat: int) -> dict:
    folder = root / f"n{count}"
    config = dataset.DatasetConfig(workers=workers)
    paths = generate(folder, count, 256, workers)
    _warm(paths)
    names = [str(p) for p in paths]
    cache = Path(tempfile.mkdtemp(prefix="lorac-bench-cache-"))
    out: dict = {"n": count, "workers": dataset.worker_count(config)}
    try:
        ceilings, firsts = [], []
        for _ in range(repeat):  # interleaved, best of N: a busy machine slows both alike
            ceilings.append(_timed(lambda: dataset.run_parallel(
                _bare_decode, names, dataset.worker_count(config))))
            shutil.rmtree(cache, ignore_errors=True)
            firsts.append(_timed(lambda: dataset.scan(paths, config, cache_dir=cache)))
        out["ceiling"], out["first"] = min(ceilings), min(firsts)
        # the first rescan after a scan also keeps the folder's rows as one snapshot
        # (lorac/scan/scancache.py), which every later check reads instead of the rows
        out["first_rescan"] = _timed(lambda: dataset.scan(paths, config, cache_dir=cache))
        short = max(repeat, 3)  # a rescan and an analysis take seconds: best of 3 at least
        out["rescan"] = min(_timed(lambda: dataset.scan(paths, config, cache_dir=cache))
                            for _ in range(short))
        spec = dataset.SubsetSpec(image_dir=str(folder), key_path=(), caption_extension=".txt",
                                  resolution=(256, 256), enable_bucket=True,
                                  bucket_no_upscale=True)
        # a warm cache, as a check finds it that runs after earlier ones (a pre-commit hook):
        # the first check stores the caption texts, the second their snapshot
        out["first_checks"] = [_timed(lambda: dataset.analyse_folder(
            spec, config, triggers=["ohwx woman"], cache_dir=cache)) for _ in range(2)]
        results: list[dataset.FolderResult] = []
        out["analysis"] = min(_timed(lambda: results.append(dataset.analyse_folder(
            spec, config, triggers=["ohwx woman"], cache_dir=cache))) for _ in range(short))
        res = results[-1]
        hashes = [int(r.phash, 16) for r in res.records.values() if r.phash]
        words = [re.findall(r"\w+", t.lower()) for t in res.captions.values()]
        t = time.perf_counter()
        image_groups = list(neighbours.hamming_groups(hashes, config.near_duplicate_distance))
        caption_groups = list(neighbours.jaccard_groups(words, config.caption_similarity))
        out["grouping"] = time.perf_counter() - t
        out["groups"] = [len(image_groups), len(caption_groups)]
        out["findings"] = len(res.findings)
        out["cache_mb"] = round(sum(p.stat().st_size for p in cache.rglob("*")
                                    if p.is_file()) / 1e6, 1)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    out.update(_rss())
    return out


def one_ceiling(size: int, count: int, root: Path, workers: int, repeat: int) -> dict:
    """The ceiling and the first scan at ``size`` px, interleaved, best of ``repeat``; and
    the first scan with the two scores (blur, perceptual hash) replaced by constants, which
    shows how much of the gap is the rest of the scan: reading, decoding into the batch,
    the records, the pool's results and the cache."""

    folder = root / f"px{size}"
    config = dataset.DatasetConfig(workers=workers)
    paths = generate(folder, count, size, workers)
    _warm(paths)
    names = [str(p) for p in paths]
    cache = Path(tempfile.mkdtemp(prefix="lorac-bench-cache-"))
    batches = dataset._Batches

    class Unscored(batches):  # every decoded image gets constant scores, nothing else
        def add(self, rec: dataset.ImageRecord, gray: object) -> None:
            rec.blur, rec.phash = 0.0, "0" * 16

    def unscored() -> None:
        dataset._Batches = Unscored
        try:
            dataset.scan(paths, config, cache_dir=cache)
        finally:
            dataset._Batches = batches

    try:
        ceilings, firsts, bare = [], [], []
        for _ in range(repeat):
            ceilings.append(_timed(lambda: dataset.run_parallel(
                _bare_decode, names, dataset.worker_count(config))))
            shutil.rmtree(cache, ignore_errors=True)
            firsts.append(_timed(lambda: dataset.scan(paths, config, cache_dir=cache)))
            shutil.rmtree(cache, ignore_errors=True)
            bare.append(_timed(unscored))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {"px": size, "n": count, "ceiling": min(ceilings), "first": min(firsts),
            "unscored": min(bare)}


def one_grouping(count: int) -> dict:
    """The grouping stage alone on ``count`` random 64-bit hashes (1 % planted within 1–6
    bits of another) and ``count`` captions (1 % one word away from another)."""

    rng = random.Random(7)
    hashes = []
    for i in range(count):
        if i % 100 == 1:
            h = hashes[-1]
            for bit in rng.sample(range(64), rng.randrange(1, 7)):
                h ^= 1 << bit
        else:
            h = rng.getrandbits(64)
        hashes.append(h)
    t, c = time.perf_counter(), time.process_time()
    image_groups = sum(1 for _ in neighbours.hamming_groups(hashes, 6))
    hashing, hashing_cpu = time.perf_counter() - t, time.process_time() - c
    del hashes
    texts = [_caption(i - 1) + ", extra" if i % 100 == 2 else _caption(i) for i in range(count)]
    t, c = time.perf_counter(), time.process_time()
    caption_groups = sum(1 for _ in neighbours.jaccard_groups(
        (re.findall(r"\w+", text.lower()) for text in texts), 0.9))
    captions, captions_cpu = time.perf_counter() - t, time.process_time() - c
    return {"n": count, "hashes": hashing, "hashes_cpu": hashing_cpu, "captions": captions,
            "captions_cpu": captions_cpu, "groups": [image_groups, caption_groups], **_rss()}


def one_bad(count: int, root: Path, workers: int) -> dict:
    import struct
    import zlib

    config = dataset.DatasetConfig(workers=workers)
    folder = root / f"bad{count}"
    if not (folder / f"r_{count - 1:06d}.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (folder / f"r_{i:06d}.json").write_text("{}")
    out: dict = {"n": count}
    spec = dataset.SubsetSpec(image_dir=str(folder), key_path=(), caption_extension=".txt")
    out["non_images"] = _timed(lambda: dataset.analyse_folder(spec, config, cache_dir=None))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    png = root / "bomb.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(
        ">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0" * 99))
        + chunk(b"IEND", b""))
    rec: dict = {}
    out["png_60000"] = _timed(lambda: rec.update(dataset.scan_file(str(png))))
    out["png_error"] = rec.get("error")
    try:
        import av  # noqa: F401
    except ImportError:
        out["clip"] = None
    else:
        from lorac.scan import video

        clip = root / "cut.mkv"
        _write_clip(clip, 300)
        data = clip.read_bytes()
        clip.write_bytes(data[: len(data) // 3])
        rec = {}
        out["clip"] = _timed(lambda: rec.update(video.probe_video(str(clip))))
        out["clip_result"] = rec.get("truncated") or rec.get("error")
    out.update(_rss())
    return out


def _write_clip(path: Path, frames: int) -> None:
    import av
    import numpy as np

    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=16)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(
                rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


# --------------------------------------------------------------------------- driver


def _child(args: argparse.Namespace, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--dir", str(args.dir), "--workers", str(args.workers),
           *extra]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"bench step {' '.join(extra)} failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _exponent(xs: list[float], ys: list[float]) -> float:
    lx = [math.log(x) for x in xs]
    ly = [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((x - mx) ** 2 for x in lx)
    return sum((x - mx) * (y - my) for x, y in zip(lx, ly, strict=True)) / den if den else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) /
                        "lorac-bench-dataset")
    parser.add_argument("--sizes", default="1000,10000", help="image counts, comma-separated")
    parser.add_argument("--ceiling-sizes", default="256,512,1024",
                        help="pixel sizes for the ceiling ratio ('' skips)")
    parser.add_argument("--ceiling-count", type=int, default=500)
    parser.add_argument("--ceiling-repeat", type=int, default=5,
                        help="best of N for the ratio by pixel size (default 5: they are short)")
    parser.add_argument("--grouping", type=int, default=0,
                        help="also time the grouping stage alone on this many entries")
    parser.add_argument("--bad", type=int, default=0,
                        help="also time a folder of this many non-image files and other "
                        "bad input")
    parser.add_argument("--workers", type=int, default=0, help="default: one per usable CPU")
    parser.add_argument("--repeat", type=int, default=0,
                        help="best of N for each timing (default 2, 1 from 50,000 images)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-ceiling", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-grouping", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-bad", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        repeat = args.repeat or (1 if args.one >= 50_000 else 2)
        print(json.dumps(one_size(args.one, args.dir, args.workers, repeat)))
        return 0
    if args.one_ceiling:
        print(json.dumps(one_ceiling(args.one_ceiling, args.ceiling_count, args.dir,
                                     args.workers, args.ceiling_repeat)))
        return 0
    if args.one_grouping:
        print(json.dumps(one_grouping(args.one_grouping)))
        return 0
    if args.one_bad:
        print(json.dumps(one_bad(args.one_bad, args.dir, args.workers)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    workers = dataset.worker_count(dataset.DatasetConfig(workers=args.workers))
    print(f"{workers} worker process(es) on {os.cpu_count()} CPU(s), "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("scores computed by "
          + (f"the C extension lorac.scan._native ({dataset._native.PASS} pass)"
             if dataset._native is not None else
             "numpy (lorac.scan._native is not built: no C compiler at install)"))
    rows = []
    for n in sizes:
        rows.append(r := _child(args, "--one", str(n), "--repeat", str(args.repeat)))
        best = args.repeat or (1 if n >= 50_000 else 2)
        print(f"\n{n:,} images (256 px JPEG + .txt), best of {best} "
              f"(rescan and analysis: of {max(best, 3)}):")
        print(f"  ceiling (bare reduced decode)  {r['ceiling']:9.2f} s  "
              f"{n / r['ceiling']:8.0f} images/s")
        print(f"  first scan (empty cache)       {r['first']:9.2f} s  "
              f"{n / r['first']:8.0f} images/s   first/ceiling throughput "
              f"{r['ceiling'] / r['first']:.2f} (target >= 0.80)")
        print(f"  rescan (unchanged, warm cache) {r['rescan']:9.3f} s  "
              f"= {r['rescan'] / r['first']:6.1%} of the first scan (target < 5%); "
              f"the first, which keeps the snapshot, {r['first_rescan']:.3f} s")
        print(f"  whole analysis, warm cache     {r['analysis']:9.3f} s  "
              f"= {r['analysis'] / r['first']:6.1%} of the first scan (target < 10%); "
              f"the first two checks {' and '.join(f'{t:.3f}' for t in r['first_checks'])} s")
        print(f"  grouping alone (uncached)      {r['grouping']:9.3f} s  "
              f"({r['groups'][0]} image / {r['groups'][1]} caption groups, "
              f"{r['findings']} findings)")
        print(f"  peak RSS: bench {r['rss_mb']:.0f} MB, largest pool worker "
              f"{r['pool_rss_mb']:.0f} MB; cache file {r['cache_mb']} MB")
    if len(rows) > 1:
        ns = [r["n"] for r in rows]
        print("\ngrowth exponent k (time ∝ n^k, least squares over "
              f"{', '.join(f'{n:,}' for n in ns)}):")
        for stage in ("first", "rescan", "analysis", "grouping"):
            print(f"  {stage:9s} {_exponent(ns, [r[stage] for r in rows]):5.2f}")
        print(f"  peak RSS  {_exponent(ns, [r['rss_mb'] for r in rows]):5.2f}")

    px = [int(s) for s in args.ceiling_sizes.split(",") if s.strip()]
    if px:
        print(f"\nfirst scan / bare-decode ceiling on {args.ceiling_count} images each, best of "
              f"{args.ceiling_repeat} (throughput ratio, target >= 0.80):")
        for size in px:
            c = _child(args, "--one-ceiling", str(size), "--ceiling-count",
                       str(args.ceiling_count), "--ceiling-repeat", str(args.ceiling_repeat))
            print(f"  {size:5d} px: ceiling {c['n'] / c['ceiling']:7.0f} images/s, first scan "
                  f"{c['n'] / c['first']:7.0f} images/s, ratio {c['ceiling'] / c['first']:.2f}"
                  f" ({c['ceiling'] / c['unscored']:.2f} without the two scores)")

    if args.grouping:
        g = _child(args, "--one-grouping", str(args.grouping))
        print(f"\ngrouping stage alone, {g['n']:,} entries: perceptual hashes {g['hashes']:.2f} s "
              f"({g['hashes_cpu']:.2f} s CPU, {g['groups'][0]} groups); captions (words, "
              f"MinHash LSH, verification) {g['captions']:.2f} s ({g['captions_cpu']:.2f} s CPU, "
              f"{g['groups'][1]} groups); peak RSS {g['rss_mb']:.0f} MB (the generated "
              "captions included)")

    if args.bad:
        b = _child(args, "--one-bad", str(args.bad))
        print(f"\nbad input: {b['n']:,} non-image files analysed in {b['non_images']:.2f} s; "
              f"60,000×60,000 PNG header {b['png_60000'] * 1000:.1f} ms ({b['png_error']}); "
              + (f"truncated clip {b['clip'] * 1000:.1f} ms ({b['clip_result']})"
                 if b.get("clip") is not None else "no PyAV: clip skipped")
              + f"; peak RSS {b['rss_mb']:.0f} MB")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
