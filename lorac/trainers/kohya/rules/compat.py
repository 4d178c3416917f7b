"""LRC610–LRC699 — trainer compatibility: what the pinned sd-scripts does with a configuration.

Each rule is a condition in sd-scripts' FLUX / SDXL / SD3 / SD 1.x LoRA training path that a
configuration can trip at run time — an ``assert``, a raised error, an option silently forced
or ignored — found by reading the pinned source (``backends/kohya/pin.toml``) and cited in the
rule's docstring with file and line. They apply to profiles built for the kohya backend (the
default). What the ai-toolkit backend cannot express is reported when building for it
(LRC608/LRC609).

Dataset options (``caption_dropout_rate``, ``color_aug``, …) are looked up the way
``library/config_util.py:445-451`` resolves them: subset, then its ``[[dataset.datasets]]``
table, then ``[dataset]``, then the trainer option of the same name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from lorac.config.profile import Profile
from lorac.core.diagnostics import DELETE, Diagnostic, Edit, KeyPath, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule
from lorac.lint.rules.network import beside, is_base, literal_edit, option_path, with_safety
from lorac.trainers.kohya.rules.options import dataset_levels

SCRIPT_KIND = {"flux1-dev": "flux", "flux1-schnell": "flux", "sdxl": "sdxl", "sd3": "sd3",
               "sd15": "sd", "chroma": "flux", "lumina": "lumina", "hunyuan-image": "hunyuan",
               "anima": "anima"}


def kind_of(profile: Profile) -> str | None:
    """``flux`` / ``sdxl`` / ``sd3`` / ``sd`` — which training script's rules apply."""

    return SCRIPT_KIND.get(profile.family or "")


def on(profile: Profile, name: str) -> bool:
    """True when trainer option ``name`` is set to a true value."""

    return bool(profile.option(name))


def te_outputs_cached(profile: Profile) -> bool:
    """``cache_text_encoder_outputs``, which ``…_to_disk`` forces on (flux_train_network.py:64-68,
    sd3_train_network.py:45-49, library/sdxl_train_util.py:382-388)."""

    return on(profile, "cache_text_encoder_outputs") or on(
        profile, "cache_text_encoder_outputs_to_disk")


def cached_outputs_need_unet_only(rule: Rule, p: Profile, family: str, cite: str
                                  ) -> Iterator[Diagnostic]:
    """The finding of a family whose script asserts that cached text-encoder outputs go with
    ``network_train_unet_only`` (the encoders cannot train on cached outputs), at the caching
    option, with the unsafe fix that sets it."""

    if not te_outputs_cached(p) or on(p, "network_train_unet_only"):
        return
    name = "cache_text_encoder_outputs" if on(p, "cache_text_encoder_outputs") else \
        "cache_text_encoder_outputs_to_disk"
    kp = option_path(p, name, "training")
    yield rule.at(p, kp, f"{name} on {family} requires network_train_unet_only: sd-scripts "
                  f"asserts ({cite})", hint="network_train_unet_only = true",
                  fix=[beside(p, kp, "network_train_unet_only", True)])


def latents_cached(profile: Profile) -> bool:
    """``cache_latents``, which ``cache_latents_to_disk`` forces on (library/args.py:832-836)."""

    return on(profile, "cache_latents") or on(profile, "cache_latents_to_disk")


def dataset_values(profile: Profile, name: str) -> list[tuple[Any, KeyPath]]:
    """The value of dataset option ``name`` for every subset, with the key path it came from
    (subset, then its ``[[dataset.datasets]]`` table, then ``[dataset]``, then the trainer
    option); unset ones are left out."""

    general = profile.get("dataset", name)
    opt = profile.options().get(name)
    fallback: tuple[Any, KeyPath] | None = None
    if general is not None:
        fallback = (general, ("dataset", name))
    elif opt is not None:
        fallback = opt
    out: list[tuple[Any, KeyPath]] = []
    parent: tuple[Any, KeyPath] | None = None  # the enclosing [[dataset.datasets]] value
    subsets = 0
    for level, _, base, table in dataset_levels(profile):
        value = table.get(name)
        if level == "dataset":
            parent = (value, (*base, name)) if value is not None else None
        elif level == "subset":
            subsets += 1
            found = (value, (*base, name)) if value is not None else parent or fallback
            if found is not None:
                out.append(found)
    if not subsets and fallback is not None:
        out.append(fallback)
    unique: dict[KeyPath, tuple[Any, KeyPath]] = {}
    for value, kp in out:
        unique.setdefault(kp, (value, kp))
    return list(unique.values())


