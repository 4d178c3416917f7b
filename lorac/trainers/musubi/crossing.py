"""A profile written for another trainer, built for musubi-tuner.

``lorac build X --backend musubi`` of a profile whose ``[profile] backend`` names another
trainer (ai-toolkit) translates it instead of refusing what musubi lacks: every option and
dataset key either carries over (as it is, or under musubi's name) or is reported once, at its
position, with what musubi does instead:

- the model: musubi loads the family's model *files* (``dit``, the text encoder, ``vae``, from
  the shared sections or ``[trainers.musubi]``); ``pretrained_model_name_or_path`` (a diffusers
  folder or hub id) is not read, and a missing file is an error (LRC661) — no model is invented;
- options none of the three scripts has, and keys of the other trainer's own tables, are left
  out (LRC671), with musubi's nearest option as a hint;
- values musubi reads with another meaning (alpha, timesteps, precision, fp8, the network module,
  the trigger, defaults the profile leaves unset) are reported with the reading code in both
  trainers (LRC672);
- sd-scripts-style ``[[dataset.subsets]]`` become musubi ``[[dataset.datasets]]``.

The facts and their file:line are data: ``backends/musubi/crossing.toml``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, KeyPath, Severity
from lorac.lint.rules import Rule
from lorac.trainers.musubi import knowledge

ATTENTION = ("sdpa", "flash_attn", "flash3", "xformers", "sage_attn")
#: Network modules that detect the architecture themselves (networks/network_arch.py:8).
ANY_ARCH = ("networks.loha", "networks.lokr")


class NoMusubiEquivalent(Rule):
    """What it does
    Reported by ``lorac build --backend musubi`` for a profile written for another trainer
    (``[profile] backend = "ai-toolkit"``): an option or dataset key that none of the family's
    three musubi-tuner scripts reads, or a key of the other trainer's own table
    (``[trainers.ai-toolkit.train] timestep_type``). It is left out; the hint names musubi's
    nearest option where there is one (``backends/musubi/crossing.toml``).

    Why is this bad?
    The run on musubi-tuner will not have that setting. A profile written for musubi gets
    LRC650 instead, an error.

    Example
        [profile]
        backend = "ai-toolkit"
        [trainers.ai-toolkit.train]
        timestep_type = "weighted"

    Use instead
    Set musubi's own option in ``[trainers.musubi]`` (``timestep_sampling = "shift"``), or
    accept the difference.

    Fix safety
    No fix.
    """

    code = "LRC671"
    name = "no-musubi-equivalent"
    severity = Severity.WARNING
    scope = "pipeline"


class MusubiMeaningChange(Rule):
    """What it does
    Reported by ``lorac build --backend musubi`` for a profile written for another trainer: a
    value that musubi-tuner reads with another meaning than that trainer, once per key, with
    the code that reads it in both — ``network_alpha`` (ai-toolkit trains these models with
    alpha = rank, musubi scales by alpha/rank and defaults alpha to 1), the timestep sampling
    and its shift, ``mixed_precision``, ``fp8_base``, the network module (replaced by the
    family's own), the trigger word, and keys musubi does itself (text-encoder caching).

    Why is this bad?
    The same profile trains a different LoRA on the other trainer: twice as strong, on other
    timesteps, in another precision. The build says so instead of leaving it to be found in the
    results.

    Example
        [profile]
        backend = "ai-toolkit"
        family = "wan2.1-t2v-1.3b"
        [network]
        network_dim = 16          # network_alpha unset: rank on ai-toolkit, 1 on musubi

    Use instead
        network_alpha = 16

    Fix safety
    No fix.
    """

    code = "LRC672"
    name = "musubi-meaning-change"
    severity = Severity.WARNING
    scope = "pipeline"


RULES = (NoMusubiEquivalent, MusubiMeaningChange)


class _ModelFileMissing(Rule):
    """LRC661 (``rules/checks.py``, which imports the emitter), as the build reports it."""

    code = "LRC661"
    name = "musubi-model-file-missing"


@functools.lru_cache(maxsize=1)
def facts() -> dict[str, Any]:
    """``backends/musubi/crossing.toml`` (cached; do not mutate)."""
    from lorac.config import inventory

    return inventory.load_backend_toml("musubi/crossing.toml")


def source_of(profile: Profile) -> str | None:
    """The trainer the profile is written for, when it names one other than musubi."""
    value = profile.get("profile", "backend")
    return value if isinstance(value, str) and value and value != "musubi" else None


def model_files(p: knowledge.Plan) -> list[tuple[str, str]]:
    """``(option, step)`` of each model file the family's steps need (as LRC661 counts)."""
    needed: list[tuple[str, str]] = [("dit", "train")]
    for step in ("text_encoder", "latents"):
        needed += [(n, step) for n in p.arch["steps"][step]["required"] if n != "dataset_config"]
    if p.family.architecture != "hidream_o1":  # pixels, no VAE
        needed.append(("vae", "latents"))
    needed += [(n, "latents") for n in p.family.latents_required]
    out: list[tuple[str, str]] = []
    for name, step in needed:
        if name not in p.family.variant and all(name != n for n, _ in out):
            out.append((name, step))
    return out


class _Report:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.diags: list[Diagnostic] = []
        self.seen: set[KeyPath] = set()

    def add(self, rule: type[Rule], kp: KeyPath, message: str, hint: str | None = None,
            severity: Severity | None = None) -> None:
        if tuple(kp) in self.seen:
            return
        self.seen.add(tuple(kp))
        self.diags.append(self.profile.diagnostic(
            rule.code, message, kp, rule=rule.name, severity=severity or rule.severity,
            hint=hint))


def translate(profile: Profile, p: knowledge.Plan) -> tuple[Profile, list[Diagnostic]]:
    """``profile`` as musubi-tuner's equivalent and the findings of the translation (see the
    module docstring); a profile written for musubi (or for no trainer) comes back as it is."""

    source = source_of(profile)
    if source is None:
        return profile, []
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in profile.data.items()}
    provenance = dict(profile.provenance)
    rep = _Report(profile)
    options = profile.options()
    cite_src = facts().get("cite", {}).get(source, {})
    who = f"on {source}"
    in_steps = {name for s in knowledge.STEPS for name in p.inventories[s].options}

    def drop(name: str) -> None:
        section = options[name][1][0]
        table = data.get(section)
        if isinstance(table, dict):
            table.pop(name, None)

    def put(name: str, value: Any, section: str) -> KeyPath:
        """Add an option musubi needs; its key path names it (its position: the section's)."""
        data.setdefault(section, {})[name] = value
        return (section, name)

    implied = facts()["implied"]
    for name, (value, kp) in options.items():
        if name == "pretrained_model_name_or_path":
            drop(name)
            continue  # reported with the model files below
        if name in implied:
            drop(name)
            if value is False:
                rep.add(MusubiMeaningChange, kp, f"{name} = false: musubi-tuner caches anyway "
                        f"({implied[name]}); it is left out")
            else:
                rep.add(MusubiMeaningChange, kp, f"{name} carries over as musubi's own "
                        f"behaviour: {implied[name]}", severity=Severity.INFO)
            continue
        if name == "network_module":
            expected = p.arch["network_module"]
            if value != expected and value not in ANY_ARCH and not (
                    isinstance(value, str) and value.startswith("lycoris")):
                data[kp[0]]["network_module"] = expected
                rep.add(MusubiMeaningChange, kp,
                        f"network_module {value} becomes {expected}: {who} the LoRA goes where "
                        f"that trainer puts it ({cite_src.get('network', source)}); musubi "
                        f"attaches it to the blocks {expected} targets ({_module_at(expected)})"
                        ", so the module count differs", hint=f'network_module = "{expected}"')
            continue
        if name not in in_steps:
            drop(name)
            rep.add(NoMusubiEquivalent, kp, f"{name} has no musubi-tuner equivalent for "
                    f"{p.family.name} (none of {', '.join(_names(p))} reads it); it is left "
                    "out")
            continue
    _meanings(profile, p, options, source, rep, put)
    _models(profile, p, options, rep)
    _native(profile, source, rep)
    _dataset(profile, p, data, provenance, rep)
    out = dataclasses.replace(profile, data=data, provenance=provenance, _options=None)
    return out, rep.diags


