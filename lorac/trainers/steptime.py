"""How long a LoRA run takes: seconds per step and the whole run's wall time, per card.

A step's work (:func:`step_flops`) is counted from the architecture (:mod:`lorac.trainers.
lora_memory`): 2 FLOPs per parameter per token for each pass through the Linears (forward,
backward for inputs, the recomputed forward under gradient checkpointing; the frozen weights
get no weight gradient), plus attention (4 x tokens^2 x width per block and pass). Its bytes
(:func:`step_bytes`) are the weights read per pass (and their up-cast when stored in float8),
and blocks swapped to the host cross PCIe twice per step. A step takes

    overhead_s + flops / (mfu x card's bf16 TFLOPS) + bytes / (card's bandwidth) + swap

where ``overhead_s`` (host work per step) and ``mfu`` are fitted to step times measured on
H100/H200 (``bench/vram_accuracy.py --write`` stores them). A card of ``backends/gpus.toml``
other than those is scaled by its published bf16 throughput and bandwidth and labelled an
estimate. :func:`run_seconds` adds start-up (imports, model loading, the fp8 cast, kohya's
checkpoint hash), caching, sampling and saves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from lorac.trainers.lora_memory import ARCHS, LoraRun, solve

__all__ = ["Card", "RunTime", "TimeConstants", "find_card", "load_cards", "run_seconds",
           "step_flops", "step_seconds"]

#: The card whose measured step times calibrate the model.
REFERENCE = "H100 SXM"
PCIE_GBS = 20.0  # effective host<->GPU copy rate of block swap (PCIe 4/5 x16, pinned)


@dataclass(frozen=True)
class Card:
    name: str
    memory_mib: float
    bf16_tflops: float
    bandwidth_gbs: float
    basis: str  # "measured" (H100/H200 step times) or "estimate"
    source: str
    aliases: tuple[str, ...] = ()


def cards_path() -> Path:
    from lorac.config.inventory import backends_dir

    return backends_dir() / "gpus.toml"


@lru_cache(maxsize=2)
def _load(path: str) -> dict[str, Card]:
    import tomlkit

    data = tomlkit.parse(Path(path).read_text(encoding="utf-8")).unwrap()
    return {name: Card(name, float(c["memory_mib"]), float(c["bf16_tflops"]),
                       float(c["bandwidth_gbs"]), str(c["basis"]), str(c["source"]),
                       tuple(c.get("aliases", ())))
            for name, c in data.get("cards", {}).items()}


def load_cards(path: Path | None = None) -> dict[str, Card]:
    """The cards of ``backends/gpus.toml`` by name."""
    return _load(str(path or cards_path()))


def find_card(name: str) -> Card | None:
    """A card by its name or an alias (case and spaces ignored); None for a bare size."""
    key = name.lower().replace(" ", "").replace("nvidia", "").replace("geforce", "")
    for card in load_cards().values():
        for n in (card.name, *card.aliases):
            if n.lower().replace(" ", "").replace("nvidia", "") == key:
                return card
    return None


@dataclass(frozen=True)
class TimeConstants:
    """Fitted to measured H100/H200 step times (priors: typical of LoRA training)."""

    overhead_s: float = 0.4  # host work per step: data loading, optimizer launch, logging
    mfu: float = 0.35  # share of peak bf16 throughput the compute reaches

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _tokens(run: LoraRun) -> list[tuple[int, int, int, int]]:
    """(blocks, width, mlp, tokens per sample) per block group."""
    a = run.arch
    out = []
    img = a.image_tokens(run.width, run.height, run.frames)
    for b in a.blocks:
        toks = img * 256 // (b.tokens_div ** 2) + (a.text_tokens if b.joint else 0)
        out.append((b.count, b.hidden, b.mlp, toks))
    return out


def _passes(run: LoraRun) -> float:
    """Passes through the frozen Linears: forward, input-gradient backward, and the recomputed
    forward under checkpointing."""
    return 3.0 if run.gradient_checkpointing else 2.0


def step_flops(run: LoraRun) -> float:
    """FLOPs of one micro-step (batch included)."""
    a = run.arch
    groups = _tokens(run)
    blocks = sum(g[0] for g in groups)
    linear = attn = 0.0
    per_block = a.denoiser / max(1, blocks)
    for count, width, _, toks in groups:
        linear += 2.0 * per_block * count * toks
        attn += 4.0 * toks * toks * width * count
    conv = 0.0
    if a.conv_bytes_per_latent_px:  # UNet ResNets: ~1/3 of an SDXL UNet's work per pixel
        conv = 2.0 * a.denoiser * 0.5 * (run.width // 8) * (run.height // 8) / 64
    extra = 0.0
    if run.te_on_gpu_in_training:  # text encoders run forward every step (outputs not cached)
        extra += sum(2.0 * n * a.text_tokens for _, n in a.text_encoders)
    if run.latents_on_gpu_in_training:  # the VAE encodes every step: ~1 TFLOP per megapixel
        extra += 1.0e12 * run.width * run.height / 1e6 * a.latent_frames(run.frames)
    return ((linear + attn + conv) * _passes(run) + extra) * run.batch_size


def step_bytes(run: LoraRun) -> float:
    """Weight bytes read per micro-step (with the bf16 up-cast written and read when the
    weights are stored smaller)."""
    per = run.dit_bytes + (4.0 if run.dit_bytes < 2 else 0.0)
    return run.arch.denoiser * per * _passes(run)


def _swap_s(run: LoraRun) -> float:
    if not run.blocks_to_swap:
        return 0.0
    total = sum(b.count for b in run.arch.blocks)
    moved = run.arch.denoiser * min(run.blocks_to_swap, total) / total * run.dit_bytes
    return 2.0 * moved / (PCIE_GBS * 1e9)


def step_seconds(run: LoraRun, card: Card, k: TimeConstants | None = None,
                 accumulation: int = 1) -> float:
    """Seconds per optimizer step on ``card`` (``accumulation`` micro-steps each)."""
    k = k or TimeConstants()
    micro = (step_flops(run) / (max(k.mfu, 0.01) * card.bf16_tflops * 1e12)
             + step_bytes(run) / (card.bandwidth_gbs * 1e9) + _swap_s(run))
    return k.overhead_s + micro * max(1, accumulation)


@dataclass(frozen=True)
class RunTime:
    """A whole run's wall time in parts (seconds) on one card."""

    card: str
    basis: str
    sec_per_step: float
    steps: int
    startup_s: float
    caching_s: float
    training_s: float
    sampling_s: float
    saving_s: float

    @property
    def total_s(self) -> float:
        return self.startup_s + self.caching_s + self.training_s + self.sampling_s + \
            self.saving_s

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total_s": round(self.total_s, 1)}


