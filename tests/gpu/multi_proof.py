"""The profiles and the summary of the several-GPU proof (``tests/gpu/multi_proof.sh``).

    python3 tests/gpu/multi_proof.py profiles DIR [DATA_DIR CACHE_ROOT]
    python3 tests/gpu/multi_proof.py summary OUT RUNS_DIR [RUNS_DIR ...]

``profiles`` writes, for each trainer, the same job for one GPU and for two (``[run] gpus``):

* ``multi-kohya-g{1,2}``: ``fast`` (FLUX.1-dev) — DIR must be the folder that holds it;
* ``multi-musubi-g{1,2}``: the Wan 2.1 T2V 1.3B example (``profiles/examples/musubi``) with the
  image dataset of DATA_DIR, a cache folder of its own under CACHE_ROOT (so that each run
  makes its caches and its manifest has every phase) and no epoch count (``--max-steps``
  decides); torch's AdamW where bitsandbytes is missing;
* ``multi-aitk-g{1,2}``: ``fast`` for ai-toolkit, whose two-GPU profile lorac must refuse
  (LRC691) without launching anything.

``summary`` reads the run folders (each ``RUNS_DIR`` holds the runs of one profile) and writes
``OUT/multi-summary.json`` and prints, per run: the status, the steps, seconds per step, the
peak memory of each GPU (whole run and training phase); and per trainer the throughput of
two GPUs against one: ``(processes₂ / s_per_step₂) / (processes₁ / s_per_step₁)``, each
process taking the same batch per step (data-parallel), so 2.0 would be perfect scaling.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MUSUBI_EXAMPLE = ROOT / "profiles" / "examples" / "musubi" / "wan2.1-t2v-1.3b.toml"
TRAINERS = ("kohya", "musubi", "aitk")
GPUS = (1, 2)


def name(trainer: str, gpus: int) -> str:
    return f"multi-{trainer}-g{gpus}"


def _run_table(gpus: int) -> str:
    return f"\n[run]\ngpus = {gpus}\n"


def _extends_fast(gpus: int, backend: str | None) -> str:
    what = f"fast for {backend}" if backend else "fast"
    text = f'[profile]\nextends = "fast"\ndescription = "{what} on {gpus} GPU(s)"\n'
    if backend:
        text += f'backend = "{backend}"\n'
    return text + _run_table(gpus)


def _musubi(gpus: int, data_dir: Path, cache: Path) -> str:
    import tomlkit

    text = "\n".join(line for line in MUSUBI_EXAMPLE.read_text(encoding="utf-8").splitlines()
                     if not line.startswith("#:schema"))
    doc = tomlkit.parse(text)
    doc["profile"]["description"] = f"Wan 2.1 T2V 1.3B on {gpus} GPU(s)"
    doc["vars"]["data_dir"] = str(data_dir)
    del doc["training"]["max_train_epochs"]
    del doc["saving"]["save_every_n_epochs"]
    if importlib.util.find_spec("bitsandbytes") is None:
        doc["optimizer"]["optimizer_type"] = "adamw"
    doc["dataset"]["datasets"][0]["cache_directory"] = str(cache / name("musubi", gpus))
    return tomlkit.dumps(doc) + _run_table(gpus)


def write_profiles(folder: Path, data_dir: Path, cache: Path) -> list[Path]:
    """The six proof profiles in ``folder`` (see the module docstring)."""

    written = []
    for gpus in GPUS:
        for trainer, text in (("kohya", _extends_fast(gpus, None)),
                              ("musubi", _musubi(gpus, data_dir, cache)),
                              ("aitk", _extends_fast(gpus, "ai-toolkit"))):
            path = folder / f"{name(trainer, gpus)}.toml"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


# --------------------------------------------------------------------------- summary


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def processes(manifest: dict[str, Any]) -> int:
    """``gpus × num_machines`` of the profile the run was made from."""
    run = ((manifest.get("profile") or {}).get("data") or {}).get("run") or {}
    total = 1
    for key in ("gpus", "num_machines"):
        value = run.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            total *= value
    return total


def run_summary(folder: Path) -> dict[str, Any]:
    """What the proof reports of one run folder."""

    m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    progress = m.get("progress") or {}
    telemetry = m.get("telemetry") or {}
    train = (telemetry.get("phases") or {}).get("train") or {}
    return {
        "run": folder.name,
        "profile": (m.get("profile") or {}).get("name"),
        "status": m.get("status"),
        "exit_code": m.get("exit_code"),
        "processes": processes(m),
        "step": progress.get("step"),
        "total": progress.get("total"),
        "sec_per_step": _number(progress.get("sec_per_it")),
        "duration_s": m.get("duration_s"),
        "peak_mib": telemetry.get("peak_mib") or {},
        "train_peak_mib": {gpu: v.get("memory_used_mib") if isinstance(v, dict) else v
                           for gpu, v in train.items()},
        "loras": sorted(o.get("path") for o in m.get("outputs") or []
                        if str(o.get("path", "")).endswith(".safetensors")),
    }


def throughput_ratio(one: dict[str, Any], two: dict[str, Any]) -> float | None:
    """Steps of all processes per second of ``two`` over ``one``'s (None without both)."""

    s1, s2 = one.get("sec_per_step"), two.get("sec_per_step")
    if not s1 or not s2:
        return None
    return round((two["processes"] / s2) / (one["processes"] / s1), 3)


def summarise(out: Path, folders: list[Path]) -> dict[str, Any]:
    runs = [run_summary(run) for root in folders if root.is_dir()
            for run in sorted(root.iterdir()) if (run / "manifest.json").is_file()]
    by_profile = {r["profile"]: r for r in runs}
    ratios = {}
    for trainer in TRAINERS:
        one, two = by_profile.get(name(trainer, 1)), by_profile.get(name(trainer, 2))
        if one and two and one["status"] == two["status"] == "succeeded":
            ratios[trainer] = throughput_ratio(one, two)
    result = {"runs": runs, "throughput_2_over_1": ratios}
    out.mkdir(parents=True, exist_ok=True)
    (out / "multi-summary.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def render(result: dict[str, Any]) -> str:
    lines = []
    for r in result["runs"]:
        peaks = ", ".join(f"gpu{g} {v:,.0f}" for g, v in sorted(r["peak_mib"].items())
                          if isinstance(v, (int, float)))
        train = ", ".join(f"gpu{g} {v:,.0f}" for g, v in sorted(r["train_peak_mib"].items())
                          if isinstance(v, (int, float)))
        lines.append(f"{r['profile']}: {r['status']} exit {r['exit_code']}, {r['processes']} "
                     f"process(es), step {r['step']}/{r['total']}, {r['sec_per_step']} s/step, "
                     f"{r['duration_s']} s")
        lines.append(f"  peak MiB: {peaks or '-'}; training phase: {train or '-'}")
        lines += [f"  LoRA {p}" for p in r["loras"]]
    for trainer, ratio in result["throughput_2_over_1"].items():
        lines.append(f"{trainer}: throughput of 2 GPUs / 1 GPU = {ratio}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "profiles":
        folder = Path(argv[1])
        data = Path(argv[2]) if len(argv) > 2 else ROOT / "examples" / "subject"
        cache = Path(argv[3]) if len(argv) > 3 else Path("/tmp/multi-cache")
        for path in write_profiles(folder, data.resolve(), cache):
            print(path)
        return 0
    if len(argv) >= 3 and argv[0] == "summary":
        sys.stdout.write(render(summarise(Path(argv[1]), [Path(a) for a in argv[2:]])))
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
