"""ai-toolkit's own traps (LRC685–LRC689): settings that ai-toolkit accepts and then ignores,
changes or empties without a word, each found in its source (file:line in the docstrings and
``backends/ai-toolkit/inventory/archs.json``).

They apply to profiles that build for ai-toolkit: ``[profile] backend = "ai-toolkit"``, or a
``[trainers.ai-toolkit]`` table; the values checked are the ones ai-toolkit gets
(:func:`lorac.config.trainer_values.for_trainer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, KeyPath, LoracError, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule

TRAINER = "ai-toolkit"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
#: at most this many files are read per image folder
MAX_FILES = 5000
NATIVE: KeyPath = ("trainers", TRAINER)


def builds_for_ai_toolkit(profile: Profile) -> bool:
    """Whether the profile is meant for ai-toolkit (its backend, or a table of its own)."""

    return profile.backend == TRAINER or isinstance(profile.get(*NATIVE), dict)


def _view(profile: Profile) -> Profile:
    from lorac.config.trainer_values import for_trainer

    return for_trainer(profile, TRAINER)


def _arch(profile: Profile) -> Any:
    """The ai-toolkit arch the profile trains as, or None (unknown: LRC680 says so)."""

    from lorac.config.inventory import load_backend_toml
    from lorac.trainers.ai_toolkit.archs import arch, family_arch

    name = profile.get(*NATIVE, "model", "arch")
    if not isinstance(name, str):
        name = family_arch(profile.family, load_backend_toml("ai-toolkit/mapping.toml"))
    if not name:
        return None
    try:
        return arch(name)
    except LoracError:
        return None


def _native(profile: Profile, section: str, key: str) -> tuple[Any, KeyPath]:
    return profile.get(*NATIVE, section, key), (*NATIVE, section, key)


def _subsets(profile: Profile) -> Iterator[tuple[dict[str, Any], KeyPath, dict[str, Any]]]:
    """``(merged dataset values, key path of the subset, the subset)`` per subset."""

    from lorac.trainers import dataset_groups

    data = profile.get("dataset")
    if not isinstance(data, dict):
        return
    general = {k: v for k, v in data.items() if k not in ("subsets", "datasets")}
    for base, own, subsets in dataset_groups(data):
        for j, sub in enumerate(subsets):
            if isinstance(sub, dict):
                yield {**general, **own, **sub}, (*base, "subsets", j), sub


def _files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_file())[:MAX_FILES]
    except OSError:
        return []


class _Trap(Rule):
    groups = ("ai-toolkit",)

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        if not builds_for_ai_toolkit(ctx.profile):
            return ()
        return self.trap(ctx.profile, _view(ctx.profile))

    def trap(self, profile: Profile, view: Profile) -> Iterable[Diagnostic]:
        raise NotImplementedError


class TriggerPlaceholderWithoutTriggerWord(_Trap):
    """What it does
    Finds ``[trigger]`` in the sample prompts or in the captions of a profile that gives
    ai-toolkit no trigger word (no ``[profile] trigger``, no
    ``[trainers.ai-toolkit.process] trigger_word``).

    Why is this bad?
    ai-toolkit replaces ``[trigger]`` with the trigger word, and with nothing when there is
    none (``toolkit/prompt_utils.py:715-718``): the captions train, and the samples show,
    text without the token the LoRA is meant to learn.

    Example
        [sampling]
        sample_prompts = "prompts.txt"   # "[trigger], portrait photo"

    Use instead
        [profile]
        trigger = "ohwx woman"

    Fix safety
    No fix: the trigger word is the person's choice.
    """

    code = "LRC685"
    name = "trigger-placeholder-without-trigger-word"
    severity = Severity.ERROR

    def trap(self, profile: Profile, view: Profile) -> Iterable[Diagnostic]:
        from lorac.trainers.ai_toolkit.emitter import read_prompts_file

        if profile.get("profile", "trigger") or profile.get(*NATIVE, "process", "trigger_word"):
            return
        why = "ai-toolkit has no trigger_word to put there and removes it " \
              "(toolkit/prompt_utils.py:715-718)"
        hint = "set [profile] trigger"
        found = view.options().get("sample_prompts")
        if found is not None:
            ok, prompts, _ = read_prompts_file(found[0], profile)
            if ok and any("[trigger]" in p for p in prompts):
                yield self.at(view, found[1], f"the sample prompts use [trigger]: {why}",
                              hint=hint)
        prompts, kp = _native(profile, "sample", "prompts")
        if isinstance(prompts, list) and any("[trigger]" in str(p) for p in prompts):
            yield self.at(profile, kp, f"sample.prompts use [trigger]: {why}", hint=hint)
        for merged, base, sub in _subsets(view):
            folder = merged.get("image_dir")
            if not isinstance(folder, str):
                continue
            ext = str(merged.get("caption_extension") or ".txt")
            ext = ext if ext.startswith(".") else "." + ext
            hits = []
            for path in _files(Path(folder)):
                if path.suffix == ext:
                    try:
                        if "[trigger]" in path.read_text(encoding="utf-8", errors="replace"):
                            hits.append(path.name)
                    except OSError:
                        continue
            if hits:
                kp = (*base, "image_dir") if "image_dir" in sub else ("dataset",)
                yield self.at(view, kp, f"{len(hits)} caption(s) in {folder} use [trigger] "
                              f"(first: {hits[0]}): {why}", hint=hint)


class QuantizeUnsupported(_Trap):
    """What it does
    Reports quantisation asked of an arch whose ai-toolkit loader never quantises
    (``fp8_base``, which becomes ``model.quantize``, or ``[trainers.ai-toolkit.model]
    quantize`` / ``quantize_te``): the legacy SD 1.x/2.x/SDXL, PixArt, AuraFlow, Vega and SSD
    models (``quantize`` false in ``backends/ai-toolkit/inventory/archs.json``; the legacy
    loader quantises only in its SD3, FLUX and Lumina 2 branches,
    ``toolkit/stable_diffusion_model.py:428,799,906``).

    Why is this bad?
    The setting is accepted and does nothing: the model loads at full precision and the
    memory the profile was planned with is not what the run needs.

    Example
        [profile]
        family = "sdxl"
        [training]
        fp8_base = true

    Use instead
    Drop the setting, or plan the memory for an unquantised model.

    Fix safety
    No fix.
    """

    code = "LRC686"
    name = "ai-toolkit-quantize-unsupported"
    severity = Severity.WARNING

    def trap(self, profile: Profile, view: Profile) -> Iterable[Diagnostic]:
        spec = _arch(profile)
        if spec is None or spec.quantize:
            return
        asked = []
        fp8 = view.options().get("fp8_base")
        if fp8 is not None and fp8[0] is True:
            asked.append((view, fp8[1], "fp8_base (model.quantize)"))
        for key in ("quantize", "quantize_te"):
            value, kp = _native(profile, "model", key)
            if value is True:
                asked.append((profile, kp, f"model.{key}"))
        for where, kp, what in asked:
            yield self.at(where, kp, f"{what}: ai-toolkit does not quantise {spec.name} "
                          f"(its loader has no quantize call; {spec.source}): the model loads "
                          "at full precision")


class OffloadingUnsupported(_Trap):
    """What it does
    Reports ``[trainers.ai-toolkit.model]`` ``layer_offloading`` or ``low_vram`` for an arch
    whose model code never reads it (``layer_offloading`` / ``low_vram`` false in
    ``backends/ai-toolkit/inventory/archs.json``), and ``layer_offloading`` with the default
    ``qtype`` ``qfloat8``, which ai-toolkit silently changes to ``float8``
    (``toolkit/config_modules.py:713-717``).

    Why is this bad?
    The run does not offload what the profile planned to offload and needs more GPU memory
    than expected; with layer offloading the quantisation is not the one written.

    Example
        [trainers.ai-toolkit.model]
        arch = "chroma"
        layer_offloading = true

    Use instead
    An arch that offloads layers (Qwen-Image, Wan, FLUX.2, Z-Image, …), or ``quantize``
    instead; with ``layer_offloading`` write ``qtype = "float8"``.

    Fix safety
    No fix.
    """

    code = "LRC687"
    name = "ai-toolkit-offloading-unsupported"
    severity = Severity.WARNING

    def trap(self, profile: Profile, view: Profile) -> Iterable[Diagnostic]:
        spec = _arch(profile)
        offload, kp = _native(profile, "model", "layer_offloading")
        if spec is not None:
            for key, supported in (("layer_offloading", spec.layer_offloading),
                                   ("low_vram", spec.low_vram)):
                value, where = _native(profile, "model", key)
                if value is True and not supported:
                    yield self.at(profile, where, f"model.{key}: {spec.name}'s model code "
                                  f"never reads it ({spec.source}); it does nothing")
        if offload is True:
            for key in ("qtype", "qtype_te"):
                qtype, where = _native(profile, "model", key)
                if qtype in (None, "qfloat8"):
                    yield self.at(profile, kp if qtype is None else where,
                                  f"with layer_offloading, {key} qfloat8"
                                  f"{' (the default)' if qtype is None else ''} becomes float8 "
                                  "(toolkit/config_modules.py:713-717)",
                                  hint=f'write {key} = "float8" to say what runs')


class CaptionExtWithoutCaptions(_Trap):
    """What it does
    Checks that an image folder of the dataset holds caption files with the extension
    ai-toolkit looks for (``caption_extension``; ai-toolkit's ``caption_ext`` defaults to
    ``.txt``, ``toolkit/config_modules.py:941``).

    Why is this bad?
    An image without a caption file trains with ``default_caption`` (kohya's
    ``class_tokens``) or an empty caption (``toolkit/dataloader_mixins.py:360-363``), without
    a warning: a folder of ``.caption`` files read as ``.txt`` trains on no captions at all.

    Example
        [dataset]
        caption_extension = ".txt"     # the folder holds 1.jpg, 1.caption

    Use instead
        [dataset]
        caption_extension = ".caption"

    Fix safety
    No fix.
    """

    code = "LRC688"
    name = "ai-toolkit-caption-ext-without-captions"
    severity = Severity.WARNING

    def trap(self, profile: Profile, view: Profile) -> Iterable[Diagnostic]:
        for merged, base, sub in _subsets(view):
            folder = merged.get("image_dir")
            if not isinstance(folder, str) or not Path(folder).is_dir():
                continue
            ext = str(merged.get("caption_extension") or ".txt")
            ext = ext if ext.startswith(".") else "." + ext
            files = _files(Path(folder))
            images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            if not images or any(p.suffix == ext for p in files):
                continue
            others = sorted({p.suffix for p in files} - {p.suffix for p in images} - {""})
            kp = (*base, "caption_extension") if "caption_extension" in sub else \
                ("dataset", "caption_extension") if "caption_extension" in merged else \
                (*base, "image_dir")
            found = f"; the folder has {', '.join(others)} files" if others else ""
            fallback = "default_caption" if merged.get("class_tokens") else "an empty caption"
            yield self.at(view, kp, f"no {ext} caption in {folder} ({len(images)} images"
                          f"{found}): every image trains with {fallback} "
                          "(toolkit/dataloader_mixins.py:360-363)",
                          hint=f"set caption_extension to {others[0]!r}" if others else None)


class ResolutionBucketUnusable(_Trap):
    """What it does
    Checks each dataset resolution against the bucket divisibility of the arch (the constant
    its ``get_bucket_divisibility`` returns, ``bucket_divisibility`` in
    ``backends/ai-toolkit/inventory/archs.json``).

    Why is this bad?
    ai-toolkit's buckets hold at most resolution² pixels with sides that are multiples of
    that number (``toolkit/buckets.py:17``): 1000 on a model that divides by 16 trains square
    images at 992×992, not the 1000 written.

    Example
        [dataset]
        resolution = 1000

    Use instead
        [dataset]
        resolution = 1024

    Fix safety
    No fix.
    """

    code = "LRC689"
    name = "ai-toolkit-resolution-off-bucket"
    severity = Severity.WARNING

    def trap(self, profile: Profile, view: Profile) -> Iterable[Diagnostic]:
        spec = _arch(profile)
        step = spec.bucket_divisibility if spec is not None else None
        if not step:
            return
        seen: set[KeyPath] = set()
        top = view.get("dataset")
        entries = [(merged, (*base, "resolution") if "resolution" in sub
                    else ("dataset", "resolution")) for merged, base, sub in _subsets(view)]
        if isinstance(top, dict):
            entries.append((top, ("dataset", "resolution")))
        for merged, kp in entries:
            value = merged.get("resolution")
            sizes = value if isinstance(value, list) else [value]
            bad = [s for s in sizes if isinstance(s, int) and not isinstance(s, bool)
                   and s % step]
            if bad and kp not in seen:
                seen.add(kp)
                yield self.at(view, kp, f"resolution {bad[0]} is not a multiple of {step}, "
                              f"{spec.name}'s bucket step ({spec.at('bucket_divisibility')}): "
                              f"a square image trains at {bad[0] // step * step}×"
                              f"{bad[0] // step * step} (toolkit/buckets.py:17)",
                              hint=f"use {round(bad[0] / step) * step or step}")


RULES = (TriggerPlaceholderWithoutTriggerWord, QuantizeUnsupported, OffloadingUnsupported,
         CaptionExtWithoutCaptions, ResolutionBucketUnusable)


@hookimpl
def lorac_rules() -> list[Rule]:
    """ai-toolkit's traps."""

    return [cls() for cls in RULES]
