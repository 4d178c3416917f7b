"""How much lorac.run.process adds to a trainer's wall time: stand-in trainer, direct vs launch.

    .venv/bin/python bench/run_overhead.py [--steps 2000] [--spam 5] [--repeat 3]

The stand-in prints ``steps`` tqdm redraws and ``spam`` log lines per step as fast as it can, far
more output per second than sd-scripts (one bar redraw per ~1 s step), so this is an upper bound.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lorac.run.process import launch  # noqa: E402

STAND_IN = ROOT / "tests" / "stand_in_trainer.py"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--spam", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cmd = [sys.executable, str(STAND_IN), "--steps", str(args.steps), "--spam", str(args.spam)]
    direct, through = [], []
    lines = 0
    for _ in range(args.repeat):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        direct.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            r = launch(cmd, Path(tmp) / "run", display="none", sample_interval=0.2)
            through.append(time.perf_counter() - t)
            assert r.status == "succeeded", r.tail
            text = r.log_path.read_text(encoding="utf-8")
            lines = text.count("\n") + text.count("\r")
    d, w = statistics.median(direct), statistics.median(through)
    print(f"output lines per run   {lines}")
    print(f"direct (to /dev/null)  {d:.3f} s")
    print(f"through lorac.launch   {w:.3f} s  (+{w - d:.3f} s, {lines / w:,.0f} lines/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
