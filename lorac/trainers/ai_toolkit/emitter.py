"""The ``ai-toolkit`` backend: a job YAML for ostris/ai-toolkit (``python run.py job.yaml``).

The profile's kohya option names are mapped through ``backends/ai-toolkit/mapping.toml``
(lorac's own knowledge, as data); every target key is checked against the generated inventory
of ``toolkit/config_modules.py`` (:func:`lorac.config.inventory.load_ai_toolkit_keys`). What has no
ai-toolkit equivalent is reported (LRC608) and left out; ai-toolkit behaviour that overrides
what the profile says is reported too (LRC609).

The YAML is written with PyYAML plus a float representer that writes positional decimals
(``0.0001``): YAML 1.1 loaders read ``1e-4`` as a string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, KeyPath, LoracError, Severity
from lorac.lint.hookspecs import Artifacts, hookimpl
from lorac.lint.rules import Rule
from lorac.trainers import BUILD_DIR, CheckoutVar, run_env, shell_script
from lorac.trainers.ai_toolkit.archs import Arch, arch

#: Prefix of ``run.py`` in ``Artifacts.argv``: ``{ai_toolkit}/run.py``.
AI_TOOLKIT = "{ai_toolkit}"
#: How ``train.sh`` finds the ai-toolkit checkout.
CHECKOUT = CheckoutVar(AI_TOOLKIT, "toolkit", "LORAC_AI_TOOLKIT", "the ai-toolkit checkout")

PROCESS_ORDER = ("type", "training_folder", "device", "trigger_word", "network", "save",
                 "datasets", "train", "model", "sample")


def load_mapping(root: Path | None = None) -> dict[str, Any]:
    """``backends/ai-toolkit/mapping.toml`` (the profile → ai-toolkit key table)."""

    from lorac.config.inventory import load_backend_toml

    return load_backend_toml("ai-toolkit/mapping.toml", root)


def check_mapping(mapping: dict[str, Any] | None = None) -> list[str]:
    """Every mapped target that ai-toolkit's config classes do not read, as sentences."""

    from lorac.config.inventory import load_ai_toolkit_keys

    mapping = mapping or load_mapping()
    keys = load_ai_toolkit_keys()
    sections = mapping["sections"]
    problems = []
    targets = [(f"options.{k}", v.get("to")) for k, v in mapping["options"].items()]
    targets += [(f"dataset.{k}", v.get("to")) for k, v in mapping["dataset"].items()]
    for fam, entry in mapping["families"].items():
        for section in ("model", "train", "sample"):
            targets += [(f"families.{fam}", f"{section}.{k}") for k in entry.get(section, {})]
    for where, target in targets:
        if target is None:
            continue
        section, _, key = target.partition(".")
        key = key.split(".")[0]
        if section == "process":
            ok = key in mapping["process"]
        elif section == "config":
            ok = key == "name"
        else:
            ok = section in sections and keys.get(sections[section], key) is not None
        if not ok:
            problems.append(f"{where}: {target} is not a key ai-toolkit reads")
    return problems


# --------------------------------------------------------------------------- YAML


def yaml_float(value: float) -> str:
    """A float as a YAML 1.1 float literal that needs no exponent (``1e-4`` → ``0.0001``)."""

    import math
    from decimal import Decimal

    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def dump_yaml(data: Any) -> str:
    """YAML text that ``yaml.safe_load`` reads back as ``data`` (floats stay floats)."""

    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_float(dumper: yaml.SafeDumper, value: float) -> Any:
        return dumper.represent_scalar("tag:yaml.org,2002:float", yaml_float(value))

    Dumper.add_representer(float, represent_float)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=10_000)


# --------------------------------------------------------------------------- rules


class NoAiToolkitEquivalent(Rule):
    """What it does
    Reported by ``lorac build --backend ai-toolkit``: a profile option or dataset key that has
    no equivalent in ai-toolkit (per ``backends/ai-toolkit/mapping.toml``), or a value of it
    that ai-toolkit does not offer (an optimizer it lacks). The option is left out of the YAML.

    Why is this bad?
    The profile promises a setting the ai-toolkit run will not have (``discrete_flow_shift``,
    ``sigma`` timestep sampling, epochs …). Where ai-toolkit has a setting that comes close,
    the hint names it.

    Example
        [training]
        discrete_flow_shift = 3.1582

    Use instead
    Keep kohya-only options in a profile that builds for kohya, or accept the difference.

    Fix safety
    No fix.
    """

    code = "LRC608"
    name = "no-ai-toolkit-equivalent"
    severity = Severity.WARNING
    scope = "pipeline"


