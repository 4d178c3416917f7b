"""Saved LoRA files: the safetensors header, the key format, rank and alpha, tensor health.

A ``.safetensors`` file is an 8-byte little-endian header length, that many bytes of JSON
(``{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, …}``,
offsets relative to the end of the header) and the raw tensor bytes. :func:`read_header` reads
and checks the header only; :func:`inspect_file` names the trainer and key format, the network
module, rank and alpha per module, the base model, the blocks and text encoders the LoRA
touches and the training settings recorded in the metadata; with ``health=True`` it streams
every tensor through a fixed buffer (NaN or inf, up-weights that are all zero, per-block norms),
skipping the holes of a sparse file, so memory stays bounded whatever the file's size.

Every problem with the file is a :class:`~lorac.core.diagnostics.LoracError` with a one-line
reason.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorac.core.diagnostics import LoracError

#: The largest header accepted (the ``safetensors`` library's own limit).
MAX_HEADER = 100 * 1024 * 1024
#: Bytes read at a time while checking tensors.
CHUNK = 1024 * 1024

#: dtype -> bytes per element (the safetensors names).
DTYPES: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}
_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "u1"}

#: Tensor-name suffixes of one module, by network kind: (kind, suffix, role). ``down`` gives the
#: rank (its first dimension, or the last for ``hada_w1_b``-style factors), ``up`` is the factor
#: a trainer starts at zero (all zero after training = never trained).
_SUFFIXES: tuple[tuple[str, str, str], ...] = (
    ("lora", ".lora_down.weight", "down"), ("lora", ".lora_up.weight", "up"),
    ("lora", ".lora_mid.weight", "mid"),
    ("peft", ".lora_A.weight", "down"), ("peft", ".lora_B.weight", "up"),
    ("peft", ".lora_A.default.weight", "down"), ("peft", ".lora_B.default.weight", "up"),
    ("loha", ".hada_w1_a", "other"), ("loha", ".hada_w1_b", "down"),
    ("loha", ".hada_w2_a", "up"), ("loha", ".hada_w2_b", "other"),
    ("loha", ".hada_t1", "other"), ("loha", ".hada_t2", "other"),
    ("lokr", ".lokr_w1", "other"), ("lokr", ".lokr_w1_a", "other"),
    ("lokr", ".lokr_w1_b", "other"), ("lokr", ".lokr_w2", "up"),
    ("lokr", ".lokr_w2_a", "down"), ("lokr", ".lokr_w2_b", "up"), ("lokr", ".lokr_t2", "other"),
    ("oft", ".oft_blocks", "up"), ("oft", ".oft_diag", "up"),
    ("full", ".diff", "up"), ("full", ".diff_b", "other"),
    ("any", ".alpha", "alpha"), ("any", ".dora_scale", "other"),
)
_LYCORIS = {"loha", "lokr", "oft", "full"}

#: Recorded settings (``ss_*`` metadata) shown first, in this order.
SETTINGS = (
    "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args",
    "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr", "ss_optimizer", "ss_lr_scheduler",
    "ss_lr_warmup_steps", "ss_max_train_steps", "ss_epoch", "ss_steps", "ss_num_epochs",
    "ss_resolution", "ss_batch_size_per_device", "ss_gradient_accumulation_steps",
    "ss_mixed_precision", "ss_seed", "ss_noise_offset", "ss_min_snr_gamma",
    "ss_network_dropout", "ss_base_model_version", "ss_sd_model_name", "ss_dataset_dirs",
    "ss_output_name", "ss_training_comment",
)

#: Network modules sd-scripts has too: their name alone does not tell musubi-tuner.
_SHARED_MODULES = frozenset({"networks.lora", "networks.lora_flux", "networks.loha",
                             "networks.lokr"})
#: LyCORIS's own module for each key kind, when LyCORIS saved the file itself.
_LYCORIS_ALGO = {"lora": "LoCon", "loha": "LoHa", "lokr": "LoKr", "oft": "OFT", "full": "full"}


@functools.lru_cache(maxsize=1)
def _musubi_marks() -> tuple[frozenset[str], frozenset[str]]:
    """musubi-tuner's own network modules and the ``ss_base_model_version`` values it writes
    (each architecture's full name, src/musubi_tuner/training/trainer_base.py:1835), from
    ``backends/musubi``; empty when that data is missing."""

    from lorac.config import inventory

    try:
        modules = inventory._read_json(inventory._resolve("musubi/network_modules.json", None))
        archs = inventory._read_json(inventory._resolve("musubi/architectures.json", None))
    except LoracError:
        return frozenset(), frozenset()
    names = frozenset(modules["modules"]) - _SHARED_MODULES | {"musubi_tuner."}
    full = frozenset(v["full_name"] for a in archs["architectures"].values()
                     for v in a.get("cache_suffixes", {}).values())
    return names, full


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass
class Header:
    """What a safetensors header says: metadata, tensors, where the data starts."""

    path: str
    size: int
    data_start: int
    metadata: dict[str, str]
    tensors: list[TensorEntry]


@dataclass
class Module:
    """One adapted layer: its key prefix, kind, rank and alpha, component and block."""

    name: str
    kind: str
    component: str
    block: str
    rank: int | None = None
    alpha: float | None = None
    tensors: dict[str, TensorEntry] = field(default_factory=dict)  # role/suffix -> entry


@dataclass
class Health:
    tensors_checked: int = 0
    nonfinite: list[str] = field(default_factory=list)       # tensors with NaN or inf
    zero_up: list[str] = field(default_factory=list)         # modules whose up-weight is all 0
    up_modules: int = 0
    block_norms: dict[str, float] = field(default_factory=dict)

    @property
    def never_trained(self) -> bool:
        return self.up_modules > 0 and len(self.zero_up) == self.up_modules


@dataclass
class Inspection:
    path: str
    size: int
    key_format: str
    trainer: str
    network_module: str | None
    kinds: list[str]
    modules: list[Module]
    ranks: dict[int, int]                   # rank -> modules
    alphas: dict[float, int]                # alpha -> modules (those that store one)
    base_model: str | None
    family: str | None
    components: dict[str, int]              # unet/transformer/te1/… -> modules
    blocks: dict[str, int]                  # block -> modules
    metadata: dict[str, str]
    settings: dict[str, Any]                # recorded settings, JSON values decoded
    health: Health | None = None
    unknown_tensors: list[str] = field(default_factory=list)

    @property
    def rank(self) -> int | None:
        """The rank every module has; None when they differ or some have none (a LoKr
        module whose factors are full matrices)."""
        if len(self.ranks) != 1 or sum(self.ranks.values()) != len(self.modules):
            return None
        return next(iter(self.ranks))

    @property
    def full_matrix(self) -> int:
        """LoKr modules without a low-rank factor (``lokr_w1`` and ``lokr_w2`` whole): no
        rank, and LyCORIS stores alpha = its dim there, so that the scale is 1."""
        return sum(1 for m in self.modules if m.kind == "lokr" and m.rank is None
                   and ".lokr_w2" in m.tensors)

    @property
    def alpha(self) -> float | None:
        return next(iter(self.alphas)) if len(self.alphas) == 1 else None

    @property
    def effective_alpha(self) -> float | None:
        """The alpha the LoRA applies: the stored one, or for PEFT keys without any the rank
        (a loader scales such a module by 1; ai-toolkit saves them so, toolkit/lora_special.py
        423-430 at its pin)."""
        if self.alphas:
            return self.alpha
        if self.kinds == ["peft"] and self.rank is not None:
            return float(self.rank)
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path, "size": self.size, "key_format": self.key_format,
            "trainer": self.trainer, "network_module": self.network_module,
            "kinds": self.kinds, "modules": len(self.modules),
            "rank": self.rank, "alpha": self.alpha, "effective_alpha": self.effective_alpha,
            "full_matrix_modules": self.full_matrix,
            "ranks": {str(k): v for k, v in self.ranks.items()},
            "alphas": {_num(k): v for k, v in self.alphas.items()},
            "base_model": self.base_model, "family": self.family,
            "components": self.components, "blocks": self.blocks,
            "settings": self.settings,
            "per_module": [{"name": m.name, "kind": m.kind, "rank": m.rank, "alpha": m.alpha}
                           for m in self.modules]
            if len(self.ranks) > 1 or len(self.alphas) > 1 or
            (self.ranks and self.rank is None) else [],
            "unknown_tensors": self.unknown_tensors[:20],
        }
        if self.health is not None:
            h = self.health
            out["health"] = {"tensors_checked": h.tensors_checked, "nonfinite": h.nonfinite,
                             "zero_up": h.zero_up, "up_modules": h.up_modules,
                             "never_trained": h.never_trained,
                             "block_norms": {k: round(v, 6) for k, v in h.block_norms.items()}}
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


# --------------------------------------------------------------------------- the header


def read_header(path: str | Path) -> Header:
    """The header of the safetensors file at ``path``, checked against the file's size."""

    shown = str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise LoracError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise LoracError(f"{shown}: not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise LoracError(f"{shown}: not a safetensors file: {len(head)} bytes, "
                                 "shorter than the 8-byte header length")
            n = int.from_bytes(head, "little")
            if n > MAX_HEADER:
                raise LoracError(f"{shown}: not a safetensors file: header length {n} "
                                 f"exceeds {MAX_HEADER} bytes")
            if 8 + n > st.st_size:
                raise LoracError(f"{shown}: truncated: header of {n} bytes but the file has "
                                 f"{st.st_size} bytes")
            raw = fh.read(n)
    except OSError as exc:
        raise LoracError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    if len(raw) < n:
        raise LoracError(f"{shown}: truncated while reading the header")
    try:
        text = raw.decode("utf-8")
        if not text.lstrip().startswith("{"):
            raise ValueError("the header is not a JSON object")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else \
            "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split("\n")[0]
        raise LoracError(f"{shown}: not a safetensors file: header is not valid JSON "
                         f"({reason})") from None
    if not isinstance(data, dict):
        raise LoracError(f"{shown}: not a safetensors file: header is not a JSON object")
    data_start = 8 + n
    meta_raw = data.pop("__metadata__", {}) or {}
    if not isinstance(meta_raw, dict):
        raise LoracError(f"{shown}: __metadata__ is not a JSON object")
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta_raw.items()}
    tensors = []
    for name, info in data.items():
        tensors.append(_entry(shown, name, info, st.st_size - data_start))
    tensors.sort(key=lambda t: (t.begin, t.name))
    return Header(shown, st.st_size, data_start, metadata, tensors)


