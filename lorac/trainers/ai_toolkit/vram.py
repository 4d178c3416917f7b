"""GPU memory of ai-toolkit LoRA runs of FLUX.1 and Wan 2.1: a first-principles estimate
(:mod:`lorac.trainers.lora_memory`) with ai-toolkit's placement, calibrated per architecture on the
measured runs of ``backends/ai-toolkit/vram_measurements.json`` that are marked ``fit``
(constants and the interval of each measured family in ``backends/ai-toolkit/vram_model.json``,
written by ``bench/vram_accuracy.py --write``). An architecture without fitted runs keeps the
first-principles constants and the wide first-principles interval, and says so.

Placement (ai-toolkit at the pin, ``toolkit/config_modules.py`` ModelConfig,
``toolkit/stable_diffusion_model.py`` for FLUX.1, ``toolkit/models/wan21/wan21.py`` for Wan):
the transformer is loaded in bf16 and, with ``model.quantize`` (lorac's ``fp8_base``),
quantised with optimum-quanto to ``model.qtype`` (default ``qfloat8``: 1 B per weight; ``uint4``
0.5 B, ``uint3`` 3/8, ``uint2`` 1/4); ``quantize_te`` (default: as ``quantize``) does the same to
T5-XXL / umT5-XXL, with ``model.qtype`` too (``stable_diffusion_model.py:826``,
``wan21.py:434``: ``qtype_te`` is not read there). The text encoders stay on the GPU and encode
every step unless ``train.cache_text_embeddings`` (lorac's ``cache_text_encoder_outputs``) or
``unload_text_encoder`` moves them off after caching (``jobs/process/BaseSDTrainProcess.py``);
the VAE stays unless latents are cached.

Loading has peaks of its own, which kohya's placement does not have:

- the transformer is moved to the GPU in bf16 and quantised there
  (``stable_diffusion_model.py:681-683``, ``wan21.py:357-362``) unless ``model.low_vram``
  quantises it on the host;
- the largest text encoder is then moved to the GPU in bf16 and quantised there, beside the
  transformer (FLUX.1 always; Wan unless ``low_vram``, which keeps the transformer on the host
  until the encoder is done, ``wan21.py:429-448``).

Latents and text embeddings are cached after everything is loaded, so the caching phases hold
the transformer and the text encoders too.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from lorac.trainers import lora_memory as lm
from lorac.trainers.estimates import Interval

#: family -> the architecture of lorac.trainers.lora_memory it is
FAMILIES = {"flux1-dev": "flux1", "flux1-schnell": "flux1",
            "wan2.1-t2v-1.3b": "wan2.1-t2v-1.3b", "wan2.1-t2v-14b": "wan2.1-t2v-14b"}
QTYPE_BYTES = {"qfloat8": 1.0, "float8": 1.0, "qint8": 1.0, "uint8": 1.0, "uint7": 7 / 8,
               "uint6": 6 / 8, "uint5": 5 / 8, "uint4": 0.5, "qint4": 0.5, "uint3": 3 / 8,
               "uint2": 0.25}


def _qbytes(qtype: Any) -> float:
    name = str(qtype or "qfloat8").lower().split("|")[0]
    return QTYPE_BYTES.get(name, 1.0)


def run_from_profile(profile: Any) -> lm.LoraRun:
    from lorac.config.trainer_values import native

    own = native(profile, "ai-toolkit")
    return run_from_options(lm.profile_options(profile), dict(own.get("model") or {}),
                            dict(own.get("train") or {}), lm.dataset_shape(profile),
                            lm._int(profile.get("run", "gpus", default=1), 1),
                            profile.family or "flux1-dev")


def run_from_options(opts: dict[str, Any], model: dict[str, Any], train: dict[str, Any],
                     shape: tuple[int, int, int, int], gpus: int = 1,
                     family: str = "flux1-dev") -> lm.LoraRun:
    """The run of profile options ``opts`` and ai-toolkit's own ``model`` and ``train`` keys
    (which win where both say something)."""
    quant = lm.truthy(model.get("quantize", opts.get("fp8_base", False)))
    quant_te = lm.truthy(model.get("quantize_te", quant))
    cache_te = lm.truthy(train.get("cache_text_embeddings",
                                   opts.get("cache_text_encoder_outputs", False)))
    unload = lm.truthy(train.get("unload_text_encoder", False))
    lat = lm.truthy(opts.get("cache_latents")) or lm.truthy(opts.get("cache_latents_to_disk"))
    low_vram = lm.truthy(model.get("low_vram", False))
    w, h, batch, frames = shape
    arch = FAMILIES.get(family, "flux1")
    notes = []
    if quant:
        notes.append(f"transformer quantised to {model.get('qtype', 'qfloat8')} "
                     f"({_qbytes(model.get('qtype')):g} B per weight)")
    return lm.LoraRun(
        trainer="ai-toolkit", family=arch, width=w, height=h, frames=frames, batch_size=batch,
        rank=max(1, lm._int(opts.get("network_dim"), 4)), optimizer=lm.optimizer_name(opts),
        gradient_checkpointing=lm.truthy(opts.get("gradient_checkpointing", True)),
        dit_bytes=_qbytes(model.get("qtype")) if quant else 2.0, upcast_kept=quant,
        te_bytes=_qbytes(model.get("qtype")) if quant_te else 2.0,
        te_on_gpu_in_training=not (cache_te or unload), latents_on_gpu_in_training=not lat,
        resident_while_caching=True, load_dit_bytes=2.0 if quant and not low_vram else 0.0,
        te_load_bytes=2.0, denoiser_at_te_load=arch == "flux1" or not low_vram,
        **_host(arch, quant, quant_te, low_vram, _qbytes(model.get("qtype"))), gpus=gpus,
        notes=tuple(notes))


def _host(arch: str, quant: bool, quant_te: bool, low_vram: bool,
          qbytes: float) -> dict[str, Any]:
    """ai-toolkit's host memory (measured on an H100 host, FLUX.1, per-process Pss of runs that
    shared the host, so lower bounds): quantised on the GPU, each model leaves the host as it
    moves there (12.0-18.3 GB); with nothing quantised, the transformer and the text encoders
    are all on the host in bf16 (34.2 GB); with ``low_vram`` the transformer is quantised on the
    host, its bf16 and quantised copies beside the text encoders (46.4 GB)."""
    if not quant and not quant_te:
        return {"host_all_at_once": True}
    if low_vram:
        return {"host_all_at_once": True,
                "host_extra_mib": lm.ARCHS[arch].denoiser * qbytes / lm.MIB}
    return {}


def run_from_record(rec: dict[str, Any]) -> lm.LoraRun:
    """The run of a measured record: its ``conditions`` (profile options) and ``native``
    (ai-toolkit's own ``model`` and ``train`` keys)."""
    from lorac.config.profile import parse_resolution

    cond = dict(rec.get("conditions", {}))
    own = dict(rec.get("native", {}))
    w, h = parse_resolution(cond.get("resolution", 1024)) or (1024, 1024)
    return run_from_options(cond, dict(own.get("model") or {}), dict(own.get("train") or {}),
                            (w, h, lm._int(cond.get("batch_size", 1), 1),
                             lm._int(cond.get("frames", 1), 1)),
                            lm._int(rec.get("gpus"), 1), rec.get("family", "flux1-dev"))


def backends_file(name: str) -> Path:
    from lorac.config.inventory import backends_dir

    return backends_dir() / "ai-toolkit" / name


def load_measurements() -> list[dict[str, Any]]:
    """The measured ai-toolkit runs (``backends/ai-toolkit/vram_measurements.json``)."""
    p = backends_file("vram_measurements.json")
    return list(json.loads(p.read_text(encoding="utf-8")).get("records", [])) if p.is_file() \
        else []


@lru_cache(maxsize=2)
def _model() -> dict[str, Any]:
    p = backends_file("vram_model.json")
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def _entry(arch: str) -> dict[str, Any]:
    """The model file's entry of ``arch`` ({} where nothing was fitted)."""
    return (_model().get("architectures") or {}).get(arch) or {}


def calibration(arch: str, family: str) -> tuple[lm.Constants, Interval | None]:
    """The constants of ``arch`` (fitted, else the first-principles ones) and the interval of
    ``family`` where that family itself was measured; a family that was not measured keeps the
    first-principles interval (``None``)."""
    return lm.calibration_of(_entry(arch), family)


def estimate(run: lm.LoraRun, family: str | None = None) -> lm.Prediction:
    """The prediction of ``run`` (``run.family`` is the architecture; ``family`` the profile's
    family, which picks the interval: by default the architecture's own name)."""
    k, iv = calibration(run.family, family or run.family)
    return lm.estimate(run, k, iv, _entry(run.family).get("tested"))