def _positive(value: Any) -> bool:
    return (isinstance(value, bool) and value) or (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0)


def _users(profile: Profile, path: str, project: Any) -> list[Profile]:
    """Linted profiles (not bases) whose chain includes the file ``path``."""

    return [p for p in project.profiles if path in p.chain and not is_base(p, project)]


class _Compat(Rule):
    groups = ("compat", "sd-scripts")
    kinds: tuple[str, ...] = ("flux", "sdxl", "sd3", "sd")
    any_family = False

    def applies(self, ctx: ProfileContext) -> bool:
        profile = ctx.profile
        if profile.backend != "kohya" or is_base(profile, ctx.project):
            return False
        kind = kind_of(profile)
        return kind in self.kinds or (kind is None and self.any_family)

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        if self.applies(ctx):
            yield from self.compat(ctx, ctx.profile)

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        """The findings for a profile the rule :meth:`applies` to."""

        raise NotImplementedError


class BlocksToSwapWithCpuOffloadCheckpointing(_Compat):
    """What it does
    Reports ``blocks_to_swap`` (non-zero) together with ``cpu_offload_checkpointing`` on
    FLUX (and Chroma), SD3 and Anima.

    Why is this bad?
    ``flux_train_network.py:82-84``, ``sd3_train_network.py:69-71`` and
    ``anima_train_network.py:69-71`` assert that the two
    are not combined: the run stops after start-up with "blocks_to_swap is not supported with
    cpu_offload_checkpointing".

    Example
        blocks_to_swap = 18
        cpu_offload_checkpointing = true

    Use instead
        blocks_to_swap = 18

    Fix safety
    Unsafe: ``--unsafe-fixes`` deletes ``cpu_offload_checkpointing`` where it is written;
    memory use changes.
    """

    code = "LRC610"
    name = "blocks-to-swap-with-cpu-offload-checkpointing"
    fix = "unsafe"
    kinds = ("flux", "sd3", "anima")

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        swap = p.option("blocks_to_swap")
        if not swap or not on(p, "cpu_offload_checkpointing"):
            return
        kp = option_path(p, "cpu_offload_checkpointing", "training")
        edit = literal_edit(p, kp, DELETE)
        script = {"flux": "flux_train_network.py:82-84",
                  "anima": "anima_train_network.py:69-71"}.get(kind_of(p) or "",
                                                                "sd3_train_network.py:69-71")
        yield self.at(p, kp, f"blocks_to_swap = {swap} cannot be combined with "
                      f"cpu_offload_checkpointing: sd-scripts asserts ({script})",
                      hint="drop one of the two", fix=[edit])


