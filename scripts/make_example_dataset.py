"""Write the example dataset the shipped profiles train on (``examples/subject`` by default).

Synthetic, deterministic pictures (random shapes over a gradient, fine grain) with captions that
start with the trigger token: enough for `lorac lint profiles/` to check a real folder and for
`lorac run fast --synthetic` to train on, never a substitute for real photos.

    python scripts/make_example_dataset.py [DIR] [--count 16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.make_dataset_fixture import caption, jpeg_bytes, make_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default="examples/subject", type=Path)
    parser.add_argument("--count", type=int, default=16)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        size = (1024, 1024) if i % 4 else (832, 1216)
        stem = args.dir / f"subject_{i:03d}"
        stem.with_suffix(".jpg").write_bytes(jpeg_bytes(make_image(i, size, grain=0.03),
                                                         quality=80))
        stem.with_suffix(".txt").write_text(caption(i) + "\n", encoding="utf-8")
    print(f"wrote {args.count} images with captions to {args.dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
