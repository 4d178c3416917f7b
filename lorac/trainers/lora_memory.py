"""First-principles GPU memory of a LoRA run, for any family and trainer, from parameter counts.

The FLUX.1 model of kohya sd-scripts (:mod:`lorac.trainers.kohya.vram`) is calibrated on many
measured runs; this module covers the rest: SDXL and SD3/SD3.5 on kohya, FLUX.1 on ai-toolkit,
Wan 2.x and Qwen-Image on musubi-tuner. It knows each family's architecture (:data:`ARCHS`:
parameter counts of every component, the transformer blocks, the Linears a LoRA wraps, the
tokens an image or clip becomes) and nothing about trainers: each trainer's module turns a
profile into a :class:`LoraRun` whose fields say where that trainer puts each component in each
phase (text encoders kept on the GPU or cached and moved off, separate caching processes,
quantised weights, block swap). :func:`estimate` sums, per phase, the components on the GPU, the
LoRA parameters, gradients and optimizer states, the activations per token per block (with or
without gradient checkpointing), the VAE's encode activations, and a few free constants
(:class:`Constants`: CUDA context, per-phase slack, activation scales), which a trainer fits
(:func:`fit`) where measured runs exist and otherwise leaves at priors transferred from the
FLUX.1 calibration. The result says which of the two it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from lorac.trainers.estimates import FIRST_PRINCIPLES, Interval, Item, PhasePeaks
from lorac.trainers.estimates import option_int as _int
from lorac.trainers.estimates import truthy as truthy  # the memory models read it here

MIB = 1024 * 1024
PHASES = ("load", "cache_latents", "cache_text_encoder", "prepare", "train")

# Optimizer state bytes per trained parameter (fp32 states unless 8-bit), as in the FLUX model.
OPTIMIZER_BYTES: dict[str, float] = {
    "adamw": 8, "adam": 8, "adamw8bit": 2.03, "pagedadamw8bit": 2.03, "lion": 4,
    "lion8bit": 1.02, "prodigy": 16, "adafactor": 0.1, "came": 12, "sgd": 4,
}  # fmt: skip


@dataclass(frozen=True)
class Blocks:
    """``count`` transformer blocks of width ``hidden`` and MLP width ``mlp``, seeing
    ``tokens_div`` (image tokens are pixels / tokens_div per side, per latent frame) plus the
    text tokens when ``joint`` (joint attention over image and text, as MMDiT/FLUX)."""

    count: int
    hidden: int
    mlp: int
    tokens_div: int = 16
    joint: bool = False


@dataclass(frozen=True)
class Arch:
    """One family's architecture: what memory depends on. Counts are elements."""

    family: str
    denoiser: int  # the transformer / UNet
    text_encoders: tuple[tuple[str, int], ...]
    vae: int
    blocks: tuple[Blocks, ...]
    lora_per_rank: int  # LoRA parameters per unit of rank (denoiser only)
    te_lora_per_rank: int = 0  # ... of the trainable text encoder(s)
    text_tokens: int = 77
    conv_bytes_per_latent_px: float = 0.0  # UNet ResNets' activations (no checkpointing)
    vec_fed: int = 0  # weights reading the conditioning vector (no up-cast kept when no TE grad)
    video: bool = False
    vae_frame_div: int = 4  # latent frames = 1 + (frames - 1) / vae_frame_div
    source: str = ""

    def image_tokens(self, width: int, height: int, frames: int = 1) -> int:
        return self.latent_frames(frames) * (width // 16) * (height // 16)

    def latent_frames(self, frames: int) -> int:
        return 1 + (max(1, frames) - 1) // self.vae_frame_div if self.video else 1


def _lin(pairs: Sequence[tuple[int, int, int]]) -> int:
    """LoRA parameters per rank of ``(count, in, out)`` Linears: ``in + out`` each."""
    return sum(n * (i + o) for n, i, o in pairs)


def _sdxl_lora() -> int:
    # networks/lora.py: every Linear in Transformer2DModel (proj_in/out, attn1 q/k/v/out,
    # attn2 q/out (c) and k/v (2048 context), GEGLU proj c->8c, ff out 4c->c); 10 blocks at
    # 640 channels, 60 at 1280; 5 + 6 Transformer2DModels.
    out = 0
    for blocks, c, models in ((10, 640, 5), (60, 1280, 6)):
        out += blocks * _lin([(6, c, c), (2, 2048, c), (1, c, 8 * c), (1, 4 * c, c)])
        out += models * _lin([(2, c, c)])
    return out


def _clip_lora(layers: int, d: int) -> int:
    return layers * _lin([(4, d, d), (1, d, 4 * d), (1, 4 * d, d)])


def _mmdit(depth: int, h: int, extra_x_attn: int = 0) -> tuple[int, int]:
    """(LoRA params per rank, modulation params) of an SD3 MMDiT: per joint block, the x and
    context sub-blocks each have qkv, proj, fc1, fc2 and adaLN (6h)."""
    per = 2 * _lin([(1, h, 3 * h), (1, h, h), (1, h, 4 * h), (1, 4 * h, h), (1, h, 6 * h)])
    return depth * per + extra_x_attn * _lin([(1, h, 3 * h), (1, h, h)]), depth * 2 * h * 6 * h


def _wan(layers: int, h: int, ffn: int, i2v: bool = False) -> int:
    # networks/lora_wan.py: every Linear of WanAttentionBlock: self q/k/v/o, cross q/k/v/o
    # (+ k_img/v_img for i2v), ffn.0 and ffn.2 (lorac.trainers.musubi.synth.wan_lora_modules)
    return layers * _lin([(8 + (2 if i2v else 0), h, h), (1, h, ffn), (1, ffn, h)])


def _flux_lora() -> int:
    h, m = 3072, 12288
    double = 2 * _lin([(1, h, 6 * h), (1, h, 3 * h), (1, h, h), (1, h, m), (1, m, h)])
    single = _lin([(1, h, 3 * h + m), (1, h + m, h), (1, h, 3 * h)])
    return 19 * double + 38 * single


def _qwen_lora() -> int:
    # networks/lora_qwen_image.py: the Linears of QwenImageTransformerBlock, both streams:
    # to_q/k/v and add_q/k/v_proj, to_out / to_add_out, img/txt_mod (h -> 6h), img/txt_mlp
    h, m = 3072, 12288
    return 60 * 2 * _lin([(3, h, h), (1, h, h), (1, h, 6 * h), (1, h, m), (1, m, h)])


_SD3M = _mmdit(24, 1536)
_SD35M = _mmdit(24, 1536, extra_x_attn=13)
_SD35L = _mmdit(38, 2432)
_CLIP_L, _CLIP_G, _T5XXL = 123_060_480, 694_659_840, 4_893_906_944
_UMT5 = 5_680_910_336  # umt5-xxl encoder (lorac.trainers.musubi.synth.component_shapes)
_WAN_VAE = 126_892_531

#: The families this module knows. Counts from the models' published configurations (each
#: ``source``); FLUX.1's equal lorac.trainers.kohya.synth's (a test checks it).
ARCHS: dict[str, Arch] = {
    "sdxl": Arch(
        "sdxl", 2_567_463_684, (("CLIP-L", _CLIP_L), ("OpenCLIP bigG", _CLIP_G)), 83_653_863,
        (Blocks(10, 640, 2560, 16), Blocks(60, 1280, 5120, 32)), _sdxl_lora(),
        _clip_lora(12, 768) + _clip_lora(32, 1280), 77,
        conv_bytes_per_latent_px=2 * 6 * (5 * 320 + 5 * 640 / 4 + 7 * 1280 / 16),
        source="sd-scripts library/sdxl_original_unet.py, sdxl_model_util.py"),
    "sd3-medium": Arch(
        "sd3-medium", 2_028_328_000, (("CLIP-L", _CLIP_L), ("CLIP-G", _CLIP_G),
                                      ("T5-XXL", _T5XXL)), 83_819_683,
        (Blocks(24, 1536, 6144, 16, True),), _SD3M[0], _clip_lora(12, 768), 77 + 256,
        vec_fed=_SD3M[1], source="sd-scripts library/sd3_models.py (depth 24)"),
    "sd3.5-medium": Arch(
        "sd3.5-medium", 2_243_171_000, (("CLIP-L", _CLIP_L), ("CLIP-G", _CLIP_G),
                                        ("T5-XXL", _T5XXL)), 83_819_683,
        (Blocks(24, 1536, 6144, 16, True),), _SD35M[0], _clip_lora(12, 768), 77 + 256,
        vec_fed=_SD35M[1], source="sd-scripts library/sd3_models.py (depth 24, x_block_self_attn)"),
    "sd3.5-large": Arch(
        "sd3.5-large", 8_056_635_000, (("CLIP-L", _CLIP_L), ("CLIP-G", _CLIP_G),
                                       ("T5-XXL", _T5XXL)), 83_819_683,
        (Blocks(38, 2432, 9728, 16, True),), _SD35L[0], _clip_lora(12, 768), 77 + 256,
        vec_fed=_SD35L[1], source="sd-scripts library/sd3_models.py (depth 38)"),
    "flux1": Arch(
        "flux1", 11_901_408_320, (("CLIP-L", _CLIP_L), ("T5-XXL", _T5XXL)), 83_819_683,
        (Blocks(19, 3072, 12288, 16, True), Blocks(38, 3072, 12288, 16, True)), _flux_lora(),
        _clip_lora(12, 768), 512, vec_fed=3_259_250_688,
        source="FLUX.1-dev (lorac.trainers.kohya.synth shapes)"),
    "wan2.1-t2v-1.3b": Arch(
        "wan2.1-t2v-1.3b", 1_418_996_800, (("umT5-XXL", _UMT5),), _WAN_VAE,
        (Blocks(30, 1536, 8960, 16),), _wan(30, 1536, 8960), 0, 512, video=True,
        source="musubi-tuner wan/configs/wan_t2v_1_3B.py"),
    "wan2.1-t2v-14b": Arch(
        "wan2.1-t2v-14b", 14_288_491_584, (("umT5-XXL", _UMT5),), _WAN_VAE,
        (Blocks(40, 5120, 13824, 16),), _wan(40, 5120, 13824), 0, 512, video=True,
        source="musubi-tuner wan/configs/wan_t2v_14B.py"),
    "wan2.1-i2v-14b": Arch(
        "wan2.1-i2v-14b", 16_395_000_000, (("umT5-XXL", _UMT5), ("CLIP-H", 632_076_800)),
        _WAN_VAE, (Blocks(40, 5120, 13824, 16),), _wan(40, 5120, 13824, True), 0, 512 + 257,
        video=True, source="musubi-tuner wan/configs/wan_i2v_14B.py"),
    "wan2.2-t2v-a14b": Arch(
        "wan2.2-t2v-a14b", 14_288_491_584, (("umT5-XXL", _UMT5),), _WAN_VAE,
        (Blocks(40, 5120, 13824, 16),), _wan(40, 5120, 13824), 0, 512, video=True,
        source="musubi-tuner wan/configs/wan_t2v_A14B.py (one expert on the GPU at a time)"),
    "qwen-image": Arch(
        "qwen-image", 20_430_401_088, (("Qwen2.5-VL-7B", 8_292_166_656),), _WAN_VAE,
        (Blocks(60, 3072, 12288, 16, True),), _qwen_lora(), 0, 256,
        vec_fed=60 * 2 * 3072 * 6 * 3072,
        source="musubi-tuner qwen_image/qwen_image_model.py (60 layers, 3072 wide)"),
}
ARCHS["wan2.2-i2v-a14b"] = replace(ARCHS["wan2.1-t2v-14b"], family="wan2.2-i2v-a14b",
                                   lora_per_rank=_wan(40, 5120, 13824),
                                   source="musubi-tuner wan/configs/wan_i2v_A14B.py")


@dataclass(frozen=True)
class LoraRun:
    """What memory depends on, in trainer-neutral terms; a trainer's module fills it in."""

    trainer: str
    family: str  # a key of ARCHS
    width: int = 1024
    height: int = 1024
    frames: int = 1
    batch_size: int = 1
    rank: int = 16
    optimizer: str = "adamw8bit"
    gradient_checkpointing: bool = True
    dit_bytes: float = 2.0  # bytes per denoiser parameter on the GPU (fp8: 1, uint4: 0.5)
    upcast_kept: bool = False  # fp8 Linear without checkpointing keeps its bf16 cast
    te_bytes: float = 2.0
    train_te: bool = False
    te_on_gpu_in_training: bool = False  # text encoders stay for encoding every step
    latents_on_gpu_in_training: bool = False  # the VAE stays to encode every step
    vae_bytes: float = 2.0
    blocks_to_swap: int = 0
    cache_phases: bool = True  # latents and text-encoder outputs cached in their own phases
    # everything loaded stays on the GPU while caching (ai-toolkit caches after loading it all)
    resident_while_caching: bool = False
    # bytes per denoiser parameter on the GPU while it is loaded, before quantisation moves it to
    # dit_bytes (ai-toolkit quantises on the GPU unless low_vram); 0: no load peak of its own
    load_dit_bytes: float = 0.0
    # bytes per parameter of the largest text encoder while it is loaded onto the GPU, before
    # quantisation (ai-toolkit: bf16, quantised there with quantize_te); 0: not modelled
    te_load_bytes: float = 0.0
    denoiser_at_te_load: bool = True  # the denoiser is on the GPU while that encoder loads
    # bytes per parameter of the models as the trainer builds them on the host, whether they
    # are all there at once (else one at a time: caching processes of their own, or a loader
    # that moves each model off the host), and what the loader holds beside them at its worst
    # moment (MiB: a checkpoint file mapped while its tensors are converted)
    host_bytes: float = 2.0
    host_all_at_once: bool = False
    host_extra_mib: float = 0.0
    gpus: int = 1
    notes: tuple[str, ...] = ()

    @property
    def arch(self) -> Arch:
        return ARCHS[self.family]

    def changed(self, **kw: Any) -> LoraRun:
        return replace(self, **kw)


@dataclass(frozen=True)
class Constants:
    """Free constants (MiB unless named), priors transferred from the FLUX.1 kohya fit."""

    context_mib: float = 500.0
    te_cache_mib: float = 414.0
    prepare_mib: float = 262.0
    train_mib: float = 1238.0
    act_scale_gc: float = 1.08
    act_scale_nogc: float = 1.5
    latent_mib_per_mpx: float = 2114.0  # per megapixel x latent frame
    latent_mib: float = 0.0  # latent caching beyond the VAE and its activations
    load_mib: float = 0.0  # loading beyond the weights: quantisation work, allocator slack

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


FREE = tuple(f.name for f in fields(Constants))
PRIOR_SCALE = {"context_mib": 100.0, "te_cache_mib": 1000.0, "prepare_mib": 1000.0,
               "train_mib": 2000.0, "act_scale_gc": 1.0, "act_scale_nogc": 0.5,
               "latent_mib_per_mpx": 2000.0, "latent_mib": 2000.0, "load_mib": 1000.0}

Term = tuple[str, float, dict[str, float], str]


def _mib(n: float) -> float:
    return n / MIB


def _opt_bytes(name: str) -> float:
    return OPTIMIZER_BYTES.get(name.lower().replace("_", "").split(".")[-1], 8.0)


def _block_bytes(b: Blocks) -> float:
    """Activation bytes per token kept for backward by one block (bf16), as FLUX's double block
    stream: norms and modulation (2h), qkv (3h), normed q/k fp32 (4h), attention out (h),
    projection (h), second norm (2h), MLP in (h), GELU in and out (2 mlp), MLP out (h)."""
    return 2.0 * (15 * b.hidden + 2 * b.mlp)


def terms(run: LoraRun) -> dict[str, list[Term]]:
    """Every phase as terms linear in :class:`Constants` (fixed MiB, {constant: coefficient})."""
    a = run.arch
    ctx: Term = ("CUDA context and workspaces", 0.0, {"context_mib": 1.0}, "")
    mpx = run.width * run.height / 1e6
    lat_frames = a.latent_frames(run.frames)
    phases: dict[str, list[Term]] = {}
    vae: Term = ("VAE", _mib(a.vae * run.vae_bytes), {}, f"{a.vae / 1e6:.0f} M params")
    encode: Term = ("VAE encode activations", 0.0,
                    {"latent_mib_per_mpx": mpx * lat_frames, "latent_mib": 1.0},
                    f"{run.width}x{run.height}" + (f" x {run.frames} frames" if a.video else ""))
    tes = [(f"{name}", _mib(n * run.te_bytes), {}, f"{n / 1e9:.2f} B params x {run.te_bytes:g} B")
           for name, n in a.text_encoders]
    blocks_total = sum(b.count for b in a.blocks)
    swapped = a.denoiser * min(run.blocks_to_swap, blocks_total - 1) / blocks_total
    on_gpu = a.denoiser - swapped
    denoiser: Term = ("denoiser", _mib(on_gpu * run.dit_bytes), {},
                      f"{on_gpu / 1e9:.2f} B params x {run.dit_bytes:g} B on the GPU"
                      + (f" ({run.blocks_to_swap} blocks swapped to the host)"
                         if run.blocks_to_swap else ""))
    moments: list[list[Term]] = []
    if run.load_dit_bytes > run.dit_bytes:
        moments.append([ctx, ("denoiser before quantisation", _mib(a.denoiser
                                                                   * run.load_dit_bytes), {},
                              f"{a.denoiser / 1e9:.2f} B params x {run.load_dit_bytes:g} B, "
                              "loaded onto the GPU and quantised there")])
    if run.te_load_bytes:
        name, n = max(a.text_encoders, key=lambda t: t[1])
        moments.append([ctx, *([denoiser] if run.denoiser_at_te_load else []), (
            f"{name} while loading", _mib(n * run.te_load_bytes), {},
            f"{n / 1e9:.2f} B params x {run.te_load_bytes:g} B, before it is quantised")])
    if moments:  # the larger of the two moments of loading
        phases["load"] = [*max(moments, key=lambda m: sum(t[1] for t in m)),
                          ("quantisation work and allocator slack", 0.0, {"load_mib": 1.0}, "")]
    if run.cache_phases:
        loaded = [denoiser, *tes, vae] if run.resident_while_caching else []
        phases["cache_latents"] = [ctx, *(loaded or [vae]), encode]
        phases["cache_text_encoder"] = [ctx, *(loaded or tes), (
            "encoding activations and slack", 0.0, {"te_cache_mib": 1.0}, "")]
    resident: list[Term] = [ctx, denoiser]
    if run.te_on_gpu_in_training or run.train_te:
        resident += tes
    if run.latents_on_gpu_in_training:
        resident.append(vae)
    n_lora = run.rank * (a.lora_per_rank + (a.te_lora_per_rank if run.train_te else 0))
    resident.append(("LoRA parameters", _mib(n_lora * 4), {},
                     f"rank {run.rank}: {n_lora / 1e6:.1f} M params, fp32"))
    phases["prepare"] = resident + [("allocator slack", 0.0, {"prepare_mib": 1.0}, "")]
    train = list(resident)
    train.append(("LoRA gradients", _mib(n_lora * 4 * 0.62), {}, "share alive at the peak"))
    ob = _opt_bytes(run.optimizer)
    train.append(("optimizer states", _mib(n_lora * ob), {}, f"{run.optimizer}: {ob:g} B/param"))
    if run.optimizer.lower() in ("adamw", "adam"):
        train.append(("optimizer step temporaries", _mib(n_lora * 3.0), {}, "torch foreach"))
    full = 0.0
    gc_stored = 0.0
    worst = 0.0
    for b in a.blocks:
        toks = a.image_tokens(run.width, run.height, run.frames) * 256 // (b.tokens_div ** 2)
        toks = (toks + (a.text_tokens if b.joint else 0)) * run.batch_size
        full += toks * b.count * _block_bytes(b)
        gc_stored += toks * b.count * b.hidden * 2
        worst = max(worst, toks * _block_bytes(b) * 2)
    conv = a.conv_bytes_per_latent_px * (run.width // 8) * (run.height // 8) * run.batch_size
    if run.gradient_checkpointing:
        train.append(("activations", 0.0, {"act_scale_gc": _mib(gc_stored + worst + conv / 8)},
                      "checkpointed: block inputs + one block recomputed"))
    else:
        train.append(("activations", 0.0, {"act_scale_nogc": _mib(full + conv)},
                      "no checkpointing"))
        if run.upcast_kept and run.dit_bytes < 2:
            kept = on_gpu - (0 if run.train_te else a.vec_fed * on_gpu / a.denoiser)
            train.append(("low-precision weights up-cast for backward", _mib(kept * 2), {},
                          "kept without checkpointing"))
    if run.latents_on_gpu_in_training:
        train.append(("VAE encode per step", 0.0, {"latent_mib_per_mpx": mpx * lat_frames
                                                    * run.batch_size * 0.5}, ""))
    train.append(("workspaces and allocator slack", 0.0, {"train_mib": 1.0}, ""))
    phases["train"] = train
    return {p: phases[p] for p in PHASES if p in phases}


def _value(t: Term, k: Constants) -> float:
    return t[1] + sum(getattr(k, n) * c for n, c in t[2].items())


@dataclass
class Prediction(PhasePeaks):
    """Peak MiB per phase with its breakdown, host RAM and the error interval."""

    run: LoraRun
    phases: dict[str, float]
    breakdown: dict[str, list[Item]]
    host_ram_mib: float
    interval: Interval = FIRST_PRINCIPLES
    notes: list[str] = field(default_factory=list)

    def config_json(self) -> dict[str, Any]:
        return asdict(self.run)


def host_ram_mib(run: LoraRun) -> float:
    """Host memory at the worst moment: the components built on the host
    (:attr:`LoraRun.host_bytes` per parameter, bf16 unless the trainer says otherwise), all of
    them where :attr:`LoraRun.host_all_at_once`, else the largest, and what the loader holds
    beside them (:attr:`LoraRun.host_extra_mib`), plus ~3 GiB of Python, torch and CUDA host
    allocations."""
    a = run.arch
    if run.host_all_at_once:
        params = a.denoiser + sum(n for _, n in a.text_encoders) + a.vae
    else:
        params = max(a.denoiser, max(n for _, n in a.text_encoders))
    return (params * run.host_bytes / MIB + run.host_extra_mib + 3072) * run.gpus


def estimate(run: LoraRun, constants: Constants | None = None,
             interval: Interval | None = None,
             tested: Mapping[str, int] | None = None) -> Prediction:
    """The prediction of ``run`` under ``constants`` with the family's measured ``interval``.
    ``tested`` (constant -> how many leave-one-out peaks rested on it, stored beside the fitted
    constants) keeps the measured interval from a prediction whose peak phase rests on a
    constant no leave-one-out peak tested: that prediction carries the first-principles
    interval and says which constant it is."""
    k = constants or Constants()
    ts = terms(run)
    phases = {p: sum(_value(t, k) for t in items) for p, items in ts.items()}
    breakdown = {p: [Item(t[0], _value(t, k), t[3]) for t in items] for p, items in ts.items()}
    iv = interval or Interval(FIRST_PRINCIPLES.low, FIRST_PRINCIPLES.high, 0,
                              FIRST_PRINCIPLES.basis, f"{run.trainer}/{run.family}")
    pred = Prediction(run, phases, breakdown, host_ram_mib(run), iv, list(run.notes))
    if iv.estimate_only:
        pred.notes.insert(0, f"first-principles estimate: no run of {run.trainer} {run.family} "
                             f"was measured ({ARCHS[run.family].source})")
    elif tested is not None:
        peak = pred.peak_phase
        untested = sorted(n for n in _used(ts, (peak,)) if not tested.get(n))
        if untested:
            pred.interval = Interval(FIRST_PRINCIPLES.low, FIRST_PRINCIPLES.high, 0,
                                     f"its {peak} peak untested by the measured runs",
                                     iv.scope)
            pred.notes.insert(0, f"first-principles estimate: the {peak} phase rests on "
                                 f"{', '.join(untested)}, which no measured {run.trainer} "
                                 f"{run.family} run left out of the fit tested")
    return pred


def used_constants(run: LoraRun, phases: Sequence[str],
                   fixed: Sequence[str] = ("context_mib",)) -> set[str]:
    """The fitted constants (not ``fixed``) that the ``phases`` of ``run`` depend on."""
    return _used(terms(run), phases, fixed)


def _used(ts: Mapping[str, list[Term]], phases: Sequence[str],
          fixed: Sequence[str] = ("context_mib",)) -> set[str]:
    """:func:`used_constants` of a run's :func:`terms`."""
    return {n for ph in phases for t in ts.get(ph, ()) for n, c in t[2].items()
            if c and n not in fixed}


def support_of(observations: Sequence[tuple[LoraRun, Sequence[str]]]) -> dict[str, int]:
    """Per fitted constant, how many of the measured runs ``(run, its measured phases)`` fit
    it."""
    out: dict[str, int] = {}
    for run, phases in observations:
        for n in used_constants(run, phases):
            out[n] = out.get(n, 0) + 1
    return out


def features(run: LoraRun) -> dict[str, tuple[float, dict[str, float]]]:
    out = {}
    for p, items in terms(run).items():
        coef: dict[str, float] = {}
        fixed = 0.0
        for _, f, c, _ in items:
            fixed += f
            for n, v in c.items():
                coef[n] = coef.get(n, 0.0) + v
        out[p] = (fixed, coef)
    return out


def fit(observations: Sequence[tuple[LoraRun, str, float]], prior: Constants | None = None,
        *, prior_weight: float = 0.05, fixed: Sequence[str] = ("context_mib",)) -> Constants:
    """Least squares (relative error) of the constants to ``(run, phase, measured MiB)``, the
    priors as weak pseudo-observations, as the FLUX.1 model's fit."""
    prior = prior or Constants()
    names = [n for n in FREE if n not in fixed]
    idx = {n: i for i, n in enumerate(names)}
    rows: list[tuple[list[float], float]] = []
    for run, phase, mib in observations:
        base, coef = features(run)[phase]
        rhs = mib - base - sum(getattr(prior, n) * c for n, c in coef.items() if n in fixed)
        row = [0.0] * len(names)
        for n, c in coef.items():
            if n in idx:
                row[idx[n]] = c
        rows.append(([x / mib for x in row], rhs / mib))
    for n in names:
        row = [0.0] * len(names)
        row[idx[n]] = prior_weight / PRIOR_SCALE[n]
        rows.append((row, prior_weight * getattr(prior, n) / PRIOR_SCALE[n]))
    size = len(names)
    ata = [[sum(r[i] * r[j] for r, _ in rows) for j in range(size)] for i in range(size)]
    atb = [sum(r[i] * y for r, y in rows) for i in range(size)]
    theta = solve(ata, atb)
    return replace(prior, **{n: round(theta[idx[n]], 4) for n in names})


def solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve the square system ``a x = b`` (Gaussian elimination, partial pivoting)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        if abs(m[col][col]) < 1e-18:
            continue
        for r in range(n):
            if r != col and m[r][col]:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] if abs(m[i][i]) > 1e-18 else 0.0 for i in range(n)]


