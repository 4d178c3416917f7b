"""Generate ``backends/musubi/synth/<family>.json``: the checkpoint layouts musubi-tuner loads.

The key names and shapes come from musubi-tuner's own classes, built on torch's ``meta``
device (nothing is allocated), exactly as its loaders build them before ``load_state_dict``:

* the DiT: ``wan.modules.model.WanModel`` with the task's config
  (``load_wan_model``, src/musubi_tuner/wan/modules/model.py:979-1075, strict load);
* the text encoder: ``wan.modules.t5.umt5_xxl(encoder_only=True)``
  (``T5EncoderModel``, src/musubi_tuner/wan/modules/t5.py:451-505, strict load after removing
  ``"encoder."`` from every key);
* the VAE: ``wan.modules.vae.WanVAE_`` with ``_video_vae``'s config
  (src/musubi_tuner/wan/modules/vae.py:627-654; a ``.pth`` loads strictly, a ``.safetensors``
  with ``strict=False``).

Qwen-Image (``qwen-image``), from ``qwen_image.qwen_image_utils`` and ``qwen_image_model``:

* the DiT: ``create_model`` (``load_qwen_image_model``, qwen_image_model.py:1375-1513, strict
  load; ``--num_layers`` sets the depth, the other sizes are fixed in the call);
* the text encoder: ``Qwen2_5_VLForConditionalGeneration`` with the configuration
  ``load_qwen2_5_vl`` builds (qwen_image_utils.py:57-318; the generator captures it by calling
  the loader with ``Qwen2_5_VLConfig`` wrapped), keys as the released single file has them
  (``model.`` and ``visual.``, which the loader renames; strict load);
* the VAE: ``AutoencoderKLQwenImage`` with ``load_vae``'s configuration (captured the same way;
  qwen_image_utils.py:730-817, strict load).

Each component is built twice: with the real sizes and with the small ``tiny`` sizes of
:data:`TINY` (same key names), so ``lorac synth --tiny`` writes files musubi's loaders accept
once their size arguments are the tiny ones. Run it with an interpreter that can import the
checkout (torch, accelerate, einops, easydict, ftfy, transformers)::

    python -m lorac.trainers.musubi.synth_gen /path/to/musubi-tuner [--out backends/musubi/synth]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: family -> musubi task (``--task``) whose WAN_CONFIGS entry sizes the DiT.
TASKS = {"wan2.1-t2v-1.3b": "t2v-1.3B", "qwen-image": None}

#: The tiny sizes. The DiT keeps ``text_dim`` 4096 and the VAE ``z_dim`` 16: musubi's loaders
#: do not take them from the config. Head dim 12 keeps the DiT's rotary split (d - 4*(d//6),
#: 2*(d//6), 2*(d//6)) whole.
TINY = {
    "dit": {"dim": 24, "ffn_dim": 32, "freq_dim": 8, "num_heads": 2},
    "t5": {"vocab_size": 256, "dim": 8, "dim_attn": 8, "dim_ffn": 16, "num_heads": 2},
    "vae": {"dim": 8},
}

#: Files and dtypes as the real releases have them (the DiT as the bf16 safetensors release,
#: the text encoder as ``models_t5_umt5-xxl-enc-bf16.pth``, the VAE as ``Wan2.1_VAE.pth``).
FILES = {
    "dit": {"file": "wan2.1_t2v_1.3B_bf16.safetensors", "format": "safetensors",
            "dtype": "bf16", "option": "dit"},
    "t5": {"file": "models_t5_umt5-xxl-enc-bf16.pth", "format": "pth", "dtype": "bf16",
           "option": "t5"},
    "vae": {"file": "Wan2.1_VAE.pth", "format": "pth", "dtype": "fp32", "option": "vae"},
}


#: Qwen-Image's tiny sizes (the depths stay: the key names hold the block numbers). The DiT's
#: text input width is the text encoder's hidden size; the rotary axes add up to the head dim;
#: the text encoder's multimodal rotary sections add up to half its head dim (16 / 2 heads = 8);
#: its vocabulary (1024) takes every id of the synthetic tokenizer
#: (:func:`lorac.trainers.tokenizers.write_qwen2_tokenizer`).
QWEN_TINY = {
    "dit": {"attention_head_dim": 16, "num_attention_heads": 2,
            "joint_attention_dim": 16, "axes_dims_rope": [4, 6, 6]},
    "text_encoder": {"vocab_size": 1024, "hidden_size": 16, "intermediate_size": 32,
                     "num_attention_heads": 2, "num_key_value_heads": 1,
                     "mrope_section": [2, 1, 1],
                     "vision": {"hidden_size": 16, "intermediate_size": 32, "num_heads": 2,
                                "out_hidden_size": 16}},
    "vae": {"base_dim": 8},
}

#: Qwen-Image's files. The DiT and the text encoder are stored in float8 e4m3fn: musubi casts
#: on read (``get_tensor(..., dtype=)``: bf16 without ``--fp8_base`` / ``--fp8_vl``, float8
#: with), so one set serves both and holds half the bytes. ``--fp8_scaled`` refuses weights
#: already in float8 (modules/fp8_optimization_utils.py:322-336).
QWEN_FILES = {
    "dit": {"file": "qwen_image_fp8_e4m3fn.safetensors", "format": "safetensors",
            "dtype": "fp8_e4m3fn", "option": "dit"},
    "text_encoder": {"file": "qwen_2.5_vl_7b_fp8_e4m3fn.safetensors", "format": "safetensors",
                     "dtype": "fp8_e4m3fn", "option": "text_encoder"},
    "vae": {"file": "qwen_image_vae.safetensors", "format": "safetensors", "dtype": "bf16",
            "option": "vae"},
}
#: The tokenizer musubi loads (qwen_image_utils.py:316-317): hub id and subfolder.
QWEN_TOKENIZER = {"repo": "Qwen/Qwen-Image", "subfolder": "tokenizer", "kind": "qwen2"}


def tiny_vl_config(config: dict[str, Any], tiny: dict[str, Any]) -> dict[str, Any]:
    """``load_qwen2_5_vl``'s configuration with :data:`QWEN_TINY`'s text-encoder sizes, at
    the top level and in ``text_config`` (the vision tower's in ``vision_config``)."""
    import copy

    cfg = copy.deepcopy(config)
    text = {k: v for k, v in tiny.items() if k not in ("vision", "mrope_section")}
    for target in (cfg, cfg.get("text_config") or {}):
        target.update(text)
        target["rope_scaling"] = {**target.get("rope_scaling", {}),
                                  "mrope_section": list(tiny["mrope_section"])}
    cfg["vision_config"] = {**cfg["vision_config"], **tiny["vision"]}
    return cfg


class _Captured(Exception):
    pass


def _capture(module: Any, name: str, call: Any) -> dict[str, Any]:
    """The keyword arguments ``call()`` passes to ``module.name`` (which is not run)."""
    seen: dict[str, Any] = {}
    real = getattr(module, name)

    def grab(*args: Any, **kwargs: Any) -> Any:
        if args:
            raise SystemExit(f"{name}: positional arguments; the generator needs keywords")
        seen.update(kwargs)
        raise _Captured

    setattr(module, name, grab)
    try:
        call()
    except _Captured:
        pass
    finally:
        setattr(module, name, real)
    if not seen:
        raise SystemExit(f"{name} was not called")
    return seen


def build_qwen_image() -> dict[str, Any]:  # pragma: no cover - runs in the trainers' venv
    """The Qwen-Image layout from musubi's loaders (the checkout must be importable)."""
    import importlib.machinery
    import importlib.util
    import types

    import torch

    if importlib.util.find_spec("av") is None:  # imported by musubi's dataset module, unused
        sys.modules["av"] = types.ModuleType("av")
        sys.modules["av"].__spec__ = importlib.machinery.ModuleSpec("av", None)
    from accelerate import init_empty_weights
    from musubi_tuner.qwen_image import qwen_image_model as qm
    from musubi_tuner.qwen_image import qwen_image_utils as qu
    from transformers import Qwen2_5_VLForConditionalGeneration

    def dit(**over: Any) -> dict[str, list[int]]:
        real = qm.QwenImageTransformer2DModel
        qm.QwenImageTransformer2DModel = lambda **kw: real(**{**kw, **over})
        try:
            return _shapes(qm.create_model("torch", False, False, False, False, None))
        finally:
            qm.QwenImageTransformer2DModel = real

    vl_config = _capture(qu, "Qwen2_5_VLConfig", lambda: qu.load_qwen2_5_vl("-", None, "cpu"))

    def text_encoder(**over: Any) -> dict[str, list[int]]:
        cfg = tiny_vl_config(vl_config, over) if over else vl_config
        with init_empty_weights():
            model = Qwen2_5_VLForConditionalGeneration._from_config(qu.Qwen2_5_VLConfig(**cfg))
        shapes = {}
        for key, shape in _shapes(model).items():  # the file's names (the loader renames)
            if key.startswith("model.language_model."):
                key = "model." + key[len("model.language_model."):]
            elif key.startswith("model.visual."):
                key = key[len("model."):]
            shapes[key] = shape
        return shapes

    vae_args = _capture(qu, "AutoencoderKLQwenImage", lambda: qu.load_vae("-"))

    def vae(**over: Any) -> dict[str, list[int]]:
        with torch.device("meta"):
            return _shapes(qu.AutoencoderKLQwenImage(**{**vae_args, **over}))

    makers = {"dit": dit, "text_encoder": text_encoder, "vae": vae}
    return {"family": "qwen-image", "tokenizer": QWEN_TOKENIZER,
            "components": _components(makers, QWEN_FILES, QWEN_TINY)}


def _shapes(module: Any) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def _components(makers: dict[str, Any], files: dict[str, dict], tiny_sizes: dict[str, dict],
                ) -> dict[str, Any]:
    """Each component's file entry with its keys' full and tiny shapes: ``makers[name](**over)``
    gives the state-dict shapes with the sizes ``over`` changes (none: the real model)."""
    components: dict[str, Any] = {}
    for name, make in makers.items():
        full, tiny = make(), make(**tiny_sizes[name])
        if list(full) != list(tiny):
            raise SystemExit(f"{name}: the tiny sizes change the key names")
        components[name] = {**files[name], "tiny_sizes": tiny_sizes[name],
                            "keys": {k: [full[k], tiny[k]] for k in full}}
    return components


def build(family: str) -> dict[str, Any]:  # pragma: no cover - runs in the trainers' venv
    """The layout of ``family`` from musubi's classes (the checkout must be importable)."""
    import torch

    if not torch.cuda.is_available():
        # t5.py evaluates torch.cuda.current_device() as a default argument at import
        torch.cuda.current_device = lambda: 0
    from musubi_tuner.wan.configs import WAN_CONFIGS
    from musubi_tuner.wan.modules import t5 as t5_mod
    from musubi_tuner.wan.modules import vae as vae_mod
    from musubi_tuner.wan.modules.model import WanModel

    cfg = WAN_CONFIGS[TASKS[family]]

    def dit(**over: Any) -> dict[str, list[int]]:
        args = dict(model_type="i2v" if cfg.i2v else ("flf2v" if cfg.flf2v else "t2v"),
                    model_version="2.2" if cfg.v2_2 else "2.1", dim=cfg.dim, eps=cfg.eps,
                    ffn_dim=cfg.ffn_dim, freq_dim=cfg.freq_dim, in_dim=cfg.in_dim,
                    num_heads=cfg.num_heads, num_layers=cfg.num_layers, out_dim=cfg.out_dim,
                    text_len=cfg.text_len, attn_mode="torch", split_attn=False)
        args.update(over)
        with torch.device("meta"):
            return _shapes(WanModel(**args))

    def t5(**over: Any) -> dict[str, list[int]]:
        with torch.device("meta"):
            return _shapes(t5_mod.umt5_xxl(encoder_only=True, return_tokenizer=False, **over))

    def vae(**over: Any) -> dict[str, list[int]]:
        args = dict(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                    temperal_downsample=[False, True, True], dropout=0.0)  # vae.py:631-640
        args.update(over)
        with torch.device("meta"):
            return _shapes(vae_mod.WanVAE_(**args))

    return {"family": family, "task": TASKS[family],
            "components": _components({"dit": dit, "t5": t5, "vae": vae}, FILES, TINY)}


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - runs in the trainers' venv
    parser = argparse.ArgumentParser(prog="python -m lorac.trainers.musubi.synth_gen")
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[3] / "backends/musubi/synth")
    args = parser.parse_args(argv)
    from lorac.trainers.inventory_gen import checkout_commit

    commit = checkout_commit(args.checkout)
    sys.path.insert(0, str(args.checkout / "src"))
    args.out.mkdir(parents=True, exist_ok=True)
    for family in TASKS:
        made = build_qwen_image() if family == "qwen-image" else build(family)
        data = {"generated_from": commit, **made}
        path = args.out / f"{family}.json"
        path.write_text(json.dumps(data, indent=0, separators=(",", ":")) + "\n",
                        encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
