"""`lorac lint profiles/` on profiles too big for a quadratic resolver.

Two generated trees, each in its own temporary folder:

* ``vars``: ``profiles/p.toml`` with 100,000 ``[vars]`` entries, extending ``base.toml``, which
  has ``[vars]`` of its own (every key is merged over the parent's table);
* ``chain``: ``base.toml`` and 1,000 profiles, each extending the one before it (a 1,000-deep
  ``extends`` chain, linted as 1,000 files).

Each is linted in a fresh process, cold (``LORAC_NO_CACHE=1``: lorac's result cache,
``lorac/lint/cache.py``, neither read nor written) ``--runs`` times, then twice with the cache (the
first run fills it, the second is the cached figure). The script prints the median wall-clock
and CPU seconds of the cold runs (on a busy machine the wall clock includes waiting for a core)
and whether the median met the target.

    .venv/bin/python bench/resolve_scale.py [--vars N] [--depth N] [--target 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
HEAD = ('[profile]\nfamily = "flux1-dev"\n\n[network]\nnetwork_module = "networks.lora_flux"\n'
        'network_dim = "${rank}"\nnetwork_alpha = "${rank}"\n')


def many_vars(root: Path, count: int) -> None:
    """``p.toml`` with ``count`` [vars] entries over ``base.toml``'s own [vars]."""

    profiles = root / "profiles"
    profiles.mkdir()
    (profiles / "base.toml").write_text(HEAD + "\n[vars]\nrank = 16\nlr = 1e-4\n"
                                        "\n[optimizer]\nlearning_rate = \"${lr}\"\n")
    body = "".join(f"v{i} = {i}\n" for i in range(count))
    (profiles / "p.toml").write_text('[profile]\nextends = "base"\n\n[vars]\nrank = 32\n'
                                     + body)


def deep_chain(root: Path, depth: int) -> None:
    """``base.toml`` and ``p0001`` … ``p<depth>``, each extending the one before."""

    profiles = root / "profiles"
    profiles.mkdir()
    (profiles / "base.toml").write_text(HEAD + "\n[vars]\nrank = 16\n")
    parent = "base"
    for i in range(1, depth + 1):
        name = f"p{i:04d}"
        (profiles / f"{name}.toml").write_text(
            f'[profile]\nextends = "{parent}"\ndescription = "level {i}"\n\n'
            f"[training]\nseed = {i}\n")
        parent = name


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def lint_seconds(root: Path, cached: bool) -> tuple[float, float, int, str]:
    """Wall-clock and CPU seconds of one ``lorac lint profiles/`` in ``root``, its exit code
    and the last line it printed."""

    env = dict(os.environ)
    env.pop("LORAC_NO_CACHE", None)
    if not cached:
        env["LORAC_NO_CACHE"] = "1"
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run([str(BIN / "lorac"), "lint", "profiles/"], cwd=root, env=env,
                          capture_output=True, text=True, check=False)
    took, cpu = time.perf_counter() - start, _children_cpu() - cpu
    tail = (done.stdout + done.stderr).strip().splitlines()
    return took, cpu, done.returncode, tail[-1] if tail else ""


def measure(name: str, make: Callable[[Path], None], target: float, runs: int) -> bool:
    with tempfile.TemporaryDirectory(prefix=f"lorac-{name}-") as tmp:
        root = Path(tmp)
        make(root)
        colds = [lint_seconds(root, cached=False) for _ in range(runs)]
        lint_seconds(root, cached=True)  # fills the cache
        warm, _, warm_code, _ = lint_seconds(root, cached=True)
    cold = statistics.median(c[0] for c in colds)
    cold_cpu = statistics.median(c[1] for c in colds)
    codes = sorted({c[2] for c in colds})
    ok = cold <= target and set(codes) <= {0, 1}
    print(f"{name:<28} cold {cold:5.2f} s (cpu {cold_cpu:5.2f} s; median of {runs}: "
          f"{', '.join(f'{c[0]:.2f}' for c in colds)}; exit {codes[0]})  cached {warm:4.2f} s "
          f"(exit {warm_code})  target {target:.0f} s: {'PASS' if ok else 'FAIL'}")
    print(f"{'':<28} {colds[-1][3]}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vars", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=1_000)
    parser.add_argument("--target", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3, help="cold runs (the median counts)")
    args = parser.parse_args()
    results = [
        measure(f"{args.vars:,} vars over a base", lambda r: many_vars(r, args.vars),
                args.target, args.runs),
        measure(f"{args.depth:,}-deep extends chain", lambda r: deep_chain(r, args.depth),
                args.target, args.runs),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
