"""Summarise lorac run folders for the GPU proof: status, steps, s/it, per-phase peak memory
per GPU, and the LoRA file's module and key counts (read from its safetensors header).

    python3 tests/gpu/summarise.py RUNS_DIR [RUNS_DIR ...]
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path


def lora_counts(path: Path) -> tuple[int, int]:
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    keys = [k for k in header if k != "__metadata__"]
    modules = {k.split(".lora_down")[0] for k in keys if ".lora_down." in k}
    return len(modules), len(keys)


def main(folders: list[str]) -> int:
    for root in folders:
        for run in sorted(Path(root).iterdir()):
            m = json.loads((run / "manifest.json").read_text())
            p = m.get("progress") or {}
            print(f"== {run}: {m['status']} exit {m['exit_code']} in {m.get('duration_s')} s; "
                  f"step {p.get('step')}/{p.get('total')}, {p.get('sec_per_it')} s/it, "
                  f"loss {p.get('loss')}")
            print(f"   command: {' '.join(m['command'][:6])} …")
            t = m.get("telemetry") or {}
            print(f"   memory api: {t.get('memory_api')}; peak MiB per GPU: {t.get('peak_mib')}")
            for phase, per_gpu in (t.get("phases") or {}).items():
                peaks = {g: v.get("memory_used_mib", v) if isinstance(v, dict) else v
                         for g, v in per_gpu.items()}
                print(f"   {phase:<20} {peaks}")
            print(f"   phases began at: {[(x['phase'], x['at_s']) for x in m.get('phases', [])]}")
            for lora in sorted(run.glob("output/*.safetensors")):
                modules, keys = lora_counts(lora)
                print(f"   {lora.name}: {modules} modules, {keys} keys, "
                      f"{lora.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