def _module_at(module: str) -> str:
    info = knowledge.network_modules().get(module) or {}
    return f"{info['file']}:{info['create_arch_network']}" if info else module


def _names(p: knowledge.Plan) -> list[str]:
    return [s.rsplit("/", 1)[-1] for s in p.scripts.values()]


def _meanings(profile: Profile, p: knowledge.Plan, options: dict[str, tuple[Any, KeyPath]],
              source: str, rep: _Report, put: Any) -> None:
    """What changes in meaning for values musubi reads, and for the defaults of values the
    profile leaves unset (each reported once, at the value or at ``[profile] family``)."""

    cite_src = facts().get("cite", {}).get(source, {})
    cite = facts()["cite"]["musubi"]
    if source != "ai-toolkit":
        return  # musubi and sd-scripts train no family in common (crossing.toml)
    dim = options.get("network_dim", (None, None))[0]
    if "network_alpha" in options:
        alpha, kp = options["network_alpha"]
        if alpha != dim:
            rep.add(MusubiMeaningChange, kp,
                    f"network_alpha = {alpha} with network_dim = {dim}: ai-toolkit saves "
                    f"{p.family.name} in PEFT format and trains with alpha = rank, scale 1 "
                    f"({cite_src['peft_alpha']}); musubi-tuner scales by alpha/rank = "
                    f"{_ratio(alpha, dim)} ({cite['alpha_scale']})",
                    hint=f"network_alpha = {dim} trains the same LoRA on both")
    else:
        rep.add(MusubiMeaningChange, ("network", "network_alpha"),
                f"network_alpha is unset: ai-toolkit trains with alpha = rank "
                f"({cite_src['peft_alpha']}); musubi-tuner's default alpha is 1 "
                f"({cite['alpha_default']}), a scale of 1/{dim or 'rank'}",
                hint=f"network_alpha = {dim}" if dim else "set network_alpha = network_dim")
    shift = "" if "discrete_flow_shift" in options else \
        f", discrete_flow_shift 1.0 unless set ({cite['flow_shift']})"
    if "timestep_sampling" in options:
        value, kp = options["timestep_sampling"]
        if value in ("shift", "flux_shift"):
            rep.add(MusubiMeaningChange, kp,
                    f"timestep_sampling = {value!r}: ai-toolkit shifts by the scheduler's own "
                    f"shift of the model ({cite_src['timestep_shift']}); musubi-tuner by "
                    f"discrete_flow_shift{shift}",
                    hint="set discrete_flow_shift (3.0 is Wan's scheduler shift)")
    else:
        native = profile.get("trainers", source, "train", "timestep_type")
        said = f"timestep_type {native!r}" if isinstance(native, str) else \
            f"timestep_type 'sigmoid' by default ({cite_src['timestep_default']})"
        rep.add(MusubiMeaningChange, ("training", "timestep_sampling"),
                f"timestep_sampling is unset: ai-toolkit samples timesteps by {said}; "
                f"musubi-tuner by 'sigma' ({cite['timestep_default']})",
                hint='set timestep_sampling (e.g. "sigmoid") in [trainers.musubi] or the '
                     "shared sections")
    if "discrete_flow_shift" in options:
        rep.add(MusubiMeaningChange, options["discrete_flow_shift"][1],
                "discrete_flow_shift: ai-toolkit has no such number and ignores it "
                f"({cite_src['timestep_shift']}); musubi-tuner shifts timesteps by it "
                f"({cite['flow_shift']})")
    if "mixed_precision" in options:
        value, kp = options["mixed_precision"]
        rep.add(MusubiMeaningChange, kp,
                f"mixed_precision = {value!r}: ai-toolkit loads and trains the model in that "
                f"dtype ({cite_src['dtype']}); musubi-tuner uses it for autocast and the "
                f"network, and keeps the DiT in dit_dtype (bfloat16 unless set) "
                f"({cite['mixed_precision']})")
    if options.get("fp8_base", (False,))[0] is True:
        kp = options["fp8_base"][1]
        qtype = profile.get("trainers", source, "model", "qtype")
        rep.add(MusubiMeaningChange, kp,
                f"fp8_base: ai-toolkit quantizes the model to {qtype or 'qfloat8'} "
                f"({cite_src['quantize']}); musubi-tuner casts its weights to float8_e4m3fn, "
                f"scaled per block only with fp8_scaled ({cite['fp8']})",
                hint="add fp8_scaled = true in [trainers.musubi] for the closer scaled fp8"
                if "fp8_scaled" not in options else None)
    if not any(options.get(a, (False,))[0] is True for a in ATTENTION):
        rep.add(MusubiMeaningChange, put("sdpa", True, "training"),
                "no attention option: musubi-tuner stops without one "
                f"({cite['attention']}); sdpa = true is given, the attention ai-toolkit's "
                "diffusers models use", severity=Severity.INFO)
    if "output_name" not in options:
        rep.add(MusubiMeaningChange, put("output_name", profile.name, "saving"),
                f"output_name is unset: ai-toolkit names the LoRA after the profile "
                f"({cite_src['output_name']}); musubi-tuner needs one ({cite['output_name']}): "
                f"output_name = {profile.name!r} is given", severity=Severity.INFO)
    trigger = profile.get("profile", "trigger")
    if trigger:
        rep.add(MusubiMeaningChange, ("profile", "trigger"),
                f"trigger: ai-toolkit adds the trigger word to every caption that lacks it "
                f"({cite_src['trigger']}); musubi-tuner trains on the captions as they are",
                hint="put the trigger into the caption files")


