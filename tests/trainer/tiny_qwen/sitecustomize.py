"""Qwen-Image's tiny sizes inside musubi-tuner's own processes (on ``PYTHONPATH`` in
tests/trainer/test_musubi_qwen_run_trainer.py only, with ``LORAC_TINY_LAYOUT`` naming
``backends/musubi/synth/qwen-image.json``).

musubi fixes Qwen-Image's sizes where its loaders build the models; this wraps the three
classes they build (``QwenImageTransformer2DModel`` in ``create_model``, ``Qwen2_5_VLConfig`` in
``load_qwen2_5_vl``, ``AutoencoderKLQwenImage`` in ``load_vae``) to add the tiny ones, so that
``lorac synth qwen-image --tiny`` weights run through musubi's unchanged scripts on a CPU.
"""

import importlib.machinery
import importlib.util
import json
import os
import sys
import types


def _patch(layout: str) -> None:
    if importlib.util.find_spec("av") is None:  # musubi's dataset module imports it at the top
        sys.modules["av"] = types.ModuleType("av")
        sys.modules["av"].__spec__ = importlib.machinery.ModuleSpec("av", None)
    with open(layout, encoding="utf-8") as fh:
        _tiny = {k: v["tiny_sizes"] for k, v in json.load(fh)["components"].items()}
    from musubi_tuner.qwen_image import qwen_image_model as _qm
    from musubi_tuner.qwen_image import qwen_image_utils as _qu

    from lorac.trainers.musubi.synth_gen import tiny_vl_config

    _dit, _cfg = _qm.QwenImageTransformer2DModel, _qu.Qwen2_5_VLConfig
    _vae = _qu.AutoencoderKLQwenImage
    _qm.QwenImageTransformer2DModel = lambda **kw: _dit(**{**kw, **_tiny["dit"]})
    _qu.Qwen2_5_VLConfig = lambda **kw: _cfg(**tiny_vl_config(kw, _tiny["text_encoder"]))
    _qu.AutoencoderKLQwenImage = lambda **kw: _vae(**{**kw, **_tiny["vae"]})


if os.environ.get("LORAC_TINY_LAYOUT") and importlib.util.find_spec("musubi_tuner"):
    try:
        _patch(os.environ["LORAC_TINY_LAYOUT"])
    except ImportError:  # an interpreter without musubi's dependencies (lorac's own)
        pass