class CachedTextEncoderWithCaptionAugmentation(_Compat):
    """What it does
    Reports cached text-encoder outputs (``cache_text_encoder_outputs``, or ``…_to_disk``
    which forces it) together with caption dropout, caption shuffling, token warm-up or tag
    dropout in any subset (FLUX and Chroma, SDXL, SD3, HunyuanImage; Anima without caption
    dropout, which it supports).

    Why is this bad?
    Cached outputs are computed once from the caption as written, so per-step caption changes
    are impossible: ``flux_train_network.py:70-73``, ``sdxl_train_network.py:37-40``,
    ``sd3_train_network.py:51-54`` and ``hunyuan_image_train_network.py:349-351`` assert
    ``is_text_encoder_output_cacheable()``, which is
    false when a subset has ``caption_dropout_rate > 0``, ``shuffle_caption``,
    ``token_warmup_step > 0`` or ``caption_tag_dropout_rate > 0``
    (``library/dataset.py:733-745``); ``anima_train_network.py:60-63`` passes
    ``cache_supports_dropout=True``, which lets ``caption_dropout_rate`` through. The run stops
    after the models load. (Lumina has no such check.)

    Example
        cache_text_encoder_outputs = true
        [[dataset.subsets]]
        shuffle_caption = true

    Use instead
    Drop the caption augmentation, or stop caching text-encoder outputs.

    Fix safety
    No fix: which of the two to give up is a decision.
    """

    code = "LRC611"
    name = "cached-text-encoder-outputs-with-caption-augmentation"
    kinds = ("flux", "sdxl", "sd3", "hunyuan", "anima")
    AUGMENTATIONS = ("caption_dropout_rate", "shuffle_caption", "token_warmup_step",
                     "caption_tag_dropout_rate")

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        if not te_outputs_cached(p):
            return
        for name in self.AUGMENTATIONS:
            if name == "caption_dropout_rate" and kind_of(p) == "anima":
                continue  # cache_supports_dropout=True (anima_train_network.py:60-63)
            for value, kp in dataset_values(p, name):
                if _positive(value):
                    yield self.at(p, kp, f"{name} = {value!r} cannot be used with cached "
                                  "text-encoder outputs: sd-scripts asserts "
                                  "(library/dataset.py:733-745)",
                                  hint="remove it, or set cache_text_encoder_outputs = false")


class Fp8BaseWithoutMixedPrecision(_Compat):
    """What it does
    Reports ``fp8_base`` or ``fp8_base_unet`` with ``mixed_precision`` unset or ``"no"``.

    Why is this bad?
    ``train_network.py:1236-1240`` asserts ``mixed_precision != "no"`` when fp8 is on, and
    ``mixed_precision`` defaults to ``"no"`` (``library/args.py:366``): the run stops
    once the network is built.

    Example
        fp8_base = true

    Use instead
        fp8_base = true
        mixed_precision = "bf16"

    Fix safety
    Unsafe: ``--unsafe-fixes`` writes ``mixed_precision = "bf16"`` (where ``mixed_precision``
    is written, else beside ``fp8_base``); bf16 needs an Ampere or newer GPU.
    """

    code = "LRC612"
    name = "fp8-base-without-mixed-precision"
    fix = "unsafe"
    any_family = True

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        if not (on(p, "fp8_base") or on(p, "fp8_base_unet")):
            return
        mp = p.option("mixed_precision", "no")
        if mp != "no":
            return
        flag = "fp8_base" if on(p, "fp8_base") else "fp8_base_unet"
        flag_path = option_path(p, flag, "training")
        if "mixed_precision" in p.options():
            kp = option_path(p, "mixed_precision", "training")
            edit = literal_edit(p, kp, "bf16")
        else:
            kp = flag_path
            edit = beside(p, flag_path, "mixed_precision", "bf16")
        yield self.at(p, kp, f"{flag} needs mixed_precision \"fp16\" or \"bf16\", and it is "
                      f"\"{mp}\": sd-scripts asserts (train_network.py:1236-1240)",
                      hint="mixed_precision = \"bf16\"", fix=[edit])


class FullPrecisionMismatch(_Compat):
    """What it does
    Reports ``full_fp16`` without ``mixed_precision = "fp16"``, or ``full_bf16`` without
    ``mixed_precision = "bf16"``.

    Why is this bad?
    ``train_network.py:1221-1230`` asserts the match (``full_fp16`` is checked first, so with
    both set only ``full_fp16`` counts); the run stops after the dataset and models load.

    Example
        full_bf16 = true
        mixed_precision = "fp16"

    Use instead
        full_bf16 = true
        mixed_precision = "bf16"

    Fix safety
    No fix: either value may be the mistake.
    """

    code = "LRC613"
    name = "full-precision-mismatch"
    any_family = True

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        mp = p.option("mixed_precision", "no")
        for flag, want in (("full_fp16", "fp16"), ("full_bf16", "bf16")):
            if on(p, flag):
                if mp != want:
                    yield self.at(p, option_path(p, flag, "training"),
                                  f"{flag} requires mixed_precision \"{want}\", not \"{mp}\": "
                                  "sd-scripts asserts (train_network.py:1221-1230)",
                                  hint=f"mixed_precision = \"{want}\"")
                return


