"""Synthetic diffusers-format model folders for ai-toolkit, for running it without the real weights.

``write_synthetic("flux1-dev", out_dir)`` writes the folder ai-toolkit's FLUX loader reads when
``model.name_or_path`` is a local folder holding ``transformer/`` and ``text_encoder/``
(toolkit/stable_diffusion_model.py:649-840 at 27a03a91): ``transformer/``
(``FluxTransformer2DModel``), ``vae/`` (``AutoencoderKL``), ``text_encoder/`` (CLIP-L),
``text_encoder_2/`` (T5-XXL encoder), ``tokenizer/``, ``tokenizer_2/``, ``scheduler/`` and
``model_index.json``. ``"wan2.1-t2v-1.3b"`` writes the Wan 2.1 T2V 1.3B folder its ``wan21`` arch
reads (toolkit/models/wan21/wan21.py:393-470): ``transformer/`` (``WanTransformer3DModel``),
``text_encoder/`` (UMT5-XXL encoder), ``tokenizer/``, ``vae/`` (``AutoencoderKLWan``) and
``scheduler/``.

Every part is built with the diffusers or transformers class that loads it, from the real
configuration (:func:`parts`), with random weights, and written with that class's own
``save_pretrained``: the loaders find every key they expect. ``tiny=True`` keeps the classes and
the layout with small sizes, for CPU tests. The tokenizers are small synthetic ones in the real
layouts (:mod:`lorac.trainers.tokenizers`): every id is far below the real vocabulary sizes.
GPU memory then behaves as with the real weights; losses mean nothing.

ai-toolkit imports a few packages at module level that its training path for these models never
uses; when one is not installed, :data:`STAND_INS` writes a module of that name that raises
``ImportError`` when used (``stand_ins/``, appended to the trainer's ``PYTHONPATH``).

Torch, diffusers and transformers are imported lazily (ai-toolkit's own pins).
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorac.trainers.tokenizers import write_clip_tokenizer, write_t5_tokenizer

__all__ = ["FAMILIES", "STAND_INS", "Part", "SynthSet", "lora_modules", "parts",
           "write_synthetic"]

FAMILIES = ("flux1-dev", "wan2.1-t2v-1.3b")


@dataclass(frozen=True)
class Part:
    """One sub-folder of the set: the class that writes and loads it, its config, its dtype."""

    library: str  # "diffusers" | "transformers" | "tokenizer"
    cls: str
    config: dict[str, Any]
    dtype: str = "bf16"


# Real configurations: FLUX.1-dev's transformer/config.json, vae/config.json, CLIP-L and
# T5-v1.1-XXL encoder configs, and the scheduler; Wan2.1-T2V-1.3B-Diffusers' transformer, the
# Wan 2.1 VAE (AutoencoderKLWan's defaults) and the UMT5-XXL encoder.
_FLUX = {
    "transformer": dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                        attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                        pooled_projection_dim=768, guidance_embeds=True,
                        axes_dims_rope=(16, 56, 56)),
    "vae": dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512],
                layers_per_block=2, act_fn="silu", latent_channels=16, norm_num_groups=32,
                sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
                use_quant_conv=False, use_post_quant_conv=False),
    "text_encoder": dict(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                         num_hidden_layers=12, num_attention_heads=12,
                         max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu"),
    "text_encoder_2": dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                           num_heads=64, relative_attention_num_buckets=32,
                           relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                           tie_word_embeddings=False),
}
_FLUX_TINY = {
    "transformer": dict(_FLUX["transformer"], num_layers=1, num_single_layers=1,
                        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                        pooled_projection_dim=32, axes_dims_rope=(4, 6, 6)),
    "vae": dict(_FLUX["vae"], block_out_channels=[32, 32, 32, 32], layers_per_block=1,
                norm_num_groups=8),
    "text_encoder": dict(_FLUX["text_encoder"], vocab_size=1024, hidden_size=32,
                         intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         projection_dim=32),
    "text_encoder_2": dict(_FLUX["text_encoder_2"], vocab_size=256, d_model=32, d_kv=8, d_ff=64,
                           num_layers=1, num_heads=4),
}
_WAN = {
    "transformer": dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128,
                        in_channels=16, out_channels=16, text_dim=4096, freq_dim=256,
                        ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                        qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
    "vae": dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                temperal_downsample=[False, True, True]),
    "text_encoder": dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                         num_heads=64, relative_attention_num_buckets=32,
                         relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                         tie_word_embeddings=False),
}
_WAN_TINY = {
    "transformer": dict(_WAN["transformer"], num_attention_heads=2, attention_head_dim=16,
                        text_dim=32, freq_dim=32, ffn_dim=64, num_layers=1),
    "vae": dict(_WAN["vae"], base_dim=16, num_res_blocks=1),
    "text_encoder": dict(_WAN["text_encoder"], vocab_size=256, d_model=32, d_kv=8, d_ff=64,
                         num_layers=1, num_heads=4),
}
_FLUX_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                       base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                       max_image_seq_len=4096)
_WAN_SCHEDULER = dict(num_train_timesteps=1000, prediction_type="flow_prediction",
                      use_flow_sigmas=True, flow_shift=3.0)


def parts(family: str, *, tiny: bool = False) -> dict[str, Part]:
    """The sub-folders of ``family``'s set, in writing order (the tokenizers first: the CLIP
    encoder takes its special ids from its tokenizer)."""
    _check_family(family)
    if family == "flux1-dev":
        c = _FLUX_TINY if tiny else _FLUX
        return {
            "tokenizer": Part("tokenizer", "CLIPTokenizer", {}),
            "tokenizer_2": Part("tokenizer", "T5TokenizerFast", {}),
            "transformer": Part("diffusers", "FluxTransformer2DModel", c["transformer"]),
            "text_encoder_2": Part("transformers", "T5EncoderModel", c["text_encoder_2"]),
            "text_encoder": Part("transformers", "CLIPTextModel", c["text_encoder"]),
            "vae": Part("diffusers", "AutoencoderKL", c["vae"], "fp32"),
            "scheduler": Part("diffusers", "FlowMatchEulerDiscreteScheduler", _FLUX_SCHEDULER),
        }
    c = _WAN_TINY if tiny else _WAN
    return {
        "tokenizer": Part("tokenizer", "T5TokenizerFast", {}),
        "text_encoder": Part("transformers", "UMT5EncoderModel", c["text_encoder"]),
        "transformer": Part("diffusers", "WanTransformer3DModel", c["transformer"]),
        "vae": Part("diffusers", "AutoencoderKLWan", c["vae"], "fp32"),
        "scheduler": Part("diffusers", "UniPCMultistepScheduler", _WAN_SCHEDULER),
    }


_PIPELINE = {"flux1-dev": "FluxPipeline", "wan2.1-t2v-1.3b": "WanPipeline"}


# ---- LoRA modules ----------------------------------------------------------------------------

#: The Linear layers of one block, by module path inside it (diffusers 0.39
#: transformer_flux.py / transformer_wan.py).
_FLUX_DOUBLE = ("norm1.linear", "norm1_context.linear", "attn.to_q", "attn.to_k", "attn.to_v",
                "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_out.0",
                "attn.to_add_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
                "ff_context.net.2")
_FLUX_SINGLE = ("norm.linear", "proj_mlp", "proj_out", "attn.to_q", "attn.to_k", "attn.to_v")
_WAN_BLOCK = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q",
              "attn2.to_k", "attn2.to_v", "attn2.to_out.0", "ffn.net.0.proj", "ffn.net.2")


def lora_modules(family: str, *, tiny: bool = False) -> list[str]:
    """The transformer modules ai-toolkit's LoRA wraps for ``family`` with its defaults
    (``transformer_only``, toolkit/lora_special.py:531-566): every Linear layer whose name holds
    ``transformer_blocks`` (FLUX) or ``blocks`` (Wan 2.1, wan21.py:735-736), by module name."""
    c = parts(family, tiny=tiny)["transformer"].config
    if family == "flux1-dev":
        return ([f"transformer_blocks.{i}.{m}" for i in range(c["num_layers"])
                 for m in _FLUX_DOUBLE]
                + [f"single_transformer_blocks.{i}.{m}" for i in range(c["num_single_layers"])
                   for m in _FLUX_SINGLE])
    return [f"blocks.{i}.{m}" for i in range(c["num_layers"]) for m in _WAN_BLOCK]


# ---- stand-ins -------------------------------------------------------------------------------

#: Packages ai-toolkit imports at module level (27a03a91) that its FLUX and Wan 2.1 LoRA
#: training never calls, with where they are used instead; ``(name, submodules, why)``.
STAND_INS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("albumentations", (), "dataset augmentations only (toolkit/dataloader_mixins.py:1276-1285, "
     "1471-1481), set by a dataset's augmentations keys"),
    ("torchaudio", (), "audio datasets and audio models only (toolkit/config_modules.py:1333, "
     "toolkit/dataloader_mixins.py:468-473)"),
    ("av", (), "video and audio files only (toolkit/audio/album_artwork.py); diffusers' LTX-2 "
     "export module must see it installed for ai-toolkit's LTX-2 class to import "
     "(extensions_built_in/diffusion_models/ltx2/ltx2.py:28-58), hence the metadata"),
    ("lpips", (), "the VAE trainer and the diffusion feature extractor only "
     "(jobs/process/TrainVAEProcess.py:35, toolkit/models/diffusion_feature_extraction.py:190)"),
    ("controlnet_aux", ("midas",), "the reference-image generator extension only "
     "(extensions_built_in/advanced_generator/ReferenceGenerator.py:22)"),
)

_STAND_IN = '''"""Stand-in for {name}, written by lorac synth: {name} is not installed here.