class AiToolkitOverride(Rule):
    """What it does
    Reported by ``lorac build --backend ai-toolkit`` when ai-toolkit will not do what the
    profile says: for FLUX, SD3, Lumina 2 and every class-based architecture (Qwen-Image, Wan,
    FLUX.2, Z-Image, … — ``peft_alpha_is_rank`` in ``backends/ai-toolkit/inventory/archs.json``)
    it saves LoRAs in PEFT format and overwrites the alpha with the rank
    (``toolkit/lora_special.py:423-430``), so an alpha other than the rank is ignored; and it
    loads those models from a diffusers-format folder or hub id
    (``toolkit/stable_diffusion_model.py:667``), not from a single ``.safetensors`` file.

    Why is this bad?
    ``network_alpha = 16`` with ``network_dim = 32`` means scale 0.5 on kohya and 1.0 on
    ai-toolkit: the same profile trains a LoRA twice as strong. A single-file model path makes
    the run stop after start-up.

    Example
        network_dim = 32
        network_alpha = 16
        pretrained_model_name_or_path = "/models/flux1-dev.safetensors"

    Use instead
        network_alpha = 32
        pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"

    Fix safety
    No fix.
    """

    code = "LRC609"
    name = "ai-toolkit-override"
    severity = Severity.WARNING
    scope = "pipeline"


# --------------------------------------------------------------------------- emitter


class _Out:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.diags: list[Diagnostic] = []

    def warn(self, code: str, message: str, kp: KeyPath, hint: str | None = None) -> None:
        rule = {"LRC608": NoAiToolkitEquivalent.name, "LRC609": AiToolkitOverride.name}[code]
        self.diags.append(self.profile.diagnostic(code, message, kp, rule=rule,
                                                  severity=Severity.WARNING, hint=hint))

    def error(self, code: str, message: str, kp: KeyPath, hint: str | None = None) -> None:
        """A finding of one of the ai-toolkit lint rules (LRC68x), as an error."""

        from lorac.trainers.ai_toolkit.rules.tables import RULES

        rule = {cls.code: cls.name for cls in RULES}.get(code, "")
        self.diags.append(self.profile.diagnostic(code, message, kp, rule=rule,
                                                  severity=Severity.ERROR, hint=hint))


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _route(tree: dict[str, Any], dataset_entry: dict[str, Any], to: str, value: Any) -> None:
    """Put a mapped value at ``to``: ``datasets.<key>`` into the dataset entry, anything else
    into the job tree."""

    if to.startswith("datasets."):
        dataset_entry[to.split(".", 1)[1]] = value
    else:
        _put(tree, to, value)


def _transform(spec: dict[str, Any], value: Any) -> tuple[bool, Any, str]:
    """``(ok, new value, why not)`` for one mapped value."""

    values = spec.get("values")
    if values is not None:
        if isinstance(value, str) and value in values:
            return True, values[value], ""
        if isinstance(value, str) and spec.get("ignore_case"):  # the trainer lower-cases it
            folded = {k.lower(): v for k, v in values.items()}
            if value.lower() in folded:
                return True, folded[value.lower()], ""
        return False, None, f"value {value!r} has no ai-toolkit equivalent " \
                            f"(mapped: {', '.join(values)})"
    transform = spec.get("transform")
    if transform == "single":
        if isinstance(value, list):
            if len(value) == 1:
                return True, value[0], ""
            return False, None, "ai-toolkit takes one value, not a list of several"
        return True, value, ""
    if transform == "key_value_list":
        out: dict[str, Any] = {}
        for item in value if isinstance(value, list) else [value]:
            key, sep, text = str(item).partition("=")
            if not sep:
                return False, None, f"item {item!r} is not key=value"
            out[key.strip()] = _literal(text.strip())
        return True, out, ""
    if transform == "int_only":
        if isinstance(value, int) and not isinstance(value, bool):
            return True, value, ""
        return False, None, "ai-toolkit takes a number of steps, not a ratio"
    if transform == "strip_dot":
        return True, str(value).lstrip("."), ""
    if transform == "resolution":
        if isinstance(value, int) and not isinstance(value, bool):
            return True, [value], ""
        if isinstance(value, list) and len(value) == 2 and value[0] == value[1]:
            return True, [value[0]], ""
        return False, None, "ai-toolkit resolutions are square sizes (a list means several " \
                            "bucket sizes, not width×height)"
    return True, value, ""