class TrainT5xxlWithCachedOutputs(_Compat):
    """What it does
    Reports ``network_args`` ``train_t5xxl=True`` together with cached text-encoder outputs
    (FLUX, SD3).

    Why is this bad?
    A trained T5-XXL cannot have its outputs cached: ``flux_train_network.py:200-204`` and
    ``sd3_train_network.py:175-178`` raise ``ValueError`` once the network is built. Only the
    exact string ``True`` turns it on (``networks/lora_flux.py:579-581``); other spellings are
    LRC108.

    Example
        cache_text_encoder_outputs = true
        network_args = ["train_t5xxl=True"]

    Use instead
    Stop caching text-encoder outputs, or do not train T5-XXL.

    Fix safety
    No fix.
    """

    code = "LRC614"
    name = "train-t5xxl-with-cached-outputs"
    kinds = ("flux", "sd3")

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        args = p.options().get("network_args")
        if not te_outputs_cached(p) or not args:
            return
        if not isinstance(args[0], list):
            return
        for i, arg in enumerate(args[0]):
            if arg == "train_t5xxl=True":
                yield self.at(p, (*args[1], i), "train_t5xxl=True cannot be combined with "
                              "cached text-encoder outputs: sd-scripts raises ValueError "
                              "(flux_train_network.py:200-204, sd3_train_network.py:175-178)",
                              hint="remove train_t5xxl=True or cache_text_encoder_outputs")


class CacheLatentsWithImageAugmentation(_Compat):
    """What it does
    Reports cached latents (``cache_latents`` or ``cache_latents_to_disk``, which forces it)
    together with ``color_aug`` or ``random_crop`` in any subset.

    Why is this bad?
    Latents cached once cannot reflect per-step image augmentation: ``train_network.py:988-991``
    asserts ``is_latent_cacheable()``, false when a subset has ``color_aug`` or
    ``random_crop`` (``library/dataset.py:730-731``); ``cache_latents_to_disk`` turns
    ``cache_latents`` on (``library/args.py:832-836``).

    Example
        cache_latents = true
        [[dataset.subsets]]
        random_crop = true

    Use instead
    Drop the augmentation, or stop caching latents.

    Fix safety
    No fix.
    """

    code = "LRC615"
    name = "cache-latents-with-image-augmentation"
    any_family = True

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        if not latents_cached(p):
            return
        for name in ("color_aug", "random_crop"):
            for value, kp in dataset_values(p, name):
                if value is True:
                    yield self.at(p, kp, f"{name} cannot be used with cached latents: "
                                  "sd-scripts asserts (train_network.py:988-991)",
                                  hint=f"remove {name}, or set cache_latents = false and "
                                  "cache_latents_to_disk = false")