def constants_from(data: Mapping[str, Any] | None) -> Constants:
    values = (data or {}).get("constants") or {}
    return Constants(**{k: float(v) for k, v in values.items() if k in FREE})


def calibration_of(entry: Mapping[str, Any], family: str) -> tuple[Constants, Interval | None]:
    """The constants of a model file's architecture ``entry`` and the interval of ``family``
    where that family itself was measured (``intervals``); a family that was not measured
    keeps the first-principles interval (``None``). The ai-toolkit and musubi-tuner model
    files share this layout."""
    iv = (entry.get("intervals") or {}).get(family)
    return constants_from(entry), Interval.from_json(iv) if iv else None


def params_b(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.0f} M"


# ---------------------------------------------------------------------------- profiles


def profile_options(profile: Any) -> dict[str, Any]:
    """The profile's flat options (kohya's names), values only."""
    return {k: v for k, (v, _) in profile.options().items()}


def dataset_shape(profile: Any) -> tuple[int, int, int, int]:
    """(width, height, batch, frames) of the profile's most demanding dataset: the largest
    resolution x batch x frames over ``[dataset]`` and its ``[[dataset.datasets]]``."""
    from lorac.config.profile import parse_resolution

    opts = profile_options(profile)
    ds = profile.get("dataset", default={}) or {}
    ds = dict(ds) if isinstance(ds, dict) else {}
    general = parse_resolution(ds.get("resolution", opts.get("resolution", 1024))) or (1024, 1024)
    batch = _int(ds.get("batch_size", opts.get("train_batch_size", 1)), 1)
    best = (0, general[0], general[1], batch, 1)
    for group in [ds] + [d for d in ds.get("datasets") or [] if isinstance(d, dict)]:
        w, h = parse_resolution(group.get("resolution")) or general
        b = _int(group.get("batch_size", batch), batch)
        frames = group.get("target_frames") or [1]
        f = max((_int(x, 1) for x in frames), default=1) if isinstance(frames, list) else 1
        if group.get("video_directory") or group.get("video_jsonl_file"):
            f = max(f, 1)
        weight = w * h * b * f
        if weight > best[0]:
            best = (weight, w, h, b, f)
    return best[1], best[2], max(1, best[3]), max(1, best[4])