#: kohya prompt-file keys (``library/train_util.py`` ``sample_images_common``) → the flag
#: ai-toolkit's prompt parser reads (toolkit/config_modules.py:1396-1432).
PROMPT_FLAGS = {"negative_prompt": "n", "width": "w", "height": "h", "seed": "d",
                "scale": "l", "sample_steps": "s"}


def read_prompts_file(value: Any, profile: Profile) -> tuple[bool, Any, str]:
    """A kohya sample prompts file (``.txt``: one prompt a line, ``#`` comments; ``.toml`` /
    ``.json``: prompt tables) as ai-toolkit's list of prompt strings. A relative path is read
    from the current directory, as the trainer would."""

    import json

    import tomllib

    if not isinstance(value, str):
        return False, None, "not a file path"
    path = Path(value)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return False, None, f"cannot read {value} to inline its prompts " \
                            f"({exc.__class__.__name__})"
    if path.suffix.lower() == ".txt":
        prompts = [line.strip() for line in text.splitlines()]
        return True, [p for p in prompts if p and not p.startswith("#")], ""
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except ValueError as exc:
        return False, None, f"{value} is not a prompts file ({exc.__class__.__name__})"
    items = data.get("prompt", []) if isinstance(data, dict) else data
    prompts = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
            return False, None, f"{value}: every entry needs a prompt string"
        flags = [f"--{flag} {item[key]}" for key, flag in PROMPT_FLAGS.items() if key in item]
        prompts.append(" ".join([item["prompt"].strip(), *flags]))
    return True, prompts, ""