class BucketResoStepsNotMultiple(_Compat):
    """What it does
    Reports ``bucket_reso_steps`` that is not a multiple of what the family's script asserts:
    32 (SDXL, SD3), 16 (Anima), 64 (SD 1.x/2.x, and FLUX, Chroma, Lumina and HunyuanImage,
    whose own smaller check comes after the base class's).

    Why is this bad?
    ``verify_bucket_reso_steps`` asserts divisibility (``library/dataset.py:724-728``),
    called with 32 by ``sdxl_train_network.py:46`` and ``sd3_train_network.py:73``, with 16 by
    ``anima_train_network.py:94``, and with 64 by ``train_network.py:168`` — which FLUX
    (``flux_train_network.py:49``), Lumina (``lumina_train_network.py:42``) and HunyuanImage
    (``hunyuan_image_train_network.py:324``) run first through ``super().assert_extra_args``
    before their own 32/16/32 check.

    Example
        [dataset]
        bucket_reso_steps = 48

    Use instead
        bucket_reso_steps = 64

    Fix safety
    Unsafe: ``--unsafe-fixes`` rounds to the nearest multiple where the value is written
    literally; the bucket sizes change.
    """

    code = "LRC616"
    name = "bucket-reso-steps-not-multiple"
    fix = "unsafe"
    kinds = ("flux", "sdxl", "sd3", "sd", "lumina", "hunyuan", "anima")
    STEP: ClassVar[dict[str, tuple[int, str]]] = {
        "flux": (64, "train_network.py:168 via flux_train_network.py:49"),
        "sdxl": (32, "sdxl_train_network.py:46"), "sd3": (32, "sd3_train_network.py:73"),
        "sd": (64, "train_network.py:168"),
        "lumina": (64, "train_network.py:168 via lumina_train_network.py:42"),
        "hunyuan": (64, "train_network.py:168 via hunyuan_image_train_network.py:324"),
        "anima": (16, "anima_train_network.py:94")}

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        step, where = self.STEP[kind_of(p) or "sd"]
        # a dataset TOML lorac did not read (the dataset_config option) decides before the
        # trainer option does (library/config_util.py:445-451): its value is unknown here
        external = bool(p.option("dataset_config"))
        for value, kp in dataset_values(p, "bucket_reso_steps"):
            if isinstance(value, bool) or not isinstance(value, int) or value % step == 0:
                continue
            if external and kp[0] != "dataset":
                continue
            fixed = max(step, round(value / step) * step)
            edit = literal_edit(p, kp, fixed)
            yield self.at(p, kp, f"bucket_reso_steps = {value} is not a multiple of {step}: "
                          f"sd-scripts asserts (library/dataset.py:724-728, {where})",
                          hint=f"bucket_reso_steps = {fixed}", fix=[edit])


class DeprecatedSplitMode(_Compat):
    """What it does
    Reports ``split_mode`` on FLUX.

    Why is this bad?
    ``split_mode`` is deprecated (``flux_train_network.py:86-98``): with ``blocks_to_swap``
    set it is ignored; without, sd-scripts silently sets ``blocks_to_swap = 18``. The profile
    says one thing and the run does another.

    Example
        split_mode = true

    Use instead
        blocks_to_swap = 18

    Fix safety
    Safe: ``--fix`` deletes ``split_mode`` where it is written and, when ``blocks_to_swap``
    is unset, writes ``blocks_to_swap = 18`` beside it — exactly what sd-scripts does today.
    """

    code = "LRC617"
    name = "deprecated-split-mode"
    severity = Severity.WARNING
    fix = "safe"
    kinds = ("flux",)

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        if not on(p, "split_mode"):
            return
        kp = option_path(p, "split_mode", "training")
        swap = p.option("blocks_to_swap")
        fix: list[Edit] = []
        edit = literal_edit(p, kp, DELETE)
        if edit is not None:
            fix.append(edit)
            if swap is None:
                fix.append(Edit(edit.path, (kp[0], "blocks_to_swap"), 18))
        what = (f"ignored because blocks_to_swap = {swap}" if swap is not None
                else "replaced by blocks_to_swap = 18")
        yield self.at(p, kp, f"split_mode is deprecated and {what} "
                      "(flux_train_network.py:86-98)", hint="use blocks_to_swap", fix=fix)


