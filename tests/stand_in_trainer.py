"""A stand-in for ``accelerate launch flux_train_network.py``: prints sd-scripts-like output.

Log lines in RichHandler's shape go to stderr, tqdm bars redraw with ``\\r`` on stderr, like the
real trainer. Options make it fail, sleep, ignore SIGINT, leave a grandchild behind, or write a
LoRA-like output file, so tests of ``lorac.run.process`` can drive every path without a GPU.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def log(msg: str, where: str = "train_network.py:1") -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} INFO     {msg:<60} {where}", file=sys.stderr, flush=True)


def bar(desc: str, n: int, total: int, spi: float, postfix: str = "") -> None:
    pct = int(100 * n / total) if total else 0
    filled = "█" * (pct // 10) + " " * (10 - pct // 10)
    head = f"{desc}: " if desc else ""
    post = f", {postfix}" if postfix else ""
    rate = f"{spi:.2f}s/it" if n else "?it/s"
    sys.stderr.write(f"\r{head}{pct:3d}%|{filled}| {n}/{total} [00:01<00:02, {rate}{post}]")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds per step")
    ap.add_argument("--fail-at", type=int, default=None, help="raise at this step")
    ap.add_argument("--exit-code", type=int, default=1)
    ap.add_argument("--ignore-sigint", action="store_true")
    ap.add_argument("--grandchild", action="store_true", help="start a sleeping grandchild")
    ap.add_argument("--pid-file", type=Path, default=None, help="write own (and grandchild) pids")
    ap.add_argument("--output", type=Path, default=None,
                    help="write this file at the end (a small LoRA when it is .safetensors)")
    ap.add_argument("--lora-rank", type=int, default=4)
    ap.add_argument("--lora-alpha", type=float, default=4.0)
    ap.add_argument("--lora-modules", type=int, default=None,
                    help="modules to write (default: as many as lora_flux makes)")
    ap.add_argument("--lora-zero", action="store_true", help="up-weights all zero")
    ap.add_argument("--lora-nan", action="store_true", help="a NaN in one up-weight")
    ap.add_argument("--spam", type=int, default=0, help="extra log lines per step")
    args = ap.parse_args(argv)

    if args.ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    pids = [os.getpid()]
    if args.grandchild:
        gc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        pids.append(gc.pid)
    if args.pid_file:
        args.pid_file.write_text(" ".join(map(str, pids)))

    print("The following values were not passed to `accelerate launch`", flush=True)
    log("Building Flux model dev from BFL checkpoint", "flux_utils.py:107")
    log("Loading state dict from /synth/flux1-dev.safetensors", "flux_utils.py:124")
    log("caching latents with caching strategy.", "library/dataset.py:752")
    for i in range(1, 3):
        bar("", i, 2, 0.1)
    sys.stderr.write("\n")
    log("caching Text Encoder outputs with caching strategy.", "library/dataset.py:863")
    print("import network module: networks.lora_flux", flush=True)
    print("prepare optimizer, data loader etc.", flush=True)
    print("running training / 学習開始", flush=True)
    bar("steps", 0, args.steps, 0.0)
    loss = 0.5
    for step in range(1, args.steps + 1):
        time.sleep(args.sleep)
        if args.fail_at == step:
            sys.stderr.write("\n")
            try:
                raise RuntimeError(f"CUDA out of memory at step {step} (stand-in)")
            except RuntimeError:
                import traceback

                traceback.print_exc()
            return args.exit_code
        for k in range(args.spam):
            log(f"spam {step}.{k}")
        loss *= 0.9
        bar("steps", step, args.steps, 0.25 + 0.01 * step, f"avr_loss={loss:.4g}")
    sys.stderr.write("\n")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        print(f"\nsaving checkpoint: {args.output}", flush=True)
        if args.output.suffix == ".safetensors":
            _write_lora(args)
        else:
            args.output.write_bytes(b"lora" * 256)
    log("model saved.", "train_network.py:1863")
    return 0


def _write_lora(args: argparse.Namespace) -> None:
    """A LoRA in sd-scripts' FLUX.1 key format with tiny tensors (see tests/make_lora.py)."""

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.make_lora import flux_names, write

    names = flux_names()
    if args.lora_modules is not None:
        names = names[: args.lora_modules]
    write(args.output, rank=args.lora_rank, alpha=args.lora_alpha, names=names,
          zero_up=args.lora_zero, nan=args.lora_nan)


if __name__ == "__main__":
    sys.exit(main())