def _merge_resolutions(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dataset entries that differ in their resolution only, as one entry with the
    resolutions listed: sd-scripts needs one dataset per resolution, ai-toolkit buckets one
    folder at several (``DatasetConfig`` resolution list)."""

    merged: list[dict[str, Any]] = []
    for entry in entries:
        rest = {k: v for k, v in entry.items() if k != "resolution"}
        for other in merged:
            if {k: v for k, v in other.items() if k != "resolution"} == rest and \
                    "resolution" in other and "resolution" in entry:
                other["resolution"] = [*other["resolution"],
                                       *[r for r in entry["resolution"]
                                         if r not in other["resolution"]]]
                break
        else:
            merged.append(dict(entry))
    return merged


def _literal(text: str) -> Any:
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return text
    return value if isinstance(value, (int, float, str, bool, type(None))) else text


class AiToolkitBackend:
    """ostris/ai-toolkit: a ``job: extension`` YAML with one ``sd_trainer`` process."""

    name = "ai-toolkit"
    formats = ("yaml",)
    description = "ai-toolkit job YAML (python run.py job.yaml)"

    def emit(self, profile: Profile, fmt: str) -> Artifacts:
        """Compile ``profile`` into ``job.yaml`` (see the module docstring)."""

        if fmt not in self.formats:
            raise LoracError(f"backend ai-toolkit has no format {fmt!r}")
        mapping = load_mapping()
        arch_name, fam = self._arch(profile, mapping)
        model_arch = arch(arch_name)
        out = _Out(profile)
        tree: dict[str, Any] = {"process": {"type": "sd_trainer", "device": "cuda:0"},
                                "config": {"name": profile.name}}
        scheduler = "flowmatch" if model_arch.flowmatch else "ddpm"
        _put(tree, "model.arch", arch_name)
        _put(tree, "train.noise_scheduler", scheduler)
        _put(tree, "sample.sampler", scheduler)
        dataset_keys: dict[str, Any] = {}
        options = profile.options()
        env: dict[str, str] = {}
        for name, (value, kp) in options.items():
            spec = mapping["options"].get(name)
            if spec is None or "to" not in spec:
                nearest = (spec or {}).get("nearest")
                out.warn("LRC608", f"{name} has no ai-toolkit equivalent; it is left out", kp,
                         hint=f"nearest in ai-toolkit: {nearest}" if nearest else None)
                continue
            if spec.get("transform") == "prompts_file":
                ok, new, why = read_prompts_file(value, profile)
            else:
                ok, new, why = _transform(spec, value)
            if not ok:
                out.warn("LRC608", f"{name}: {why}; it is left out", kp)
                continue
            _route(tree, dataset_keys, spec["to"], new)
            if "env" in spec:
                env[spec["env"]] = str(value)
        trigger = self._trigger(profile, out)
        if trigger is not None:
            tree["process"]["trigger_word"] = trigger
        datasets = self._datasets(profile, mapping, tree, out)
        for entry in datasets:
            for key, value in dataset_keys.items():
                entry.setdefault(key, value)
        self._native(profile, mapping, tree, datasets, out)
        self._facts(profile, fam, model_arch, out)
        if profile.get("profile", "backend") == "musubi":
            _from_musubi(profile, mapping, model_arch, out)
        sample = tree.get("sample")
        if isinstance(sample, dict) and sample.get("prompts"):
            # ai-toolkit's default negative prompt is False (toolkit/config_modules.py:86), which
            # it encodes before training (extensions_built_in/sd_trainer/SDTrainer.py:254) and
            # transformers' tokenizers refuse: its own examples all set neg
            sample.setdefault("neg", "")
        from lorac.trainers.ai_toolkit.rules.gpus import several_gpus_finding

        several = several_gpus_finding(profile)  # LRC691: build and --backend too
        if several is not None:
            out.diags.append(several)

        process = tree["process"]
        network = tree.get("network", {})
        network.setdefault("type", "lora")
        process["network"] = network
        process["datasets"] = _merge_resolutions(datasets)
        for key in mapping["sections"]:
            if key not in ("network", "datasets") and key in tree:
                process[key] = tree[key]
        ordered = {k: process[k] for k in PROCESS_ORDER if k in process}
        ordered.update({k: v for k, v in process.items() if k not in ordered})
        name = tree["config"]["name"]
        job = {"job": "extension", "config": {"name": name, "process": [ordered]},
               "meta": {"name": "[name]", "version": "1.0"}}
        header = (f"Generated by lorac from {profile.path} (profile {profile.name}); do not "
                  "edit — change the profile and rebuild.")
        text = f"# {header}\n" + dump_yaml(job)
        argv = ["python", f"{AI_TOOLKIT}/run.py", f"{BUILD_DIR}/job.yaml"]
        script = shell_script(argv, {**env, **run_env(profile)}, header, CHECKOUT, (1, 2))
        return Artifacts(files={"job.yaml": text, "train.sh": script}, executable={"train.sh"},
                         argv=argv, diagnostics=out.diags, options=job, env=env)

    @staticmethod
    def _trigger(profile: Profile, out: _Out) -> str | None:
        """``[profile] trigger`` as ai-toolkit's ``trigger_word`` (one string,
        jobs/process/BaseSDTrainProcess.py:135)."""

        value = profile.get("profile", "trigger")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value:
            out.warn("LRC608", "trigger: ai-toolkit has one trigger_word, not a list of "
                     f"{len(value)}; it is left out", ("profile", "trigger"),
                     hint="ai-toolkit adds trigger_word to every caption that lacks it "
                     "(toolkit/dataloader_mixins.py:390-394)")
        return None

    def expected_modules(self, profile: Profile) -> tuple[int | None, str | None]:
        """How many modules ai-toolkit's LoRA wraps for ``profile`` built by this backend, or
        why lorac cannot say (see :mod:`lorac.trainers.module_count` and :func:`module_count`)."""

        try:
            job = self.emit(profile, self.formats[0]).options
        except LoracError as exc:
            return None, f"the profile does not build for ai-toolkit: {exc}"
        return module_count(profile, job)

    def launch_argv(self, argv: list[str], trainer: str | Path, build_dir: str | Path,
                    ) -> list[str]:
        """``argv`` with ``{ai_toolkit}`` and ``{build_dir}`` replaced by real paths (only the
        two elements the emitter made placeholders)."""

        out = list(argv)
        if len(out) >= 3 and out[1] == f"{AI_TOOLKIT}/run.py":
            out[1] = str(Path(trainer) / "run.py")
            out[2] = str(Path(build_dir) / out[2].removeprefix(f"{BUILD_DIR}/"))
        return out

    def _datasets(self, profile: Profile, mapping: dict[str, Any], tree: dict[str, Any],
                  out: _Out) -> list[dict[str, Any]]:
        data = profile.get("dataset")
        if not isinstance(data, dict):
            return []
        from lorac.trainers import dataset_groups

        general = {k: v for k, v in data.items() if k not in ("subsets", "datasets")}
        entries = []
        reported: set[KeyPath] = set()

        def skip(kp: KeyPath, message: str) -> None:  # each key path is reported once
            if kp not in reported:
                reported.add(kp)
                out.warn("LRC608", f"{message}; it is left out", kp)

        for base, own, subsets in dataset_groups(data):
            units: list[tuple[KeyPath, dict[str, Any], dict[str, Any]]] = [
                ((*base, "subsets", j), own, sub) for j, sub in enumerate(subsets)]
            if base != ("dataset",) and not subsets:  # musubi's shape: the dataset is the unit
                units = [(base, {}, own)]
            for sub_base, own_keys, sub in units:
                if not isinstance(sub, dict):
                    continue
                merged: dict[str, tuple[Any, KeyPath]] = {}
                for k, v in general.items():
                    merged[k] = (v, ("dataset", k))
                for k, v in own_keys.items():
                    merged[k] = (v, (*base, k))
                for k, v in sub.items():
                    merged[k] = (v, (*sub_base, k))
                entry: dict[str, Any] = {}
                for key, (value, kp) in merged.items():
                    spec = mapping["dataset"].get(key)
                    if spec is None or spec.get("implied", value) != value:
                        skip(kp, f"dataset key {key} has no ai-toolkit equivalent")
                        continue
                    if "implied" in spec:  # what ai-toolkit does anyway
                        continue
                    ok, new, why = _transform(spec, value)
                    if not ok:
                        skip(kp, f"dataset key {key}: {why}")
                        continue
                    _route(tree, entry, spec["to"], new)
                entries.append(entry)
        return entries

    @staticmethod
    def _native(profile: Profile, mapping: dict[str, Any], tree: dict[str, Any],
                datasets: list[dict[str, Any]], out: _Out) -> None:
        """ai-toolkit's own keys from the sub-tables of ``[trainers.ai-toolkit]``, written as
        they are; a key ai-toolkit does not read, or one a profile option already writes, is
        an error (:mod:`lorac.trainers.ai_toolkit.tables`)."""

        from lorac.config.trainer_values import native
        from lorac.trainers.ai_toolkit.tables import TRAINER, problems

        bad = set()
        for problem in problems(profile, mapping, options=False):
            bad.add(problem.key_path)
            out.error(problem.code, problem.message, problem.key_path, problem.hint)
        for section, table in native(profile, TRAINER).items():
            for key, value in table.items():
                if ("trainers", TRAINER, section, key) in bad:
                    continue
                if section == "datasets":
                    for entry in datasets:
                        entry[key] = value
                elif section == "process":
                    tree["process"][key] = value
                else:
                    _put(tree, f"{section}.{key}", value)

    @staticmethod
    def _arch(profile: Profile, mapping: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The arch to train as: the family's (``mapping.toml``), or ``arch`` of the profile's
        ``[trainers.ai-toolkit.model]`` table; an arch ai-toolkit does not know is an error."""

        fam = mapping["families"].get(profile.family or "") or {}
        chosen = profile.get("trainers", "ai-toolkit", "model", "arch")
        if isinstance(chosen, str) and chosen:
            arch(chosen)  # raises for an unknown arch, with the closest names
            return chosen, fam
        if not fam:
            known = ", ".join(sorted(mapping["families"]))
            what = (f"family {profile.family!r} has no ai-toolkit arch" if profile.family
                    else "profile has no [profile] family")
            raise LoracError(f"profile {profile.name!r}: {what}; set a family ai-toolkit trains "
                             f"({known}) or arch in [trainers.ai-toolkit]")
        return fam["arch"], fam

    def _facts(self, profile: Profile, fam: dict[str, Any], spec: Arch, out: _Out) -> None:
        arch = spec.name
        options = profile.options()
        if spec.peft_alpha_is_rank and "network_alpha" in options:
            alpha, kp = options["network_alpha"]
            dim = options.get("network_dim", (4, ()))[0]
            if alpha != dim:
                out.warn("LRC609", f"network_alpha is {alpha} but ai-toolkit overwrites the "
                         f"alpha with the rank ({dim}) for {arch} "
                         f"({spec.at('peft_alpha_is_rank')}): the LoRA trains with scale 1, "
                         "not alpha/rank", kp,
                         hint=f"set network_alpha = {dim} to train the same LoRA on both "
                         "backends")
        model = options.get("pretrained_model_name_or_path")
        if fam.get("diffusers_folder") and model and isinstance(model[0], str) and \
                model[0].lower().endswith(".safetensors"):
            out.warn("LRC609", f"ai-toolkit loads {arch} from a diffusers-format folder or hub "
                     "id (toolkit/stable_diffusion_model.py:667), not a single .safetensors "
                     "file", model[1], hint="point pretrained_model_name_or_path at the "
                     "diffusers folder (with transformer/ inside) or a hub id")


