"""GPU memory of musubi-tuner LoRA runs (Wan 2.x, Qwen-Image): a first-principles estimate
(:mod:`lorac.trainers.lora_memory`) with musubi's placement, calibrated on the measured runs of
``backends/musubi/vram_measurements.json`` (constants and interval per architecture in
``backends/musubi/vram_model.json``, written by ``bench/vram_accuracy.py --write``).

Placement (musubi-tuner at the pin): a run is three processes. Latent caching
(``wan_cache_latents.py``, ``qwen_image_cache_latents.py``) holds the VAE in bf16 and encodes a
clip's frames; text-encoder caching holds umT5-XXL (``--fp8_t5``: float8) or Qwen2.5-VL
(``--fp8_vl``) alone; training (``hv_train_network.py`` and the architecture's subclass) loads
only the DiT (``--fp8_base``: float8, ``--fp8_scaled`` likewise), the LoRA and the optimizer,
with ``--blocks_to_swap`` blocks on the host. Wan 2.2 A14B keeps the inactive expert on the host.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from lorac.trainers import lora_memory as lm
from lorac.trainers.estimates import Interval

#: musubi families the memory model knows, and the architecture whose runs calibrate them.
CALIBRATED_BY = {
    "wan2.1-t2v-1.3b": "wan", "wan2.1-t2v-14b": "wan", "wan2.1-i2v-14b": "wan",
    "wan2.2-t2v-a14b": "wan", "wan2.2-i2v-a14b": "wan", "qwen-image": "qwen-image",
}  # fmt: skip


def backends_file(name: str) -> Path:
    from lorac.config.inventory import backends_dir

    return backends_dir() / "musubi" / name


def run_from_options(opts: dict[str, Any], family: str, shape: tuple[int, int, int, int],
                     gpus: int = 1) -> lm.LoraRun:
    w, h, batch, frames = shape
    fp8 = lm.truthy(opts.get("fp8_base")) or lm.truthy(opts.get("fp8_scaled"))
    te8 = lm.truthy(opts.get("fp8_t5")) or lm.truthy(opts.get("fp8_vl"))
    return lm.LoraRun(
        trainer="musubi", family=family, width=w, height=h, frames=frames, batch_size=batch,
        rank=max(1, lm._int(opts.get("network_dim"), 4)),
        optimizer=lm.optimizer_name(opts),
        gradient_checkpointing=lm.truthy(opts.get("gradient_checkpointing")),
        dit_bytes=1.0 if fp8 else 2.0, upcast_kept=fp8, te_bytes=1.0 if te8 else 2.0,
        blocks_to_swap=max(0, lm._int(opts.get("blocks_to_swap"), 0)), gpus=gpus)


def run_from_profile(profile: Any) -> lm.LoraRun:
    opts = lm.profile_options(profile)
    gpus = lm._int(profile.get("run", "gpus", default=1), 1)
    return run_from_options(opts, profile.family or "", lm.dataset_shape(profile), gpus)


def run_from_record(rec: dict[str, Any]) -> lm.LoraRun:
    from lorac.config.profile import parse_resolution

    cond = dict(rec.get("conditions", {}))
    w, h = parse_resolution(cond.get("resolution", 1024)) or (1024, 1024)
    shape = (w, h, lm._int(cond.get("batch_size", 1), 1), lm._int(cond.get("frames", 1), 1))
    return run_from_options(cond, rec["family"], shape, lm._int(rec.get("gpus"), 1))


def load_measurements() -> list[dict[str, Any]]:
    p = backends_file("vram_measurements.json")
    return list(json.loads(p.read_text(encoding="utf-8")).get("records", [])) if p.is_file() \
        else []


@lru_cache(maxsize=2)
def _model() -> dict[str, Any]:
    p = backends_file("vram_model.json")
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def _entry(family: str) -> dict[str, Any]:
    """The model file's entry of the architecture that calibrates ``family`` ({} if none)."""
    return (_model().get("architectures") or {}).get(CALIBRATED_BY.get(family, family)) or {}


def calibration(family: str) -> tuple[lm.Constants, Interval | None]:
    """Constants of the family's architecture; the interval only where the family itself was
    measured (another family of the architecture is an estimate with its constants)."""
    return lm.calibration_of(_entry(family), family)


def estimate(run: lm.LoraRun) -> lm.Prediction:
    k, iv = calibration(run.family)
    return lm.estimate(run, k, iv, _entry(run.family).get("tested"))