def optimizer_name(opts: Mapping[str, Any], default: str = "AdamW") -> str:
    return str(opts.get("optimizer_type") or default).lower().replace("_", "").split(".")[-1]


# ---------------------------------------------------------------------------- fix plans


@dataclass(frozen=True)
class Fix:
    """One change of a fix plan, the predicted peak after it (cumulative) and the predicted
    seconds per step after it (``None`` without a time model)."""

    change: str
    options: dict[str, Any]
    peak_mib: float
    phase: str
    sec_per_step: float | None = None
    time_cost_pct: float | None = None


def fixes(run: LoraRun, limit_mib: float, constants: Constants | None = None, *,
          margin: float = 1.0, cost: Any = None) -> list[Fix]:
    """The cheapest cumulative changes after which ``run``'s peak times ``margin`` fits
    ``limit_mib``; empty when it fits already. While it does not fit, the change of
    :data:`FIX_ORDER` that lowers the peak at the smallest predicted cost in seconds per step
    (``cost(run)``, the time model; without one, the table's order) is taken, the larger saving
    first among equally cheap ones; the batch size and the resolution, which change what is
    trained, only last."""
    k = constants or Constants()
    limit = limit_mib / margin
    base_s = cost(run) if cost else None

    def peak(r: LoraRun) -> tuple[float, str]:
        e = estimate(r, k)
        return e.peak_mib, e.peak_phase

    def fix(label: Any, opts: Any, r: LoraRun, p: float, ph: str) -> Fix:
        sec = cost(r) if cost else None
        pct = round((sec - base_s) / base_s * 100, 1) if sec is not None and base_s else None
        return Fix(label(r) if callable(label) else label, opts(r) if callable(opts) else opts,
                   p, ph, None if sec is None else round(sec, 3), pct)

    cur = run
    p, ph = peak(cur)
    if p <= limit:
        return []
    out: list[Fix] = []
    keep = FIX_ORDER[:KEEPS_TRAINING]
    while p > limit and keep:
        options = []
        for order, (_, _, apply) in enumerate(keep):
            nxt = apply(cur)
            if nxt == cur:
                continue
            np_, nph = peak(nxt)
            if np_ >= p - 1:
                continue
            dt = round(cost(nxt) - cost(cur), 2) if cost else float(order)
            options.append((max(dt, 0.0), -(p - np_), order, nxt, np_, nph))
        if not options:
            break
        options.sort(key=lambda o: (o[0], o[1], o[2]))
        _, _, order, cur, p, ph = options[0]
        label, opts, _ = keep[order]
        out.append(fix(label, opts, cur, p, ph))
        keep = keep[:order] + keep[order + 1:]
    for label, opts, apply in FIX_ORDER[KEEPS_TRAINING:]:
        if p <= limit:
            break
        nxt = apply(cur)
        if nxt == cur:
            continue
        cur = nxt
        p, ph = peak(cur)
        out.append(fix(label, opts, cur, p, ph))
    return out


