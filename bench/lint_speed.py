"""Cold and cached `lorac lint profiles/` against check-jsonschema on the same files.

Each command runs in its own fresh process, at least 10 times, alternating, from the same
virtual environment; the script prints the medians and the ratios against the targets
(cold lint ≤ 0.5 × check-jsonschema; a re-run on unchanged files ≤ 3 × the bare interpreter).

    .venv/bin/python bench/lint_speed.py [--runs 15]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    check_jsonschema = shutil.which("check-jsonschema", path=str(BIN))
    if check_jsonschema is None:
        print("check-jsonschema is not installed in this environment (pip install "
              "check-jsonschema)", file=sys.stderr)
        return 2
    lorac = str(BIN / "lorac")
    profiles = sorted(glob.glob(str(REPO / "profiles" / "*.toml")))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    cold_env = {**env, "LORAC_NO_CACHE": "1"}
    commands = {
        "python -c pass": ([sys.executable, "-c", "pass"], env),
        "check-jsonschema": ([check_jsonschema, "--schemafile",
                              str(REPO / "lorac/schema/profile.schema.json"), *profiles], env),
        # the same files for both (profiles/examples/ holds more, which check-jsonschema
        # would not be given)
        "lorac lint (cold)": ([lorac, "lint", *profiles, "--no-dataset"], cold_env),
        "lorac lint (cached)": ([lorac, "lint", *profiles, "--no-dataset"], env),
    }
    # warm the OS page cache, the bytecode caches and lorac's result cache
    for cmd, e in commands.values():
        _time(cmd, e)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, (cmd, e) in commands.items():
            times[name].append(_time(cmd, e))
    med = {name: statistics.median(ts) * 1000 for name, ts in times.items()}
    print(f"{len(profiles)} profiles, {args.runs} runs each, alternating; medians:")
    for name, ms in med.items():
        spread = (max(times[name]) - min(times[name])) * 1000
        print(f"  {name:<22} {ms:8.1f} ms   (min {min(times[name]) * 1000:.1f}, "
              f"spread {spread:.1f})")
    cold = med["lorac lint (cold)"] / med["check-jsonschema"]
    cached = med["lorac lint (cached)"] / med["python -c pass"]
    print(f"cold lint / check-jsonschema   = {cold:.2f}  (target <= 0.50) "
          f"{'OK' if cold <= 0.5 else 'MISSED'}")
    print(f"cached lint / bare interpreter = {cached:.2f}  (target <= 3.00) "
          f"{'OK' if cached <= 3 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