class OptionIgnoredByFamily(_Compat):
    """What it does
    Reports options that the FLUX, SD3 or SDXL training path accepts but never uses.

    Why is this bad?
    The profile promises a behaviour the run does not have (the audit's docs promised noise
    offset 0.05/0.1 for a FLUX run). Found in the pinned source:

    - ``max_token_length``: FLUX and SD3 only log that it is unused
      (``flux_train_network.py:79-80``, ``sd3_train_network.py:62-63``).
    - ``noise_offset``, ``noise_offset_random_strength``, ``adaptive_noise_scale``,
      ``multires_noise_iterations``, ``multires_noise_discount``: the base class applies them
      in ``get_noise_pred_and_target`` (``train_network.py:269`` →
      ``library/loss.py:41-49``), which FLUX and SD3 override with plain
      ``torch.randn_like(latents)`` noise (``flux_train_network.py:332``,
      ``sd3_train_network.py:332``).
    - ``min_snr_gamma``, ``scale_v_pred_loss_like_noise_pred``, ``v_pred_like_loss``,
      ``debiased_estimation_loss``: applied in the base ``post_process_loss``
      (``train_network.py:331-340``), which FLUX and SD3 override to return the loss unchanged
      (``flux_train_network.py:450-451``, ``sd3_train_network.py:398-399``).
    - ``clip_skip`` (FLUX, SDXL; a value above 1 — 1 skips nothing anywhere): only the SD
      text-encoding strategy reads it (``train_network.py:197-198``); FLUX's takes none
      (``flux_train_network.py:194-195``) and SDXL's neither, sd-scripts only warning that it
      "will be unexpected" (``library/sdxl_train_util.py:362-363``).

    Example
        [profile]
        family = "flux1-dev"
        [training]
        noise_offset = 0.1

    Use instead
    Remove the option (or use what the family offers, e.g. ``timestep_sampling``).

    Fix safety
    Safe when every linted profile that inherits the file where the option is written is of a
    family that ignores it: ``--fix`` deletes it and nothing changes. Otherwise unsafe (the
    value still matters to a sibling of another family).
    """

    code = "LRC618"
    name = "option-ignored-by-family"
    severity = Severity.WARNING
    fix = "safe"
    kinds = ("flux", "sd3", "sdxl")
    NOISE = ("noise_offset", "noise_offset_random_strength", "adaptive_noise_scale",
             "multires_noise_iterations", "multires_noise_discount")
    LOSS = ("min_snr_gamma", "scale_v_pred_loss_like_noise_pred", "v_pred_like_loss",
            "debiased_estimation_loss")
    IGNORED: ClassVar[dict[str, dict[str, str]]] = {
        "flux": {"max_token_length": "flux_train_network.py:79-80",
                 "clip_skip": "flux_train_network.py:194-195",
                 **dict.fromkeys(NOISE, "flux_train_network.py:332"),
                 **dict.fromkeys(LOSS, "flux_train_network.py:450-451")},
        "sdxl": {"clip_skip": "library/sdxl_train_util.py:362-363"},
        "sd3": {"max_token_length": "sd3_train_network.py:62-63",
                **dict.fromkeys(NOISE, "sd3_train_network.py:332"),
                **dict.fromkeys(LOSS, "sd3_train_network.py:398-399")},
    }

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        kind = kind_of(p) or ""
        ignored = self.IGNORED[kind]
        for name, (value, kp) in p.options().items():
            if name not in ignored or value is None or value is False or value == 0:
                continue
            if name == "clip_skip" and value == 1:  # the last layer: what no clip_skip gives
                continue
            edit = literal_edit(p, kp, DELETE)
            safe = edit is not None and all(
                kind_of(u) in self.kinds and name in self.IGNORED[kind_of(u) or ""]
                for u in _users(p, edit.path, ctx.project))
            diag = self.at(p, kp, f"{name} is accepted but ignored by the {p.family} "
                           f"training path ({ignored[name]})", hint=f"remove {name}",
                           fix=[edit])
            yield with_safety(diag, safe)


class SdxlCachedOutputsTrainTextEncoder(_Compat):
    """What it does
    Reports SDXL with cached text-encoder outputs but without ``network_train_unet_only``.

    Why is this bad?
    ``sdxl_train_network.py:42-44`` asserts ``network_train_unet_only or not
    cache_text_encoder_outputs``: a text-encoder LoRA cannot train on cached outputs
    (``cache_text_encoder_outputs_to_disk`` turns caching on,
    ``library/sdxl_train_util.py:382-388``).

    Example
        [profile]
        family = "sdxl"
        [training]
        cache_text_encoder_outputs = true

    Use instead
        cache_text_encoder_outputs = true
        network_train_unet_only = true

    Fix safety
    Unsafe: ``--unsafe-fixes`` writes ``network_train_unet_only = true`` beside the caching
    option; the text encoder is then not trained.
    """

    code = "LRC619"
    name = "sdxl-cached-outputs-train-text-encoder"
    fix = "unsafe"
    kinds = ("sdxl",)

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        yield from cached_outputs_need_unet_only(self, p, "SDXL", "sdxl_train_network.py:42-44")


