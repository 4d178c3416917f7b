"""LRC650–LRC658, LRC660–LRC664: a musubi-family profile against what musubi-tuner does.

File:line references are to musubi-tuner at the commit of ``backends/musubi/pin.toml``
(v0.3.4, 30c658c4); the option lines come from the generated inventories. Every rule here
leaves profiles of other families alone. musubi's ``network_alpha`` default of 1
(src/musubi_tuner/training/parser_common.py:553, kohya-ss/musubi-tuner#309) is LRC101's, which
reports it for every backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, KeyPath, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule
from lorac.trainers.musubi import knowledge

#: Bucket step per architecture (dataset/bucket.py:41-53): 16, but 32 for HiDream-O1.
RESOLUTION_STEP = {"hidream_o1": 32}
#: Architectures that have video datasets (dataset/image_video_dataset.py:629-642).
VIDEO_ARCHITECTURES = frozenset({"hunyuan_video", "wan", "framepack", "flux_kontext",
                                 "kandinsky5", "hunyuan_video_1_5"})
#: Architectures that also refuse --fp8_base without --fp8_scaled.
FP8_BASE_NEEDS_SCALED = {"hidream_o1": "src/musubi_tuner/hidream_o1_train_network.py:98",
                         "krea2": "src/musubi_tuner/krea2_train_network.py:74"}
ATTENTION = ("sdpa", "flash_attn", "flash3", "xformers")
STEP_NAMES = {"latents": "latent caching", "text_encoder": "text-encoder caching",
              "train": "training"}


def _plan(profile: Profile) -> knowledge.Plan | None:
    """The musubi plan of a profile that musubi-tuner trains (``[profile] backend =
    "musubi"``); None for a profile another trainer trains, whatever its family."""
    if profile.backend != "musubi":
        return None
    return knowledge.plan_for(profile.family)


@dataclass(frozen=True)
class _Dataset:
    """One ``[[dataset.datasets]]`` table of a profile, read as musubi reads it."""

    path: KeyPath  #: ("dataset", "datasets", i)
    table: dict[str, Any]
    general: dict[str, Any]  #: ``[dataset]``, musubi's ``[general]``

    def at(self, key: str) -> KeyPath:
        return (*self.path, key)

    def value(self, key: str) -> tuple[Any, KeyPath]:
        """A key as musubi looks it up, the dataset then ``[general]``, and where it is written
        (on the dataset when neither has it)."""
        if key in self.table:
            return self.table[key], self.at(key)
        if key in self.general:
            return self.general[key], ("dataset", key)
        return None, self.at(key)

    @property
    def video(self) -> bool:
        return "video_directory" in self.table or "video_jsonl_file" in self.table

    def files(self, ctx: ProfileContext, key: str) -> list[Path] | None:
        """The files of the folder named by ``key`` on the dataset (None when that is not a
        folder), the folder recorded for the lint cache."""
        folder = self.table.get(key)
        if not isinstance(folder, str) or not Path(folder).is_dir():
            return None
        ctx.project.cache.setdefault("dep_dirs", set()).add(folder)
        return sorted(p for p in Path(folder).iterdir() if p.is_file())


def _datasets(profile: Profile) -> Iterator[_Dataset]:
    data = profile.get("dataset")
    if not isinstance(data, dict):
        return
    datasets = data.get("datasets")
    if isinstance(datasets, list):
        for i, ds in enumerate(datasets):
            if isinstance(ds, dict):
                yield _Dataset(("dataset", "datasets", i), ds, data)


class _MusubiRule(Rule):
    """A rule for the profiles musubi-tuner trains: :meth:`check_plan` sees only those, with
    the family's plan."""

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        p = _plan(ctx.profile)
        return () if p is None else self.check_plan(ctx, ctx.profile, p)

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        raise NotImplementedError


class _DatasetRule(_MusubiRule):
    """A :class:`_MusubiRule` that looks at each ``[[dataset.datasets]]`` table alone."""

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        for ds in _datasets(profile):
            yield from self.check_dataset(ctx, profile, p, ds)

    def check_dataset(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan,
                      ds: _Dataset) -> Iterable[Diagnostic]:
        raise NotImplementedError


def _opt_location(p: knowledge.Plan, step: str, name: str) -> str:
    opt = p.inventories[step].options.get(name)
    return opt.location if opt is not None else p.scripts[step]


class OptionNotInSteps(_MusubiRule):
    """What it does
    Reports a trainer option that none of the family's three musubi-tuner scripts (latent
    caching, text-encoder caching, training) has.

    Why is this bad?
    Training reads ``--config_file`` by flattening its sections into the argparse namespace
    without checking names (src/musubi_tuner/training/parser_common.py:795-806): a misspelt
    or sd-scripts-only option is kept and never read. On a caching command line it stops the
    run with an argparse error.

    Example
        [training]
        clip_skip = 2

    Use instead
        Remove it: musubi-tuner's scripts have no such option.

    Fix safety
    No fix.
    """

    code = "LRC650"
    name = "option-not-in-musubi-steps"
    groups = ("musubi",)

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        names = ", ".join(s.rsplit("/", 1)[-1] for s in p.scripts.values())
        for name, (_, kp) in profile.options().items():
            if any(name in p.inventories[s].options for s in knowledge.STEPS):
                continue
            yield self.at(profile, kp, f"{name} is not an option of {names} (family "
                          f"{profile.family}); musubi-tuner would ignore it or stop")