def _ratio(alpha: Any, dim: Any) -> str:
    try:
        return f"{float(alpha) / float(dim):g}"
    except (TypeError, ValueError, ZeroDivisionError):
        return "?"


def _models(profile: Profile, p: knowledge.Plan, options: dict[str, tuple[Any, KeyPath]],
            rep: _Report) -> None:
    """The family's model files, which musubi reads instead of
    ``pretrained_model_name_or_path``: each one missing is named in one error."""

    given = options.get("pretrained_model_name_or_path")
    kp = given[1] if given else ("profile", "family")
    missing = [(n, s) for n, s in model_files(p) if n not in options]
    named = f" (the model named here, {given[0]})" if given else ""
    if missing:
        where = ", ".join(f"{n} ({_location(p, s, n)})" for n, s in missing)
        rep.add(_ModelFileMissing, kp,
                f"musubi-tuner loads {p.family.name} from files, not a diffusers folder or hub "
                f"id{named}: set {where} in [trainers.musubi]",
                hint="[trainers.musubi] " + ", ".join(f'{n} = "…"' for n, _ in missing),
                severity=Severity.ERROR)
    elif given:
        files = ", ".join(f"{n} = {options[n][0]}" for n, _ in model_files(p))
        rep.add(MusubiMeaningChange, kp,
                f"pretrained_model_name_or_path is not read by musubi-tuner: it loads "
                f"{p.family.name} from {files}", severity=Severity.INFO)


