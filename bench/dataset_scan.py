"""Benchmark the dataset scanner against the bare reduced-size decode of the same files.

Usage: ``python bench/dataset_scan.py [--dir DIR] [--count 1000] [--size 1024] [--workers N]``

Generates ``count`` distinct ``size``-px JPEGs in DIR (kept and reused when already there),
then, on the same cores and with the files in the page cache, prints:

* the ceiling: a bare PIL decode at reduced size (``draft`` to the 256-px box the scanner asks
  for, ``load``) of every file, through the same process pool;
* the first scan (:func:`lorac.scan.dataset.scan` with an empty cache): throughput and its ratio
  to the ceiling (target ≥ 0.7 on 2 cores);
* the cached rescan of the unchanged set (target ≤ 5 % of the first scan), and the whole
  folder analysis on a warm cache (listing, captions, blur median, duplicate groups).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lorac.scan import dataset


def _make(args: tuple[str, int, int]) -> None:
    from PIL import Image, ImageDraw

    path, seed, size = args
    rng = random.Random(seed)
    base = Image.linear_gradient("L").resize((size, size)).rotate(rng.randrange(360))
    im = Image.merge("RGB", [base.point(lambda v, k=k: (v * (k + 1) + seed * 7) % 256)
                             for k in range(3)])
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(size // 16, size // 4)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    for _ in range(60):
        x, y = rng.randrange(size), rng.randrange(size)
        draw.line([x, y, x + rng.randrange(-300, 300), y + rng.randrange(-300, 300)],
                  fill=tuple(rng.randrange(256) for _ in range(3)), width=rng.randrange(1, 4))
    noise = Image.effect_noise((size, size), 30).convert("RGB")
    Image.blend(im, noise, 0.12).save(path, "JPEG", quality=90)
    Path(path).with_suffix(".txt").write_text(f"ohwx woman, image {seed}\n")


def generate(folder: Path, count: int, size: int, workers: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img_{i:05d}.jpg" for i in range(count)]
    todo = [(str(p), i, size) for i, p in enumerate(paths) if not p.exists()]
    if todo:
        t = time.perf_counter()
        dataset.run_parallel(_make, todo, workers)
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
    total = 0
    for p in paths:
        total += len(p.read_bytes())
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) /
                        "lorac-bench-dataset")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=0, help="default: one per usable CPU")
    parser.add_argument("--repeat", type=int, default=2, help="best of N for each timing")
    args = parser.parse_args(argv)

    config = dataset.DatasetConfig(workers=args.workers)
    workers = dataset.worker_count(config)
    paths = generate(args.dir, args.count, args.size, workers)
    size = _warm(paths)
    names = [str(p) for p in paths]
    print(f"{len(paths)} JPEGs, {size / 1e6:.0f} MB, {workers} worker process(es) "
          f"on {os.cpu_count()} CPU(s) ({len(os.sched_getaffinity(0))} usable)")

    cache_root = Path(tempfile.mkdtemp(prefix="lorac-bench-cache-"))
    try:
        # interleaved, best of N each: a busy machine slows both alike
        ceilings, firsts = [], []
        for _ in range(args.repeat):
            ceilings.append(_timed(lambda: dataset.run_parallel(_bare_decode, names, workers)))
            shutil.rmtree(cache_root, ignore_errors=True)
            firsts.append(_timed(lambda: dataset.scan(paths, config, cache_dir=cache_root)))
        ceiling, first = min(ceilings), min(firsts)
        rescan = min(_timed(lambda: dataset.scan(paths, config, cache_dir=cache_root))
                     for _ in range(args.repeat))
        spec = dataset.SubsetSpec(image_dir=str(args.dir), key_path=(),
                                  caption_extension=".txt", resolution=(1024, 1024),
                                  enable_bucket=True, bucket_no_upscale=True)
        whole = min(_timed(lambda: dataset.analyse_folder(
            spec, config, triggers=["ohwx woman"], cache_dir=cache_root))
            for _ in range(args.repeat))
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)

    n = len(paths)
    print(f"ceiling (bare reduced-size PIL decode): {n / ceiling:8.1f} images/s "
          f"({ceiling:.2f} s)")
    print(f"first scan (empty cache):               {n / first:8.1f} images/s "
          f"({first:.2f} s)")
    print(f"ratio first scan / ceiling:             {ceiling / first:8.2f}   (target >= 0.70)")
    print(f"cached rescan (unchanged set):          {rescan * 1000:8.1f} ms "
          f"= {rescan / first:.1%} of the first scan (target <= 5%)")
    print(f"whole folder analysis, warm cache:      {whole * 1000:8.1f} ms "
          f"= {whole / first:.1%} of the first scan")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
