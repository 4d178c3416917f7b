"""GPU memory of ai-toolkit FLUX.1 LoRA runs: a first-principles estimate
(:mod:`lorac.trainers.lora_memory`) with ai-toolkit's placement; no ai-toolkit run has been
measured, so every prediction carries the wide first-principles interval and says so.

Placement (ai-toolkit at the pin, ``toolkit/config_modules.py`` ModelConfig and
``toolkit/stable_diffusion_model.py``): the transformer is loaded in bf16 and, with
``model.quantize`` (lorac's ``fp8_base``), quantised with optimum-quanto to ``model.qtype``
(default ``qfloat8``: 1 B per weight; ``uint4`` 0.5 B, ``uint3`` 3/8, ``uint2`` 1/4);
``quantize_te`` (default: as ``quantize``) does the same to T5-XXL with ``qtype_te``. The text
encoders stay on the GPU and encode every step unless ``train.cache_text_embeddings``
(lorac's ``cache_text_encoder_outputs``) or ``unload_text_encoder`` moves them off after caching
(``jobs/process/BaseSDTrainProcess.py``); the VAE stays unless latents are cached.

Two placements differ from kohya's: the transformer is moved to the GPU in bf16 and quantised
there (``transformer.to(self.quantize_device, dtype=dtype)`` before ``quantize``,
``toolkit/stable_diffusion_model.py:683``) unless ``model.low_vram`` leaves it on the host, so
loading has a peak of its own, the whole bf16 transformer; and latents and text embeddings are
cached after everything is loaded, so the caching phases hold the transformer and the text
encoders too. Both were measured on an H100 (``backends/ai-toolkit/vram_measurements.json``).
"""

from __future__ import annotations

import json
from typing import Any

from lorac.trainers import lora_memory as lm

FAMILIES = ("flux1-dev", "flux1-schnell")
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
                            lm._int(profile.get("run", "gpus", default=1), 1))


def run_from_options(opts: dict[str, Any], model: dict[str, Any], train: dict[str, Any],
                     shape: tuple[int, int, int, int], gpus: int = 1) -> lm.LoraRun:
    """The run of profile options ``opts`` and ai-toolkit's own ``model`` and ``train`` keys
    (which win where both say something)."""
    quant = lm.truthy(model.get("quantize", opts.get("fp8_base", False)))
    quant_te = lm.truthy(model.get("quantize_te", quant))
    cache_te = lm.truthy(train.get("cache_text_embeddings",
                                   opts.get("cache_text_encoder_outputs", False)))
    unload = lm.truthy(train.get("unload_text_encoder", False))
    lat = lm.truthy(opts.get("cache_latents")) or lm.truthy(opts.get("cache_latents_to_disk"))
    low_vram = lm.truthy(model.get("low_vram", False))
    w, h, batch, _ = shape
    notes = []
    if quant:
        notes.append(f"transformer quantised to {model.get('qtype', 'qfloat8')} "
                     f"({_qbytes(model.get('qtype')):g} B per weight)")
    return lm.LoraRun(
        trainer="ai-toolkit", family="flux1", width=w, height=h, batch_size=batch,
        rank=max(1, lm._int(opts.get("network_dim"), 4)), optimizer=lm.optimizer_name(opts),
        gradient_checkpointing=lm.truthy(opts.get("gradient_checkpointing", True)),
        dit_bytes=_qbytes(model.get("qtype")) if quant else 2.0, upcast_kept=quant,
        te_bytes=_qbytes(model.get("qtype_te")) if quant_te else 2.0,
        te_on_gpu_in_training=not (cache_te or unload), latents_on_gpu_in_training=not lat,
        resident_while_caching=True, load_dit_bytes=2.0 if quant and not low_vram else 0.0,
        gpus=gpus, notes=tuple(notes))


def run_from_record(rec: dict[str, Any]) -> lm.LoraRun:
    """The run of a measured record: its ``conditions`` (profile options) and ``native``
    (ai-toolkit's own ``model`` and ``train`` keys)."""
    from lorac.config.profile import parse_resolution

    cond = dict(rec.get("conditions", {}))
    own = dict(rec.get("native", {}))
    w, h = parse_resolution(cond.get("resolution", 1024)) or (1024, 1024)
    return run_from_options(cond, dict(own.get("model") or {}), dict(own.get("train") or {}),
                            (w, h, lm._int(cond.get("batch_size", 1), 1), 1),
                            lm._int(rec.get("gpus"), 1))


def load_measurements() -> list[dict[str, Any]]:
    """The measured ai-toolkit runs (``backends/ai-toolkit/vram_measurements.json``)."""
    from lorac.config.inventory import backends_dir

    p = backends_dir() / "ai-toolkit" / "vram_measurements.json"
    return list(json.loads(p.read_text(encoding="utf-8")).get("records", [])) if p.is_file() \
        else []


def estimate(run: lm.LoraRun) -> lm.Prediction:
    return lm.estimate(run)
