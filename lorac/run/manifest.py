"""The run manifest: ``<run_dir>/manifest.json``, written when a run starts and again at its end.

Every write is atomic (a temporary file in the same folder, then ``os.replace``), so a reader
never sees half a file, and a run killed mid-way leaves the start-time manifest with
``status: "running"``.

Schema (``schema_version`` 1): a plain JSON object. lorac owns these keys:

=====================  ====================================================================
key                    value
=====================  ====================================================================
schema_version         1
lorac_version          the installed lorac's version
run_dir                absolute path of the run folder
command                the trainer's argv, as launched (list of strings)
env                    {NAME: value or null} for the variables lorac set for the trainer;
                       the value is null where the name looks secret (token, secret, key,
                       password, ...: see :data:`SECRET_NAME`)
status                 "running" at start; then "succeeded" | "failed" | "interrupted" |
                       "stopped" (lorac ended it at ``max_steps``) | "check failed" (the
                       trainer succeeded but a saved LoRA does not match the profile)
exit_code              the trainer's exit code (128 + N when signal N ended it); null while
                       running
started_at, ended_at   ISO-8601 UTC times; duration_s: seconds, wall clock
progress               {phase, step, total, sec_per_it, loss, error}: the last state parsed
phases                 [{phase, at_s}]: when each phase began, seconds after the start
telemetry              :meth:`lorac.run.telemetry.GpuSampler.summary`: gpus, memory_api, baseline
                       and per-phase peak memory (MiB) per GPU, or ``available: false`` + reason
versions               {python, platform, torch, accelerate, transformers, diffusers,
                       safetensors, nvidia-ml-py, driver}: each null where unknown
outputs                [{path (relative to run_dir), bytes, sha256}] for every file in the run
                       folder at the end, except manifest.json itself
lora_check             (``lorac run`` after a run that succeeded or stopped)
                       {files: [{path, key_format, trainer, network_module, modules, rank,
                       alpha, health, problems}], expected_modules (null where unknown),
                       expected_modules_unknown (why), problems}: every saved
                       LoRA inspected against the profile (:mod:`lorac.run.check`)
=====================  ====================================================================

Adding to it: pass ``extra={...}`` to :func:`new_manifest` (``lorac.run.process.launch`` takes it as
``manifest_extra``) with keys of your own, e.g. ``profile`` (the resolved profile) and ``inputs``
(hashes of the compiled files and the dataset); a key lorac owns is refused with ``ValueError``.
Unknown keys are kept through every later write. Bump ``schema_version`` only when a lorac-owned
key changes meaning.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST_NAME",
    "OWNED_KEYS",
    "SCHEMA_VERSION",
    "SECRET_NAME",
    "file_entries",
    "new_manifest",
    "redact_env",
    "versions",
    "write_manifest",
]

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
OWNED_KEYS = frozenset(
    {
        "schema_version", "lorac_version", "run_dir", "command", "env", "status", "exit_code",
        "started_at", "ended_at", "duration_s", "progress", "phases", "telemetry", "versions",
        "outputs", "lora_check",
    }
)  # fmt: skip

#: Variable names whose values are never written: anything that looks like a credential.
SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSW(OR)?D|PASSPHRASE|(^|_)KEY($|_)|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL"
    r"|AUTH|COOKIE|SESSION|SIGNATURE|_PAT$|^PAT_|WEBHOOK|DSN)",
    re.IGNORECASE,
)


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def redact_env(env: Mapping[str, str], known: Iterable[str] = ()) -> dict[str, str | None]:
    """Names always; values only where the name does not look secret, and then with the
    ``known`` secret values and any recognisable token in them masked
    (:func:`lorac.core.secrets.scrub`)."""
    from lorac.core.secrets import looks_secret_name, scrub

    known = set(known)
    return {k: (None if SECRET_NAME.search(k) or looks_secret_name(k) else scrub(v, known))
            for k, v in sorted(env.items())}


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def lorac_version() -> str:
    from lorac import __version__

    return _dist_version("lorac") or __version__


def versions() -> dict[str, str | None]:
    """Versions of lorac's Python environment, read from package metadata (nothing imported).

    The trainer normally runs under the same interpreter (``accelerate launch`` spawns
    ``sys.executable``-like pythons found on PATH); where it does not, these describe lorac's.
    """
    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
    }
    for dist in ("torch", "accelerate", "transformers", "diffusers", "safetensors", "nvidia-ml-py"):
        out[dist] = _dist_version(dist)
    out["driver"] = None  # the runner fills it in from NVML
    return out


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_entries(root: Path, exclude: Sequence[str] = (MANIFEST_NAME,)) -> list[dict[str, Any]]:
    """Every file under ``root`` (sorted), with its size and SHA-256."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or p.is_symlink() or rel in exclude or p.name.startswith(".manifest"):
            continue
        out.append({"path": rel, "bytes": p.stat().st_size, "sha256": sha256_file(p)})
    return out


def new_manifest(
    argv: Sequence[str],
    run_dir: Path,
    env: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
    *,
    known: Iterable[str] = (),
) -> dict[str, Any]:
    """The start-time manifest. ``extra`` adds caller-owned top-level keys (see module doc);
    ``known`` secret values are masked in the recorded ``env``."""
    clash = OWNED_KEYS.intersection(extra or {})
    if clash:
        raise ValueError(f"manifest keys owned by lorac cannot be set by a caller: {sorted(clash)}")
    return {
        "schema_version": SCHEMA_VERSION,
        "lorac_version": lorac_version(),
        "run_dir": str(Path(run_dir).resolve()),
        "command": [str(a) for a in argv],
        "env": redact_env(env, known),
        "status": "running",
        "exit_code": None,
        "started_at": utc_now(),
        "ended_at": None,
        "duration_s": None,
        "progress": {},
        "phases": [],
        "telemetry": {},
        "versions": versions(),
        "outputs": [],
        **dict(extra or {}),
    }


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest`` to ``path`` atomically (temp file in the same folder + os.replace)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data
