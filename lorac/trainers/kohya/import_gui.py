"""Import a kohya_ss GUI preset or saved training config (JSON).

The GUI's keys are its own, not sd-scripts' (``optimizer``, ``max_resolution``, ``epoch``,
``LoRA_type``, ``xformers: "sdpa"`` …). This importer follows what the GUI does when it writes
its ``config_lora-*.toml`` (bmaltais/kohya_ss ``kohya_gui/lora_gui.py``, ``train_model``):
values equal to ``""``, ``False``, ``None`` or ``0`` are not passed; ``LoRA_type`` picks the
network module and builds ``network_args`` from the block/conv/dropout keys; ``epoch`` sets the
number of epochs only when ``max_train_steps`` is 0. Every other key is looked up in the
inventory of the family's entry script; keys with no sd-scripts equivalent are reported and kept
as comments. Numbers stored as strings are converted; NaN/Infinity are refused.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

from lorac.core.diagnostics import LoracError, Severity
from lorac.importers import (
    Draft,
    Settings,
    Source,
    flux_family,
    inventory_for,
    line_of_key,
    raw_text,
    set_unchecked,
    take_dataset_config,
)

#: GUI key → sd-scripts option, where only the name differs.
RENAMES = {"optimizer": "optimizer_type", "max_resolution": "resolution",
           "lora_network_weights": "network_weights"}

#: GUI keys that only steer the GUI (or are folded into other options below).
GUI_ONLY = frozenset({
    "LoRA_type", "LyCORIS_preset", "model_list", "save_as_bool", "flux1_checkbox", "sdxl",
    "sd3_checkbox", "sdxl_checkbox", "epoch", "lr_warmup", "xformers", "noise_offset_type",
    "sample_prompts", "additional_parameters", "extra_accelerate_launch_args", "gpu_ids",
    "multi_gpu", "num_processes", "num_machines", "main_process_port",
    "num_cpu_threads_per_process", "text_encoder_lr", "t5xxl_lr",
    "flux1_cache_text_encoder_outputs", "flux1_cache_text_encoder_outputs_to_disk",
    "sdxl_cache_text_encoder_outputs", "sd3_cache_text_encoder_outputs",
    "sd3_cache_text_encoder_outputs_to_disk", "sdxl_no_half_vae", "lowvram",
})

#: GUI-only keys that change nothing in the training command
GUI_STEERING = frozenset({"model_list", "save_as_bool", "lowvram"})

#: GUI keys that become ``key=value`` entries of ``network_args`` for these LoRA types.
NETWORK_ARGS = {
    "Standard": ("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold",
                 "block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas",
                 "rank_dropout", "module_dropout"),
    "Flux1": ("img_attn_dim", "img_mlp_dim", "img_mod_dim", "single_dim", "txt_attn_dim",
              "txt_mlp_dim", "txt_mod_dim", "single_mod_dim", "in_dims",
              "train_double_block_indices", "train_single_block_indices", "rank_dropout",
              "module_dropout"),
}
NETWORK_ARGS["Kohya LoCon"] = (*NETWORK_ARGS["Standard"], "conv_dim", "conv_alpha")
LYCORIS_ARGS = ("conv_dim", "conv_alpha", "use_tucker", "rank_dropout", "module_dropout",
                "rank_dropout_scale", "bypass_mode", "dora_wd", "use_scalar", "factor",
                "use_cp", "decompose_both", "train_norm", "constrain", "rescaled", "unit",
                "train_on_input")
ALL_NETWORK_KEYS = frozenset(
    {k for keys in NETWORK_ARGS.values() for k in keys} | set(LYCORIS_ARGS)
    | {"split_qkv", "train_t5xxl", "train_blocks"})
LORAPLUS = ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio")
MODULES = {"Standard": "networks.lora", "Kohya LoCon": "networks.lora",
           "Flux1": "networks.lora_flux", "Flux1 OFT": "networks.oft_flux",
           "LoRA-FA": "networks.lora_fa", "Kohya DyLoRA": "networks.dylora",
           "Kohya LoHa": "networks.loha", "Kohya LoKr": "networks.lokr"}
#: options the GUI passes only for some families
NOT_FOR_FLUX = frozenset({"max_token_length"})
FLUX_ONLY = frozenset({"ae", "clip_l", "t5xxl", "guidance_scale", "discrete_flow_shift",
                       "model_prediction_type", "timestep_sampling", "split_mode",
                       "t5xxl_max_token_length", "mem_eff_save", "apply_t5_attn_mask",
                       "cpu_offload_checkpointing", "blocks_to_swap", "fp8_base_unet"})
MULTIRES = frozenset({"multires_noise_discount", "multires_noise_iterations"})
ORIGINAL_NOISE = frozenset({"noise_offset", "adaptive_noise_scale",
                            "noise_offset_random_strength"})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse(source: Source) -> dict[str, Any]:
    """The JSON object of ``source``; invalid JSON, NaN/Infinity or a non-object raise."""

    try:
        data = json.loads(source.text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise LoracError(f"{source.display}:{exc.lineno}:{exc.colno}: invalid JSON: "
                         f"{exc.msg}") from None
    except ValueError as exc:
        raise LoracError(f"{source.display}: invalid JSON: {exc}") from None
    except RecursionError:
        raise LoracError(f"{source.display}: invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise LoracError(f"{source.display}: a kohya_ss GUI config is a JSON object, not "
                         f"{type(data).__name__}")
    return data


def _falsy(value: Any) -> bool:
    return value in ("", None) or value is False or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0) or (
        isinstance(value, str) and value.strip() in ("0", "0.0"))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def family_of(data: dict[str, Any]) -> tuple[str, str]:
    """The model family the GUI config trains, and the key that says so."""

    model = str(data.get("pretrained_model_name_or_path") or "").lower()
    if data.get("flux1_checkbox") is True or data.get("LoRA_type") in ("Flux1", "Flux1 OFT"):
        return flux_family(model), "flux1_checkbox"
    if data.get("sd3_checkbox") is True:
        return "sd3", "sd3_checkbox"
    if data.get("sdxl") is True or data.get("sdxl_checkbox") is True:
        return "sdxl", "sdxl"
    return "sd15", "no sdxl/flux1/sd3 checkbox"


def read(source: Source, settings: Settings) -> Draft:
    """Read ``source`` as a kohya_ss GUI JSON config."""

    data = parse(source)
    draft = Draft(kind="kohya-gui", source=source.display)
    line = lambda key: line_of_key(source.text, key, style="json")  # noqa: E731
    family, why = family_of(data)
    draft.family = settings.family or family
    if settings.family is None:
        draft.report("LRC095", f"model family {family} (from {why})")
    inventory = inventory_for(draft.family)
    flux = draft.family.startswith("flux1")
    options = {RENAMES.get(k, k): v for k, v in data.items()}
    lora_type = str(data.get("LoRA_type") or "Standard")
    handled: set[str] = set()
    silent: list[str] = []
    not_passed: list[str] = []

    def take(name: str, value: Any, key: str) -> None:
        option = inventory.get(name)
        if option is None:
            close = inventory.closest(name, n=1)
            draft.unmap(key, value, "LRC090", f"{key!r} has no option {name!r} in "
                        f"{inventory.script}", line=line(key),
                        hint=f"did you mean {close[0]!r}?" if close else None)
            return
        set_unchecked(draft, option, value, key=key, line=line(key), every=options,
                      verdict=_through_config_file)

    # -- the network
    handled.update({"LoRA_type", "LyCORIS_preset"})
    args: list[str] = []
    if lora_type.startswith("LyCORIS/") or lora_type == "LoCon":
        draft.set("network_module", "lycoris.kohya", line=line("LoRA_type"))
        algo = lora_type.split("/")[-1].lower().replace("native fine-tuning", "full")
        args += [f"preset={data.get('LyCORIS_preset', 'full')}", f"algo={algo}"]
        keys: tuple[str, ...] = LYCORIS_ARGS
        draft.report("LRC095", "LoRA_type LyCORIS uses the lycoris.kohya module, which is not "
                     "part of sd-scripts (pip install lycoris-lora)", line=line("LoRA_type"),
                     severity=Severity.WARNING)
    elif lora_type in MODULES:
        module = MODULES[lora_type]
        if lora_type in ("Standard", "Kohya LoCon") and draft.family == "sd3":
            module = "networks.lora_sd3"
        draft.set("network_module", module, line=line("LoRA_type"))
        keys = NETWORK_ARGS.get(lora_type, ("rank_dropout", "module_dropout"))
    else:
        draft.unmap("LoRA_type", lora_type, "LRC090", f"LoRA_type {lora_type!r} is not one "
                    "lorac knows how to translate", line=line("LoRA_type"), section="network")
        keys = ()
    for key in keys:
        if key in data and not _falsy(data[key]):
            args.append(f"{key}={raw_text(data[key]).replace(' ', '')}")
        handled.add(key)
    if lora_type == "Flux1":
        for key in ("split_qkv", "train_t5xxl"):
            if data.get(key) is True:
                args.append(f"{key}=True")
            handled.add(key)
        if data.get("split_mode") is True:
            args.append("train_blocks=single")
        elif not _falsy(data.get("train_blocks")):
            draft.unmap("train_blocks", data["train_blocks"], "LRC090", "train_blocks is "
                        "passed by the GUI only with split_mode (then as 'single')",
                        line=line("train_blocks"), severity=Severity.INFO, section="network")
        handled.add("train_blocks")
    for key in LORAPLUS:
        if key in data and not _falsy(data[key]):
            args.append(f"{key}={data[key]}")
        handled.add(key)
    if args:
        draft.set("network_args", args, line=line("LoRA_type"))
    other_types = []
    for key in sorted(ALL_NETWORK_KEYS - handled):
        handled.add(key)
        if key in data and not _falsy(data[key]):
            draft.keep(key, data[key], "LRC090", section="network")
            other_types.append(key)
    if other_types:  # one line: nothing to act on, the GUI ignores them too
        draft.report("LRC090", f"{len(other_types)} GUI key(s) used only by other LoRA types "
                     f"(this one is {lora_type!r}), kept as comments: "
                     f"{', '.join(other_types)}", severity=Severity.INFO)

    # -- learning rates, steps, attention
    te = _number(data.get("text_encoder_lr"))
    t5 = _number(data.get("t5xxl_lr"))
    if te > 0:
        draft.set("text_encoder_lr", [te, t5] if t5 > 0 else [te],
                  line=line("text_encoder_lr"))
    if "text_encoder_lr" in data and "unet_lr" in data:
        # the GUI derives the train mode from the two rates and passes it to sd-scripts
        # (kohya_gui/lora_gui.py, resolve_network_train_flags)
        unet = _number(data.get("unet_lr"))
        if te == 0 and unet != 0 and "network_train_unet_only" not in draft.options:
            draft.set("network_train_unet_only", True, line=line("text_encoder_lr"))
        elif te != 0 and unet == 0 and "network_train_text_encoder_only" not in draft.options:
            draft.set("network_train_text_encoder_only", True, line=line("unet_lr"))
    steps = _number(data.get("max_train_steps"))
    epochs = _number(data.get("max_train_epochs"))
    epoch = _number(data.get("epoch"))
    if epoch and not steps and not epochs:
        draft.set("max_train_epochs", int(epoch), line=line("epoch"))
        draft.report("LRC095", f"epoch {int(epoch)} → max_train_epochs (the GUI computes the "
                     "steps from it when max_train_steps is 0)", line=line("epoch"))
    elif epoch:
        which = "max_train_steps" if steps else "max_train_epochs"
        draft.report("LRC095", f"epoch {int(epoch)} has no effect: {which} is set",
                     line=line("epoch"))
    warmup = _number(data.get("lr_warmup"))
    if warmup and not _number(data.get("lr_warmup_steps")):
        if steps:
            draft.set("lr_warmup_steps", round(warmup * steps / 100), line=line("lr_warmup"))
            draft.report("LRC095", f"lr_warmup {warmup:g}% of {int(steps)} steps → "
                         "lr_warmup_steps", line=line("lr_warmup"))
        else:
            draft.unmap("lr_warmup", data["lr_warmup"], "LRC090", "lr_warmup is a percentage "
                        "of max_train_steps, which is not set", line=line("lr_warmup"),
                        section="optimizer", hint="set lr_warmup_steps in the profile")
    attention = data.get("xformers")
    if attention == "sdpa":
        draft.set("sdpa", True, line=line("xformers"))
    elif attention is True or attention == "xformers":
        draft.set("xformers", True, line=line("xformers"))
    for flag, option in (("cache_text_encoder_outputs", "cache_text_encoder_outputs"),
                         ("cache_text_encoder_outputs_to_disk",
                          "cache_text_encoder_outputs_to_disk")):
        prefix = "flux1" if flux else "sd3" if draft.family == "sd3" else "sdxl"
        if data.get(f"{prefix}_{flag}") is True and (
                prefix != "sdxl" or option == "cache_text_encoder_outputs"):
            draft.set(option, True, line=line(f"{prefix}_{flag}"))
    if draft.family == "sdxl" and data.get("sdxl_no_half_vae") is True:
        draft.set("no_half_vae", True, line=line("sdxl_no_half_vae"))
    prompts = data.get("sample_prompts")
    if isinstance(prompts, str) and prompts.strip():
        if prompts.strip().lower().endswith((".txt", ".toml", ".json")):
            draft.set("sample_prompts", prompts.strip(), line=line("sample_prompts"))
        else:
            draft.unmap("sample_prompts", prompts, "LRC090", "sample_prompts holds prompt text; "
                        "sd-scripts reads prompts from a file", line=line("sample_prompts"),
                        section="sampling",
                        hint="write the prompts to a file and set sample_prompts to its path")
    _run(draft, data, line)
    extra = data.get("additional_parameters")
    if isinstance(extra, str) and extra.strip():
        _additional(draft, extra, inventory, line("additional_parameters"), settings)

    # -- everything else, by name
    noise = str(data.get("noise_offset_type") or "Original")
    for key, value in data.items():
        if key in handled or key in draft.options:
            continue
        if key in GUI_ONLY:
            if key in GUI_STEERING and not _falsy(value):
                draft.unmap(key, value, "LRC090", f"{key} steers the GUI only",
                            line=line(key), severity=Severity.INFO)
            continue
        name = RENAMES.get(key, key)
        gated = (flux and name in NOT_FOR_FLUX) or (not flux and name in FLUX_ONLY) or (
            name in MULTIRES and noise != "Multires") or (
            name in ORIGINAL_NOISE and noise != "Original")
        if name == "dataset_config" and isinstance(value, str) and value.strip() and \
                take_dataset_config(draft, value, line(key), settings, source.path.parent):
            continue
        if _falsy(value) and name != "max_data_loader_n_workers":
            silent.append(key)
            continue
        if gated:
            draft.keep(key, value, "LRC090")
            not_passed.append(key)
            continue
        take(name, value, key)
    if not_passed:  # one line: the GUI does not pass them either
        draft.report("LRC090", f"{len(not_passed)} GUI key(s) the GUI does not pass for this "
                     f"configuration (family {draft.family}, noise_offset_type {noise}), kept "
                     f"as comments: {', '.join(not_passed)}", severity=Severity.INFO)
    unmapped_silent = [k for k in silent if inventory.get(RENAMES.get(k, k)) is None]
    gui_only = [k for k in data if k in GUI_ONLY and k not in handled and _falsy(data[k])
                and k not in ("xformers", "sdxl", "flux1_checkbox", "sd3_checkbox")]
    quiet = sorted(set(unmapped_silent + gui_only))
    for key in quiet:
        draft.keep(key, data[key], "LRC090")
    if quiet:
        draft.report("LRC090", f"{len(quiet)} GUI key(s) without an sd-scripts option are "
                     f"empty/off and have no effect: {', '.join(quiet)}",
                     severity=Severity.INFO)
    return draft


def _through_config_file(name: str, value: Any, options: Mapping[str, Any]) -> tuple[bool, str]:
    """What sd-scripts does with a GUI value outside argparse's choices: the GUI writes its
    options into a ``config_lora-*.toml`` that it passes as ``--config_file``
    (bmaltais/kohya_ss ``kohya_gui/lora_gui.py``, ``train_model``), so the value reaches the
    script unchecked, as from any ``--config_file``."""

    from lorac.trainers.kohya.import_toml import config_file_choice

    inert, truth = config_file_choice(name, value, options)
    return inert, f"the GUI passes it in the --config_file it writes; {truth}"


def _run(draft: Draft, data: dict[str, Any], line: Any) -> None:
    for key, target in (("num_processes", "gpus"), ("num_machines", "num_machines"),
                        ("main_process_port", "main_process_port"),
                        ("num_cpu_threads_per_process", "num_cpu_threads_per_process")):
        value = data.get(key)
        if _falsy(value):
            continue
        try:
            number = float(value)
            if number != int(number):
                raise ValueError
            draft.run[target] = int(number)
        except (TypeError, ValueError, OverflowError):
            draft.unmap(key, value, "LRC091", f"{key}: {raw_text(value)} is not an integer",
                        line=line(key), section="run")
    if data.get("multi_gpu") is True:
        draft.run.setdefault("accelerate_args", []).append("--multi_gpu")
    extra = data.get("extra_accelerate_launch_args")
    if isinstance(extra, str) and extra.strip():
        try:
            draft.run.setdefault("accelerate_args", []).extend(shlex.split(extra))
        except ValueError as exc:
            draft.unmap("extra_accelerate_launch_args", extra, "LRC091",
                        f"extra_accelerate_launch_args: {exc}", section="run",
                        line=line("extra_accelerate_launch_args"))
    gpu_ids = data.get("gpu_ids")
    if isinstance(gpu_ids, str) and gpu_ids.strip():
        draft.run.setdefault("accelerate_args", []).extend(["--gpu_ids", gpu_ids.strip()])


def _additional(draft: Draft, text: str, inventory: Any, line: int,
                settings: Settings) -> None:
    """``additional_parameters`` is raw command-line text: read it like the shell importer."""

    from pathlib import Path

    from lorac.importers.shell import Lit, parse_args
    from lorac.trainers.kohya.import_shell import _set_option

    try:
        words = shlex.split(text)
    except ValueError as exc:
        draft.unmap("additional_parameters", text, "LRC091", f"additional_parameters: {exc}",
                    line=line)
        return
    vals = [(Lit(w, draft.source, line),) for w in words]
    for name, values, wline in parse_args(draft, vals, inventory, line):
        _set_option(draft, inventory, name, values, wline, Path("."), settings)
