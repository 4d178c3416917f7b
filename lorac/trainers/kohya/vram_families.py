"""GPU memory of kohya sd-scripts LoRA runs of SDXL and SD3/SD3.5: a first-principles estimate
(:mod:`lorac.trainers.lora_memory`) with sd-scripts' placement of each model, calibrated where
``backends/kohya/vram_measurements.json`` has measured runs of the family.

Placement (sd-scripts at the pin): the text encoders reach the GPU to cache their outputs and go
back to the host afterwards unless they are trained (``train_network.py``
``cache_text_encoder_outputs_if_needed``; ``sdxl_train_network.py``, ``sd3_train_network.py``);
without cached outputs they stay on the GPU in the weight dtype and encode every step. The VAE
is on the GPU for latent caching (``no_half_vae``: fp32) and leaves afterwards; without cached
latents it stays and encodes every step. ``fp8_base`` stores the UNet/MMDiT in float8 (1 B), and
without gradient checkpointing autograd keeps each Linear's bf16 cast for backward, as for
FLUX.1. SD3's T5-XXL is cast to fp8 with ``fp8_base`` after caching, as FLUX.1's.

Host memory. SDXL: ``load_models_from_sdxl_checkpoint`` builds the UNet and both text encoders
in float32 on the host (no ``full_bf16``/``full_fp16``: ``model_dtype`` is None) from the
checkpoint's state dict, which stays mapped while they are built: 4 + 2 bytes per parameter of
an fp16 checkpoint (``library/sdxl_model_util.py`` 169-210, ``sdxl_train_util.py`` 76-91).
Measured alone on an H100 host: 23.4 GB (Pss of the process tree). SD3: every model is loaded
on the host in the weight dtype with ``assign=True`` (``sd3_train_network.py`` 77-135,
``library/sd3_utils.py`` 78-261), so a file already in that dtype is its model; T5-XXL ships as
fp16 and is converted to bf16, so its file is mapped beside its copy while it loads.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from lorac.trainers import lora_memory as lm
from lorac.trainers.estimates import Interval

FAMILIES = ("sdxl", "sd3")


def sd3_variant(options: dict[str, Any]) -> str:
    """SD3 medium / SD3.5 medium / SD3.5 large from the checkpoint's file name; the largest
    when the name does not say."""
    name = Path(str(options.get("pretrained_model_name_or_path") or "")).name.lower()
    if "3.5" in name or "35" in name:
        return "sd3.5-medium" if "medium" in name else "sd3.5-large"
    if "medium" in name or "sd3_" in name:
        return "sd3-medium"
    return "sd3.5-large"


def run_from_options(opts: dict[str, Any], family: str, shape: tuple[int, int, int, int],
                     gpus: int = 1) -> lm.LoraRun:
    """The trainer-neutral run of a kohya SDXL/SD3 configuration (flat kohya options)."""
    w, h, batch, _ = shape
    arch = sd3_variant(opts) if family == "sd3" else family
    fp8 = lm.truthy(opts.get("fp8_base")) or lm.truthy(opts.get("fp8_base_unet"))
    mp = str(opts.get("mixed_precision") or "no")
    wb = 2.0 if mp in ("fp16", "bf16") else 4.0
    te_cached = lm.truthy(opts.get("cache_text_encoder_outputs")) or lm.truthy(
        opts.get("cache_text_encoder_outputs_to_disk"))
    lat_cached = lm.truthy(opts.get("cache_latents")) or lm.truthy(
        opts.get("cache_latents_to_disk"))
    train_te = not lm.truthy(opts.get("network_train_unet_only"))
    notes = []
    if family == "sd3":
        notes.append(f"SD3 variant taken as {arch} (from the checkpoint's file name)")
    return lm.LoraRun(
        trainer="kohya", family=arch, width=w, height=h, batch_size=batch,
        rank=max(1, lm._int(opts.get("network_dim"), 4)),
        optimizer=lm.optimizer_name(opts),
        gradient_checkpointing=lm.truthy(opts.get("gradient_checkpointing")),
        dit_bytes=1.0 if fp8 else wb, upcast_kept=fp8, te_bytes=wb, train_te=train_te,
        te_on_gpu_in_training=not te_cached, latents_on_gpu_in_training=not lat_cached,
        vae_bytes=4.0 if lm.truthy(opts.get("no_half_vae")) or wb == 4 else 2.0,
        **(_sdxl_host(opts) if family == "sdxl" else _sd3_host(arch, wb)),
        gpus=gpus, notes=tuple(notes))


def _sdxl_host(opts: dict[str, Any]) -> dict[str, Any]:
    """sd-scripts' SDXL loader on the host: float32 models beside the fp16 checkpoint, or
    models in the weight dtype with ``full_bf16``/``full_fp16``."""
    half = lm.truthy(opts.get("full_bf16")) or lm.truthy(opts.get("full_fp16"))
    a = lm.ARCHS["sdxl"]
    params = a.denoiser + sum(n for _, n in a.text_encoders) + a.vae
    return {"host_bytes": 2.0 if half else 4.0, "host_all_at_once": True,
            "host_extra_mib": params * 2.0 / lm.MIB}


def _sd3_host(arch: str, weight_bytes: float) -> dict[str, Any]:
    """sd-scripts' SD3 loader on the host: every model in the weight dtype, and T5-XXL's fp16
    file mapped beside its converted copy while it loads."""
    t5 = max(n for _, n in lm.ARCHS[arch].text_encoders)
    return {"host_bytes": weight_bytes, "host_all_at_once": True,
            "host_extra_mib": t5 * 2.0 / lm.MIB}


def run_from_profile(profile: Any) -> lm.LoraRun:
    opts = lm.profile_options(profile)
    gpus = lm._int(profile.get("run", "gpus", default=1), 1)
    return run_from_options(opts, profile.family or "sdxl", lm.dataset_shape(profile), gpus)


def run_from_record(rec: dict[str, Any]) -> lm.LoraRun:
    cond = dict(rec.get("conditions", {}))
    from lorac.config.profile import parse_resolution

    w, h = parse_resolution(cond.get("resolution", 1024)) or (1024, 1024)
    shape = (w, h, lm._int(cond.get("batch_size", 1), 1), 1)
    return run_from_options(cond, rec.get("family", "sdxl"), shape, lm._int(rec.get("gpus"), 1))


@lru_cache(maxsize=2)
def _model() -> dict[str, Any]:
    from lorac.trainers.kohya.vram import model_path

    p = model_path()
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def _entry(family: str) -> dict[str, Any]:
    """``family``'s entry of ``families`` in vram_model.json ({} where nothing was fitted)."""
    return (_model().get("families") or {}).get(family) or {}


def calibration(family: str) -> tuple[lm.Constants, Interval | None]:
    """The constants and interval fitted for ``family`` (``families`` of vram_model.json)."""
    entry = _entry(family)
    iv = entry.get("interval")
    return lm.constants_from(entry), Interval.from_json(iv) if iv else None


def estimate(run: lm.LoraRun) -> lm.Prediction:
    key = "sd3" if run.family.startswith("sd3") else run.family
    k, iv = calibration(key)
    return lm.estimate(run, k, iv, _entry(key).get("tested"))