class AdaptiveNoiseScaleWithoutNoiseOffset(_Compat):
    """What it does
    Reports ``adaptive_noise_scale`` without ``noise_offset``.

    Why is this bad?
    ``library/args.py:863-864`` (``verify_training_args``, run first by every
    ``train_network`` script, ``train_network.py:901``) raises ``ValueError``.

    Example
        adaptive_noise_scale = 0.01

    Use instead
        noise_offset = 0.05
        adaptive_noise_scale = 0.01

    Fix safety
    No fix.
    """

    code = "LRC620"
    name = "adaptive-noise-scale-without-noise-offset"
    any_family = True

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        if p.option("adaptive_noise_scale") is None:
            return
        if p.option("noise_offset") is None:
            yield self.at(p, option_path(p, "adaptive_noise_scale", "training"),
                          "adaptive_noise_scale requires noise_offset: sd-scripts raises "
                          "ValueError (library/args.py:863-864)")


class VPredictionOptionConflict(_Compat):
    """What it does
    Reports ``scale_v_pred_loss_like_noise_pred`` without ``v_parameterization``, and
    ``v_pred_like_loss`` with it.

    Why is this bad?
    ``verify_training_args`` raises ``ValueError`` for both
    (``library/args.py:866-874``) before anything is loaded.

    Example
        scale_v_pred_loss_like_noise_pred = true

    Use instead
        v_parameterization = true
        scale_v_pred_loss_like_noise_pred = true

    Fix safety
    No fix.
    """

    code = "LRC621"
    name = "v-prediction-option-conflict"
    any_family = True

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        vp = on(p, "v_parameterization")
        if on(p, "scale_v_pred_loss_like_noise_pred") and not vp:
            yield self.at(p, option_path(p, "scale_v_pred_loss_like_noise_pred", "training"),
                          "scale_v_pred_loss_like_noise_pred requires v_parameterization: "
                          "sd-scripts raises ValueError (library/args.py:866-869)")
        if p.option("v_pred_like_loss") and vp:
            yield self.at(p, option_path(p, "v_pred_like_loss", "training"),
                          "v_pred_like_loss cannot be used with v_parameterization: "
                          "sd-scripts raises ValueError (library/args.py:871-874)")


class V2WithSdxl(_Compat):
    """What it does
    Reports ``v2`` on an SDXL profile.

    Why is this bad?
    ``library/sdxl_train_util.py:360`` asserts ``not args.v2`` (called by
    ``sdxl_train_network.py:35``); ``v2`` selects the SD 2.x model loader.

    Example
        [profile]
        family = "sdxl"
        [model]
        v2 = true

    Use instead
    Remove ``v2``.

    Fix safety
    Safe: ``--fix`` deletes ``v2`` where it is written literally; the run cannot start
    with it, so nothing that ran changes.
    """

    code = "LRC622"
    name = "v2-with-sdxl"
    fix = "safe"
    kinds = ("sdxl",)

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        if not on(p, "v2"):
            return
        kp = option_path(p, "v2", "model")
        edit = literal_edit(p, kp, DELETE)
        safe = edit is not None and all(kind_of(u) == "sdxl"
                                        for u in _users(p, edit.path, ctx.project))
        diag = self.at(p, kp, "v2 cannot be enabled for SDXL: sd-scripts asserts "
                       "(library/sdxl_train_util.py:360)", hint="remove v2",
                       fix=[edit])
        yield with_safety(diag, safe)


RULES = (BlocksToSwapWithCpuOffloadCheckpointing, CachedTextEncoderWithCaptionAugmentation,
         Fp8BaseWithoutMixedPrecision, FullPrecisionMismatch, TrainT5xxlWithCachedOutputs,
         CacheLatentsWithImageAugmentation, BucketResoStepsNotMultiple, DeprecatedSplitMode,
         OptionIgnoredByFamily, SdxlCachedOutputsTrainTextEncoder,
         AdaptiveNoiseScaleWithoutNoiseOffset, VPredictionOptionConflict, V2WithSdxl)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The LRC610–LRC622 trainer-compatibility rules."""

    return [cls() for cls in RULES]