def _swap(r: LoraRun) -> LoraRun:
    total = sum(b.count for b in r.arch.blocks)
    if r.trainer != "musubi" or r.blocks_to_swap >= total // 2:
        return r
    return r.changed(blocks_to_swap=total // 2)


def _half_batch(r: LoraRun) -> LoraRun:
    return r.changed(batch_size=r.batch_size // 2) if r.batch_size > 1 else r


def _smaller(r: LoraRun) -> LoraRun:
    if r.width * r.height <= 512 * 512:
        return r
    return r.changed(width=r.width * 3 // 4 // 64 * 64, height=r.height * 3 // 4 // 64 * 64)


#: Candidate changes: (label, options, apply); the first KEEPS_TRAINING keep what is trained
#: and are ranked by their time cost, the rest (batch, resolution) come last, in this order.
KEEPS_TRAINING = 7
FIX_ORDER: list[tuple[Any, Any, Any]] = [
    # ai-toolkit quantises on the host instead: a slower start, the same steps
    ("[trainers.ai-toolkit.model] low_vram = true",
     {"trainers": {"ai-toolkit": {"model": {"low_vram": True}}}},
     lambda r: r.changed(load_dit_bytes=0.0) if r.load_dit_bytes else r),
    ("cache_text_encoder_outputs = true", {"cache_text_encoder_outputs": True},
     lambda r: r.changed(te_on_gpu_in_training=False) if not r.train_te else r),
    ("cache_latents = true", {"cache_latents": True},
     lambda r: r.changed(latents_on_gpu_in_training=False)),
    ("fp8_base = true", {"fp8_base": True},
     lambda r: r.changed(dit_bytes=1.0) if r.dit_bytes > 1 else r),
    ("optimizer_type = \"AdamW8bit\"", {"optimizer_type": "AdamW8bit"},
     lambda r: r.changed(optimizer="adamw8bit") if _opt_bytes(r.optimizer) > 2.03 else r),
    ("gradient_checkpointing = true", {"gradient_checkpointing": True},
     lambda r: r.changed(gradient_checkpointing=True)),
    (lambda r: f"blocks_to_swap = {r.blocks_to_swap}",
     lambda r: {"blocks_to_swap": r.blocks_to_swap}, _swap),
    (lambda r: f"batch_size = {r.batch_size}", lambda r: {"batch_size": r.batch_size},
     _half_batch),
    (lambda r: f"resolution = [{r.width}, {r.height}]",
     lambda r: {"resolution": [r.width, r.height]}, _smaller),
    (lambda r: f"resolution = [{r.width}, {r.height}]",
     lambda r: {"resolution": [r.width, r.height]}, _smaller),
]
