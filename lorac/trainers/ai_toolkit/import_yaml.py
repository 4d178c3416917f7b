"""Import an ai-toolkit job YAML (``config.process[0]`` of type ``sd_trainer``).

The YAML is read with ``yaml.safe_load`` only (``!!python/...`` tags are refused), after a
bounded walk of the composed node graph so an alias bomb is refused instead of expanded. Keys
map back to kohya names (``network.linear`` → ``network_dim``, ``train.lr`` →
``learning_rate``, ``train.steps`` → ``max_train_steps``, ``datasets[].folder_path`` →
``image_dir`` …); a key without an sd-scripts equivalent that ai-toolkit reads is kept for
ai-toolkit only in ``[trainers.ai-toolkit.<section>]`` (``model.arch`` too, when the family
does not say it), so that building the profile for ai-toolkit gives the job back; any other key
is reported and kept as a comment. Only training jobs are imported (``job: extension`` with an
``sd_trainer``/``diffusion_trainer`` process); one without a ``network`` (a full fine-tune) is
imported as a LoRA, with a warning. A dataset
with several resolutions becomes one ``[[dataset.datasets]]`` entry per resolution, the way
sd-scripts trains several resolutions.
"""

from __future__ import annotations

import re
from typing import Any

from lorac.core.diagnostics import LoracError, Severity
from lorac.importers import (
    Draft,
    Settings,
    Source,
    Value,
    flux_family,
    inventory_for,
    line_of_key,
    model_kind,
    set_checked,
)

MAX_NODES = 100_000
#: a float written with an exponent and no dot, which YAML 1.1 reads as a string
EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_MISSING = object()

#: (block, ai-toolkit key) → kohya option
OPTIONS = {
    ("network", "linear"): "network_dim", ("network", "rank"): "network_dim",
    ("network", "linear_alpha"): "network_alpha", ("network", "alpha"): "network_alpha",
    ("network", "dropout"): "network_dropout",
    ("network", "pretrained_lora_path"): "network_weights",
    ("train", "lr"): "learning_rate", ("train", "steps"): "max_train_steps",
    ("train", "batch_size"): "train_batch_size",
    ("train", "gradient_accumulation_steps"): "gradient_accumulation_steps",
    ("train", "gradient_accumulation"): "gradient_accumulation_steps",
    ("train", "gradient_checkpointing"): "gradient_checkpointing",
    ("train", "optimizer"): "optimizer_type", ("train", "lr_scheduler"): "lr_scheduler",
    ("train", "max_grad_norm"): "max_grad_norm", ("train", "min_snr_gamma"): "min_snr_gamma",
    ("train", "noise_offset"): "noise_offset", ("train", "dtype"): "mixed_precision",
    ("train", "train_text_encoder"): None,
    ("train", "noise_scheduler"): None, ("train", "timestep_type"): "timestep_sampling",
    ("sample", "sampler"): None,
    ("model", "name_or_path"): "pretrained_model_name_or_path",
    ("save", "dtype"): "save_precision", ("save", "save_every"): "save_every_n_steps",
    ("sample", "sample_every"): "sample_every_n_steps",
    ("training_folder",): "output_dir", ("name",): "output_name",
}
#: ai-toolkit optimizer names → sd-scripts optimizer_type
OPTIMIZERS = {"adamw8bit": "AdamW8bit", "adamw": "AdamW", "adam8bit": "AdamW8bit",
              "prodigy": "Prodigy", "adafactor": "Adafactor", "lion": "Lion",
              "lion8bit": "Lion8bit", "sgd": "SGDNesterov", "dadaptation": "DAdaptation"}
DTYPES = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16",
          "fp32": "no", "float32": "no", "float": "no"}
SAVE_DTYPES = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16",
               "fp32": "float", "float32": "float", "float": "float"}
#: datasets[] key → (kohya dataset-config key, level)
DATASET_KEYS = {"folder_path": ("image_dir", "subset"),
                "caption_ext": ("caption_extension", "subset"),
                "caption_dropout_rate": ("caption_dropout_rate", "subset"),
                "shuffle_tokens": ("shuffle_caption", "subset"),
                "keep_tokens": ("keep_tokens", "subset"),
                "num_repeats": ("num_repeats", "subset"), "is_reg": ("is_reg", "subset"),
                "flip_x": ("flip_aug", "subset"), "random_crop": ("random_crop", "subset"),
                "batch_size": ("batch_size", "dataset")}