def _location(p: knowledge.Plan, step: str, name: str) -> str:
    opt = p.inventories[step].options.get(name)
    return opt.location if opt is not None else p.scripts[step]


def _native(profile: Profile, source: str, rep: _Report) -> None:
    """Each key of the source trainer's own tables, reported once (only it reads them)."""

    from lorac.config.trainer_values import native

    hints = facts().get("native", {}).get(source, {})
    for section, table in native(profile, source).items():
        for key in table:
            nearest = hints.get(f"{section}.{key}")
            rep.add(NoMusubiEquivalent, ("trainers", source, section, key),
                    f"{source}'s own key {section}.{key} is not read by musubi-tuner",
                    hint=f"nearest in musubi-tuner: {nearest}" if nearest else None)


def _dataset(profile: Profile, p: knowledge.Plan, data: dict[str, Any],
             provenance: dict[Any, Any], rep: _Report) -> None:
    """``[dataset]`` in musubi's shape: each sd-scripts subset becomes one
    ``[[dataset.datasets]]`` (its dataset's keys and its own), keys renamed where musubi has
    another name; every other key is reported and left out."""

    from lorac.trainers import dataset_groups

    src = profile.get("dataset")
    if not isinstance(src, dict):
        return
    levels = knowledge.dataset_schema()["levels"]
    general_keys, image_keys, video_keys = (set(levels[k]["keys"])
                                            for k in ("general", "image", "video"))
    rename = facts()["dataset_rename"]
    cite = facts()["cite"]["musubi"]
    source = source_of(profile) or ""
    cite_src = facts().get("cite", {}).get(source, {})

    def left_out(key: str, kp: KeyPath) -> None:
        hint = None
        if key == "class_tokens":
            hint = (f"{source} captions an image without a caption file with it "
                    f"({cite_src.get('default_caption', source)}); musubi-tuner skips such "
                    f"images ({cite['captions']})")
        rep.add(NoMusubiEquivalent, kp, f"dataset key {key} has no musubi-tuner equivalent; "
                "it is left out", hint=hint)

    general: dict[str, Any] = {}
    for key, value in src.items():
        if key in ("subsets", "datasets"):
            continue
        if key in general_keys:
            general[key] = value
        else:
            left_out(key, ("dataset", key))
    datasets: list[dict[str, Any]] = []
    for base, own, subsets in dataset_groups(src):
        units: list[tuple[list[tuple[str, Any, KeyPath]], dict[str, Any]]] = []
        if base != ("dataset",) and not subsets:  # musubi's shape: the dataset is one
            units.append(([(k, v, (*base, k)) for k, v in own.items()], own))
        for j, sub in enumerate(subsets):
            if isinstance(sub, dict):
                units.append(([(k, v, (*base, k)) for k, v in own.items()]
                              + [(k, v, (*base, "subsets", j, k)) for k, v in sub.items()],
                              {**own, **sub}))
        for items, merged in units:
            video = "video_directory" in merged or "video_jsonl_file" in merged
            entry: dict[str, Any] = {}
            for key, value, kp in items:
                name = rename.get(key, key)
                if name in (video_keys if video else image_keys):
                    entry[name] = value
                    where = profile.provenance.get(tuple(kp))
                    if where is not None:
                        provenance[("dataset", "datasets", len(datasets), name)] = where
                else:
                    left_out(key, kp)
            datasets.append(entry)
    data["dataset"] = {**general, "datasets": datasets}