class NetworkModuleOfOtherArchitecture(_MusubiRule):
    """What it does
    Reports a ``network_module`` made for another architecture than the family's
    (``networks.lora_flux`` for a Wan family).

    Why is this bad?
    The trainer imports whatever module is named (src/musubi_tuner/training/trainer_base.py:1538)
    and the module attaches LoRA to the block classes it targets (``WAN_TARGET_REPLACE_MODULES``
    in networks/lora_wan.py:16 and so on). Blocks of another model are not there: the network
    has no modules, or training fails on the first step.

    Example
        [profile]
        family = "wan2.1-t2v-1.3b"
        [network]
        network_module = "networks.lora_flux"

    Use instead
        network_module = "networks.lora_wan"

    Fix safety
    Safe: the family's own module replaces the value.
    """

    code = "LRC651"
    name = "musubi-network-module-mismatch"
    fix = "safe"
    groups = ("musubi", "network")

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        from lorac.lint.rules.network import literal_edit

        found = profile.options().get("network_module")
        if found is None or not isinstance(found[0], str):
            return
        value, kp = found
        expected = p.arch["network_module"]
        modules = knowledge.network_modules()
        if value == expected or value not in modules:
            return
        if value in ("networks.loha", "networks.lokr") and p.family.architecture != "kandinsky5":
            return  # they detect the architecture (networks/network_arch.py:8)
        info = modules[expected]
        yield self.at(profile, kp, f"network_module {value} is for another architecture; "
                      f"{profile.family} needs {expected} ({info['file']}:"
                      f"{info['create_arch_network']})",
                      hint=f'network_module = "{expected}"',
                      fix=[literal_edit(profile, kp, expected)])