ai-toolkit imports it at module level, but the LoRA training lorac runs does not use it:
{why}. Any use raises ImportError.
"""


class _Missing(type):
    def __call__(cls, *args, **kwargs):
        raise ImportError(f"{{cls.__qualname__}} used, but {name} is not installed "
                          "(lorac's stand-in)")

    def __getattr__(cls, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise ImportError(f"{{cls.__qualname__}}.{{attr}} used, but {name} is not installed "
                          "(lorac's stand-in)")


def __getattr__(attr):
    if attr.startswith("__"):
        raise AttributeError(attr)
    return _Missing(f"{{__name__}}.{{attr}}", (), {{}})
'''


def write_stand_ins(folder: Path) -> list[str]:
    """Write a stand-in for each package of :data:`STAND_INS` that is not installed; returns
    their names (none written: an empty list)."""
    written = []
    for name, submodules, why in STAND_INS:
        if importlib.util.find_spec(name) is not None:
            continue
        for sub in ("", *submodules):
            package = folder / name / sub if sub else folder / name
            package.mkdir(parents=True, exist_ok=True)
            (package / "__init__.py").write_text(_STAND_IN.format(name=name, why=why),
                                                 encoding="utf-8")
        if name != "av":
            written.append(name)
            continue
        # distribution metadata, so that importlib.metadata (diffusers' is_av_available) finds it
        info = folder / f"{name}-0.0.0+lorac.stand.in.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.0+lorac.stand.in\n",
            encoding="utf-8")
        (info / "top_level.txt").write_text(f"{name}\n", encoding="utf-8")
        written.append(name)
    return written


# ---- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthSet:
    """A written set: ``root`` is the diffusers folder ai-toolkit's ``model.name_or_path`` takes."""

    family: str
    root: Path
    tiny: bool = False
    bytes_written: int = 0
    seconds: float = 0.0
    stand_ins: Path | None = None
    folders: dict[str, Path] = field(default_factory=dict)

    def trainer_args(self) -> dict[str, str]:
        """``{option: value}``: the folder, as ``pretrained_model_name_or_path``."""
        return {"pretrained_model_name_or_path": str(self.root)}

    def pythonpath(self) -> list[str]:
        """Folders to append to the trainer's ``PYTHONPATH`` (the stand-ins, when any)."""
        return [str(self.stand_ins)] if self.stand_ins is not None else []


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"no synthetic ai-toolkit set for family {family!r}; known: "
                         f"{', '.join(FAMILIES)}")


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _clip_ids(root: Path) -> dict[str, int]:
    vocab = json.loads((root / "tokenizer" / "vocab.json").read_text(encoding="utf-8"))
    return {"bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"]}