DATASET_OPTIONS = {"cache_latents_to_disk": "cache_latents_to_disk",
                   "cache_latents": "cache_latents"}
IGNORED: set[tuple[str, ...]] = set()
#: the process types that train a network (extensions_built_in/sd_trainer/__init__.py:8,44)
TRAINER_TYPES = ("sd_trainer", "diffusion_trainer")
#: what the emitter writes anyway: kept only when the job says otherwise
EMITTED = {("type",): "sd_trainer", ("device",): "cuda:0"}
TRAINER = "ai-toolkit"


def load_yaml(source: Source) -> Any:
    """``yaml.safe_load`` with a bound on alias expansion; errors raise :class:`LoracError`."""

    import yaml

    # the safe loader, in C when libyaml is there (the Python one takes seconds per MiB);
    # one parse: the node tree is bounded first, then constructed
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc,valid-type]
        """ai-toolkit reads ``1e-4`` as a float (toolkit/config.py:54-65): so does lorac."""

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT,
                                 list("-+0123456789"))
    loader = Loader(source.text)
    try:
        node = loader.get_single_node()
        _bounded(node, source)
        return _string_keys(loader.construct_document(node) if node is not None else None)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise LoracError(f"{source.display}{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise LoracError(f"{source.display}: invalid YAML: {exc.__class__.__name__}") from None
    except RecursionError:
        raise LoracError(f"{source.display}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _string_keys(value: Any) -> Any:
    """``value`` with every mapping key a string (YAML keys may be null, numbers, dates)."""

    if isinstance(value, dict):
        return {k if isinstance(k, str) else _key_text(k): _string_keys(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def _key_text(key: Any) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _bounded(node: Any, source: Source) -> None:
    import yaml

    count = 0
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise LoracError(f"{source.display}: YAML expands to more than {MAX_NODES} values "
                             "(aliases nested too deep?); refusing to read it")
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def read(source: Source, settings: Settings) -> Draft:
    """Read ``source`` as an ai-toolkit job YAML."""

    data = load_yaml(source)
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise LoracError(f"{source.display}: not an ai-toolkit job (no `config:` mapping)")
    processes = data["config"].get("process")
    if not isinstance(processes, list) or not processes or not isinstance(processes[0], dict):
        raise LoracError(f"{source.display}: config.process must be a list of mappings")
    job = data.get("job", "extension")
    if job != "extension":
        raise LoracError(f"{source.display}: job {job!r} is not a LoRA training job (lorac "
                         "imports `job: extension` with an sd_trainer process)")
    # the job runs on ai-toolkit: lint and build judge the profile as ai-toolkit's (a hub id
    # for the model, no separate text-encoder files) until the user chooses another trainer
    draft = Draft(kind="ai-toolkit", source=source.display, backend="ai-toolkit")
    process = processes[0]
    if process.get("type") not in TRAINER_TYPES:
        raise LoracError(f"{source.display}: process type {process.get('type')!r} does not "
                         f"train a LoRA (lorac imports {' and '.join(TRAINER_TYPES)})")
    if not isinstance(process.get("network"), dict):
        draft.report("LRC095", "the process has no network: ai-toolkit trains the whole model "
                     "(or an adapter) with it; the profile trains a LoRA",
                     severity=Severity.WARNING)
    if len(processes) > 1:
        draft.report("LRC095", f"{len(processes)} processes; importing the first",
                     severity=Severity.WARNING)
    line = lambda key: line_of_key(source.text, key, style="yaml")  # noqa: E731
    model = process.get("model") if isinstance(process.get("model"), dict) else {}
    written_arch = _written_arch(model)
    draft.family = settings.family or _family(model, written_arch, draft)
    _flux2_as_flux(model, written_arch, draft, line("name_or_path"))
    inventory = inventory_for(draft.family)
    draft.description = f"Imported from ai-toolkit job {data['config'].get('name', '')!s}"
    native = _Native(draft, line)
    _arch_values(draft, model, written_arch, native)

    def put(name: str, value: Any, key: str, raw: Any = _MISSING) -> None:
        """Set option ``name`` from ai-toolkit's ``key``; when the family's script lacks it,
        keep ``key`` (its ai-toolkit value ``raw``, if ``value`` was translated) for
        ai-toolkit only."""

        option = inventory.get(name)
        at = line(key.split(".")[-1])
        if option is None:
            section, _, rest = key.rpartition(".")
            if not native.keep(section or "process", rest, value if raw is _MISSING else raw):
                draft.unmap(key, value, "LRC090", f"{key} maps to {name}, which "
                            f"{inventory.script} does not have", line=at)
            return
        set_checked(draft, option, value, key=key, line=at)

    name = data["config"].get("name")
    if isinstance(name, str):
        put("output_name", name, "config.name")
    for key, value in process.items():
        if isinstance(value, dict):
            _block(draft, key, value, put, line, native, written_arch)
        elif key == "datasets":
            _datasets(draft, value, put, line, native)
        elif OPTIONS.get((key,)):
            put(OPTIONS[(key,)], value, key)
        elif EMITTED.get((key,), object()) == value:
            continue
        elif not native.keep("process", key, value):
            draft.unmap(key, value, "LRC090", f"process key {key!r} has no sd-scripts "
                        "equivalent", line=line(key))
    native.summary()
    _batch_steps(draft, process.get("train"), line)
    batch = draft.options.get("train_batch_size")
    if draft.dataset is not None and batch is not None:
        del draft.options["train_batch_size"]
        draft.dataset = {"batch_size": batch.value, **draft.dataset}
    if "network_module" not in draft.options:
        from lorac.config.inventory import load_families

        entry = load_families().get(draft.family or "")
        draft.set("network_module", entry.network_modules[0] if entry and entry.network_modules
                  else "networks.lora")
    return draft


#: profile options that count steps, which ai-toolkit's train.gradient_accumulation_steps makes
#: count batches
STEP_COUNTS = ("max_train_steps", "lr_warmup_steps", "save_every_n_steps",
               "sample_every_n_steps")


def _batch_steps(draft: Draft, train: Any, line: Any) -> None:
    """ai-toolkit's ``train.gradient_accumulation_steps: N`` (N > 1) counts every batch as a step
    and steps the optimizer every N of them (jobs/process/BaseSDTrainProcess.py:2604-2611), so
    its ``steps``, warmup and intervals are batches; sd-scripts' (and the profile's) are
    optimizer steps of N batches each. Each such count is divided by N (rounded up), once,
    with one warning that names every change."""
    if not isinstance(train, dict) or "gradient_accumulation" in train:
        return
    n = train.get("gradient_accumulation_steps")
    if not isinstance(n, int) or isinstance(n, bool) or n <= 1:
        return
    changed = []
    for name in STEP_COUNTS:
        v = draft.options.get(name)
        if v is not None and isinstance(v.value, int) and not isinstance(v.value, bool):
            new = -(-v.value // n)
            changed.append(f"{name} {v.value} → {new}")
            draft.options[name] = Value(new, v.line, None, f"{v.value} batches of ai-toolkit")
    draft.report("LRC095", f"train.gradient_accumulation_steps {n} makes each ai-toolkit step "
                 f"one batch and steps the optimizer every {n}; the profile counts optimizer "
                 f"steps of {n} batches: " + (", ".join(changed) or "no step count to convert"),
                 line=line("gradient_accumulation_steps"), severity=Severity.WARNING)


class _Native:
    """ai-toolkit keys without an sd-scripts equivalent, kept for ai-toolkit only in
    ``[trainers.ai-toolkit.<section>]`` when ai-toolkit reads them."""

    def __init__(self, draft: Draft, line: Any) -> None:
        from lorac.config.inventory import load_ai_toolkit_keys, load_backend_toml

        self.draft = draft
        self.line = line
        self.mapping = load_backend_toml("ai-toolkit/mapping.toml")
        self.keys = load_ai_toolkit_keys()
        self.kept = 0

    def reads(self, section: str, key: str) -> bool:
        if section == "process":
            return key in self.mapping["process"]
        cls = self.mapping["sections"].get(section)
        return cls is not None and self.keys.get(cls, key) is not None

    def keep(self, section: str, key: str, value: Any) -> bool:
        """Keep ``section.key`` for ai-toolkit; False when ai-toolkit does not read it or TOML
        cannot hold the value (a null)."""

        if not self.reads(section, key) or _has_null(value):
            return False
        tables = self.draft.trainers.setdefault(TRAINER, {})
        tables.setdefault(section, {})[key] = value
        self.kept += 1
        return True

    def summary(self) -> None:
        if self.kept:
            self.draft.report("LRC095", f"{self.kept} ai-toolkit key(s) without an sd-scripts "
                              "equivalent kept for ai-toolkit only in [trainers.ai-toolkit.*]")


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


#: ModelConfig's is_* flags in the order it turns them into an arch
#: (toolkit/config_modules.py:799-821)
FLAG_ARCHS = (("is_v2", "sd2"), ("is_v3", "sd3"), ("is_xl", "sdxl"), ("is_pixart", "pixart"),
              ("is_pixart_sigma", "pixart_sigma"), ("is_auraflow", "auraflow"),
              ("is_flux", "flux"), ("is_lumina2", "lumina2"), ("is_vega", "vega"),
              ("is_ssd", "ssd"))


def _written_arch(model: dict[str, Any]) -> str:
    """The arch ai-toolkit trains the job as: ``model.arch``, else the first ``is_*`` flag,
    else ``sd1`` (as ``ModelConfig`` decides)."""

    arch = model.get("arch")
    if isinstance(arch, str) and arch:
        return arch
    return next((a for flag, a in FLAG_ARCHS if model.get(flag)), "sd1")


def _family(model: dict[str, Any], written_arch: str, draft: Draft) -> str | None:
    from lorac.config.inventory import load_backend_toml
    from lorac.trainers.ai_toolkit.archs import families_of

    path = str(model.get("name_or_path") or "").lower()
    try:
        families = families_of(written_arch, load_backend_toml("ai-toolkit/mapping.toml"))
    except LoracError:
        families = []
    if not families:
        draft.report("LRC095", f"arch {written_arch}: no lorac model family trains it; the arch "
                     "is kept in [trainers.ai-toolkit.model]")
        return None
    family = families[0]
    if "flux1-dev" in families:
        family = flux_family(path)
    draft.report("LRC095", f"model family {family} (from arch {written_arch})")
    return family


def _flux2_as_flux(model: dict[str, Any], written_arch: str, draft: Draft, line: int) -> None:
    """A FLUX.2 model in a job that ai-toolkit trains as FLUX.1: an error naming both."""

    shown = model.get("name_or_path")
    if written_arch != "flux" or model_kind(shown) != "flux2":
        return
    how = "arch: flux" if model.get("arch") else "is_flux: true"
    draft.report("LRC095", f"model {how} makes ai-toolkit build the FLUX.1 transformer "
                 "(toolkit/config_modules.py:789-790, 812-813), but name_or_path "
                 f"{shown!r} is a FLUX.2 model, which ai-toolkit trains as arch: flux2",
                 line=line, severity=Severity.ERROR, hint="write arch: flux2 in the job's "
                 "model (and --family flux2-dev), or name a FLUX.1 model")


def _arch_values(draft: Draft, model: dict[str, Any], written_arch: str,
                 native: _Native) -> None:
    """Keep ``model.arch`` for ai-toolkit when the family's arch is not the one written (an
    alias, a ``:tag``, an arch no family trains); the is_* flags only choose the arch."""

    from lorac.trainers.ai_toolkit.archs import family_arch

    if family_arch(draft.family, native.mapping) != written_arch:
        native.keep("model", "arch", model.get("arch") or written_arch)


def _scheduler(written_arch: str) -> str:
    from lorac.trainers.ai_toolkit.archs import arch

    try:
        return "flowmatch" if arch(written_arch).flowmatch else "ddpm"
    except LoracError:
        return "ddpm"


def _block(draft: Draft, block: str, values: dict[str, Any], put: Any, line: Any,
           native: _Native, written_arch: str) -> None:
    timesteps = {v: k for k, v in native.mapping["options"]["timestep_sampling"]["values"]
                 .items()}
    for key, value in values.items():
        dotted = f"{block}.{key}"
        if block == "model" and (key == "arch" or key.startswith("is_")):
            continue  # decided the family (and model.arch when needed): _arch_values
        if (block, key) in (("train", "noise_scheduler"), ("sample", "sampler")) and \
                value == _scheduler(written_arch):
            continue  # what the emitter writes for this arch
        if block == "network" and key == "type":
            if str(value).lower() not in ("lora", "locon") and \
                    not native.keep(block, key, value):
                draft.unmap(dotted, value, "LRC090", f"network type {value!r} has no "
                            "sd-scripts network module lorac knows", line=line(key),
                            section="network")
            continue
        if block == "train" and key == "optimizer" and isinstance(value, str):
            mapped = OPTIMIZERS.get(value.lower())
            if mapped is not None:
                put("optimizer_type", mapped, dotted, value)
            elif not native.keep(block, key, value):
                draft.unmap(dotted, value, "LRC090", f"optimizer {value!r} has no sd-scripts "
                            "name lorac knows", line=line(key), section="optimizer")
            continue
        if (block, key) in (("train", "dtype"), ("save", "dtype")):
            table = DTYPES if block == "train" else SAVE_DTYPES
            mapped = table.get(str(value).lower())
            if mapped is not None:
                put("mixed_precision" if block == "train" else "save_precision", mapped, dotted,
                    value)
            elif not native.keep(block, key, value):
                draft.unmap(dotted, value, "LRC091", f"{dotted} {value!r} is not a precision "
                            "lorac knows", line=line(key))
            continue
        if block == "model" and key == "quantize" and value is True:
            put("fp8_base", True, dotted, value)
            draft.report("LRC095", "model.quantize → fp8_base (both keep the base model in 8 "
                         "bits; the formats differ)", line=line(key))
            continue
        if (block, key) == ("train", "timestep_type") and value in timesteps:
            put("timestep_sampling", timesteps[value], dotted, value)
            continue
        target = OPTIONS.get((block, key), "")
        if target and (block, key) != ("train", "timestep_type"):
            put(target, value, dotted)
        elif native.keep(block, key, value):
            continue
        elif target is None:
            draft.unmap(dotted, value, "LRC090", f"{dotted} steers ai-toolkit only",
                        line=line(key), severity=Severity.INFO, section=_section(block))
        else:
            draft.unmap(dotted, value, "LRC090", f"{dotted} has no sd-scripts equivalent",
                        line=line(key), section=_section(block))


def _plain_value(value: Any) -> bool:
    """A string, number or boolean, or a list of them: what a dataset TOML key can hold."""

    scalar = (str, int, float, bool)
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(v, scalar) for v in value))


def _section(block: str) -> str:
    return {"network": "network", "train": "training", "save": "saving",
            "sample": "sampling", "model": "model", "logging": "logging"}.get(block, "training")


def _datasets(draft: Draft, datasets: Any, put: Any, line: Any, native: _Native) -> None:
    if not isinstance(datasets, list) or not all(isinstance(d, dict) for d in datasets):
        draft.unmap("datasets", datasets, "LRC091", "datasets must be a list of mappings",
                    line=line("datasets"), section="dataset")
        return
    by_resolution: dict[Any, list[dict[str, Any]]] = {}
    general: dict[str, Any] = {}
    for entry in datasets:
        subset: dict[str, Any] = {}
        resolutions: list[Any] = [None]
        for key, value in entry.items():
            if key == "resolution":
                resolutions = value if isinstance(value, list) else [value]
                if not all(isinstance(r, int) and not isinstance(r, bool) for r in resolutions):
                    draft.unmap("dataset.resolution", value, "LRC091", "resolution must be an "
                                "integer or a list of integers", line=line(key),
                                section="dataset")
                    resolutions = [None]
                continue
            if key in DATASET_OPTIONS and isinstance(value, bool):
                put(DATASET_OPTIONS[key], value, f"datasets.{key}")
                continue
            mapped = DATASET_KEYS.get(key)
            if mapped is None:
                if all(d.get(key, _MISSING) == value for d in datasets) and \
                        native.reads("datasets", key) and not _has_null(value):
                    if entry is datasets[0]:
                        native.keep("datasets", key, value)
                    continue
                draft.unmap(f"dataset.{key}", value, "LRC090", f"datasets[].{key} has no "
                            "sd-scripts dataset-config equivalent", line=line(key),
                            section="dataset")
                continue
            target, level = mapped
            if not _plain_value(value):
                draft.unmap(f"dataset.{key}", value, "LRC091", f"datasets[].{key} must be a "
                            "string, number or boolean (or a list of them)", line=line(key),
                            section="dataset")
                continue
            if target == "caption_extension" and isinstance(value, str) and \
                    not value.startswith("."):
                value = "." + value
            (subset if level == "subset" else general)[target] = value
        for res in resolutions:
            by_resolution.setdefault(res, []).append(dict(subset))
    if len(by_resolution) == 1:
        res, subsets = next(iter(by_resolution.items()))
        draft.dataset = {**general, **({"resolution": res} if res else {}), "subsets": subsets}
    else:
        draft.dataset = {**general, "datasets": [
            {**({"resolution": res} if res else {}), "subsets": subsets}
            for res, subsets in by_resolution.items()]}
        draft.report("LRC095", f"{len(by_resolution)} resolutions → one dataset each",
                     line=line("resolution"))