def run_seconds(run: LoraRun, card: Card, *, steps: int, images: int = 20, samples: int = 0,
                sample_steps: int = 20, saves: int = 1, accumulation: int = 1,
                k: TimeConstants | None = None, hash_checkpoint: bool = False) -> RunTime:
    """Wall time of a run: start-up (~30 s of imports and accelerate, loading the weights at
    ~2 GB/s, an fp8 cast on the host at ~2 G params/s, sd-scripts' SHA-256 of the checkpoint at
    ~1 GB/s), caching (a VAE encode and a text-encoder forward per image), the steps, sampling
    (``sample_steps`` forward passes per image) and saves (~3 s each)."""
    a = ARCHS[run.family]
    scale = load_cards()[REFERENCE].bf16_tflops / card.bf16_tflops
    ckpt = a.denoiser * 2 + sum(n * 2 for _, n in a.text_encoders) + a.vae * 2
    startup = 30.0 + ckpt / 2e9 + (a.denoiser / 2e9 if run.dit_bytes < 2 else 0.0)
    if hash_checkpoint:
        startup += a.denoiser * 2 / 1e9
    caching = images * 0.15 * scale * max(1, a.latent_frames(run.frames))
    sec = step_seconds(run, card, k, accumulation)
    fwd = replace(run, gradient_checkpointing=False, batch_size=1)
    kk = k or TimeConstants()
    per_sample = sample_steps * (step_flops(fwd) / 2.0 / (kk.mfu * card.bf16_tflops * 1e12)
                                 + a.denoiser * run.dit_bytes / (card.bandwidth_gbs * 1e9))
    return RunTime(card.name, card.basis, sec, steps, startup, caching, sec * steps,
                   samples * (per_sample + 1.0), saves * 3.0)


def fit(points: list[tuple[LoraRun, int, float]], prior: TimeConstants | None = None,
        weight: float = 0.3) -> TimeConstants:
    """Fit ``overhead_s`` and ``1/mfu`` to ``(run, accumulation, measured s/step)`` on the
    reference card (relative least squares, priors as weak pseudo-observations)."""
    prior = prior or TimeConstants()
    card = load_cards()[REFERENCE]
    rows: list[tuple[list[float], float]] = []
    for run, acc, sec in points:
        comp = step_flops(run) / (card.bf16_tflops * 1e12) * acc
        rest = (step_bytes(run) / (card.bandwidth_gbs * 1e9) + _swap_s(run)) * acc
        rows.append(([1.0 / sec, comp / sec], (sec - rest) / sec))
    rows.append(([weight / 0.5, 0.0], weight * prior.overhead_s / 0.5))
    rows.append(([0.0, weight * prior.mfu], weight))  # 1/mfu near 1/prior
    ata = [[sum(r[i] * r[j] for r, _ in rows) for j in range(2)] for i in range(2)]
    atb = [sum(r[i] * y for r, y in rows) for i in range(2)]
    over, inv = solve(ata, atb)
    return TimeConstants(round(max(over, 0.0), 4), round(1.0 / max(inv, 1.0), 4))


def format_duration(seconds: float) -> str:
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    h, m = divmod(s // 60, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"