class TargetFramesNot4nPlus1(_DatasetRule):
    """What it does
    Reports ``target_frames`` values that are not of the form 4n+1 (1, 5, 9, … 81) in a video
    dataset.

    Why is this bad?
    The video VAE compresses time by 4: each value is rounded down to 4n+1 with only a log
    warning (src/musubi_tuner/dataset/image_video_dataset.py:648-657), and duplicates merge.
    ``target_frames = [16, 32]`` trains clips of 13 and 29 frames.

    Example
        target_frames = [16, 32]

    Use instead
        target_frames = [17, 33]

    Fix safety
    No fix: whether to round up or down only a person knows.
    """

    code = "LRC652"
    name = "musubi-target-frames-not-4n1"
    severity = Severity.WARNING
    groups = ("musubi", "dataset")

    def check_dataset(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan,
                      ds: _Dataset) -> Iterable[Diagnostic]:
        frames = ds.table.get("target_frames")
        if not ds.video or not isinstance(frames, list):
            return
        bad = [f for f in frames if isinstance(f, int) and not isinstance(f, bool)
               and f >= 1 and (f - 1) % 4]
        if bad:
            rounded = sorted({(f - 1) // 4 * 4 + 1 for f in frames if isinstance(f, int)})
            yield self.at(profile, ds.at("target_frames"),
                          f"target_frames {bad} are not 4n+1: musubi-tuner silently rounds "
                          f"them down, training {rounded} "
                          "(dataset/image_video_dataset.py:648-657)",
                          hint=f"use {sorted({(f - 1) // 4 * 4 + 5 for f in bad})} "
                          "to round up")


class ResolutionOffStep(_DatasetRule):
    """What it does
    Reports a ``resolution`` whose width or height is not a multiple of the architecture's
    bucket step (16; 32 for HiDream-O1) in a dataset without buckets.

    Why is this bad?
    The steps are in src/musubi_tuner/dataset/bucket.py:41-53. With ``enable_bucket`` false
    (musubi's default) the single bucket is the resolution as written, not rounded
    (bucket.py:86-89), so latents of a size the model cannot patch are cached.

    Example
        resolution = [960, 540]

    Use instead
        resolution = [960, 544]

    Fix safety
    No fix.
    """

    code = "LRC653"
    name = "musubi-resolution-off-step"
    groups = ("musubi", "dataset")

    def check_dataset(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan,
                      ds: _Dataset) -> Iterable[Diagnostic]:
        step = RESOLUTION_STEP.get(p.family.architecture, 16)
        if ds.value("enable_bucket")[0] is True:
            return
        reso, where = ds.value("resolution")
        sizes = [reso, reso] if isinstance(reso, int) else reso
        if not isinstance(sizes, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in sizes):
            return
        if any(v % step for v in sizes):
            fixed = [round(v / step) * step or step for v in sizes]
            yield self.at(profile, where,
                          f"resolution {reso} is not a multiple of {step}, and without "
                          "buckets musubi-tuner uses it unrounded (dataset/bucket.py:86-89)",
                          hint=f"resolution = {fixed}, or enable_bucket = true")


class Fp8ScaledNeedsFp8Base(_MusubiRule):
    """What it does
    Reports ``fp8_scaled`` without ``fp8_base``, and for HiDream-O1 and Krea 2 also
    ``fp8_base`` without ``fp8_scaled``.

    Why is this bad?
    Training stops at start-up: ``assert not args.fp8_scaled or args.fp8_base``
    (src/musubi_tuner/training/trainer_base.py:1398); HiDream-O1 and Krea 2 raise for the
    converse (hidream_o1_train_network.py:98, krea2_train_network.py:74).

    Example
        fp8_scaled = true

    Use instead
        fp8_base = true
        fp8_scaled = true

    Fix safety
    No fix.
    """

    code = "LRC654"
    name = "musubi-fp8-options-need-each-other"
    groups = ("musubi", "memory")

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        opts = profile.options()
        base = opts.get("fp8_base", (False, None))
        scaled = opts.get("fp8_scaled", (False, None))
        if scaled[0] is True and base[0] is not True:
            line = knowledge.train_requirements()["fp8_scaled_needs_fp8_base"]["line"]
            yield self.at(profile, scaled[1], "fp8_scaled requires fp8_base: musubi-tuner "
                          f"stops at start-up (training/trainer_base.py:{line})",
                          hint="add fp8_base = true")
        where = FP8_BASE_NEEDS_SCALED.get(p.family.architecture)
        if where and base[0] is True and scaled[0] is not True:
            yield self.at(profile, base[1], f"{profile.family} accepts fp8_base only together "
                          f"with fp8_scaled ({where})", hint="add fp8_scaled = true")


class BlocksToSwapTooMany(_MusubiRule):
    """What it does
    Reports a ``blocks_to_swap`` larger than the family's model allows (Wan 14B: 39, Wan
    1.3B: 29, Qwen-Image: 59, FLUX.2 dev: 29, Z-Image: 28, … see backends/musubi/families.toml).

    Why is this bad?
    The model asserts the limit when block swap is enabled (e.g.
    src/musubi_tuner/wan/modules/model.py:753, qwen_image/qwen_image_model.py:1182,
    zimage/zimage_model.py:482), after the checkpoint has been loaded.

    Example
        [profile]
        family = "wan2.1-t2v-1.3b"
        [training]
        blocks_to_swap = 36

    Use instead
        blocks_to_swap = 29

    Fix safety
    No fix.
    """

    code = "LRC655"
    name = "musubi-blocks-to-swap-too-many"
    groups = ("musubi", "memory")

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        found = profile.options().get("blocks_to_swap")
        if found is None or p.family.max_blocks_to_swap is None:
            return
        value, kp = found
        limit = p.family.max_blocks_to_swap
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            yield self.at(profile, kp, f"blocks_to_swap = {value}: {profile.family} swaps at "
                          f"most {limit} blocks ({', '.join(p.family.evidence)})",
                          hint=f"blocks_to_swap = {limit}")


class DatasetSubsets(_MusubiRule):
    """What it does
    Reports sd-scripts-style ``subsets`` in the ``[dataset]`` of a musubi family.

    Why is this bad?
    musubi-tuner's dataset config has ``[general]`` and ``[[datasets]]`` only; its schema
    refuses every other key (src/musubi_tuner/dataset/config_utils.py:173-178): ``extra keys
    not allowed @ data['datasets'][0]['subsets']`` (kohya-ss/musubi-tuner#607).

    Example
        [[dataset.subsets]]
        image_dir = "data/subject"

    Use instead
        [[dataset.datasets]]
        image_directory = "data/subject"

    Fix safety
    No fix.
    """

    code = "LRC656"
    name = "musubi-dataset-subsets"
    groups = ("musubi", "dataset")

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        data = profile.get("dataset")
        if not isinstance(data, dict):
            return
        if "subsets" in data:
            yield self.at(profile, ("dataset", "subsets"), "musubi-tuner's dataset config has "
                          "no subsets (dataset/config_utils.py:173-178)",
                          hint="use [[dataset.datasets]] with image_directory or "
                          "video_directory")
        for ds in _datasets(profile):
            if "subsets" in ds.table:
                yield self.at(profile, ds.at("subsets"), "musubi-tuner's datasets have no "
                              "subsets (dataset/config_utils.py:173-178)",
                              hint="put image_directory / video_directory on the dataset")


class DatasetValueInvalid(_MusubiRule):
    """What it does
    Checks ``[dataset]`` and each ``[[dataset.datasets]]`` against musubi-tuner's dataset
    schema (image or video level, chosen by ``video_directory``/``video_jsonl_file`` as
    musubi chooses): keys it does not have (sd-scripts' ``image_dir``, ``class_tokens``,
    ``cache_directory`` in ``[general]``) and values of a type it refuses that lorac cannot
    convert (``resolution = [960.0, 544.0]``, ``source_fps = "30"``). An integer
    ``source_fps`` is fine: lorac writes ``30.0``.

    Why is this bad?
    ``ConfigSanitizer`` (src/musubi_tuner/dataset/config_utils.py:94) rejects the whole
    dataset config at the first step, with bare-type checks (``source_fps`` must be a float,
    config_utils.py:143; ``resolution`` integers, :116).

    Example
        [[dataset.datasets]]
        image_dir = "data/subject"

    Use instead
        image_directory = "data/subject"

    Fix safety
    No fix.
    """

    code = "LRC657"
    name = "musubi-dataset-value-invalid"
    groups = ("musubi", "dataset")

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        data = profile.get("dataset")
        if not isinstance(data, dict):
            return
        levels = knowledge.dataset_schema()["levels"]
        general = {k: v for k, v in data.items() if k not in ("datasets", "subsets")}
        yield from self._table(profile, ("dataset",), general, "general", levels)
        for ds in _datasets(profile):
            level = "video" if ds.video else "image"
            yield from self._table(profile, ds.path, {k: v for k, v in ds.table.items()
                                                      if k != "subsets"}, level, levels)

    def _table(self, profile: Profile, base: KeyPath, table: dict[str, Any], level: str,
               levels: dict[str, Any]) -> Iterator[Diagnostic]:
        keys = levels[level]["keys"]
        for key, value in table.items():
            spec = keys.get(key)
            if spec is None:
                where = "[general]" if level == "general" else f"an {level} dataset"
                lines = sorted(s["line"] for s in keys.values() if s.get("line"))
                yield self.at(profile, (*base, key), f"{key} is not a key of {where} in "
                              "musubi-tuner's dataset config (dataset/config_utils.py:"
                              f"{lines[0]}-{lines[-1]})")
                continue
            if not _accepts(spec["accepts"], value):
                yield self.at(profile, (*base, key), f"{key} must be {spec['type']} for "
                              f"musubi-tuner's dataset config, not {value!r} "
                              f"(dataset/config_utils.py:{spec['line']})")


def _is(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":  # lorac writes an integer as a float
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    return True


def _accepts(accepts: list[str], value: Any) -> bool:
    for form in accepts:
        if form in ("int", "float", "str", "bool") and _is(form, value):
            return True
        if form.startswith("[") and isinstance(value, list):
            inner = form.strip("[]").split(", ")
            if len(inner) == 2 and len(value) == 2 and all(
                    _is(k, v) for k, v in zip(inner, value, strict=True)):
                return True
        if form == "list" and isinstance(value, list):
            return True
        if form == "?":
            return True
    return False


class AttentionMissing(_MusubiRule):
    """What it does
    Reports a musubi training profile that sets none of ``sdpa``, ``flash_attn``, ``flash3``,
    ``xformers``, or that sets ``sage_attn``.

    Why is this bad?
    musubi-tuner has no default attention: training raises ``either --sdpa, --flash-attn,
    … must be specified`` after loading the models
    (src/musubi_tuner/training/trainer_base.py:1513), and refuses ``--sage_attn`` for
    training (trainer_base.py:1400).

    Example
        [training]
        mixed_precision = "bf16"

    Use instead
        sdpa = true

    Fix safety
    Safe: adds ``sdpa = true`` (PyTorch's own attention, always available).
    """

    code = "LRC658"
    name = "musubi-attention-missing"
    fix = "safe"
    groups = ("musubi",)

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        from lorac.lint.rules.network import beside

        opts = profile.options()
        req = knowledge.train_requirements()
        sage = opts.get("sage_attn")
        if sage is not None and sage[0] is True:
            yield self.at(profile, sage[1], "musubi-tuner refuses sage_attn for training "
                          f"(training/trainer_base.py:{req['no_sage_attn_training']['line']})",
                          hint="use sdpa = true")
        anchor = (opts.get("mixed_precision") or next(iter(opts.values()), (None, None)))[1]
        if not any(opts.get(a, (False,))[0] is True for a in ATTENTION):
            yield self.at(profile, ("profile", "family"), "no attention option: musubi-tuner "
                          "stops after loading the model (training/trainer_base.py:"
                          f"{req['attention_mode']['line']})", hint="add sdpa = true",
                          fix=[beside(profile, anchor, "sdpa", True) if anchor else None])


class Wan22SingleExpert(_MusubiRule):
    """What it does
    Reports a Wan 2.2 A14B profile (two experts: high-noise and low-noise) that gives only
    ``dit`` and limits no timestep range.

    Why is this bad?
    Without ``dit_high_noise`` musubi-tuner trains the one model given on every timestep
    (src/musubi_tuner/wan_train_network.py:79-80; docs/wan.md:302): a LoRA for the
    low-noise expert learns the high-noise range too, and the high-noise expert gets no LoRA
    (kohya-ss/musubi-tuner#552, #569). Train both in one run with ``dit_high_noise``, or one
    expert with ``min_timestep``/``max_timestep`` on its side of the boundary (875 for T2V,
    900 for I2V).

    Example
        [model]
        dit = "wan2.2_t2v_low_noise_14B_fp16.safetensors"

    Use instead
        dit = "wan2.2_t2v_low_noise_14B_fp16.safetensors"
        dit_high_noise = "wan2.2_t2v_high_noise_14B_fp16.safetensors"

    Fix safety
    No fix.
    """

    code = "LRC660"
    name = "musubi-wan22-single-expert"
    severity = Severity.WARNING
    groups = ("musubi",)

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        opts = profile.options()
        if not p.family.experts or "dit" not in opts:
            return
        if "dit_high_noise" in opts or "min_timestep" in opts or "max_timestep" in opts:
            return
        yield self.at(profile, opts["dit"][1], f"{profile.family} has a high-noise and a "
                      "low-noise expert; with only dit, musubi-tuner trains that one model on "
                      "every timestep (wan_train_network.py:79-80)",
                      hint="add dit_high_noise, or min_timestep/max_timestep for one expert")


class ModelFileMissing(_MusubiRule):
    """What it does
    Reports a model file a step of the family needs and the profile does not name: ``dit``,
    the text encoder(s) of the text-encoder caching step (``t5`` for Wan, ``text_encoder``
    for Qwen-Image, ``text_encoder1``/``text_encoder2`` for HunyuanVideo …), ``vae`` and the
    family's extra latent-caching inputs (``clip`` for Wan 2.1 I2V, ``image_encoder`` for
    FramePack).

    Why is this bad?
    Caching stops with an argparse error (the options are ``required``, e.g.
    src/musubi_tuner/wan_cache_text_encoder_outputs.py:102), or with ``dit`` missing training
    stops after caching (training/trainer_base.py:1396); without ``vae`` or ``clip`` no
    latents (or no I2V conditioning) are cached.

    Example
        [profile]
        family = "wan2.1-t2v-1.3b"
        [model]
        dit = "wan2.1_t2v_1.3B_bf16.safetensors"
        vae = "wan_2.1_vae.safetensors"

    Use instead
        t5 = "models_t5_umt5-xxl-enc-bf16.pth"

    Fix safety
    No fix.
    """

    code = "LRC661"
    name = "musubi-model-file-missing"
    groups = ("musubi",)

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        opts = profile.options()
        needed: list[tuple[str, str]] = [("dit", "train")]
        for step in ("text_encoder", "latents"):
            needed += [(n, step) for n in p.arch["steps"][step]["required"]
                       if n != "dataset_config"]
        if p.family.architecture != "hidream_o1":  # pixels, no VAE
            needed.append(("vae", "latents"))
        needed += [(n, "latents") for n in p.family.latents_required]
        seen: set[str] = set()
        for name, step in needed:
            if name in opts or name in seen or name in p.family.variant:
                continue
            seen.add(name)
            yield self.at(profile, ("profile", "family"), f"{profile.family} needs {name} for "
                          f"the {STEP_NAMES[step]} step "
                          f"({_opt_location(p, step, name)})", hint=f"set {name} = \"…\"")


class CaptionExtensionUnset(_DatasetRule):
    """What it does
    Reports a musubi dataset of image or video files whose ``caption_extension`` is set
    neither on the dataset nor in ``[dataset]``.

    Why is this bad?
    musubi-tuner has no default caption extension: the caption path becomes ``""`` and the
    text-encoder caching step fails with FileNotFoundError
    (src/musubi_tuner/dataset/datasources.py:243 for images, :552 for videos). Datasets
    read from a JSONL file carry their captions and need none.

    Example
        [[dataset.datasets]]
        image_directory = "data/subject"

    Use instead
        caption_extension = ".txt"

    Fix safety
    No fix.
    """

    code = "LRC662"
    name = "musubi-caption-extension-unset"
    groups = ("musubi", "dataset")

    def check_dataset(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan,
                      ds: _Dataset) -> Iterable[Diagnostic]:
        if "image_directory" not in ds.table and "video_directory" not in ds.table:
            return
        if ds.value("caption_extension")[0] is None:
            line = 552 if ds.video else 243
            yield self.at(profile, ds.path, "no caption_extension: musubi-tuner looks for "
                          f"captions at an empty path (dataset/datasources.py:{line})",
                          hint='set caption_extension = ".txt" in [dataset]')


class VariantConflictsFamily(_MusubiRule):
    """What it does
    Reports an option that selects the model inside the architecture (Wan's ``task``,
    FLUX.2's and Qwen-Image's ``model_version``) set to another value than the profile's
    family names.

    Why is this bad?
    The family decides lorac's rules (block-swap limits, I2V latent caching, experts) and
    the option decides what musubi-tuner builds (e.g. the Wan configs in
    src/musubi_tuner/wan/configs/__init__.py): the two disagree, and so does every check.

    Example
        [profile]
        family = "wan2.1-t2v-1.3b"
        [training]
        task = "t2v-14B"

    Use instead
        Change the family to ``wan2.1-t2v-14b`` and drop ``task``.

    Fix safety
    No fix.
    """

    code = "LRC663"
    name = "musubi-variant-conflicts-family"
    groups = ("musubi",)

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        opts = profile.options()
        for name, expected in p.family.variant.items():
            found = opts.get(name)
            if found is not None and found[0] != expected:
                yield self.at(profile, found[1], f"{name} = {found[0]!r}, but family "
                              f"{profile.family} is {name} {expected!r}",
                              hint="remove it (lorac sets it from the family) or change the "
                              "family")


class VideoDatasetUnsupported(_DatasetRule):
    """What it does
    Reports a video dataset (``video_directory`` or ``video_jsonl_file``) for an image-only
    architecture (Qwen-Image, FLUX.2, Z-Image, Krea 2, Ideogram 4, HiDream-O1).

    Why is this bad?
    Only HunyuanVideo, Wan, FramePack, FLUX.1 Kontext, Kandinsky 5 and HunyuanVideo 1.5
    have video datasets; the others stop with ``Unsupported architecture``
    (src/musubi_tuner/dataset/image_video_dataset.py:642).

    Example
        [profile]
        family = "qwen-image"
        [[dataset.datasets]]
        video_directory = "data/clips"

    Use instead
        image_directory = "data/stills"

    Fix safety
    No fix.
    """

    code = "LRC664"
    name = "musubi-video-dataset-unsupported"
    groups = ("musubi", "dataset")

    def check_dataset(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan,
                      ds: _Dataset) -> Iterable[Diagnostic]:
        if ds.video and p.family.architecture not in VIDEO_ARCHITECTURES:
            yield self.at(profile, ds.path, f"{profile.family} has no video datasets in "
                          "musubi-tuner (dataset/image_video_dataset.py:642)",
                          hint="use image_directory")


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two ``made_with`` records."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


class CacheMadeWithOtherSettings(_MusubiRule):
    """What it does
    Reports a dataset whose ``cache_directory`` holds musubi-tuner cache files that were made
    with other settings or files than the profile asks for now (per the ``lorac-cache.json``
    that ``lorac run`` writes after caching), or that lorac did not make, so that what they
    were made with is unknown. Nothing is loaded: the record is compared with the profile.

    Why is this bad?
    musubi's cache files record the architecture, the source image size and the caption, not
    the resolution, buckets, frame settings or model files
    (src/musubi_tuner/dataset/cache_io.py:305-324, :502-506); training uses whatever it finds.
    Run by hand with ``--skip_existing``, caching keeps stale latents
    (src/musubi_tuner/cache_latents.py:315-319). ``lorac run`` caches again in this case;
    ``train.sh`` run by hand does too, unless the caching lines were removed.

    Example
        resolution = [960, 544]   # the cache was made at [832, 480]

    Use instead
        ``lorac run`` the profile (it caches again), or delete the cache directory.

    Fix safety
    No fix.
    """

    code = "LRC665"
    name = "musubi-cache-stale"
    severity = Severity.WARNING
    groups = ("musubi", "dataset")

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        import json

        from lorac.config.inventory import load_pin
        from lorac.core.diagnostics import LoracError
        from lorac.trainers.musubi import cache
        from lorac.trainers.musubi.emitter import compile_dataset, step_options

        try:
            dataset = compile_dataset(profile)
            per_step, _ = step_options(profile, p)
        except LoracError:
            return
        if not dataset:
            return
        # the commit of the checkout lorac runs, as `lorac run` records it; the pin without one
        commit, markers = ctx.project.memo(
            "lorac.trainers.musubi.commit",
            lambda: cache.checkout_commit(ctx.project.settings))
        state = cache.state(str(profile.family), per_step, dataset,
                            commit or load_pin("musubi").commit)
        suffixes = tuple(f"_{s}{end}" for s in p.arch["cache_suffixes"]
                         for end in (".safetensors", "_te.safetensors"))
        deps = ctx.project.cache.setdefault("deps", set())  # for the lint result cache
        dep_dirs = ctx.project.cache.setdefault("dep_dirs", set())
        deps.update(str(m) for m in markers)
        for ds, item in zip(_datasets(profile), state["datasets"], strict=False):
            folder = item["cache_directory"]
            merged = {**dataset.get("general", {}), **ds.table}
            for key, name, *_ in item["made_with"]["files"]:
                where = merged.get(key)
                deps.add(str(Path(where) / name) if key.endswith("directory") else str(name))
            dep_dirs.update(str(merged[k]) for k in ("image_directory", "video_directory",
                                                     "control_directory")
                            if isinstance(merged.get(k), str))
            if not isinstance(folder, str) or not Path(folder).is_dir():
                continue
            dep_dirs.add(folder)
            deps.add(str(Path(folder) / cache.RECORD_NAME))
            if not any(f.name.endswith(suffixes) for f in Path(folder).iterdir()):
                continue
            where = ds.at("cache_directory")
            if item["found"] is None:
                yield self.at(profile, where, f"{folder} holds musubi cache files that lorac "
                              "did not make: what resolution, frames and models they were made "
                              "with is unknown (dataset/cache_io.py:305-324 records none)",
                              hint="lorac run caches again and records it")
            elif item["found"] != item["key"]:
                try:
                    old = json.loads((Path(folder) / cache.RECORD_NAME).read_text(
                        encoding="utf-8")).get("made_with", {})
                except (OSError, ValueError, AttributeError):
                    old = {}
                changed = _differences(old, item["made_with"]) or ["unknown"]
                yield self.at(profile, where, f"the cache in {folder} was made with other "
                              f"settings or files: {', '.join(changed[:6])}"
                              + (" …" if len(changed) > 6 else ""),
                              hint="lorac run caches again; a hand-run train.sh with "
                              "--skip_existing would train on the stale cache")


#: What musubi globs (src/musubi_tuner/dataset/media_utils.py:21, :34-56; case as listed there).
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".avif"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".avi", ".mkv", ".mov", ".flv", ".wmv", ".m4v",
                              ".mpg", ".mpeg"})


class ImagesWithoutCaptions(_DatasetRule):
    """What it does
    Reports images of an ``image_directory`` that have no caption file with the dataset's
    ``caption_extension``.

    Why is this bad?
    musubi-tuner keeps only the images that have a caption and drops the others without a
    word (src/musubi_tuner/dataset/media_utils.py:67-79, called at
    dataset/datasources.py:78; kohya-ss/musubi-tuner#875): the run trains on fewer images
    than the folder holds.

    Example
        data/a.png, data/a.txt, data/b.png   (caption_extension = ".txt")

    Use instead
        Write data/b.txt, or move b.png out of the folder.

    Fix safety
    No fix.
    """

    code = "LRC666"
    name = "musubi-images-without-captions"
    severity = Severity.WARNING
    groups = ("musubi", "dataset")

    def check_dataset(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan,
                      ds: _Dataset) -> Iterable[Diagnostic]:
        ext, _ = ds.value("caption_extension")
        files = ds.files(ctx, "image_directory") if isinstance(ext, str) else None
        if files is None:
            return
        names = {f.name for f in files}
        images = [f for f in files if f.suffix in IMAGE_EXTENSIONS
                  or (f.suffix.lower() in IMAGE_EXTENSIONS and f.suffix.isupper())]
        missing = [f.name for f in images if f.stem + ext not in names]
        if missing:
            shown = ", ".join(missing[:3]) + (" …" if len(missing) > 3 else "")
            yield self.at(profile, ds.at("image_directory"),
                          f"{len(missing)} of {len(images)} images in "
                          f"{ds.table['image_directory']} have no {ext} caption; musubi-tuner "
                          f"skips them silently (dataset/media_utils.py:67-79): {shown}",
                          hint="write the captions, or move those images away")


class VideoDirectoryWithoutVideos(_DatasetRule):
    """What it does
    Reports a ``video_directory`` that holds no video file musubi-tuner recognises
    (``.mp4``, ``.webm``, ``.mov`` …), in particular one that holds images.

    Why is this bad?
    Video datasets glob only video extensions (src/musubi_tuner/dataset/media_utils.py:85-91,
    dataset/datasources.py:482): a folder of images caches nothing and says only "found 0
    videos"; training then finds no items (kohya-ss/musubi-tuner#261).

    Example
        [[dataset.datasets]]
        video_directory = "data/stills"

    Use instead
        image_directory = "data/stills"

    Fix safety
    No fix.
    """

    code = "LRC667"
    name = "musubi-video-directory-without-videos"
    groups = ("musubi", "dataset")

    def check_dataset(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan,
                      ds: _Dataset) -> Iterable[Diagnostic]:
        files = ds.files(ctx, "video_directory")
        if files is None or any(f.suffix.lower() in VIDEO_EXTENSIONS for f in files):
            return
        images = sum(f.suffix.lower() in IMAGE_EXTENSIONS for f in files)
        what = (f"holds {images} image{'s' if images != 1 else ''} and no video" if images
                else "holds no video")
        yield self.at(profile, ds.at("video_directory"),
                      f"{ds.table['video_directory']} {what}: musubi-tuner caches nothing from "
                      "it (dataset/media_utils.py:85-91)",
                      hint="use image_directory for images" if images else None)


class OutputMissing(_MusubiRule):
    """What it does
    Reports a musubi profile without ``output_name`` (an error) or ``output_dir`` (a warning:
    ``lorac run`` sets it, ``train.sh`` run by hand does not).

    Why is this bad?
    musubi-tuner checks neither at start-up: it caches, trains, and fails when it first saves,
    ``os.makedirs(None)`` (src/musubi_tuner/training/trainer_base.py:1939) or
    ``None + ".safetensors"`` for the final LoRA (src/musubi_tuner/utils/train_utils.py:93),
    hours of training lost. ``[run] convert_for_comfyui`` names its file after them too.
    (``lorac run`` sets ``output_dir`` to the run folder, so there only ``output_name``
    matters.)

    Example
        [saving]
        output_dir = "output"

    Use instead
        output_dir = "output"
        output_name = "subject"

    Fix safety
    No fix.
    """

    code = "LRC668"
    name = "musubi-output-missing"
    groups = ("musubi",)

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        opts = profile.options()
        if "output_name" not in opts:
            yield self.at(profile, ("profile", "family"), "output_name is not set: musubi-tuner "
                          "fails when it saves the final LoRA, after training "
                          "(utils/train_utils.py:93)", hint="set output_name in [saving]")
        if "output_dir" not in opts:  # lorac run sets it; train.sh run by hand does not
            d = self.at(profile, ("profile", "family"), "output_dir is not set: train.sh run "
                        "by hand fails at the first save (training/trainer_base.py:1939); "
                        "lorac run sets it to the run folder", hint="set output_dir in [saving]")
            yield d.with_severity(Severity.WARNING)


class NetworkArgs(_MusubiRule):
    """What it does
    Checks ``network_args`` of a musubi profile against the network module: an item whose
    value holds another ``=`` (an error), and a key the module never reads (a warning).

    Why is this bad?
    musubi-tuner splits each item with ``key, value = net_arg.split("=")``
    (src/musubi_tuner/training/trainer_base.py:1563): a second ``=`` (``exclude_patterns``
    with a regex such as ``(?=…)``) stops training with a ValueError after the model is loaded.
    The module gets the rest as keyword arguments and ignores the keys it does not read
    (``create_arch_network`` and ``networks/lora.py`` ``create_network``; the keys are in
    backends/musubi/network_modules.json): a misspelt key changes nothing.

    Example
        network_args = ["loraplus_ratio=4"]

    Use instead
        network_args = ["loraplus_lr_ratio=4"]

    Fix safety
    No fix.
    """

    code = "LRC669"
    name = "musubi-network-args"
    groups = ("musubi", "network")

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        opts = profile.options()
        found = opts.get("network_args")
        if found is None or not isinstance(found[0], list):
            return
        items, kp = found
        module_name = opts.get("network_module", (p.arch["network_module"],))[0]
        module = knowledge.network_modules().get(module_name)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                continue
            key, eq, value = item.partition("=")
            if eq and "=" in value:
                yield self.at(profile, (*kp, i), f"network_args item {item!r} has more than "
                              "one '=': musubi-tuner's key/value split fails with a ValueError "
                              "(training/trainer_base.py:1563)",
                              hint="write the value without '='")
            elif module is not None and key.strip() not in module["args"]:
                d = self.at(profile, (*kp, i), f"{module_name} does not read network_args key "
                            f"{key.strip()!r}: musubi-tuner ignores it ({module['file']}:"
                            f"{module['create_arch_network']})",
                            hint="known keys: " + ", ".join(sorted(module["args"])))
                yield d.with_severity(Severity.WARNING)


def _value_problem(opt: Any, value: Any) -> str | None:
    """Why ``value`` is wrong for argparse option ``opt`` (None when it is fine)."""
    if opt.is_flag:
        return None if isinstance(value, bool) else "must be true or false"
    if opt.is_list:
        if not isinstance(value, list):
            return "must be a list"
        values = value
    else:
        if isinstance(value, list):
            return "takes one value, not a list"
        values = [value]
    for v in values:
        if opt.choices and v not in opt.choices:
            return f"must be one of {', '.join(map(repr, opt.choices))}"
        if isinstance(v, bool) and opt.type in ("int", "float"):
            return f"must be {'an integer' if opt.type == 'int' else 'a number'}"
        if opt.type == "int" and not (isinstance(v, int) or (isinstance(v, float)
                                                             and v.is_integer())):
            return "must be an integer"
        if opt.type == "float" and not isinstance(v, (int, float)):
            return "must be a number"
    return None


def _accepted_elsewhere(name: str, value: Any) -> bool:
    """True when some option ``name`` of any inventoried script (sd-scripts' or musubi's)
    accepts ``value``, so that the profile schema, their union, lets it through."""
    from lorac.config.inventory import kohya_options

    specs = [kohya_options().get(name)]
    for arch in knowledge.architectures().values():
        for step in knowledge.STEPS:
            specs.append(knowledge.script_inventory(arch["steps"][step]["script"])
                         .options.get(name))
    return any(s is not None and _value_problem(s, value) is None for s in specs)


class OptionValueInvalid(_MusubiRule):
    """What it does
    Checks each option value against the argparse option of every musubi step that reads it:
    a choice the option does not offer (``timestep_sampling = "sigmoidd"``), a string for a
    number, a list for a single value or the reverse, a flag that is not true or false.

    Why is this bad?
    musubi-tuner reads ``--config_file`` into the namespace as it is
    (src/musubi_tuner/training/parser_common.py:795-806): argparse's type conversion and
    choice check never see those values, so a wrong one travels until the code that uses it
    fails, or quietly takes another branch.

    Example
        timestep_sampling = "sigmoidd"

    Use instead
        timestep_sampling = "sigmoid"

    A value no trainer's option accepts is left to the profile schema (LRC005), which knows the
    union of them all; this rule reports what the schema lets through for this family.

    Fix safety
    No fix.
    """

    code = "LRC670"
    name = "musubi-option-value-invalid"
    groups = ("musubi",)

    def check_plan(self, ctx: ProfileContext, profile: Profile, p: knowledge.Plan
                   ) -> Iterable[Diagnostic]:
        for name, (value, kp) in profile.options().items():
            for step in knowledge.STEPS:
                opt = p.inventories[step].options.get(name)
                if opt is None:
                    continue
                why = _value_problem(opt, value)
                if why and _accepted_elsewhere(name, value):
                    yield self.at(profile, kp, f"{name} {why} ({opt.location}); musubi-tuner "
                                  "does not check values read from --config_file "
                                  "(training/parser_common.py:795-806)")
                    break


RULES = [OptionNotInSteps, NetworkModuleOfOtherArchitecture, TargetFramesNot4nPlus1,
         ResolutionOffStep, Fp8ScaledNeedsFp8Base, BlocksToSwapTooMany, DatasetSubsets,
         DatasetValueInvalid, AttentionMissing, Wan22SingleExpert,
         ModelFileMissing, CaptionExtensionUnset, VariantConflictsFamily,
         VideoDatasetUnsupported, CacheMadeWithOtherSettings, ImagesWithoutCaptions,
         VideoDirectoryWithoutVideos, OutputMissing, NetworkArgs, OptionValueInvalid]


@hookimpl
def lorac_rules() -> list[Rule]:
    """The musubi-tuner rules."""
    return [cls() for cls in RULES]
