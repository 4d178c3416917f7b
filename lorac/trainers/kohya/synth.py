"""Synthetic model checkpoints of the real shapes, for running a trainer without the real weights.

``write_synthetic("flux1-dev", out_dir)`` writes random-initialised safetensors files whose key
names, shapes and dtypes are exactly what kohya sd-scripts' FLUX loaders build
(``library/flux_utils.py``, ``library/flux_models.py`` at 37a1cbbc), plus offline tokenizer folders
in the layout ``--tokenizer_cache_dir`` reads. GPU memory then behaves as with the real weights
(same shapes, dtypes and kernels); losses mean nothing.

Shapes are computed from small parameter records (:class:`FluxSizes`), so the key list of the full
set is known without allocating anything (:func:`component_specs`), and ``tiny=True`` writes the
same key names with small sizes for CPU tests. Torch and safetensors are imported lazily (the
``gpu`` extra); the tokenizer files need ``tokenizers`` and ``transformers`` (sd-scripts' own pins).

Each file is streamed: a tensor is generated on ``device``, copied to the host and appended to the
file, so host memory stays at one tensor; the file format is safetensors' (8-byte header length,
JSON header, contiguous little-endian data), read back by ``safetensors.safe_open`` in the tests.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorac.trainers.tokenizers import write_clip_tokenizer, write_t5_tokenizer

__all__ = [
    "FAMILIES",
    "FluxSizes",
    "SynthSet",
    "TensorSpec",
    "component_specs",
    "write_synthetic",
]

FAMILIES = ("flux1-dev",)

# Hub ids sd-scripts asks for (library/strategy_flux.py:21-22); the cache folder name replaces
# "/" with "_" (library/strategy_base.py:57).
CLIP_L_TOKENIZER_ID = "openai/clip-vit-large-patch14"
T5_XXL_TOKENIZER_ID = "google/t5-v1_1-xxl"

_ST_DTYPE = {"bf16": "BF16", "fp16": "F16", "fp32": "F32"}
_ITEMSIZE = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a checkpoint: its shape, dtype ("bf16" | "fp16" | "fp32") and init kind."""

    shape: tuple[int, ...]
    dtype: str
    init: str = "weight"  # weight | zeros | ones | embedding

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * _ITEMSIZE[self.dtype]


@dataclass(frozen=True)
class FluxSizes:
    """Sizes of the four FLUX.1-dev checkpoints; the defaults are the real ones."""

    # library/flux_models.py:382-395 (configs["dev"].params)
    in_channels: int = 64
    vec_in_dim: int = 768
    context_in_dim: int = 4096
    hidden_size: int = 3072
    mlp_ratio: float = 4.0
    num_heads: int = 24
    depth: int = 19
    depth_single_blocks: int = 38
    guidance_embed: bool = True
    # library/flux_models.py:397-407 (configs["dev"].ae_params)
    ae_in_channels: int = 3
    ae_out_ch: int = 3
    ae_ch: int = 128
    ae_ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    ae_num_res_blocks: int = 2
    ae_z_channels: int = 16
    # library/flux_utils.py:212-306 (CLIPL_CONFIG, the text_config_dict values win)
    clip_vocab: int = 49408
    clip_positions: int = 77
    clip_hidden: int = 768
    clip_intermediate: int = 3072
    clip_layers: int = 12
    # library/flux_utils.py:323-355 (T5_CONFIG_JSON)
    t5_vocab: int = 32128
    t5_d_model: int = 4096
    t5_d_kv: int = 64
    t5_heads: int = 64
    t5_d_ff: int = 10240
    t5_layers: int = 24
    t5_buckets: int = 32

    @classmethod
    def tiny(cls) -> FluxSizes:
        """Same block counts (hence the same key names), small widths."""
        return cls(
            in_channels=4, vec_in_dim=8, context_in_dim=8, hidden_size=16, num_heads=2,
            ae_ch=4, ae_z_channels=2,
            clip_vocab=64, clip_positions=77, clip_hidden=8, clip_intermediate=16,
            t5_vocab=64, t5_d_model=8, t5_d_kv=4, t5_heads=2, t5_d_ff=16, t5_buckets=4,
        )  # fmt: skip