def _write_model(folder: Path, part: Part, device: str, seed: int) -> None:
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[part.dtype]
    library = importlib.import_module(part.library)
    cls = getattr(library, part.cls)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in its own dtype: the 12 B transformer in bf16
    try:
        with torch.device(device):
            if part.library == "transformers":
                config_cls = getattr(library, part.cls.replace("EncoderModel", "Config")
                                     .replace("TextModel", "TextConfig"))
                model = cls(config_cls(**part.config))
            else:
                model = cls(**part.config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(str(folder), safe_serialization=True)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def write_synthetic(family: str, out_dir: Path, *, tiny: bool = False, device: str = "cpu",
                    seed: int = 0) -> SynthSet:
    """Write ``family``'s synthetic diffusers folder into ``out_dir`` and return it.

    Each model is built on ``device`` (``"cuda"`` on the GPU machine: the FLUX transformer
    alone is 23.8 GB in bf16) and saved by its class; host memory peaks at one shard.
    """
    _check_family(family)
    missing = [m for m in ("torch", "diffusers", "transformers", "tokenizers")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"the synthetic ai-toolkit set is built with ai-toolkit's own "
                         f"libraries; missing here: {', '.join(missing)}")
    start = time.perf_counter()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    folders: dict[str, Path] = {}
    index: dict[str, Any] = {"_class_name": _PIPELINE[family]}
    for i, (name, part) in enumerate(parts(family, tiny=tiny).items()):
        folder = root / name
        if part.cls == "CLIPTokenizer":
            write_clip_tokenizer(folder)
        elif part.library == "tokenizer":
            write_t5_tokenizer(folder)
        elif part.cls.endswith("Scheduler"):
            import diffusers

            getattr(diffusers, part.cls)(**part.config).save_pretrained(str(folder))
        else:
            if part.cls == "CLIPTextModel":  # pooling reads the eos id (modeling_clip.py)
                part = Part(part.library, part.cls, {**part.config, **_clip_ids(root)},
                            part.dtype)
            _write_model(folder, part, device, seed + i)
        folders[name] = folder
        library = "transformers" if part.library == "tokenizer" else part.library
        index[name] = [library, part.cls]
    (root / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    stand_ins = root / "stand_ins"
    if not write_stand_ins(stand_ins):
        stand_ins = None
    return SynthSet(family=family, root=root, tiny=tiny,
                    bytes_written=sum(_size(f) for f in folders.values()),
                    seconds=time.perf_counter() - start, stand_ins=stand_ins, folders=folders)