class AiToolkitModelMissing(Rule):
    """What it does
    Reported by ``lorac build --backend ai-toolkit`` for a profile that names no
    ``pretrained_model_name_or_path`` — a profile written for musubi-tuner names its model
    files instead (``dit``, ``vae``, ``t5`` …), which ai-toolkit does not read.

    Why is this bad?
    ai-toolkit loads the whole model from ``model.name_or_path``, a diffusers-format folder or
    hub id (toolkit/stable_diffusion_model.py:667); without it the job stops at start-up.

    Example
        [profile]
        backend = "musubi"
        family = "wan2.1-t2v-1.3b"
        [model]
        dit = "/models/wan2.1_t2v_1.3B_bf16.safetensors"

    Use instead
        [trainers.ai-toolkit]
        pretrained_model_name_or_path = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"

    Fix safety
    No fix.
    """

    code = "LRC692"
    name = "ai-toolkit-model-missing"
    severity = Severity.ERROR
    scope = "pipeline"


def _from_musubi(profile: Profile, mapping: dict[str, Any], spec: Arch, out: _Out) -> None:
    """A profile written for musubi-tuner: what ai-toolkit reads with another meaning, once
    per key, with the reading code in both trainers (``[from]`` of ``mapping.toml``); and the
    model, which ai-toolkit takes from ``pretrained_model_name_or_path`` only (LRC692)."""

    mus, ait = mapping["from"]["musubi"], mapping["from"]["ai-toolkit"]
    options = profile.options()
    arch = spec.name
    if "pretrained_model_name_or_path" not in options:
        files = [f"{n} = {options[n][0]}" for n in mus["model_files"] if n in options]
        out.diags.append(profile.diagnostic(
            AiToolkitModelMissing.code, f"ai-toolkit loads {arch} from "
            "pretrained_model_name_or_path (a diffusers folder or hub id), which the profile "
            f"does not set; musubi-tuner's model files ({', '.join(files) or 'none'}) are not "
            "read", ("model", "pretrained_model_name_or_path"), rule=AiToolkitModelMissing.name,
            severity=Severity.ERROR,
            hint='[trainers.ai-toolkit] pretrained_model_name_or_path = "…" (the same model)'))
    values = mapping["options"]["network_module"]["values"]
    if "network_module" in options and options["network_module"][0] in values:
        value, kp = options["network_module"]  # one without a mapping is LRC608's
        out.warn("LRC609", f"network_module {value}: musubi-tuner attaches the LoRA to "
                 f"{mus['network']}; ai-toolkit to {ait['network']}, so the module count "
                 "differs", kp)
    dim = options.get("network_dim", (None, None))[0]
    if "network_alpha" not in options and spec.peft_alpha_is_rank:
        out.warn("LRC609", f"network_alpha is unset: musubi-tuner's default alpha is 1 "
                 f"({mus['alpha_default']}), a scale of 1/{dim or 'rank'}; ai-toolkit trains "
                 f"{arch} with alpha = rank, scale 1 ({ait['peft_alpha']})",
                 ("network", "network_alpha"), hint=f"network_alpha = {dim}" if dim else None)
    if "timestep_sampling" not in options:
        out.warn("LRC609", f"timestep_sampling is unset: musubi-tuner samples by 'sigma' "
                 f"({mus['timestep_default']}); ai-toolkit by timestep_type 'sigmoid' "
                 f"({ait['timestep_default']})", ("training", "timestep_sampling"))
    elif options["timestep_sampling"][0] in ("shift", "flux_shift") and \
            "discrete_flow_shift" not in options:
        out.warn("LRC609", f"timestep_sampling = {options['timestep_sampling'][0]!r}: "
                 f"musubi-tuner shifts by discrete_flow_shift, 1.0 unless set "
                 f"({mus['flow_shift']}); ai-toolkit by the scheduler's own shift of {arch} "
                 f"({ait['timestep_shift']})", options["timestep_sampling"][1])
    if "mixed_precision" in options:
        value, kp = options["mixed_precision"]
        out.warn("LRC609", f"mixed_precision = {value!r}: musubi-tuner autocasts with it and "
                 f"keeps the DiT in dit_dtype ({mus['mixed_precision']}); ai-toolkit loads "
                 f"and trains the whole model in that dtype ({ait['dtype']})", kp)
    if options.get("fp8_base", (False,))[0] is True:
        out.warn("LRC609", f"fp8_base: musubi-tuner casts the DiT to float8_e4m3fn "
                 f"({mus['fp8']}); ai-toolkit quantizes it to qfloat8 ({ait['quantize']})",
                 options["fp8_base"][1])
    if profile.get("profile", "trigger"):
        out.warn("LRC609", f"trigger: musubi-tuner trains on the captions as they are; "
                 f"ai-toolkit adds the trigger word to every caption that lacks it "
                 f"({ait['trigger']})", ("profile", "trigger"))
    data = profile.get("dataset")
    for i, ds in enumerate(data.get("datasets") or [] if isinstance(data, dict) else []):
        if isinstance(ds, dict) and "target_frames" in ds and "video_directory" in ds:
            out.warn("LRC609", f"target_frames: musubi-tuner takes {mus['frames']}; ai-toolkit "
                     f"{ait['frames']}", ("dataset", "datasets", i, "target_frames"))


