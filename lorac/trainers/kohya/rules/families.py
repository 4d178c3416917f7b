"""LRC624–LRC631, LRC645 — start-up checks of the Chroma, Lumina, HunyuanImage and Anima scripts.

Each rule is an ``assert``, a raised error or a silently forced option in the script's
``assert_extra_args`` / model loading at the default pin (``backends/kohya/pin.toml``,
37a1cbbc), cited with file and line. The checks the four families share with FLUX, SDXL and SD3
(blocks_to_swap with cpu_offload_checkpointing, cached text-encoder outputs with caption
augmentation, ``bucket_reso_steps``) are the rules of :mod:`lorac.trainers.kohya.rules.compat`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

from lorac.config.profile import Profile
from lorac.core.diagnostics import DELETE, Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule
from lorac.lint.rules.network import beside, literal_edit, option_path
from lorac.trainers.kohya.rules.compat import (
    _Compat,
    cached_outputs_need_unet_only,
    on,
)


class ChromaWithoutT5AttnMask(_Compat):
    """What it does
    Reports a Chroma profile without ``apply_t5_attn_mask = true``.

    Why is this bad?
    ``flux_train_network.py:59`` asserts ``args.apply_t5_attn_mask`` when
    ``--model_type chroma``: the run stops at start-up.

    Example
        [profile]
        family = "chroma"

    Use instead
        [training]
        apply_t5_attn_mask = true

    Fix safety
    Safe where the option is written as ``false``: there is no other value that runs.
    """

    code = "LRC624"
    name = "chroma-without-t5-attn-mask"
    severity = Severity.ERROR
    fix = "safe"

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        if p.family != "chroma" or on(p, "apply_t5_attn_mask"):
            return
        found = p.options().get("apply_t5_attn_mask")
        kp = found[1] if found else ("profile", "family")
        yield self.at(p, kp, "Chroma requires apply_t5_attn_mask = true: sd-scripts asserts "
                      "(flux_train_network.py:59)", hint="apply_t5_attn_mask = true",
                      fix=[literal_edit(p, found[1], True)] if found else [])


class ChromaModelType(_Compat):
    """What it does
    Reports a ``model_type`` that does not match the family: Chroma trains through
    ``flux_train_network.py --model_type chroma``; FLUX.1 with ``model_type = "flux"`` (the
    default).

    Why is this bad?
    ``--model_type`` defaults to ``flux`` (``library/flux_train_utils.py:808``): a Chroma
    profile without it loads the checkpoint as FLUX.1 (``library/flux_utils.py:173`` builds the
    model of that type), and a FLUX.1 profile with ``chroma`` drops CLIP-L and trains Chroma.

    Example
        [profile]
        family = "chroma"

    Use instead
        [model]
        model_type = "chroma"

    Fix safety
    Safe where ``model_type`` is written literally: the family says which model it is.
    """

    code = "LRC625"
    name = "family-model-type-mismatch"
    severity = Severity.ERROR
    fix = "safe"
    kinds = ("flux",)

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        want = "chroma" if p.family == "chroma" else "flux"
        found = p.options().get("model_type")
        value = found[0] if found else "flux"
        if value == want:
            return
        kp = found[1] if found else ("profile", "family")
        fix = [literal_edit(p, kp, want)] if found else [
            beside(p, ("model", "pretrained_model_name_or_path"), "model_type", want)]
        yield self.at(p, kp, f"family {p.family} needs model_type = {want!r}, but "
                      f"flux_train_network.py gets {value!r} (library/flux_train_utils.py:808)",
                      hint=f'model_type = "{want}"', fix=fix)


class AnimaCachedOutputsTrainTextEncoder(_Compat):
    """What it does
    Reports Anima with cached text-encoder outputs but without ``network_train_unet_only``.

    Why is this bad?
    ``anima_train_network.py:65-67`` asserts ``network_train_unet_only or not
    cache_text_encoder_outputs`` (``…_to_disk`` turns caching on, :56-58): a Qwen3 LoRA cannot
    train on cached outputs.

    Example
        [profile]
        family = "anima"
        [training]
        cache_text_encoder_outputs = true

    Use instead
        cache_text_encoder_outputs = true
        network_train_unet_only = true

    Fix safety
    Unsafe: ``--unsafe-fixes`` writes ``network_train_unet_only = true`` beside the caching
    option; the text encoder is then not trained.
    """

    code = "LRC626"
    name = "anima-cached-outputs-train-text-encoder"
    severity = Severity.ERROR
    fix = "unsafe"
    kinds = ("anima",)

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        yield from cached_outputs_need_unet_only(self, p, "Anima", "anima_train_network.py:65-67")


class AnimaExclusiveOptions(_Compat):
    """What it does
    Reports Anima options that its start-up forbids together: ``compile`` with
    ``torch_compile``, ``compile_fullgraph`` with ``split_attn`` (under ``compile``), and
    ``unsloth_offload_checkpointing`` with ``cpu_offload_checkpointing`` or ``blocks_to_swap``.

    Why is this bad?
    ``anima_train_network.py`` asserts each: :84-87 (``--compile`` and ``--torch_compile``),
    :88-91 (``--compile_fullgraph`` and ``--split_attn``), :76-78 and :79-81
    (``--unsloth_offload_checkpointing``). The run stops at start-up.

    Example
        compile = true
        torch_compile = true

    Use instead
        compile = true

    Fix safety
    No fix: which of the two to keep is a decision.
    """

    code = "LRC627"
    name = "anima-exclusive-options"
    severity = Severity.ERROR
    kinds = ("anima",)
    PAIRS: ClassVar[tuple[tuple[str, str, str | None, str], ...]] = (
        ("torch_compile", "compile", "compile", "anima_train_network.py:84-87"),
        ("split_attn", "compile_fullgraph", "compile", "anima_train_network.py:88-91"),
        ("cpu_offload_checkpointing", "unsloth_offload_checkpointing", None,
         "anima_train_network.py:76-78"),
        ("blocks_to_swap", "unsloth_offload_checkpointing", None,
         "anima_train_network.py:79-81"),
    )

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        for name, other, needs, where in self.PAIRS:
            if on(p, name) and on(p, other) and (needs is None or on(p, needs)):
                kp = option_path(p, name, "training")
                yield self.at(p, kp, f"{name} cannot be combined with {other} on Anima: "
                              f"sd-scripts asserts ({where})", hint=f"drop {name} or {other}")


class AnimaFp8Ignored(_Compat):
    """What it does
    Reports ``fp8_base``, ``fp8_base_unet`` or ``fp8_scaled`` on Anima.

    Why is this bad?
    ``anima_train_network.py:50-54`` sets all three to ``False`` (the first two with a
    warning, ``fp8_scaled`` silently): the model trains in full precision and needs the
    memory the profile meant to save.

    Example
        fp8_base = true

    Use instead
    Remove the option; use ``blocks_to_swap`` to save memory.

    Fix safety
    Safe: deleting the option changes nothing sd-scripts does.
    """

    code = "LRC628"
    name = "anima-fp8-ignored"
    severity = Severity.WARNING
    fix = "safe"
    kinds = ("anima",)

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        for name in ("fp8_base", "fp8_base_unet", "fp8_scaled"):
            if on(p, name):
                kp = option_path(p, name, "training")
                yield self.at(p, kp, f"{name} is turned off by anima_train_network.py:50-54; "
                              "Anima trains without fp8", hint=f"remove {name}",
                              fix=[literal_edit(p, kp, DELETE)])


class FamilyModelFileMissing(_Compat):
    """What it does
    Reports a model file that the family's script loads but the profile does not name:
    FLUX.1 needs ``clip_l``, ``t5xxl`` and ``ae`` (once the profile names its model),
    Chroma ``t5xxl`` and ``ae``, Lumina
    ``gemma2`` and ``ae``, HunyuanImage ``text_encoder``, ``byt5`` and ``vae``, Anima
    ``qwen3`` and ``vae`` (besides ``pretrained_model_name_or_path``).

    Why is this bad?
    None of them is ``required`` to argparse; the scripts fail when they load the model:
    ``flux_train_network.py:141,153,162`` (CLIP-L, T5-XXL, AE, each read with
    ``load_safetensors`` of the path: ``None`` fails), ``library/lumina_train_util.py:1027,1032``
    (Gemma2, AE), ``library/strategy_anima.py:45`` (``ValueError``: Qwen3),
    ``hunyuan_image_train_network.py`` loading the text encoders and the VAE. The option is
    defined where the message says (from the inventory).

    Example
        [profile]
        family = "lumina"
        [model]
        pretrained_model_name_or_path = "/models/lumina_2.safetensors"

    Use instead
        gemma2 = "/models/gemma_2_2b_fp16.safetensors"
        ae = "/models/ae.safetensors"

    Fix safety
    No fix: only the user knows where the files are.
    """

    code = "LRC629"
    name = "family-model-file-missing"
    severity = Severity.ERROR
    kinds = ("flux", "lumina", "hunyuan", "anima")
    WITH_MODEL = ("flux1-dev", "flux1-schnell")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "flux1-dev": ("clip_l", "t5xxl", "ae"),
        "flux1-schnell": ("clip_l", "t5xxl", "ae"),
        "chroma": ("t5xxl", "ae"),
        "lumina": ("gemma2", "ae"),
        "hunyuan-image": ("text_encoder", "byt5", "vae"),
        "anima": ("qwen3", "vae"),
    }

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        from lorac.config.inventory import family_script, load_kohya_inventory

        needs = self.NEEDS.get(p.family or "")
        if needs is None:
            return
        script = family_script(p.family) or ""
        inv = load_kohya_inventory(script)
        options = p.options()
        if p.family in self.WITH_MODEL and not options.get(
                "pretrained_model_name_or_path", (None,))[0]:
            return  # a FLUX recipe that names no model yet is a fragment, not a launch
        for name in needs:
            if options.get(name, (None,))[0]:
                continue
            option = inv.get(name)
            where = f", defined at {option.location}" if option is not None else ""
            yield self.at(p, ("profile", "family"), f"family {p.family} needs {name}: "
                          f"{script} loads it{where}", hint=f'{name} = "/path/to/model"')


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHTS = re.compile(r"\.(safetensors|sft|ckpt|pt|pth|bin|gguf)$", re.I)


def looks_hub_id(value: object) -> bool:
    """``black-forest-labs/FLUX.1-dev``: an owner and a name, no file extension."""

    return isinstance(value, str) and bool(_HUB_ID.match(value)) and not _WEIGHTS.search(
        value)


class FluxModelNotLocal(_Compat):
    """What it does
    Reports a FLUX.1 or Chroma model option of sd-scripts that holds a Hugging Face hub id
    (``black-forest-labs/FLUX.1-dev``) where the script opens a local file: the model, the
    ``clip_l``, ``t5xxl`` and ``ae`` files.

    Why is this bad?
    sd-scripts downloads nothing for FLUX: ``library/flux_utils.py`` opens the model with
    ``safe_open`` (line 55; a local Diffusers folder is accepted, line 46) and CLIP-L, T5-XXL
    and the AE with ``load_safetensors`` of the path (lines 185, 351, 406). A hub id is read
    as a relative path that does not exist, and the run stops while loading.

    Example
        pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"

    Use instead
        pretrained_model_name_or_path = "/models/flux1-dev.safetensors"   # downloaded once

    Fix safety
    No fix: only the user knows where the files are.
    """

    code = "LRC645"
    name = "flux-model-not-local"
    severity = Severity.ERROR
    kinds = ("flux",)
    OPTIONS = ("pretrained_model_name_or_path", "clip_l", "t5xxl", "ae")

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        from pathlib import Path

        base = Path(p.path).parent
        for name in self.OPTIONS:
            found = p.options().get(name)
            if found is None or not looks_hub_id(found[0]):
                continue
            if (base / found[0]).exists() or Path(found[0]).exists():
                continue  # a local folder that happens to read like a hub id
            yield self.at(p, found[1], f"{name} = {found[0]!r} reads like a hub id, but "
                          "sd-scripts opens a local file here and downloads nothing "
                          "(library/flux_utils.py:46-55, 185, 351, 406)",
                          hint=f"download it and set {name} to the local .safetensors path")


#: The first shipped version whose FLUX and Anima scripts read the per-subset offset.
OFFSET_FROM = "37a1cbbc5725ed2a3575506e7bd2001c9908ac92"
OFFSET_AWARE = ("sigmoid", "shift", "flux_shift")


class SubsetTimestepOffsetIgnored(_Compat):
    """What it does
    Reports a subset's ``custom_attributes.timestep_sampling.offset`` that the run will not
    apply: on a family whose script never reads it (only FLUX, Chroma and Anima do), with a
    ``timestep_sampling`` it does not shift (only ``sigmoid``, ``shift``, ``flux_shift``), or on
    an sd-scripts version older than 37a1cbbc.

    Why is this bad?
    ``flux_train_network.py:335-341`` and ``anima_train_network.py:290-296`` collect the
    offsets; ``library/flux_train_utils.py:550`` applies them for the offset-aware samplings
    only. Elsewhere the subset key is accepted (``custom_attributes`` is a free dict) and
    silently does nothing, so the subset trains at the same timesteps as every other.

    Example
        [profile]
        family = "sdxl"
        [[dataset.subsets]]
        custom_attributes = { timestep_sampling = { offset = -0.5 } }

    Use instead
    Train that subset with a FLUX, Chroma or Anima profile and ``timestep_sampling =
    "sigmoid"``, or drop the offset.

    Fix safety
    No fix: whether the offset or the setup is wrong only the user knows.
    """

    code = "LRC630"
    name = "subset-timestep-offset-ignored"
    severity = Severity.WARNING
    any_family = True
    kinds = ("flux", "sdxl", "sd3", "sd", "lumina", "hunyuan", "anima")

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        from lorac.config import inventory
        from lorac.config.kohya_version import version_label
        from lorac.trainers.kohya.rules.options import dataset_levels

        script = inventory.family_script(p.family) or "train_network.py"
        inv = inventory.load_kohya_inventory(script)
        order = [v.commit for v in inventory.kohya_versions()]
        too_old = inv.commit in order and order.index(inv.commit) < order.index(OFFSET_FROM)
        for level, _, base, table in dataset_levels(p):
            attrs = table.get("custom_attributes") if level == "subset" else None
            sampling = attrs.get("timestep_sampling") if isinstance(attrs, dict) else None
            offset = sampling.get("offset") if isinstance(sampling, dict) else None
            if not offset:
                continue
            kp = (*base, "custom_attributes", "timestep_sampling", "offset")
            if too_old:
                why = (f"sd-scripts {version_label(inv.commit)} does not read it (from "
                       f"{version_label(OFFSET_FROM)} on)")
            elif script not in ("flux_train_network.py", "anima_train_network.py"):
                why = (f"{script} never reads it (only flux_train_network.py:335-341 and "
                       "anima_train_network.py:290-296 do)")
            else:
                option = inv.get("timestep_sampling")
                value = p.option("timestep_sampling", option.default if option else None)
                if value in OFFSET_AWARE:
                    continue
                why = (f"timestep_sampling = {value!r} is not shifted by it (only "
                       f"{', '.join(OFFSET_AWARE)}; library/flux_train_utils.py:550)")
            yield self.at(p, kp, f"the subset's timestep offset {offset!r} is ignored: {why}",
                          hint="drop the offset, or train this subset where it applies")


class TrainInpaintingMisused(_Compat):
    """What it does
    Reports ``train_inpainting`` with cached latents, and on a family whose script does not use
    the inpainting masks (every family but SD 1.x/2.x and SDXL).

    Why is this bad?
    ``verify_training_args`` raises ``ValueError`` for ``train_inpainting`` with
    ``cache_latents`` (``library/args.py:842-848``; ``cache_latents_to_disk`` turns caching
    on). Only the base class's ``get_noise_pred_and_target`` feeds the masks to the model
    (``train_network.py:278-284``); the FLUX, SD3, Lumina, HunyuanImage and Anima scripts
    override it (``flux_train_network.py:317``, ``sd3_train_network.py:317``,
    ``lumina_train_network.py:240``, ``hunyuan_image_train_network.py:524``,
    ``anima_train_network.py:268``): the option is accepted and the masks are made, unused.

    Example
        [profile]
        family = "flux1-dev"
        [training]
        train_inpainting = true

    Use instead
    Remove ``train_inpainting``, or train an SD 1.x/SDXL inpainting model without cached
    latents.

    Fix safety
    No fix: which of the settings to give up is a decision.
    """

    code = "LRC631"
    name = "train-inpainting-misused"
    severity = Severity.ERROR
    kinds = ("flux", "sdxl", "sd3", "sd", "lumina", "hunyuan", "anima")
    OVERRIDES: ClassVar[dict[str, str]] = {
        "flux": "flux_train_network.py:317", "sd3": "sd3_train_network.py:317",
        "lumina": "lumina_train_network.py:240",
        "hunyuan": "hunyuan_image_train_network.py:524", "anima": "anima_train_network.py:268"}

    def compat(self, ctx: ProfileContext, p: Profile) -> Iterator[Diagnostic]:
        from lorac.trainers.kohya.rules.compat import kind_of, latents_cached

        if not on(p, "train_inpainting"):
            return
        kp = option_path(p, "train_inpainting", "training")
        if latents_cached(p):
            yield self.at(p, kp, "train_inpainting cannot be combined with cached latents: "
                          "sd-scripts raises ValueError (library/args.py:842-848)",
                          hint="set cache_latents = false and cache_latents_to_disk = false")
        where = self.OVERRIDES.get(kind_of(p) or "")
        if where is not None:
            yield self.at(p, kp, f"train_inpainting is accepted but unused by the {p.family} "
                          f"training path: its get_noise_pred_and_target ({where}) ignores "
                          "the masks that train_network.py:278-284 feeds an SD UNet",
                          hint="remove train_inpainting").with_severity(Severity.WARNING)


RULES = (ChromaWithoutT5AttnMask, ChromaModelType, AnimaCachedOutputsTrainTextEncoder,
         AnimaExclusiveOptions, AnimaFp8Ignored, FamilyModelFileMissing,
         SubsetTimestepOffsetIgnored, TrainInpaintingMisused, FluxModelNotLocal)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The LRC624–LRC631 family start-up rules."""

    return [cls() for cls in RULES]