def _linear(
    out: dict[str, TensorSpec], name: str, fan_in: int, fan_out: int, dtype: str, bias: bool = True
) -> None:
    out[f"{name}.weight"] = TensorSpec((fan_out, fan_in), dtype)
    if bias:
        out[f"{name}.bias"] = TensorSpec((fan_out,), dtype, "zeros")


def _conv(out: dict[str, TensorSpec], name: str, cin: int, cout: int, k: int, dtype: str) -> None:
    out[f"{name}.weight"] = TensorSpec((cout, cin, k, k), dtype)
    out[f"{name}.bias"] = TensorSpec((cout,), dtype, "zeros")


def _norm(out: dict[str, TensorSpec], name: str, dim: int, dtype: str, bias: bool = True) -> None:
    out[f"{name}.weight"] = TensorSpec((dim,), dtype, "ones")
    if bias:
        out[f"{name}.bias"] = TensorSpec((dim,), dtype, "zeros")


def flux_transformer_spec(s: FluxSizes, dtype: str = "bf16") -> dict[str, TensorSpec]:
    """The BFL-layout state dict of ``flux_models.Flux`` (library/flux_models.py:878-922)."""
    out: dict[str, TensorSpec] = {}
    h = s.hidden_size
    mlp = int(h * s.mlp_ratio)
    head_dim = h // s.num_heads
    _linear(out, "img_in", s.in_channels, h, dtype)  # :897
    for emb, in_dim in (
        ("time_in", 256),
        ("vector_in", s.vec_in_dim),
    ):  # :898-899, MLPEmbedder :546-551
        _linear(out, f"{emb}.in_layer", in_dim, h, dtype)
        _linear(out, f"{emb}.out_layer", h, h, dtype)
    if s.guidance_embed:  # :900
        _linear(out, "guidance_in.in_layer", 256, h, dtype)
        _linear(out, "guidance_in.out_layer", h, h, dtype)
    _linear(out, "txt_in", s.context_in_dim, h, dtype)  # :901
    for b in range(s.depth):  # DoubleStreamBlock :649-676
        p = f"double_blocks.{b}"
        for stream in ("img", "txt"):
            _linear(out, f"{p}.{stream}_mod.lin", h, 6 * h, dtype)  # Modulation :633-638
            _linear(out, f"{p}.{stream}_attn.qkv", h, 3 * h, dtype)  # SelfAttention :612, qkv_bias
            out[f"{p}.{stream}_attn.norm.query_norm.scale"] = TensorSpec((head_dim,), dtype, "ones")
            out[f"{p}.{stream}_attn.norm.key_norm.scale"] = TensorSpec((head_dim,), dtype, "ones")
            _linear(out, f"{p}.{stream}_attn.proj", h, h, dtype)  # :614
            _linear(out, f"{p}.{stream}_mlp.0", h, mlp, dtype)  # :661-665
            _linear(out, f"{p}.{stream}_mlp.2", mlp, h, dtype)
    for b in range(s.depth_single_blocks):  # SingleStreamBlock :762-793
        p = f"single_blocks.{b}"
        _linear(out, f"{p}.linear1", h, 3 * h + mlp, dtype)  # :783
        _linear(out, f"{p}.linear2", h + mlp, h, dtype)  # :785
        out[f"{p}.norm.query_norm.scale"] = TensorSpec((head_dim,), dtype, "ones")  # :787
        out[f"{p}.norm.key_norm.scale"] = TensorSpec((head_dim,), dtype, "ones")
        _linear(out, f"{p}.modulation.lin", h, 3 * h, dtype)  # :793
    # LastLayer(hidden, patch 1, out_channels = in_channels) :861-866, :922
    _linear(out, "final_layer.linear", h, s.in_channels, dtype)
    _linear(out, "final_layer.adaLN_modulation.1", h, 2 * h, dtype)
    return out