@hookimpl
def lorac_rules() -> list[Rule]:
    """The ai-toolkit emitter's diagnostics, as rules (for explain and selection)."""

    return [NoAiToolkitEquivalent(), AiToolkitOverride(), AiToolkitModelMissing()]


@hookimpl
def lorac_backends() -> list[AiToolkitBackend]:
    """The ai-toolkit backend."""

    return [AiToolkitBackend()]


#: ai-toolkit network keys that change which modules get a LoRA (toolkit/config_modules.py).
MODULE_KEYS = ("transformer_only", "only_if_contains", "ignore_if_contains", "network_kwargs",
               "conv", "full_if_contains", "all_layers", "lorm_config")


def module_count(profile: Profile, job: Any, *, tiny: bool = False
                 ) -> tuple[int | None, str | None]:
    """How many modules ai-toolkit's LoRA wraps for ``profile`` built into ``job`` (the emitted
    YAML as data), or why lorac cannot say: the layers of :func:`lorac.trainers.ai_toolkit.synth.
    lora_modules` for the families lorac models, with a plain ``lora`` network of default module
    choice. ``tiny``: the count for lorac's tiny synthetic set of the family."""

    from lorac.trainers.ai_toolkit.synth import FAMILIES, lora_modules

    try:
        network = job["config"]["process"][0]["network"]
    except (KeyError, IndexError, TypeError):
        return None, "the job has no network"
    if profile.family not in FAMILIES:
        return None, ("ai-toolkit wraps the layers its model class lists in target_lora_modules "
                      "(toolkit/lora_special.py); lorac models them for "
                      f"{', '.join(FAMILIES)} only, not {profile.family or 'this profile'}")
    if not isinstance(network, dict) or network.get("type", "lora") != "lora":
        return None, "a network type other than lora wraps other layers"
    changed = [k for k in MODULE_KEYS if k in network]
    if changed:
        return None, f"network keys {', '.join(changed)} change which layers get a LoRA"
    return len(lora_modules(profile.family, tiny=tiny)), None
