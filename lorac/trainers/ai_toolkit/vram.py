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
"""

from __future__ import annotations

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

    opts = lm.profile_options(profile)
    model = dict(native(profile, "ai-toolkit").get("model") or {})
    train = dict(native(profile, "ai-toolkit").get("train") or {})
    quant = lm.truthy(model.get("quantize", opts.get("fp8_base", False)))
    quant_te = lm.truthy(model.get("quantize_te", quant))
    cache_te = lm.truthy(train.get("cache_text_embeddings",
                                   opts.get("cache_text_encoder_outputs", False)))
    unload = lm.truthy(train.get("unload_text_encoder", False))
    lat = lm.truthy(opts.get("cache_latents")) or lm.truthy(opts.get("cache_latents_to_disk"))
    w, h, batch, _ = lm.dataset_shape(profile)
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
        gpus=lm._int(profile.get("run", "gpus", default=1), 1), notes=tuple(notes))


def estimate(run: lm.LoraRun) -> lm.Prediction:
    return lm.estimate(run)