def _resnet(out: dict[str, TensorSpec], p: str, cin: int, cout: int, dtype: str) -> None:
    # ResnetBlock library/flux_models.py:93-105
    _norm(out, f"{p}.norm1", cin, dtype)
    _conv(out, f"{p}.conv1", cin, cout, 3, dtype)
    _norm(out, f"{p}.norm2", cout, dtype)
    _conv(out, f"{p}.conv2", cout, cout, 3, dtype)
    if cin != cout:
        _conv(out, f"{p}.nin_shortcut", cin, cout, 1, dtype)


def _attn(out: dict[str, TensorSpec], p: str, c: int, dtype: str) -> None:
    # AttnBlock library/flux_models.py:63-73
    _norm(out, f"{p}.norm", c, dtype)
    for n in ("q", "k", "v", "proj_out"):
        _conv(out, f"{p}.{n}", c, c, 1, dtype)


def flux_ae_spec(s: FluxSizes, dtype: str = "fp32") -> dict[str, TensorSpec]:
    """The state dict of ``flux_models.AutoEncoder`` (library/flux_models.py:147-335)."""
    out: dict[str, TensorSpec] = {}
    ch, mult, nres = s.ae_ch, s.ae_ch_mult, s.ae_num_res_blocks
    n = len(mult)
    # Encoder :147-195
    _conv(out, "encoder.conv_in", s.ae_in_channels, ch, 3, dtype)
    in_mult = (1, *mult)
    block_in = ch
    for i in range(n):
        block_in = ch * in_mult[i]
        block_out = ch * mult[i]
        for j in range(nres):
            _resnet(out, f"encoder.down.{i}.block.{j}", block_in, block_out, dtype)
            block_in = block_out
        if i != n - 1:
            _conv(out, f"encoder.down.{i}.downsample.conv", block_in, block_in, 3, dtype)  # :127
    _resnet(out, "encoder.mid.block_1", block_in, block_in, dtype)
    _attn(out, "encoder.mid.attn_1", block_in, dtype)
    _resnet(out, "encoder.mid.block_2", block_in, block_in, dtype)
    _norm(out, "encoder.norm_out", block_in, dtype)
    _conv(out, "encoder.conv_out", block_in, 2 * s.ae_z_channels, 3, dtype)
    # Decoder :221-273
    block_in = ch * mult[n - 1]
    _conv(out, "decoder.conv_in", s.ae_z_channels, block_in, 3, dtype)
    _resnet(out, "decoder.mid.block_1", block_in, block_in, dtype)
    _attn(out, "decoder.mid.attn_1", block_in, dtype)
    _resnet(out, "decoder.mid.block_2", block_in, block_in, dtype)
    for i in reversed(range(n)):
        block_out = ch * mult[i]
        for j in range(nres + 1):
            _resnet(out, f"decoder.up.{i}.block.{j}", block_in, block_out, dtype)
            block_in = block_out
        if i != 0:
            _conv(out, f"decoder.up.{i}.upsample.conv", block_in, block_in, 3, dtype)  # :139
    _norm(out, "decoder.norm_out", block_in, dtype)
    _conv(out, "decoder.conv_out", block_in, s.ae_out_ch, 3, dtype)
    return out


