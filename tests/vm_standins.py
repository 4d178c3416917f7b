"""A stand-in for `lorac run` in the tests of the GPU plans' schedulers (tests/gpu/*_matrix.py):
a short process that writes what a run leaves in its runs folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: The manifest of a succeeded stand-in run: 9,000 MiB of its own on an H100, 5,000 MiB host.
MANIFEST = {"status": "succeeded", "progress": {"sec_per_it": 1.0},
            "telemetry": {"gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559}],
                          "host_rss_mib": {"train": 5000.0}, "host_rss_peak_mib": 5000.0,
                          "phases": {"train": {"0": {"memory_used_mib": 20000.0,
                                                     "process_memory_mib": 9000.0}}}}}


def stand_in_run(popen: Any, cmd: list, kw: dict, *, steps: int | None = 8,
                 wait: float = 0.0) -> Any:
    """Start (with the real ``popen``) a process standing in for the `lorac run` of ``cmd``: after
    ``wait`` seconds it writes ``<--runs-dir>/r1/manifest.json`` (:data:`MANIFEST` and a
    train.log of ``steps`` steps; a failed run's manifest when ``steps`` is None)."""
    runs = Path(cmd[cmd.index("--runs-dir") + 1]) / "r1"
    if steps is None:
        write = "(r / 'manifest.json').write_text('{\"status\": \"failed\"}')"
    else:
        write = ("(r / 'train.log').write_text('steps: 100%|##########| "
                 f"{steps}/{steps} [00:02<00:00,  1.00s/it]'); (r / 'manifest.json')"
                 f".write_text({json.dumps(json.dumps(MANIFEST))})")
    code = (f"import pathlib, time; time.sleep({wait}); r = pathlib.Path({str(runs)!r}); "
            f"r.mkdir(parents=True, exist_ok=True); {write}")
    return popen([sys.executable, "-c", code],
                 **{k: v for k, v in kw.items() if k in ("stdout", "stderr", "cwd")})


ROOT = Path(__file__).resolve().parent.parent


def load_script(relpath: str, name: str) -> Any:
    """The module of a script that is not a package (a GPU plan under tests/gpu, a bench), loaded
    from the repository root's ``relpath``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def merge_records(recs: list[dict], measurements: dict | Path, tmp: Path) -> dict[str, dict]:
    """``recs`` merged by ``bench/vram_accuracy.py --merge`` into a copy of ``measurements`` (a
    measurements file, or its contents) in ``tmp``: the merged file's records by id."""
    lines = tmp / "records.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in recs))
    into = tmp / "m.json"
    into.write_text(json.dumps(measurements) if isinstance(measurements, dict)
                    else measurements.read_text())
    bench = load_script("bench/vram_accuracy.py", "vram_accuracy")
    if bench.main(["--merge", str(lines), "--measurements", str(into)]) != 0:
        raise AssertionError("vram_accuracy.py --merge failed")
    return {r["id"]: r for r in json.loads(into.read_text())["records"]}


def built_plan_profile(project: Path, name: str) -> tuple[Path, str, str]:
    """``profiles/vm-NAME.toml`` of ``project`` linted clean and built for kohya: the build
    folder, its config.toml and its dataset.toml."""
    from tests.conftest import lorac

    code, _, err = lorac("lint", f"profiles/vm-{name}.toml", "--select", "LRC0,LRC1,LRC6")
    if code != 0:
        raise AssertionError(err)
    code, _, err = lorac("build", f"vm-{name}")
    if code != 0:
        raise AssertionError(err)
    built = project / "build" / f"vm-{name}"
    return built, (built / "config.toml").read_text(), (built / "dataset.toml").read_text()


def plan_job(name: str, gpu: float, host: float, expected: float | None = None,
             family: str = "qwen-image") -> dict:
    """A job of a GPU plan's queue as ``vram_matrix.schedule_step`` reads it: ``gpu`` and
    ``host`` MiB charged, ``expected`` seconds (absent: the plan's default), its family."""

    job = {"name": name, "charge": gpu, "host": host, "split": "fit", "family": family}
    if expected is not None:
        job["expected"] = expected
    return job
