"""The VRAM model: peak GPU memory per run phase of a FLUX.1 LoRA run with kohya sd-scripts.

:func:`estimate` is a pure function of a :class:`RunConfig` (built from a resolved profile by
:func:`config_from_profile`, or from a flat option dict by :func:`config_from_options`) and the
fitted constants (:class:`Constants`, shipped in ``backends/kohya/vram_model.json``). It returns
the peak memory of every phase lorac's telemetry records (``cache_latents``,
``cache_text_encoder``, ``prepare``, ``train``, plus ``sample`` and ``save`` when the profile
enables them), in MiB as ``nvidia-smi`` reports them, the breakdown of the training phase, and
the host memory the run needs.

First principles (no fitting): parameter counts and dtypes of every checkpoint tensor
(:func:`lorac.trainers.kohya.synth.component_specs`, the exact FLUX.1-dev shapes); which
components sit on the GPU in each phase (``flux_train_network.py:231-281``,
``train_network.py:1234-1312``: with
``fp8_base`` the transformer is cast to float8_e4m3fn and, after caching, the text encoders are too;
T5-XXL reaches the GPU in its file's dtype for caching); block swap (``flux_models.py:972-990``:
``n // 2`` double and ``(n - n // 2) * 2`` single blocks live on the host); the LoRA modules
``networks/lora_flux.py`` wraps (every Linear of the 19 double and 38 single blocks: 304 modules;
72 CLIP-L modules when CLIP-L is trained) with ``rank * (in + out)`` parameters each; optimizer
state bytes per parameter from the optimizers' definitions; activation bytes per token per block
from the block structure (``flux_models.py:649-793``).

Measured facts built in: without gradient checkpointing an fp8 transformer keeps a bf16 up-cast
of every weight for backward; uncached text encoders reach the GPU at the end of latent caching;
saving shows the training step's memory (the allocator keeps it).

Free constants (:class:`Constants`), fitted to measurements by :func:`fit`: the CUDA context,
one overhead per phase, a scale on the first-principles activation estimate (with and without
gradient checkpointing, the latter with its own offset), the VAE's bytes per pixel, the share
of LoRA gradients alive at the training peak, torch AdamW's step temporaries per parameter, and
the extra memory per GPU under DDP.
Every phase prediction is linear in them, so fitting is a small least-squares problem with the
shipped priors as weak pseudo-observations (enough data overrides them; too little leaves them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from lorac.config.profile import parse_resolution
from lorac.trainers.estimates import FIRST_PRINCIPLES, Interval, Item, PhasePeaks
from lorac.trainers.estimates import option_int as _int
from lorac.trainers.estimates import truthy as _bool

__all__ = [
    "CARDS",
    "Constants",
    "Estimate",
    "Fix",
    "Item",
    "RunConfig",
    "card_mib",
    "config_from_options",
    "config_from_profile",
    "estimate",
    "fit",
    "fixes",
    "load_constants",
    "load_interval",
    "load_measurements",
]

MIB = 1024 * 1024
PHASES = ("cache_latents", "cache_text_encoder", "prepare", "train", "sample", "save")

#: Memory a card offers as ``nvidia-smi`` reports its total (MiB).
CARDS: dict[str, float] = {
    "8GB": 8192, "10GB": 10240, "12GB": 12288, "16GB": 16384, "24GB": 24564, "32GB": 32607,
    "40GB": 40960, "48GB": 49140, "80GB": 81559, "96GB": 97871, "141GB": 143771,
    "RTX 3060": 12288, "RTX 3080": 10240, "RTX 3090": 24576, "RTX 4070": 12282,
    "RTX 4080": 16376, "RTX 4090": 24564, "RTX 5090": 32607, "RTX A6000": 49140,
    "A6000": 49140, "L4": 23034, "L40S": 46068, "A10": 23028, "A100 40GB": 40960,
    "A100": 81920, "A100 80GB": 81920, "H100": 81559, "H100 80GB": 81559, "H200": 143771,
    "T4": 15360, "V100": 16384,
}  # fmt: skip
STANDARD_CARDS = ("24GB", "48GB", "80GB")
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(GB|GiB|G)\s*$", re.I)

# Optimizer state bytes per trained parameter (fp32 states unless 8-bit):
#   AdamW: exp_avg + exp_avg_sq; bitsandbytes 8-bit: one byte per state (+ 1/256 for block
#   absmax); Lion: exp_avg; Prodigy: exp_avg, exp_avg_sq, s, p0; DAdaptAdam: exp_avg,
#   exp_avg_sq, s; SGD with momentum: momentum_buffer. Adafactor is factored: see _opt_bytes.
OPTIMIZER_BYTES: dict[str, float] = {
    "adamw": 8, "adam": 8, "adamw8bit": 2.03, "pagedadamw8bit": 2.03, "pagedadamw": 8,
    "lion": 4, "lion8bit": 1.02, "pagedlion8bit": 1.02, "prodigy": 16, "dadaptadam": 12,
    "dadaptation": 12, "dadaptadamw": 12, "dadaptlion": 8, "sgdnesterov": 4,
    "sgdnesterov8bit": 1.02, "schedulefreeadamw": 12, "radamschedulefree": 12, "came": 12,
}  # fmt: skip

FLUX_FAMILIES = ("flux1-dev", "flux1-schnell")


# ---------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class RunConfig:
    """What memory depends on, resolved from a profile (sd-scripts' defaults where unset)."""

    family: str = "flux1-dev"
    width: int = 1024
    height: int = 1024
    batch_size: int = 1
    rank: int = 16
    train_blocks: str = "all"  # all | single | double (network_args)
    train_clip_l: bool = True  # not network_train_unet_only
    optimizer: str = "adamw"
    fp8_base: bool = False
    fp8_base_unet: bool = False
    t5_fp8_file: bool = False  # the t5xxl checkpoint itself is float8 (t5xxl_fp8_e4m3fn)
    mixed_precision: str = "bf16"
    full_bf16: bool = False
    gradient_checkpointing: bool = False
    cpu_offload_checkpointing: bool = False
    blocks_to_swap: int = 0
    cache_latents: bool = False
    cache_te: bool = False
    t5_tokens: int = 512
    vae_batch_size: int = 1
    te_batch_size: int = 1
    sample: bool = False
    sample_size: int = 1024
    save: bool = True
    gpus: int = 1

    @property
    def image_tokens(self) -> int:
        """Patches per image: the latent is 1/8 of the pixels, patchified 2x2."""
        return (self.width // 16) * (self.height // 16)

    @property
    def tokens(self) -> int:
        return self.image_tokens + self.t5_tokens

    def changed(self, **kw: Any) -> RunConfig:
        return replace(self, **kw)


def _bucket(w: int, h: int, steps: int = 64) -> tuple[int, int]:
    """The largest bucket of that shape: sides rounded down to the bucket step (64 by default)."""
    return max(steps, w // steps * steps), max(steps, h // steps * steps)


def _network_args(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    for item in items:
        if isinstance(item, str) and "=" in item:
            k, v = item.split("=", 1)
            out[k.strip()] = v.strip().strip("\"'")
    return out


def config_from_options(options: Mapping[str, Any], *, family: str = "flux1-dev",
                        gpus: int = 1, dataset: Mapping[str, Any] | None = None) -> RunConfig:
    """A :class:`RunConfig` from flat kohya option names (plus ``resolution`` / ``batch_size``
    from ``dataset`` or the options), with sd-scripts' defaults for what is unset."""

    o = dict(options)
    ds = dict(dataset or {})
    reso = parse_resolution(ds.get("resolution", o.get("resolution", 512))) or (512, 512)
    reso = _bucket(*reso, steps=max(8, _int(ds.get("bucket_reso_steps",
                                                  o.get("bucket_reso_steps", 64)), 64)))
    batch = _int(ds.get("batch_size", o.get("train_batch_size", o.get("batch_size", 1))), 1)
    nargs = _network_args(o.get("network_args"))
    fp8_unet = _bool(o.get("fp8_base_unet", False))
    te_cache = _bool(o.get("cache_text_encoder_outputs")) or _bool(
        o.get("cache_text_encoder_outputs_to_disk"))
    lat_cache = _bool(o.get("cache_latents")) or _bool(o.get("cache_latents_to_disk"))
    t5 = str(o.get("t5xxl") or "")
    schnell = family == "flux1-schnell"
    t5_tokens = _int(o.get("t5xxl_max_token_length"), 256 if schnell else 512)
    every = _int(o.get("sample_every_n_steps"), 0)
    steps = _int(o.get("max_train_steps"), 0)
    periodic = (every > 0 and not (steps and every > steps)) or _int(
        o.get("sample_every_n_epochs"), 0) > 0
    sample = bool(o.get("sample_prompts")) and (periodic or _bool(o.get("sample_at_first")))
    return RunConfig(
        family=family,
        width=reso[0],
        height=reso[1],
        batch_size=max(1, batch),
        rank=max(1, _int(o.get("network_dim"), 4)),
        train_blocks=nargs.get("train_blocks", "all") or "all",
        train_clip_l=not _bool(o.get("network_train_unet_only", False)),
        optimizer=str(o.get("optimizer_type") or "AdamW").lower().replace("_", "").split(".")[-1],
        fp8_base=_bool(o.get("fp8_base", False)) or fp8_unet,
        fp8_base_unet=fp8_unet,
        t5_fp8_file="fp8" in Path(t5).name.lower(),
        mixed_precision=str(o.get("mixed_precision") or "no"),
        full_bf16=_bool(o.get("full_bf16", False)),
        gradient_checkpointing=_bool(o.get("gradient_checkpointing", False)),
        cpu_offload_checkpointing=_bool(o.get("cpu_offload_checkpointing", False)),
        blocks_to_swap=max(0, _int(o.get("blocks_to_swap"), 0)),
        cache_latents=lat_cache,
        cache_te=te_cache,
        t5_tokens=t5_tokens,
        vae_batch_size=max(1, _int(o.get("vae_batch_size"), 1)),
        te_batch_size=max(1, _int(o.get("text_encoder_batch_size"), batch or 1)),
        sample=sample,
        gpus=max(1, gpus),
    )


def config_from_profile(profile: Any) -> RunConfig:
    """The :class:`RunConfig` of a resolved :class:`lorac.config.profile.Profile` (kohya backend).

    Resolution and batch size come from ``[dataset]`` and, for a ``[[dataset.datasets]]``
    profile, from the dataset whose resolution x batch is largest (a subset's own resolution
    counts where it is larger); ``[run] gpus`` gives the number of processes.
    """

    options = {k: v for k, (v, _) in profile.options().items()}
    ds = profile.get("dataset", default={}) or {}
    ds = dict(ds) if isinstance(ds, dict) else {}
    general = parse_resolution(ds.get("resolution", options.get("resolution", 512))) or (512, 512)
    batch = ds.get("batch_size", options.get("train_batch_size", 1))
    groups = [ds] + [d for d in ds.get("datasets") or [] if isinstance(d, dict)]
    worst: tuple[int, tuple[int, int], Any] | None = None
    for group in groups:
        best = parse_resolution(group.get("resolution")) or general
        for sub in group.get("subsets") or []:
            r = parse_resolution(sub.get("resolution")) if isinstance(sub, dict) else None
            if r and r[0] * r[1] > best[0] * best[1]:
                best = r
        b = group.get("batch_size", batch)
        weight = best[0] * best[1] * max(1, _int(b, 1))
        if worst is None or weight > worst[0]:
            worst = (weight, best, b)
    assert worst is not None
    ds["resolution"], ds["batch_size"] = list(worst[1]), worst[2]
    gpus = _int(profile.get("run", "gpus", default=1), 1)
    return config_from_options(options, family=profile.family or "flux1-dev", gpus=gpus,
                               dataset=ds)


# ---------------------------------------------------------------------------- model shapes


@dataclass(frozen=True)
class Shapes:
    """Parameter counts (elements) of the FLUX.1 components, from
    :mod:`lorac.trainers.kohya.synth`."""

    dit_total: int
    dit_double_block: int
    dit_single_block: int
    dit_other: int
    clip_total: int
    clip_embeddings: int
    t5_total: int
    ae_total: int
    hidden: int
    mlp: int
    double_blocks: int
    single_blocks: int
    clip_hidden: int
    clip_intermediate: int
    clip_layers: int
    t5_d_model: int
    t5_d_ff: int
    dit_vec_fed: int = 0  # Linears whose input is the conditioning vector (modulations)
    dit_input_no_grad: int = 0  # embedders of inputs that never need a gradient


@lru_cache(maxsize=1)
def shapes() -> Shapes:
    """Counts computed from :func:`lorac.trainers.kohya.synth.component_specs` (no
    allocation); flux1-dev and flux1-schnell share them. Read from their generated copy while
    it is current (:mod:`lorac.trainers.kohya.flux_shapes_gen`)."""
    from lorac.trainers.kohya.flux_shapes_gen import load

    return Shapes(**load())


def lora_modules(cfg: RunConfig) -> list[tuple[str, int, int]]:
    """(name pattern, in, out) of every Linear ``networks/lora_flux.py`` wraps for ``cfg``."""
    return list(_lora_modules(cfg.train_blocks, cfg.train_clip_l))


@lru_cache(maxsize=8)
def _lora_modules(train_blocks: str, train_clip_l: bool) -> tuple[tuple[str, int, int], ...]:
    sh = shapes()
    h, m = sh.hidden, sh.mlp
    out: list[tuple[str, int, int]] = []
    if train_blocks in ("all", "double"):
        for b in range(sh.double_blocks):
            for stream in ("img", "txt"):
                p = f"double_blocks.{b}.{stream}"
                out += [(f"{p}_mod.lin", h, 6 * h), (f"{p}_attn.qkv", h, 3 * h),
                        (f"{p}_attn.proj", h, h), (f"{p}_mlp.0", h, m), (f"{p}_mlp.2", m, h)]
    if train_blocks in ("all", "single"):
        for b in range(sh.single_blocks):
            p = f"single_blocks.{b}"
            out += [(f"{p}.linear1", h, 3 * h + m), (f"{p}.linear2", h + m, h),
                    (f"{p}.modulation.lin", h, 3 * h)]
    if train_clip_l:
        c, ci = sh.clip_hidden, sh.clip_intermediate
        for layer in range(sh.clip_layers):
            p = f"te1.layers.{layer}"
            out += [(f"{p}.self_attn.{x}", c, c) for x in ("q_proj", "k_proj", "v_proj",
                                                           "out_proj")]
            out += [(f"{p}.mlp.fc1", c, ci), (f"{p}.mlp.fc2", ci, c)]
    return tuple(out)


def lora_params(cfg: RunConfig) -> int:
    """Trained parameters: ``rank * (in + out)`` per module (alpha is a buffer, not trained)."""
    return sum(cfg.rank * (i + o) for _, i, o in _lora_modules(cfg.train_blocks,
                                                                cfg.train_clip_l))


def _opt_bytes(cfg: RunConfig) -> tuple[float, str]:
    """Optimizer state bytes for the LoRA parameters and a description."""
    name = cfg.optimizer
    if name.startswith("adafactor"):
        # transformers' Adafactor (sd-scripts' default args): factored second moment for 2-D
        # weights (row + column vectors, fp32), no first moment (beta1 None).
        n = sum(cfg.rank + i + o + cfg.rank
                for _, i, o in _lora_modules(cfg.train_blocks, cfg.train_clip_l))
        return 4.0 * n, "Adafactor: factored second moment (rows + columns, fp32)"
    per = OPTIMIZER_BYTES.get(name)
    if per is None:
        return 8.0 * lora_params(cfg), f"{cfg.optimizer}: unknown, assumed AdamW (8 B/param)"
    return per * lora_params(cfg), f"{cfg.optimizer}: {per:g} B/param"


def _act_per_token(sh: Shapes) -> tuple[float, float]:
    """Activation bytes per token kept for backward by one double / one single block (bf16).

    Double block, per stream: pre-norm and modulated input (2h), qkv (3h), normed q and k in
    fp32 with RoPE (4h), attention output (h), projection output (h), second norm and
    modulation (2h), MLP in (h), GELU input and output (2 * mlp), MLP output (h).
    Single block: norm and modulation (2h), linear1 output (3h + mlp), normed q/k fp32 (4h),
    attention output (h), GELU output (mlp), concatenation (h + mlp), linear2 output (h).
    """
    h, m = sh.hidden, sh.mlp
    double = 2 * (2 * h + 3 * h + 4 * h + h + h + 2 * h + h + 2 * m + h)
    single = 2 * (2 * h + 3 * h + m + 4 * h + h + m + h + m + h)
    return float(double), float(single)


# ---------------------------------------------------------------------------- constants


@dataclass(frozen=True)
class Constants:
    """The model's free constants (MiB unless named otherwise); see the module docstring."""

    context_mib: float = 500.0  # CUDA context + cuBLAS/cuDNN workspaces, every phase
    latent_mib_per_mpx: float = 2000.0  # VAE encode activations per megapixel x vae batch
    te_cache_mib: float = 400.0  # text-encoder caching: activations + allocator slack
    prepare_mib: float = 300.0  # model resident before the first step: allocator slack
    train_mib: float = 1000.0  # fp8 up-cast weight copies, workspaces, allocator slack
    act_scale_gc: float = 1.0  # scale on the checkpointed activation estimate
    act_scale_nogc: float = 1.0  # scale on the full activation estimate
    nogc_mib: float = 0.0  # without checkpointing: what the per-token line leaves (allocator)
    grad_share: float = 1.0  # share of the LoRA gradients alive at the training peak
    sample_mib: float = 300.0  # sample generation: VAE decode workspace, allocator slack
    adam_step_bytes: float = 4.0  # torch AdamW foreach: exp_avg_sq_sqrt, one fp32 copy (adam.py)
    ddp_te_mib: float = 800.0  # per-GPU extra under DDP (NCCL, a peer's context), per phase
    ddp_prepare_mib: float = 1500.0
    ddp_train_mib: float = 1200.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


FREE = tuple(f.name for f in fields(Constants))
#: How far each prior may move in one "standard deviation" (for the regularised fit).
PRIOR_SCALE: dict[str, float] = {
    "context_mib": 100.0, "latent_mib_per_mpx": 2000.0, "te_cache_mib": 1000.0,
    "prepare_mib": 1000.0, "train_mib": 2000.0, "act_scale_gc": 1.0, "act_scale_nogc": 0.5,
    "nogc_mib": 2000.0, "grad_share": 0.5, "adam_step_bytes": 4.0, "sample_mib": 1000.0,
    "ddp_te_mib": 1500.0, "ddp_prepare_mib": 2000.0, "ddp_train_mib": 2000.0,
}  # fmt: skip


def model_path() -> Path:
    from lorac.config.inventory import backends_dir

    return backends_dir() / "kohya" / "vram_model.json"


def measurements_path() -> Path:
    from lorac.config.inventory import backends_dir

    return backends_dir() / "kohya" / "vram_measurements.json"


@lru_cache(maxsize=4)
def _load_constants(path: str) -> Constants:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    values = data.get("constants", {})
    return Constants(**{k: float(v) for k, v in values.items() if k in FREE})


def load_constants(path: Path | None = None) -> Constants:
    """The fitted constants (``backends/kohya/vram_model.json``); the priors if it is absent."""
    p = path or model_path()
    if not p.is_file():
        return Constants()
    return _load_constants(str(p))


#: The key of a family's interval in ``vram_model.json`` (FLUX.1 dev and schnell share one).
def interval_key(family: str) -> str:
    return "flux1" if family in FLUX_FAMILIES else family


@lru_cache(maxsize=4)
def _load_intervals(path: str) -> dict[str, Interval]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {k: Interval.from_json(v) for k, v in (data.get("intervals") or {}).items()}


def load_interval(family: str, path: Path | None = None) -> Interval:
    """The error interval of the model for ``family`` (leave-one-out residuals of its
    calibration runs, written by ``bench/vram_accuracy.py --write``); a first-principles
    interval, labelled so, where none was measured."""
    p = path or model_path()
    key = interval_key(family)
    if p.is_file():
        found = _load_intervals(str(p)).get(key)
        if found is not None:
            return found
    return Interval(FIRST_PRINCIPLES.low, FIRST_PRINCIPLES.high, 0, FIRST_PRINCIPLES.basis,
                    f"kohya/{key}")


def load_measurements(path: Path | None = None) -> list[dict[str, Any]]:
    """The calibration records (``backends/kohya/vram_measurements.json``)."""
    p = path or measurements_path()
    return list(json.loads(p.read_text(encoding="utf-8")).get("records", []))


# ---------------------------------------------------------------------------- the estimate


@dataclass
class Estimate(PhasePeaks):
    """Peak memory per phase (MiB, as nvidia-smi reports it) and the training breakdown."""

    config: RunConfig
    phases: dict[str, float]
    breakdown: dict[str, list[Item]]
    host_ram_mib: float
    notes: list[str] = field(default_factory=list)
    interval: Interval = FIRST_PRINCIPLES

    def config_json(self) -> dict[str, Any]:
        return asdict(self.config)


# A phase is a list of terms; each term is (name, fixed MiB, {constant: coefficient}, detail).
Term = tuple[str, float, dict[str, float], str]


def _mib(nbytes: float) -> float:
    return nbytes / MIB


def _swapped(cfg: RunConfig, sh: Shapes) -> tuple[int, int, int]:
    """``blocks_to_swap`` as sd-scripts splits it: (double blocks, single blocks, parameters
    off the GPU)."""
    n_double = cfg.blocks_to_swap // 2
    n_single = (cfg.blocks_to_swap - n_double) * 2
    return n_double, n_single, n_double * sh.dit_double_block + n_single * sh.dit_single_block


def _terms(cfg: RunConfig) -> dict[str, list[Term]]:
    """Every phase as terms linear in the free constants (the heart of the model)."""
    if cfg.family not in FLUX_FAMILIES:
        from lorac.core.diagnostics import LoracError

        raise LoracError(f"the VRAM model covers FLUX.1 (flux1-dev, flux1-schnell) only, "
                         f"not {cfg.family!r}")
    sh = shapes()
    ctx: Term = ("CUDA context and workspaces", 0.0, {"context_mib": 1.0}, "")
    wdt = 4 if cfg.mixed_precision not in ("bf16", "fp16") else 2  # weight_dtype
    mpx = cfg.width * cfg.height / 1e6
    ddp = 1.0 if cfg.gpus > 1 else 0.0
    phases: dict[str, list[Term]] = {}

    # -- latent caching: the AE on the GPU in weight_dtype, encoding vae_batch_size images.
    ae = ("autoencoder", _mib(sh.ae_total * wdt), {}, f"{sh.ae_total / 1e6:.0f} M params")
    encode = [ctx, ae, ("VAE encode activations", 0.0,
                        {"latent_mib_per_mpx": mpx * cfg.vae_batch_size},
                        f"{cfg.width}x{cfg.height} x {cfg.vae_batch_size}")]

    # -- text-encoder caching: T5-XXL in its file's dtype (fp16 release, 1 byte if an fp8 file),
    # CLIP-L in weight_dtype (flux_train_network.py:245-255).
    t5_bytes = 1 if cfg.t5_fp8_file and cfg.fp8_base and not cfg.fp8_base_unet else 2
    t5 = ("T5-XXL", _mib(sh.t5_total * t5_bytes), {},
          f"{sh.t5_total / 1e9:.2f} B params x {t5_bytes} B")
    clip = ("CLIP-L", _mib(sh.clip_total * wdt), {}, f"{sh.clip_total / 1e6:.0f} M params")
    if cfg.cache_te:
        phases["cache_text_encoder"] = [ctx, t5, clip, (
            "encoding activations and slack", 0.0, {"te_cache_mib": 1.0, "ddp_te_mib": ddp}, "")]
    if cfg.cache_latents:
        phases["cache_latents"] = encode
        if not cfg.cache_te:
            # Outputs not cached: the AE goes back to the host and both text encoders come to
            # the GPU, in their load dtypes, before the next phase's log line
            # (flux_train_network.py:293-296).
            te_on = [ctx, t5, clip]
            if sum(_value(t, Constants()) for t in te_on) > sum(
                    _value(t, Constants()) for t in encode):
                phases["cache_latents"] = te_on

    # -- resident model before the first step
    fp8 = cfg.fp8_base
    dit_b = 1 if fp8 else wdt
    n_double, n_single, swapped = _swapped(cfg, sh)
    dit = ("transformer" + (" (fp8)" if fp8 else ""), _mib((sh.dit_total - swapped) * dit_b), {},
           f"{(sh.dit_total - swapped) / 1e9:.2f} B params x {dit_b} B on the GPU")
    resident: list[Term] = [ctx, dit]
    if swapped:
        resident.append(("blocks swapped to the host", 0.0, {},
                         f"{cfg.blocks_to_swap} blocks: {n_double} double + {n_single} single "
                         f"= {_mib(swapped * dit_b):.0f} MiB off the GPU"))
    te_fp8 = fp8 and not cfg.fp8_base_unet
    clip_res = sh.clip_total - sh.clip_embeddings
    if cfg.train_clip_l or not cfg.cache_te:  # CLIP-L stays for encoding (get_models_for_...)
        b = 1 if te_fp8 else wdt
        resident.append(("CLIP-L" + (" (fp8)" if te_fp8 else ""),
                         _mib(clip_res * b + sh.clip_embeddings * wdt), {}, ""))
    if not cfg.cache_te:
        t5b = 1 if te_fp8 else 2
        resident.append(("T5-XXL" + (" (fp8)" if te_fp8 else ""), _mib(sh.t5_total * t5b), {},
                         "text-encoder outputs not cached: encoded every step"))
    if not cfg.cache_latents:
        resident.append(ae)
    n_lora = lora_params(cfg)
    pbytes = 2 if cfg.full_bf16 else 4
    lora = ("LoRA parameters", _mib(n_lora * pbytes), {},
            f"{len(lora_modules(cfg))} modules, rank {cfg.rank}: {n_lora / 1e6:.1f} M params")
    resident.append(lora)
    phases["prepare"] = resident + [("allocator slack", 0.0,
                                     {"prepare_mib": 1.0, "ddp_prepare_mib": ddp}, "")]

    # -- training step
    opt_b, opt_detail = _opt_bytes(cfg)
    train = list(resident)
    train.append(("LoRA gradients", 0.0, {"grad_share": _mib(n_lora * pbytes)},
                  "the share alive at the peak (fitted)"))
    train.append(("optimizer states", _mib(opt_b), {}, opt_detail))
    if cfg.optimizer in ("adamw", "adam"):
        train.append(("optimizer step temporaries", 0.0, {"adam_step_bytes": _mib(n_lora)},
                      "torch's foreach AdamW: per-parameter intermediates (fitted)"))
    a_d, a_s = _act_per_token(sh)
    toks = cfg.batch_size * cfg.tokens
    if cfg.gradient_checkpointing:
        stored = toks * (sh.double_blocks + sh.single_blocks) * sh.hidden * 2
        recompute = toks * 2 * max(a_d, a_s)  # one block's activations and their gradients
        if cfg.cpu_offload_checkpointing:
            stored = 0.0
        detail = (f"{toks} tokens ({cfg.image_tokens} image + {cfg.t5_tokens} text) x batch "
                  f"{cfg.batch_size}; checkpointed"
                  + (" (offloaded to the host)" if cfg.cpu_offload_checkpointing else ""))
        train.append(("activations", 0.0, {"act_scale_gc": _mib(stored + recompute)}, detail))
    else:
        full = toks * (sh.double_blocks * a_d + sh.single_blocks * a_s)
        train.append(("activations", 0.0, {"act_scale_nogc": _mib(full), "nogc_mib": 1.0},
                      f"{toks} tokens x batch {cfg.batch_size}; no checkpointing"))
        if fp8:
            # An fp8 Linear computes with its weight cast to the compute dtype, and autograd
            # keeps that cast for the input's gradient: without checkpointing the up-cast copy
            # of every Linear whose input needs a gradient lives until backward (measured: nogc
            # runs sit ~23 GB above the per-token line at 512, 768 and 1024 px). The embedders
            # of the latents, T5 output, timestep and guidance never need one; the modulation
            # Linears (and vector_in) read the conditioning vector ``vec``, which needs a
            # gradient only when CLIP-L is trained, since CLIP-L's pooled output feeds it
            # (flux_models.py:640-641, flux_train_network.py:76 train_clip_l). So
            # network_train_unet_only saves their 6.1 GiB (measured on an H100: 44,083 MiB
            # UNet-only with AdamW against 50,191 with CLIP-L and AdamW8bit, 512 px).
            on_gpu = sh.dit_total - swapped
            share = on_gpu / sh.dit_total
            kept = on_gpu - sh.dit_input_no_grad * share
            why = "inputs that need a gradient"
            if not cfg.train_clip_l:
                kept -= sh.dit_vec_fed * share
                why += "; modulations skipped: CLIP-L not trained"
            train.append(("fp8 weights up-cast for backward", _mib(kept * 2), {},
                          f"{kept / 1e9:.2f} B params x 2 B, kept without checkpointing "
                          f"({why})"))
    if cfg.train_clip_l:
        c = sh.clip_hidden
        clip_act = cfg.batch_size * 77 * sh.clip_layers * (10 * c + 2 * sh.clip_intermediate) * 2
        train.append(("CLIP-L activations", _mib(clip_act), {}, "77 tokens, trained"))
    if not cfg.cache_te:
        t5_act = cfg.batch_size * cfg.t5_tokens * (3 * sh.t5_d_ff + 4 * sh.t5_d_model) * 2
        train.append(("T5-XXL forward (no grad)", _mib(t5_act), {}, ""))
    if not cfg.cache_latents:
        train.append(("VAE encode per step", 0.0,
                      {"latent_mib_per_mpx": mpx * cfg.batch_size * 0.5},
                      "before the forward; half of it overlaps the stored activations"))
    train.append(("workspaces, fp8 up-casts, allocator slack", 0.0,
                  {"train_mib": 1.0, "ddp_train_mib": ddp}, ""))
    phases["train"] = train

    # -- sample generation: DiT inference (no grad) + AE decode, on top of the resident model
    # and the optimizer states (gradients are freed by zero_grad(set_to_none=True)).
    if cfg.sample:
        smpx = cfg.sample_size ** 2 / 1e6
        stoks = (cfg.sample_size // 16) ** 2 + cfg.t5_tokens
        sample = [t for t in resident]
        sample.append(("optimizer states", _mib(opt_b), {}, opt_detail))
        if cfg.cache_latents:
            sample.append(ae)
        sample.append(("inference activations", _mib(stoks * 2 * max(a_d, a_s)), {},
                       f"{cfg.sample_size}x{cfg.sample_size}"))
        sample.append(("VAE decode activations", 0.0,
                       {"latent_mib_per_mpx": smpx * 2.0}, "decode ~ 2x encode"))
        sample.append(("LoRA-sized buffers held while sampling", _mib(n_lora * pbytes), {},
                       "measured: the sampling peak grows by 4 B per LoRA parameter"))
        sample.append(("decode workspace and allocator slack", 0.0,
                       {"sample_mib": 1.0, "ddp_prepare_mib": ddp}, ""))
        phases["sample"] = sample

    if cfg.save and cfg.sample:
        # Sampling ends by emptying the allocator's cache (clean_memory_on_device,
        # flux_train_utils.py:138), so the save after it starts from the resident model.
        save = [t for t in resident]
        save.append(("optimizer states", _mib(opt_b), {}, opt_detail))
        save.append(("state-dict copy", _mib(n_lora * pbytes), {}, "cloned before the host copy"))
        save.append(("allocator slack", 0.0, {"prepare_mib": 1.0, "ddp_prepare_mib": ddp}, ""))
        phases["save"] = save
    elif cfg.save:
        # Saving follows a training step without emptying the allocator's cache: nvidia-smi
        # still shows the step's memory, and the state-dict copy fits in its free blocks
        # (measured: the save peak of every run that does not sample equals its train peak).
        phases["save"] = train
    return {ph: phases[ph] for ph in PHASES if ph in phases}


def _value(term: Term, k: Constants) -> float:
    _, fixed, coef, _ = term
    return fixed + sum(getattr(k, name) * c for name, c in coef.items())


def features(cfg: RunConfig) -> dict[str, tuple[float, dict[str, float]]]:
    """Per phase: (fixed MiB, {constant: coefficient}) — the linear form :func:`fit` uses."""
    out: dict[str, tuple[float, dict[str, float]]] = {}
    for phase, terms in _terms(cfg).items():
        fixed = 0.0
        coef: dict[str, float] = {}
        for _, f, c, _ in terms:
            fixed += f
            for name, v in c.items():
                coef[name] = coef.get(name, 0.0) + v
        out[phase] = (fixed, coef)
    return out


def host_ram_mib(cfg: RunConfig) -> float:
    """Host memory the run needs per process at its worst (MiB).

    Loading: the transformer is read in bf16 on the host and cast to fp8 there with
    ``fp8_base`` (flux_train_network.py:107-130), next to T5-XXL, CLIP-L and the AE. Training:
    swapped blocks, and the text encoders and AE that caching moved back to the host; ~3 GiB of
    Python, torch and CUDA host allocations.
    """
    sh = shapes()
    wdt = 2
    load = sh.dit_total * 2 + (sh.dit_total if cfg.fp8_base else 0) * 0.02
    others = sh.t5_total * (1 if cfg.t5_fp8_file else 2) + sh.clip_total * wdt + sh.ae_total * wdt
    swapped = _swapped(cfg, sh)[2] * (1 if cfg.fp8_base else 2)
    train = swapped + (others if cfg.cache_te else sh.ae_total * wdt)
    return (max(load + others, train) / MIB + 3072) * cfg.gpus


def estimate(cfg: RunConfig, constants: Constants | None = None) -> Estimate:
    """Peak MiB per phase, the breakdown of every phase and the host RAM for ``cfg``."""
    k = constants or load_constants()
    terms = _terms(cfg)
    phases = {ph: sum(_value(t, k) for t in ts) for ph, ts in terms.items()}
    breakdown = {ph: [Item(t[0], _value(t, k), t[3]) for t in ts] for ph, ts in terms.items()}
    notes = []
    if cfg.sample:
        notes.append("sampling is recorded inside lorac's 'train' phase (no log marker)")
    if cfg.gpus > 1:
        notes.append(f"per GPU, {cfg.gpus} processes (DDP)")
    return Estimate(cfg, phases, breakdown, host_ram_mib(cfg), notes,
                    load_interval(cfg.family))


# ---------------------------------------------------------------------------- cards and fixes


def card_mib(name: str) -> float | None:
    """A card's memory in MiB: ``"24GB"``, ``"24 GiB"``, or a known name (``"RTX 4090"``)."""
    key = name.strip()
    for known, mib in CARDS.items():
        if known.lower() == key.lower():
            return mib
    m = _SIZE.match(key)
    if m:
        gb = float(m.group(1))
        std = f"{gb:g}GB"
        return CARDS.get(std, gb * 1024)
    return None


@dataclass(frozen=True)
class Fix:
    """One change of a fix plan, the predicted whole-run peak after it (cumulative), and the
    predicted seconds per step after it (``None`` without a time model)."""

    change: str
    options: dict[str, Any]
    peak_mib: float
    phase: str
    sec_per_step: float | None = None
    time_cost_pct: float | None = None  # step time against the profile's own, in per cent


def _steps() -> list[tuple[str, dict[str, Any], Callable[[RunConfig], RunConfig]]]:
    """Candidate changes that keep what is trained (the batch and resolution come last)."""
    return [
        ("fp8_base = true", {"fp8_base": True}, lambda c: c.changed(fp8_base=True)),
        ("cache_text_encoder_outputs = true", {"cache_text_encoder_outputs": True},
         lambda c: c.changed(cache_te=True)),
        ("cache_latents = true", {"cache_latents": True}, lambda c: c.changed(cache_latents=True)),
        ("gradient_checkpointing = true", {"gradient_checkpointing": True},
         lambda c: c.changed(gradient_checkpointing=True)),
        ("optimizer_type = \"AdamW8bit\"", {"optimizer_type": "AdamW8bit"},
         lambda c: c.changed(optimizer="adamw8bit")
         if OPTIMIZER_BYTES.get(c.optimizer, 8) > 2.03 else c),
        ("an fp8 T5-XXL checkpoint (t5xxl_fp8_e4m3fn)", {"t5xxl": "t5xxl_fp8_e4m3fn.safetensors"},
         lambda c: c.changed(t5_fp8_file=True) if c.fp8_base else c),
    ]


def fixes(cfg: RunConfig, limit_mib: float, constants: Constants | None = None, *,
          margin: float = 1.0, cost: Callable[[RunConfig], float] | None = None) -> list[Fix]:
    """The cheapest cumulative set of changes after which ``cfg`` fits ``limit_mib`` with the
    predicted peak times ``margin`` (the top of the model's error interval, so that the verdict
    becomes ``fits``); empty when it fits already. The last entry does not fit when nothing
    does.

    Ranked by time as well as memory: while it does not fit, the change that lowers the peak at
    the smallest predicted cost in seconds per step (``cost``, the time model; without one, the
    order of :func:`_steps`) is taken, the larger saving first among equally cheap ones; then
    the fewest ``blocks_to_swap`` that fit, if that costs less than the changes left; the batch
    size and the resolution, which change what is trained, only last."""

    k = constants or load_constants()
    limit_mib = limit_mib / margin
    base_s = cost(cfg) if cost else None

    def peak(c: RunConfig) -> tuple[float, str]:
        e = estimate(c, k)
        return e.peak_mib, e.peak_phase

    def fix(label: str, opts: dict[str, Any], c: RunConfig, p: float, ph: str) -> Fix:
        sec = cost(c) if cost else None
        pct = round((sec - base_s) / base_s * 100, 1) if sec is not None and base_s else None
        return Fix(label, opts, p, ph, None if sec is None else round(sec, 3), pct)

    cur = cfg
    p, ph = peak(cur)
    if p <= limit_mib:
        return []
    out: list[Fix] = []
    steps = _steps()
    while p > limit_mib:
        options = []
        for order, (label, opts, apply) in enumerate(steps):
            nxt = apply(cur)
            if nxt == cur:
                continue
            np_, nph = peak(nxt)
            if np_ >= p - 1:
                continue
            dt = round(cost(nxt) - cost(cur), 2) if cost else float(order)
            options.append((max(dt, 0.0), -(p - np_), order, label, opts, nxt, np_, nph))
        if not cur.cpu_offload_checkpointing:
            for n in range(max(cur.blocks_to_swap + 1, 1), 36):
                np_, nph = peak(cur.changed(blocks_to_swap=n))
                if np_ <= limit_mib or n == 35:
                    nxt = cur.changed(blocks_to_swap=n)
                    if np_ < p - 1:
                        dt = round(cost(nxt) - cost(cur), 2) if cost else 90.0
                        options.append((max(dt, 0.0), -(p - np_), 90, f"blocks_to_swap = {n}",
                                        {"blocks_to_swap": n}, nxt, np_, nph))
                    break
        if not options:
            break
        options.sort(key=lambda o: (o[0], o[1], o[2]))
        _, _, _, label, opts, cur, p, ph = options[0]
        if label.startswith("blocks_to_swap"):
            out = [f for f in out if not f.change.startswith("blocks_to_swap")]
        out.append(fix(label, opts, cur, p, ph))
        steps = [s for s in steps if s[0] != label]
    while cur.batch_size > 1 and p > limit_mib:
        cur = cur.changed(batch_size=cur.batch_size // 2)
        p, ph = peak(cur)
        out.append(fix(f"batch_size = {cur.batch_size}", {"batch_size": cur.batch_size}, cur,
                       p, ph))
    for reso in (768, 512):
        if p <= limit_mib or cur.width * cur.height <= reso * reso:
            continue
        cur = cur.changed(width=reso, height=reso)
        p, ph = peak(cur)
        out.append(fix(f"resolution = {reso}", {"resolution": reso}, cur, p, ph))
    return out


# ---------------------------------------------------------------------------- fitting


def record_config(record: Mapping[str, Any]) -> RunConfig:
    """The :class:`RunConfig` of one calibration record (its ``conditions``)."""
    cond = dict(record.get("conditions", {}))
    return config_from_options(cond, family=record.get("family", "flux1-dev"),
                               gpus=_int(record.get("gpus", 1), 1), dataset=cond)


def telemetry_phase(est: Estimate, phase: str) -> float:
    """The prediction for what lorac's telemetry records as ``phase``: sampling has no log
    marker, so a run that samples records it inside ``train``."""
    if phase == "train" and "sample" in est.phases:
        return max(est.phases["train"], est.phases["sample"])
    return est.phases[phase]


def observations(records: Sequence[Mapping[str, Any]],
                 ) -> list[tuple[str, str, float, tuple[float, dict[str, float]]]]:
    """(record id, phase, measured MiB, the phase's :func:`features`) for every measured phase
    the model predicts.

    A sampling run's ``train`` figure is the larger of its training and sampling peaks; it
    counts for the phase the shipped constants predict larger (the fit stays linear)."""
    out = []
    for rec in records:
        cfg = record_config(rec)
        feats = features(cfg)
        est = estimate(cfg) if "sample" in feats else None
        for phase, mib in (rec.get("phases_mib") or {}).items():
            if phase in feats and isinstance(mib, int | float):
                if est is not None and phase == "train" and (
                        est.phases["sample"] > est.phases["train"]):
                    phase = "sample"
                out.append((str(rec.get("id")), phase, float(mib), feats[phase]))
    return out


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve the square system ``a x = b`` (Gaussian elimination with partial pivoting)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        if abs(m[col][col]) < 1e-18:
            continue
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                if f:
                    m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] if abs(m[i][i]) > 1e-18 else 0.0 for i in range(n)]


def fit(records: Sequence[Mapping[str, Any]], prior: Constants | None = None, *,
        prior_weight: float = 0.01, fixed: Iterable[str] = ("context_mib",)) -> Constants:
    """Least-squares fit of the free constants to ``records`` (relative error per phase).

    Each prior is a pseudo-observation ``(theta - prior) / PRIOR_SCALE`` with weight
    ``prior_weight``: a constant the data does not determine stays at its prior. Names in
    ``fixed`` are not fitted (the CUDA context cannot be told apart from the per-phase slack).
    """
    prior = prior or Constants()
    fixed = set(fixed)
    names = [n for n in FREE if n not in fixed]
    idx = {n: i for i, n in enumerate(names)}
    rows: list[tuple[list[float], float]] = []
    for _, _, mib, (base, coef) in observations(records):
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
    ata = [[sum(r[i] * r[j] for r, _ in rows) for j in range(len(names))]
           for i in range(len(names))]
    atb = [sum(r[i] * y for r, y in rows) for i in range(len(names))]
    theta = _solve(ata, atb)
    return replace(prior, **{n: round(theta[idx[n]], 4) for n in names})


def fitted_terms(constants: Constants, records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Which constants ``records`` inform (``fitted``) and which stay at the prior."""
    seen: set[str] = set()
    for _, _, _, (_, coef) in observations(records):
        seen.update(n for n, c in coef.items() if c)
    return {n: ("fitted" if n in seen and n != "context_mib" else "prior") for n in FREE}


# ---------------------------------------------------------------------------- time


def time_run(cfg: RunConfig) -> Any:
    """The trainer-neutral run (:class:`lorac.trainers.lora_memory.LoraRun`) of ``cfg``, for
    the time model (:mod:`lorac.trainers.steptime`)."""
    from lorac.trainers.lora_memory import LoraRun

    return LoraRun(trainer="kohya", family="flux1", width=cfg.width, height=cfg.height,
                   batch_size=cfg.batch_size, rank=cfg.rank, optimizer=cfg.optimizer,
                   gradient_checkpointing=cfg.gradient_checkpointing,
                   dit_bytes=1.0 if cfg.fp8_base else 2.0, blocks_to_swap=cfg.blocks_to_swap,
                   train_te=cfg.train_clip_l, te_on_gpu_in_training=not cfg.cache_te,
                   latents_on_gpu_in_training=not cfg.cache_latents, gpus=cfg.gpus)


def load_time_constants(path: Path | None = None) -> Any:
    """The step-time constants fitted to measured H100/H200 steps (``time`` of
    vram_model.json); the priors when absent."""
    from lorac.trainers.steptime import TimeConstants

    p = path or model_path()
    if not p.is_file():
        return TimeConstants()
    data = json.loads(p.read_text(encoding="utf-8")).get("time") or {}
    return TimeConstants(**{k: float(v) for k, v in (data.get("constants") or {}).items()
                            if k in ("overhead_s", "mfu")})