def clip_l_spec(s: FluxSizes, dtype: str = "fp16") -> dict[str, TensorSpec]:
    """The state dict of transformers' ``CLIPTextModel`` built from ``CLIPL_CONFIG``
    (library/flux_utils.py:212-315; ``position_ids`` is a non-persistent buffer, not a key)."""
    out: dict[str, TensorSpec] = {}
    d, t = s.clip_hidden, "text_model"
    out[f"{t}.embeddings.token_embedding.weight"] = TensorSpec(
        (s.clip_vocab, d), dtype, "embedding"
    )
    out[f"{t}.embeddings.position_embedding.weight"] = TensorSpec(
        (s.clip_positions, d), dtype, "embedding"
    )
    for i in range(s.clip_layers):
        p = f"{t}.encoder.layers.{i}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            _linear(out, f"{p}.self_attn.{proj}", d, d, dtype)
        _norm(out, f"{p}.layer_norm1", d, dtype)
        _linear(out, f"{p}.mlp.fc1", d, s.clip_intermediate, dtype)
        _linear(out, f"{p}.mlp.fc2", s.clip_intermediate, d, dtype)
        _norm(out, f"{p}.layer_norm2", d, dtype)
    _norm(out, f"{t}.final_layer_norm", d, dtype)
    return out


def t5xxl_spec(s: FluxSizes, dtype: str = "fp16") -> dict[str, TensorSpec]:
    """The state dict of transformers' ``T5EncoderModel`` built from ``T5_CONFIG_JSON``
    (library/flux_utils.py:323-366): gated-gelu FF (wi_0, wi_1, wo), no biases, RMS norms,
    relative attention bias in block 0 only; ``encoder.embed_tokens`` is ``shared``."""
    out: dict[str, TensorSpec] = {}
    d, inner = s.t5_d_model, s.t5_heads * s.t5_d_kv
    out["shared.weight"] = TensorSpec((s.t5_vocab, d), dtype, "embedding")
    out["encoder.embed_tokens.weight"] = TensorSpec((s.t5_vocab, d), dtype, "embedding")
    for i in range(s.t5_layers):
        p = f"encoder.block.{i}.layer"
        for proj in ("q", "k", "v"):
            _linear(out, f"{p}.0.SelfAttention.{proj}", d, inner, dtype, bias=False)
        _linear(out, f"{p}.0.SelfAttention.o", inner, d, dtype, bias=False)
        if i == 0:
            out[f"{p}.0.SelfAttention.relative_attention_bias.weight"] = TensorSpec(
                (s.t5_buckets, s.t5_heads), dtype, "embedding"
            )
        _norm(out, f"{p}.0.layer_norm", d, dtype, bias=False)
        _linear(out, f"{p}.1.DenseReluDense.wi_0", d, s.t5_d_ff, dtype, bias=False)
        _linear(out, f"{p}.1.DenseReluDense.wi_1", d, s.t5_d_ff, dtype, bias=False)
        _linear(out, f"{p}.1.DenseReluDense.wo", s.t5_d_ff, d, dtype, bias=False)
        _norm(out, f"{p}.1.layer_norm", d, dtype, bias=False)
    _norm(out, "encoder.final_layer_norm", d, dtype, bias=False)
    return out


# component -> (file name, spec builder); dtypes as the issue and the real releases have them:
# transformer bf16, CLIP-L fp16, T5-XXL fp16, autoencoder fp32.
_COMPONENTS = {
    "transformer": ("flux1-dev.safetensors", flux_transformer_spec),
    "clip_l": ("clip_l.safetensors", clip_l_spec),
    "t5xxl": ("t5xxl_fp16.safetensors", t5xxl_spec),
    "ae": ("ae.safetensors", flux_ae_spec),
}


def component_specs(
    family: str = "flux1-dev", *, tiny: bool = False
) -> dict[str, dict[str, TensorSpec]]:
    """Every tensor of every checkpoint of ``family``, computed without allocating anything."""
    _check_family(family)
    sizes = FluxSizes.tiny() if tiny else FluxSizes()
    return {name: build(sizes) for name, (_, build) in _COMPONENTS.items()}


