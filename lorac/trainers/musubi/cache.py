"""Is a musubi dataset's cache valid for a profile? Recorded by lorac, checked without models.

musubi-tuner's cache files record little of what they were made with: latents carry the
architecture, the *source* image size and a format version; text-encoder outputs the
architecture and the caption (src/musubi_tuner/dataset/cache_io.py:305-324, :502-506). Not the
resolution or buckets, not ``target_frames``, not the VAE or text encoder file. With
``--skip_existing`` stale latents are kept after a resolution change (cache_latents.py:315-319);
without it every run encodes everything again.

So lorac writes ``lorac-cache.json`` into each dataset's ``cache_directory`` once both caching
steps have succeeded: a key over everything the caches depend on (the family, both caching
steps' options, the dataset's compiled config, the names, sizes and modification times of its
media and caption files, the musubi-tuner commit) and what went into it. The next run skips
the caching steps when every dataset's record has the key it would write now. A dataset
without ``cache_directory`` caches beside its images; lorac writes nothing there, so such a
run always caches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lorac.core.digest import sha256

RECORD_NAME = "lorac-cache.json"
#: Caching options that change how the work is done, not what is cached.
NOT_IN_KEY = frozenset({"batch_size", "num_workers", "device", "skip_existing", "keep_cache",
                        "debug_mode", "console_width", "console_back", "console_num_images",
                        "disable_cudnn_backend", "vae_cache_cpu"})
#: Files whose change invalidates a cache: media and captions.
_SOURCE_FILES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".avif", ".jxl", ".mp4",
                           ".mov", ".avi", ".webm", ".mkv", ".gif", ".txt", ".caption",
                           ".json", ".jsonl"})


def _listing(entry: dict[str, Any]) -> list[list[Any]]:
    files: list[list[Any]] = []
    for key in ("image_directory", "video_directory", "control_directory"):
        folder = entry.get(key)
        if isinstance(folder, str) and Path(folder).is_dir():
            for path in sorted(Path(folder).iterdir()):
                if path.is_file() and path.suffix.lower() in _SOURCE_FILES:
                    st = path.stat()
                    files.append([key, path.name, st.st_size, st.st_mtime_ns])
    for key in ("image_jsonl_file", "video_jsonl_file"):
        name = entry.get(key)
        if isinstance(name, str) and Path(name).is_file():
            st = Path(name).stat()
            files.append([key, name, st.st_size, st.st_mtime_ns])
    return files


def checkout_commit(settings: Any) -> tuple[str | None, tuple[Path, ...]]:
    """The commit of the musubi-tuner checkout ``lorac run`` would run (``$LORAC_MUSUBI_TUNER``,
    else ``[tool.lorac] musubi-tuner``) and the files it was read from (``.lorac-commit``, else
    git's ``HEAD`` and its ref, as for sd-scripts' version); ``(None, ())`` when no checkout is
    configured or its commit cannot be told. ``lorac run`` keys the cache on the same commit
    (:func:`lorac.trainers.checkout.commit_of`)."""

    from lorac.config.kohya_version import _commit
    from lorac.core.diagnostics import LoracError
    from lorac.trainers.checkout import configured_checkout

    try:
        found = configured_checkout(settings, "musubi")
    except LoracError:
        return None, ()
    return _commit(found.path)


def made_with(family: str, step_options: dict[str, dict[str, Any]],
              general: dict[str, Any], entry: dict[str, Any], commit: str | None,
              ) -> dict[str, Any]:
    """What one dataset's cache depends on (JSON-able)."""
    return {
        "family": family,
        "musubi_commit": commit,
        "latents": {k: v for k, v in sorted(step_options.get("latents", {}).items())
                    if k not in NOT_IN_KEY},
        "text_encoder": {k: v for k, v in sorted(step_options.get("text_encoder", {}).items())
                         if k not in NOT_IN_KEY},
        "dataset": {"general": general, "dataset": entry},
        "files": _listing({**general, **entry}),
    }


def key_of(record: dict[str, Any]) -> str:
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    return sha256(text.encode("utf-8")).hexdigest()


def state(family: str, step_options: dict[str, dict[str, Any]], dataset: dict[str, Any],
          commit: str | None) -> dict[str, Any]:
    """The cache state of every dataset of the compiled ``dataset`` config:
    ``{"valid": bool, "reason": str, "datasets": [{cache_directory, key, record, found}]}``."""

    general = dict(dataset.get("general", {}))
    entries = []
    reasons = []
    for i, entry in enumerate(dataset.get("datasets", [])):
        folder = entry.get("cache_directory")
        record = made_with(family, step_options, general, entry, commit)
        key = key_of(record)
        item: dict[str, Any] = {"cache_directory": folder, "key": key, "made_with": record,
                                "found": None}
        if not isinstance(folder, str):
            reasons.append(f"dataset {i} has no cache_directory")
        else:
            path = Path(folder) / RECORD_NAME
            try:
                found = json.loads(path.read_text(encoding="utf-8")).get("key")
            except (OSError, ValueError, AttributeError):
                found = None
            item["found"] = found
            if found is None:
                reasons.append(f"{path} does not exist")
            elif found != key:
                reasons.append(f"{path} was made with other settings or files")
        entries.append(item)
    if not entries:
        reasons.append("no datasets")
    return {"valid": not reasons, "reason": "; ".join(reasons) or "every dataset's cache "
            "was made with these settings and files", "datasets": entries}


def write_records(datasets: list[dict[str, Any]]) -> list[str]:
    """Write ``lorac-cache.json`` for each dataset with a cache directory; returns the paths."""
    written = []
    for item in datasets:
        folder = item.get("cache_directory")
        if not isinstance(folder, str):
            continue
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = Path(folder) / RECORD_NAME
        tmp = path.with_name(f".{RECORD_NAME}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": item["key"], "made_with": item["made_with"]},
                                  indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        written.append(str(path))
    return written
