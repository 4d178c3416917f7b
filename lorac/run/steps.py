"""Several trainer commands as one run: ``python -m lorac.run.steps PLAN.json``.

A backend whose run is more than one command (musubi-tuner: cache latents, cache text-encoder
outputs, train) gives :func:`lorac.run.launch.run_profile` its steps; lorac writes them to
``steps.json`` in the run folder and launches this module as *the* trainer process, so that
:func:`lorac.run.process.launch` drives one process group: one progress display, one
``train.log``, one manifest, GPU peaks per phase.

Each step runs in turn in the same process group, after a line that moves the progress parser to
its phase (``lorac: step …``, :data:`lorac.run.progress._MARKERS`); a skipped step (a valid cache)
gets a line saying so. The first step that fails ends the run with its exit code. A SIGINT or
SIGTERM reaches the running step through the group (``launch`` forwards it there); this driver
waits for that step, runs nothing more, and exits with 128 + the signal. After a step that has
``then_write``, those files are written (lorac's cache records), so they exist only for caches
that were completely made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

#: The marker printed before each step, per phase (progress.py knows these lines).
MARKER = "lorac: step {name}"

_received: list[int] = []


def _note(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)  # the step got it too (same process group); stop after it


def run(plan: dict[str, Any]) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _note)
    for step in plan["steps"]:
        if _received:
            break
        if step.get("skip"):
            print(f"lorac: skipping step {step['name']}: {step['skip']}", flush=True)
            continue
        print(MARKER.format(name=step["name"]), flush=True)
        proc = subprocess.Popen(step["argv"])
        while True:
            try:
                code = proc.wait()
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries wait()
                continue
        if _received:
            return 128 + _received[0]
        if code != 0:
            print(f"lorac: step {step['name']} failed (exit {code})", flush=True)
            return 128 - code if code < 0 else code
        for item in step.get("then_write", []):
            path = Path(item["path"])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(item["text"], encoding="utf-8")
            os.replace(tmp, path)
    return 128 + _received[0] if _received else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lorac.run.steps PLAN.json", file=sys.stderr)
        return 2
    plan = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    return run(plan)


if __name__ == "__main__":
    raise SystemExit(main())