@dataclass(frozen=True)
class SynthSet:
    """Paths of a written synthetic set, named after the sd-scripts options that take them."""

    family: str
    root: Path
    pretrained_model_name_or_path: Path
    clip_l: Path
    t5xxl: Path
    ae: Path
    tokenizer_cache_dir: Path
    tiny: bool = False
    bytes_written: int = 0
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    def trainer_args(self) -> dict[str, str]:
        """The values to put in a kohya config under these option names."""
        return {
            "pretrained_model_name_or_path": str(self.pretrained_model_name_or_path),
            "clip_l": str(self.clip_l),
            "t5xxl": str(self.t5xxl),
            "ae": str(self.ae),
            "tokenizer_cache_dir": str(self.tokenizer_cache_dir),
        }


def write_synthetic(
    family: str, out_dir: Path, *, tiny: bool = False, device: str = "cpu", seed: int = 0
) -> SynthSet:
    """Write a synthetic checkpoint set for ``family`` into ``out_dir`` and return its paths.

    Weights are drawn on ``device`` (``"cuda"`` on the GPU machine: the full FLUX.1-dev set is
    ~34 GB) with a fan-in-scaled normal init so activations stay finite; norms are ones, biases
    zeros. Tokenizers go to ``out_dir/tokenizers`` (see :func:`write_tokenizers`).
    """
    import time

    _check_family(family)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    total = 0
    for name, spec in component_specs(family, tiny=tiny).items():
        path = out_dir / _COMPONENTS[name][0]
        total += _write_streamed(path, spec, device=device, seed=seed)
        files[name] = path
    tok_dir = write_tokenizers(out_dir / "tokenizers")
    return SynthSet(
        family=family,
        root=out_dir,
        pretrained_model_name_or_path=files["transformer"],
        clip_l=files["clip_l"],
        t5xxl=files["t5xxl"],
        ae=files["ae"],
        tokenizer_cache_dir=tok_dir,
        tiny=tiny,
        bytes_written=total,
        seconds=time.perf_counter() - start,
        files=files,
    )


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"no synthetic checkpoints for family {family!r}; known: {FAMILIES}")


def _header(spec: dict[str, TensorSpec], metadata: dict[str, str]) -> tuple[bytes, list[str]]:
    order = list(spec)
    entries: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for key in order:
        t = spec[key]
        entries[key] = {
            "dtype": _ST_DTYPE[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    raw = json.dumps(entries, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    return raw, order


def _tensors(
    spec: dict[str, TensorSpec], order: list[str], device: str, seed: int
) -> Iterator[Any]:
    import torch

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    gen = torch.Generator(device=device).manual_seed(seed)
    for key in order:
        t = spec[key]
        dt = dtypes[t.dtype]
        if t.init == "zeros":
            x = torch.zeros(t.shape, dtype=dt, device=device)
        elif t.init == "ones":
            x = torch.ones(t.shape, dtype=dt, device=device)
        else:
            std = 0.02 if t.init == "embedding" else math.prod(t.shape[1:]) ** -0.5
            x = torch.empty(t.shape, dtype=dt, device=device).normal_(0.0, std, generator=gen)
        yield x


def _write_streamed(path: Path, spec: dict[str, TensorSpec], *, device: str, seed: int) -> int:
    """Write ``spec`` as a safetensors file, one tensor at a time; returns the file's size."""
    import torch

    header, order = _header(spec, {"format": "pt", "lorac": "synthetic, random weights"})
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb", buffering=0) as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for x in _tensors(spec, order, device, seed):
            host = x.contiguous().view(torch.uint8).reshape(-1).cpu()
            f.write(memoryview(host.numpy()))
    tmp.replace(path)
    return path.stat().st_size


# ---- tokenizers: lorac.trainers.tokenizers -----------------------------------------------


def write_tokenizers(cache_dir: Path) -> Path:
    """Fill ``cache_dir`` the way ``--tokenizer_cache_dir`` reads it (strategy_base.py:56-60)."""
    cache_dir = Path(cache_dir)
    write_clip_tokenizer(cache_dir / CLIP_L_TOKENIZER_ID.replace("/", "_"))
    write_t5_tokenizer(cache_dir / T5_XXL_TOKENIZER_ID.replace("/", "_"))
    return cache_dir