def _entry(shown: str, name: str, info: Any, data_size: int) -> TensorEntry:
    where = f"{shown}: tensor {name!r}"
    if not isinstance(info, dict):
        raise LoracError(f"{where}: entry is not a JSON object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPES:
        raise LoracError(f"{where}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise LoracError(f"{where}: shape is not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(
            isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
            and offsets[0] <= offsets[1]):
        raise LoracError(f"{where}: data_offsets is not [begin, end]")
    begin, end = offsets
    if end - begin != math.prod(shape) * DTYPES[dtype]:
        raise LoracError(f"{where}: {end - begin} bytes for shape {shape} of {dtype}")
    if end > data_size:
        raise LoracError(f"{shown}: truncated: tensor {name!r} ends at byte {end} of the data "
                         f"but the file holds {data_size}")
    return TensorEntry(name, dtype, tuple(shape), begin, end)


# --------------------------------------------------------------------------- the key format


_BLOCK = re.compile(r"((?:[a-z]+_)*?(?:blocks|layers|block)_\d+)")


def _split(name: str) -> tuple[str, str]:
    """(component, rest) of a module's key prefix."""

    if name.startswith("lycoris_"):  # LyCORIS's own save: the wrapped module's names
        return ("model", name[len("lycoris_"):])
    if name.startswith("lora_"):
        m = re.match(r"lora_(unet|te\d?|transformer)_(.*)", name)
        if m:
            return (m.group(1), m.group(2))
        return ("other", name[5:])
    flat = name.replace(".", "_")
    for prefix, component in (("base_model_model_", ""), ("diffusion_model_", "transformer"),
                              ("transformer_", "transformer"), ("unet_", "unet"),
                              ("text_encoder_2_", "te2"), ("text_encoder_", "te1"),
                              ("model_", "transformer")):
        if flat.startswith(prefix):
            rest = flat[len(prefix):]
            if not component:
                return _split(rest) if rest != flat else ("other", rest)
            return (component, rest)
    return ("other", flat)


def _block_of(rest: str) -> str:
    m = _BLOCK.search(rest)
    if m:
        return m.group(1)
    parts = rest.split("_")
    return "_".join(parts[:2]) if len(parts) > 1 else rest


def modules_of(header: Header) -> tuple[list[Module], list[str]]:
    """The modules of ``header`` (by key prefix) and the tensor names no module claims."""

    found: dict[str, Module] = {}
    unknown: list[str] = []
    for t in header.tensors:
        for kind, suffix, _role in _SUFFIXES:
            if t.name.endswith(suffix):
                prefix = t.name[: -len(suffix)]
                mod = found.get(prefix)
                if mod is None:
                    component, rest = _split(prefix)
                    mod = found[prefix] = Module(prefix, kind, component, _block_of(rest))
                if kind != "any" and mod.kind == "any":
                    mod.kind = kind
                mod.tensors[suffix] = t
                break
        else:
            unknown.append(t.name)
    for mod in found.values():
        down = next((t for s, t in mod.tensors.items()
                     if any(s == sfx and r == "down" for _, sfx, r in _SUFFIXES)), None)
        if down is not None and down.shape:
            # lora_down / lora_A: (rank, in, …); hada_w1_b: (rank, in); lokr_w2_a: (out, rank)
            mod.rank = down.shape[1] if down.name.endswith(".lokr_w2_a") and len(
                down.shape) > 1 else down.shape[0]
    return sorted(found.values(), key=lambda m: m.name), unknown


def _alphas(header: Header, mods: list[Module]) -> None:
    """Read each module's ``.alpha`` scalar (a few bytes each)."""

    entries = [(m, m.tensors[".alpha"]) for m in mods if ".alpha" in m.tensors]
    if not entries:
        return
    try:
        with open(header.path, "rb") as fh:
            for mod, t in entries:
                if math.prod(t.shape) != 1 or t.dtype not in ("F32", "F16", "BF16", "F64"):
                    continue
                fh.seek(header.data_start + t.begin)
                value = _decode_scalar(fh.read(t.end - t.begin), t.dtype)
                mod.alpha = value if math.isfinite(value) else None
    except OSError as exc:
        raise LoracError(f"{header.path}: cannot read: {exc.strerror or exc}") from None


def _decode_scalar(raw: bytes, dtype: str) -> float:
    import struct

    if dtype == "BF16":
        return struct.unpack("<f", b"\0\0" + raw)[0]
    fmt = {"F32": "<f", "F16": "<e", "F64": "<d"}[dtype]
    return float(struct.unpack(fmt, raw)[0])


def _decoded(value: str) -> Any:
    text = value.strip()
    if text[:1] in "{[" or text in ("true", "false", "null"):
        try:
            return json.loads(text)
        except ValueError:
            return value
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return value


def _trainer(header: Header, mods: list[Module], module_name: str | None) -> tuple[str, str]:
    """(key format, trainer) from the tensor names and the metadata."""

    meta = header.metadata
    kinds = {m.kind for m in mods}
    blob = " ".join(f"{k}={v}" for k, v in meta.items()).lower()
    names = [m.name for m in mods]
    if kinds & _LYCORIS or (module_name or "").startswith("lycoris") or any(
            n.startswith("lycoris_") for n in names):  # LyCORIS's own prefix (LoCon keys too)
        return ("LyCORIS", "kohya sd-scripts (LyCORIS)" if "ss_network_module" in meta
                else "LyCORIS")
    if "peft" in kinds:
        trainer = "ai-toolkit" if "ai-toolkit" in blob or "ai_toolkit" in blob \
            or "training_info" in meta else "diffusers / PEFT"
        return ("diffusers-PEFT", trainer)
    if any(n.startswith("lora_") for n in names):
        module = (module_name or "")
        musubi_modules, musubi_archs = _musubi_marks()
        if module.startswith(tuple(musubi_modules)) or "musubi" in blob or any(
                k.startswith("ss_architecture") for k in meta) or \
                meta.get("ss_base_model_version") in musubi_archs:
            return ("kohya (DiT keys)", "musubi-tuner")
        if "ai-toolkit" in blob or "training_info" in meta:
            return ("kohya", "ai-toolkit")
        return ("kohya", "kohya sd-scripts" if any(k.startswith("ss_") for k in meta)
                else "kohya-format (trainer not recorded)")
    return ("unknown", "unknown")


def _base_model(meta: dict[str, str], components: set[str], blocks: set[str]
                ) -> tuple[str | None, str | None]:
    recorded = meta.get("ss_base_model_version") or meta.get("modelspec.architecture") \
        or meta.get("ss_architecture") or meta.get("ss_sd_model_name")
    text = (recorded or "").lower()
    family = None
    if "flux" in text:
        family = "flux1-schnell" if "schnell" in text else "flux1-dev"
    elif "sdxl" in text or "stable-diffusion-xl" in text:
        family = "sdxl"
    elif "sd3" in text or "stable-diffusion-3" in text:
        family = "sd3"
    elif re.search(r"sd_v1|v1-5|stable-diffusion-v1|sd15", text):
        family = "sd15"
    if family is None and not text:
        joined = " ".join(blocks)
        if "double_blocks" in joined or "single_blocks" in joined or \
                "single_transformer_blocks" in joined:
            family = "flux1-dev"
        elif "input_blocks" in joined or "te2" in components:
            family = "sdxl"
        elif "down_blocks" in joined and "te2" not in components:
            family = "sd15"
        elif "joint_blocks" in joined:
            family = "sd3"
    return recorded, family


def inspect_header(header: Header) -> Inspection:
    mods, unknown = modules_of(header)
    if not mods:
        raise LoracError(f"{header.path}: unknown format: none of its {len(header.tensors)} "
                         "tensors is a LoRA weight (lora_down/lora_up, lora_A/lora_B, "
                         "hada_*, lokr_*)")
    _alphas(header, mods)
    meta = header.metadata
    module_name = meta.get("ss_network_module")
    key_format, trainer = _trainer(header, mods, module_name)
    ranks: dict[int, int] = {}
    alphas: dict[float, int] = {}
    components: dict[str, int] = {}
    blocks: dict[str, int] = {}
    for m in mods:
        if m.rank is not None:
            ranks[m.rank] = ranks.get(m.rank, 0) + 1
        if m.alpha is not None:
            alphas[m.alpha] = alphas.get(m.alpha, 0) + 1
        components[m.component] = components.get(m.component, 0) + 1
        key = f"{m.component}.{m.block}"
        blocks[key] = blocks.get(key, 0) + 1
    base, family = _base_model(meta, set(components), set(blocks))
    kinds = {m.kind for m in mods}
    if module_name is None and key_format == "LyCORIS" and len(kinds) == 1:
        module_name = f"lycoris ({_LYCORIS_ALGO.get(next(iter(kinds)), next(iter(kinds)))})"
    if module_name is None:
        module_name = {"peft": "peft (LoraConfig)", "lora": None}.get(
            next(iter(kinds)) if len(kinds) == 1 else "")
    settings: dict[str, Any] = {}
    for key in SETTINGS:
        if key in meta:
            settings[key] = _decoded(meta[key])
    for key in sorted(meta):
        if key not in settings and (key.startswith("ss_") or key.startswith("modelspec.")):
            settings[key] = _decoded(meta[key])
    return Inspection(
        path=header.path, size=header.size, key_format=key_format, trainer=trainer,
        network_module=module_name, kinds=sorted({m.kind for m in mods}), modules=mods,
        ranks=dict(sorted(ranks.items())), alphas=dict(sorted(alphas.items())),
        base_model=base, family=family, components=dict(sorted(components.items())),
        blocks=dict(sorted(blocks.items(), key=lambda kv: _natural(kv[0]))),
        metadata=meta, settings=settings, unknown_tensors=unknown)


def _natural(text: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def inspect_file(path: str | Path, *, health: bool = True) -> Inspection:
    """Inspect the LoRA at ``path`` (see the module docstring)."""

    header = read_header(path)
    result = inspect_header(header)
    if health:
        result.health = check_health(header, result.modules)
    return result


# --------------------------------------------------------------------------- tensor health


def check_health(header: Header, mods: list[Module]) -> Health:
    """Stream every floating-point tensor of the modules through one :data:`CHUNK` buffer."""

    import numpy as np

    health = Health()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        fd = os.open(header.path, os.O_RDONLY)
    except OSError as exc:
        raise LoracError(f"{header.path}: cannot read: {exc.strerror or exc}") from None
    try:
        for mod in mods:
            block = f"{mod.component}.{mod.block}"
            for suffix, t in mod.tensors.items():
                if t.dtype not in ("F64", "F32", "F16", "BF16") or suffix == ".alpha":
                    continue
                health.tensors_checked += 1
                finite, sumsq, nonzero = _scan(fd, header.data_start + t.begin,
                                               header.data_start + t.end, t.dtype, view, np)
                if not finite:
                    health.nonfinite.append(t.name)
                role = next((r for _, s, r in _SUFFIXES if s == suffix), "other")
                if role == "up":
                    health.up_modules += 1
                    if not nonzero:
                        health.zero_up.append(mod.name)
                    if math.isfinite(sumsq):
                        health.block_norms[block] = health.block_norms.get(block, 0.0) + sumsq
    finally:
        os.close(fd)
    health.block_norms = {k: math.sqrt(v) for k, v in sorted(
        health.block_norms.items(), key=lambda kv: _natural(kv[0]))}
    return health


def _regions(fd: int, begin: int, end: int) -> Iterator[tuple[int, int]]:
    """The parts of ``[begin, end)`` that hold data; holes of a sparse file read as zeros."""

    pos = begin
    while pos < end:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # no SEEK_DATA here: read it all
                yield (pos, end)
            return  # ENXIO: only a hole follows
        except AttributeError:  # a platform without SEEK_DATA
            yield (pos, end)
            return
        if start >= end:
            return
        try:
            stop = min(os.lseek(fd, start, os.SEEK_HOLE), end)
        except OSError:
            stop = end
        yield (start, stop)
        pos = stop


def _scan(fd: int, begin: int, end: int, dtype: str, view: memoryview, np: Any
          ) -> tuple[bool, float, bool]:
    """(all finite, sum of squares, any non-zero) of the tensor bytes ``[begin, end)``."""

    size = DTYPES[dtype]
    finite, sumsq, nonzero = True, 0.0, False
    step = len(view) - len(view) % size
    for start, stop in _regions(fd, begin, end):
        start -= (start - begin) % size  # keep elements whole
        pos = start
        while pos < stop:
            want = min(step, end - pos, stop - pos + size - 1)
            want -= want % size
            got = os.preadv(fd, [view[:want]], pos) if hasattr(os, "preadv") else \
                _pread_into(fd, view, want, pos)
            if got < want:
                raise LoracError(f"file shrank while being read (at byte {pos + got})")
            raw = view[:want]
            if dtype == "BF16":
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype=_NUMPY[dtype])
            arr64 = arr.astype(np.float64)
            ok = np.isfinite(arr64)
            if not ok.all():
                finite = False
                arr64 = arr64[ok]
            if not nonzero and arr64.any():
                nonzero = True
            sumsq += float(np.dot(arr64, arr64))
            pos += want
    return finite, sumsq, nonzero


def _pread_into(fd: int, view: memoryview, want: int, pos: int) -> int:
    data = os.pread(fd, want, pos)
    view[: len(data)] = data
    return len(data)
