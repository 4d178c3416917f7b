"""The ``musubi`` backend: kohya-ss/musubi-tuner, three commands a run.

A musubi run caches latents (``<arch>_cache_latents.py``), caches text-encoder outputs
(``<arch>_cache_text_encoder_outputs.py``), then trains (``accelerate launch
<arch>_train_network.py``). ``lorac build --backend musubi`` writes:

``config.toml``
    the training options for ``--config_file`` (musubi flattens the sections and converts
    nothing, src/musubi_tuner/training/parser_common.py:780-811, so values are written with
    the type the option's argparse conversion would give);
``dataset.toml``
    musubi's dataset config: ``[general]`` and ``[[datasets]]`` with image or video keys (no
    subsets: its schema has none, src/musubi_tuner/dataset/config_utils.py:173-178). A profile
    may instead name a dataset config of its own with the ``dataset_config`` option (as for
    sd-scripts; an imported launcher whose dataset config lies behind ``$BASE_DIR`` keeps it
    so): every step then gets that path as it is, and no ``dataset.toml`` is written. Each
    musubi script reads the file when it starts (``load_user_config``,
    src/musubi_tuner/dataset/config_utils.py:363-366, a ValueError when it is missing), on
    the machine it runs on, so the build does not require it to exist;
``train.sh``
    the three commands.

One profile value reaches every step that reads it: an option goes to each of the three
scripts whose parser has it (``vae``, ``t5``, ``model_version`` …), and the family's variant
(``task``, ``model_version``) and image-to-video mode (``--i2v`` for latent caching) come
from the family unless the profile sets them. Options the training script requires on its
command line (``required=True``: Kandinsky 5's ``--task``) go there, since its ``main()``
parses the command line before it reads ``--config_file``.

``Artifacts.argv`` is the training command; :attr:`MusubiArtifacts.steps` holds all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, LoracError
from lorac.lint.hookspecs import Artifacts, hookimpl
from lorac.trainers import BUILD_DIR, CheckoutVar, run_env, shell_steps
from lorac.trainers.musubi import crossing, knowledge

#: Prefix of the musubi-tuner checkout in ``argv``: ``{musubi}/src/musubi_tuner/…``.
MUSUBI = "{musubi}"
ENV_VAR = "LORAC_MUSUBI_TUNER"
CHECKOUT = CheckoutVar(MUSUBI, "musubi", ENV_VAR, "the musubi-tuner checkout")
#: Options lorac sets itself (``dataset_config`` only when the profile has a ``[dataset]``).
MANAGED = ("config_file", "dataset_config")
#: What each step is called in train.sh, the progress display and the manifest.
STEP_NAMES = {"latents": "cache latents", "text_encoder": "cache text-encoder outputs",
              "train": "train", "convert": "convert for ComfyUI"}
#: The converter of an architecture whose LoRAs ComfyUI loads only after conversion, and its
#: arguments; others use convert_lora.py --target other (src/musubi_tuner/convert_lora.py:206-214).
CONVERTERS = {
    "hunyuan_video_1_5": "src/musubi_tuner/networks/convert_hunyuan_video_1_5_lora_to_comfy.py",
}

_ACCELERATE = (("gpus", "num_processes"), ("num_machines", "num_machines"),
               ("machine_rank", "machine_rank"), ("main_process_ip", "main_process_ip"),
               ("main_process_port", "main_process_port"),
               ("mixed_precision", "mixed_precision"),
               ("num_cpu_threads_per_process", "num_cpu_threads_per_process"))


@dataclass
class MusubiArtifacts(Artifacts):
    """:class:`Artifacts` with the run's steps: ``(step, argv)`` in order, ``step`` one of
    :data:`knowledge.STEPS`; ``step_options`` the options each step gets."""

    steps: list[tuple[str, list[str]]] = field(default_factory=list)
    step_options: dict[str, dict[str, Any]] = field(default_factory=dict)


# --------------------------------------------------------------------------- compiling


def plan(profile: Profile) -> knowledge.Plan:
    """The profile's family resolved to musubi's scripts (LoracError when musubi does not
    train it)."""
    result = knowledge.plan_for(profile.family)
    if result is None:
        known = ", ".join(sorted(knowledge.families()))
        raise LoracError(f"profile {profile.name!r}: the musubi backend trains the families "
                         f"{known}; [profile] family is {profile.family!r}")
    return result


def _scalar(type_name: str, value: Any) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "float" and number:
        return float(value)
    if type_name in ("str", "path") and number:
        return str(value)
    return value


def typed(opt: Any, value: Any) -> Any:
    """``value`` with the type ``opt``'s argparse conversion gives."""
    if opt is None or opt.is_flag:
        return value
    if opt.is_list and isinstance(value, list):
        return [_scalar(opt.type, v) for v in value]
    return _scalar(opt.type, value)


def step_options(profile: Profile, p: knowledge.Plan,
                 ) -> tuple[dict[str, dict[str, Any]], list[Diagnostic]]:
    """The options each step gets (see the module docstring), and a diagnostic for each
    profile option none of the three scripts has."""

    out: dict[str, dict[str, Any]] = {step: {} for step in knowledge.STEPS}
    diags: list[Diagnostic] = []
    options = profile.options()
    for name, (value, kp) in options.items():
        if name == "dataset_config":
            continue  # an external dataset config: every step gets it (dataset_arg)
        if name in MANAGED:
            raise LoracError(f"{profile.path}: {name} is set by lorac when it launches "
                             "musubi-tuner; remove it from the profile")
        hit = False
        for step in knowledge.STEPS:
            opt = p.inventories[step].options.get(name)
            if opt is not None:
                out[step][name] = typed(opt, value)
                hit = True
        if not hit:
            scripts = ", ".join(Path(s).name for s in p.scripts.values())
            diags.append(profile.diagnostic(
                "LRC650", f"{name} is not an option of {scripts} (family {profile.family}); "
                "musubi-tuner would ignore it or stop", kp, rule="option-not-in-musubi-steps"))
    for name, value in p.family.variant.items():
        if name in options:
            continue
        for step in knowledge.STEPS:
            if name in p.inventories[step].options:
                out[step][name] = value
    if p.family.i2v and "i2v" in p.inventories["latents"].options:
        out["latents"].setdefault("i2v", True)
    out["train"].setdefault("network_module", p.arch["network_module"])
    return out, diags


def _dataset_types() -> dict[str, str]:
    types: dict[str, str] = {}
    for level in knowledge.dataset_schema()["levels"].values():
        for key, spec in level["keys"].items():
            types[key] = spec["type"]
    return types


def compile_dataset(profile: Profile) -> dict[str, Any] | None:
    """``[dataset]`` as musubi's dataset config: its own keys (but ``datasets``) become
    ``[general]``, each ``[[dataset.datasets]]`` a ``[[datasets]]``. ``subsets`` has no place
    in it (LRC660 reports them); ``source_fps`` and other float keys get a float."""

    data = profile.get("dataset")
    if not isinstance(data, dict):
        return None
    types = _dataset_types()

    def convert(table: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in table.items():
            if types.get(key) == "float" and isinstance(value, int) \
                    and not isinstance(value, bool):
                value = float(value)
            out[key] = value
        return out

    general = convert({k: v for k, v in data.items() if k not in ("datasets", "subsets")})
    datasets = data.get("datasets")
    result: dict[str, Any] = {}
    if general:
        result["general"] = general
    result["datasets"] = [convert(d) for d in datasets if isinstance(d, dict)] \
        if isinstance(datasets, list) else []
    return result


def accelerate_options(profile: Profile) -> list[str]:
    """``accelerate launch`` options from ``[run]`` (``gpus`` per machine; ``--multi_gpu``
    first when more than one process runs)."""

    run = profile.get("run", default={}) or {}
    gpus, machines = int(run.get("gpus", 1)), int(run.get("num_machines", 1))
    args: list[str] = []
    for key, flag in _ACCELERATE:
        if key == "gpus" and key in run:
            args.append(f"--{flag}={gpus * machines}")
        elif key == "gpus" and machines > 1:
            args.append(f"--{flag}={machines}")
        elif key in run:
            args.append(f"--{flag}={run[key]}")
    if gpus * machines > 1:
        args.insert(0, "--multi_gpu")
    args += [str(a) for a in run.get("accelerate_args") or []]
    return args


def option_argv(options: dict[str, Any], inv: Any) -> list[str]:
    """Options as command-line elements (``--name=value``, ``--flag``, ``--list a b``)."""

    argv: list[str] = []
    for name, value in options.items():
        opt = inv.options.get(name)
        flag = opt.flags[0] if opt is not None and opt.flags else f"--{name}"
        if opt is not None and opt.is_flag:
            if value is True:
                argv.append(flag)
            continue
        if isinstance(value, list):
            argv.append(flag)
            argv += [_text(v) for v in value]
            continue
        argv.append(f"{flag}={_text(value)}")
    return argv


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _placeholders(argv: list[str]) -> set[int]:
    """The script element and the ``--config_file`` / ``--dataset_config`` values."""
    out = {i for i, a in enumerate(argv) if a.startswith(MUSUBI + "/") and a.endswith(".py")}
    out |= {i for i in range(1, len(argv))
            if argv[i - 1] in ("--config_file", "--dataset_config")
            and argv[i].startswith(BUILD_DIR + "/")}
    return out


def launch_argv(argv: list[str], musubi: str | Path, build_dir: str | Path) -> list[str]:
    """``argv`` with :data:`MUSUBI` and :data:`BUILD_DIR` replaced where the emitter put them."""
    out = list(argv)
    for i in _placeholders(argv):
        if argv[i].startswith(MUSUBI + "/"):
            out[i] = str(Path(musubi) / argv[i][len(MUSUBI) + 1:])
        else:
            out[i] = str(Path(build_dir) / argv[i][len(BUILD_DIR) + 1:])
    return out


def dump_toml(data: dict[str, Any], header: str = "") -> str:
    """TOML text with ``header`` as comment lines (arrays of tables for lists of tables)."""
    import tomlkit

    doc = tomlkit.document()
    for line in header.splitlines():
        doc.add(tomlkit.comment(line))
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            aot = tomlkit.aot()
            for item in value:
                table = tomlkit.table()
                table.update(item)
                aot.append(table)
            doc.add(key, aot)
        elif isinstance(value, dict):
            table = tomlkit.table()
            table.update(value)
            doc.add(key, table)
        else:
            doc.add(key, value)
    return tomlkit.dumps(doc)


# --------------------------------------------------------------------------- backend


class MusubiBackend:
    """musubi-tuner: latent and text-encoder caching, then ``accelerate launch`` training."""

    name = "musubi"
    formats = ("toml",)
    description = ("kohya musubi-tuner: config.toml + dataset.toml and a train.sh running "
                   "the three steps (cache latents, cache text encoder, train)")

    def emit(self, profile: Profile, fmt: str) -> MusubiArtifacts:
        """Compile ``profile`` (see the module docstring)."""

        if fmt not in self.formats:
            raise LoracError(f"backend musubi has no format {fmt!r}")
        p = plan(profile)
        profile, crossed = crossing.translate(profile, p)
        per_step, diags = step_options(profile, p)
        diags = crossed + diags
        dataset = compile_dataset(profile)
        external = profile.option("dataset_config")
        if external is not None and dataset is not None:
            raise LoracError(f"{profile.path}: dataset_config and a [dataset] section both name "
                             "the dataset; keep one")
        if dataset is None and external is None:
            raise LoracError(f"profile {profile.name!r} has no [dataset]: musubi-tuner needs a "
                             "dataset config for every step (a [dataset] section, or "
                             "dataset_config naming one)")
        if external is not None and (not isinstance(external, str) or not external.strip()):
            raise LoracError(f"{profile.path}: dataset_config must be the path of a dataset "
                             f"config file, not {external!r}")
        train_script = p.scripts["train"]
        header = (f"Generated by lorac from {profile.path} (profile {profile.name}) for "
                  f"musubi-tuner {Path(train_script).name}; do not edit — change the profile "
                  "and rebuild.")
        files: dict[str, str] = {}
        if dataset is not None:
            files["dataset.toml"] = dump_toml(dataset, header)
            dataset_arg = ["--dataset_config", f"{BUILD_DIR}/dataset.toml"]
        else:  # the profile's own file, read by each step when it starts (see above)
            dataset_arg = ["--dataset_config", external]
        steps: list[tuple[str, list[str]]] = []
        for step in ("latents", "text_encoder"):
            inv = p.inventories[step]
            argv = ["python", f"{MUSUBI}/{p.scripts[step]}", *dataset_arg,
                    *option_argv(per_step[step], inv)]
            steps.append((step, argv))
        train_inv = p.inventories["train"]
        train = per_step["train"]
        on_cli = {k: v for k, v in train.items()
                  if (o := train_inv.options.get(k)) is not None and o.required}
        in_file = {k: v for k, v in train.items() if k not in on_cli}
        sections: dict[str, Any] = {}
        placed: set[str] = set()
        for section, table in profile.option_sections():
            keys = {k: in_file[k] for k in table if k in in_file}
            placed |= set(keys)
            if keys:
                sections[section] = keys
        rest = {k: v for k, v in in_file.items() if k not in placed}
        if rest:  # filled in from the family: the network module, the variant
            sections["lorac"] = rest
        files["config.toml"] = dump_toml(sections, header)
        argv = ["accelerate", "launch", *accelerate_options(profile),
                f"{MUSUBI}/{train_script}", "--config_file", f"{BUILD_DIR}/config.toml",
                *dataset_arg, *option_argv(on_cli, train_inv)]
        steps.append(("train", argv))
        if profile.get("run", "convert_for_comfyui") is True:
            steps.append(("convert", self._convert(profile, p, train, diags)))
        for _, words in steps:
            if any("\x00" in w for w in words):
                raise LoracError(f"{profile.path}: a value contains a NUL character, which no "
                                 "command line can carry")
        files["train.sh"] = shell_steps(
            [(STEP_NAMES[s], a, _placeholders(a)) for s, a in steps], run_env(profile), header,
            CHECKOUT)
        options = {k: v for s in knowledge.STEPS for k, v in per_step[s].items()}
        return MusubiArtifacts(files=files, executable={"train.sh"}, argv=argv,
                               diagnostics=diags, options=options, steps=steps,
                               step_options=per_step)

    def expected_modules(self, profile: Profile) -> tuple[int | None, str | None]:
        """How many modules musubi-tuner wraps for ``profile``, or why lorac cannot say
        (:mod:`lorac.trainers.module_count`): counted for ``networks.lora_wan`` on a family
        whose DiT layout lorac generated from musubi's own classes
        (:func:`lorac.trainers.musubi.synth.wan_lora_modules`)."""

        from lorac.trainers.module_count import layer_args
        from lorac.trainers.musubi import synth

        p = plan(profile)
        translated = crossing.translate(profile, p)[0]  # the module the emitter writes
        module = translated.option("network_module", p.arch["network_module"])
        if module != "networks.lora_wan" or p.family.name not in synth.WAN_FAMILIES:
            return None, (f"lorac knows the layers of {', '.join(synth.WAN_FAMILIES)} with "
                          f"networks.lora_wan only, not {module} on {p.family.name}")
        args = layer_args(profile.option("network_args"))
        if args:
            return None, (f"network_args {', '.join(args)} change which layers {module} "
                          "wraps; lorac does not count them")
        return len(synth.wan_lora_modules(p.family.name)), None

    def launch_argv(self, argv: list[str], trainer: str | Path, build_dir: str | Path,
                    ) -> list[str]:
        """``argv`` with the placeholders replaced (see :func:`launch_argv`)."""
        return launch_argv(argv, trainer, build_dir)

    @staticmethod
    def _convert(profile: Profile, p: knowledge.Plan, train: dict[str, Any],
                 diags: list[Diagnostic]) -> list[str]:
        """The ``[run] convert_for_comfyui`` step: the final LoRA
        (``{output_dir}/{output_name}.safetensors``, src/musubi_tuner/utils/train_utils.py:84-93)
        converted beside it as ``{output_name}_comfyui.safetensors``."""

        out_dir, name = train.get("output_dir"), train.get("output_name")
        if not isinstance(out_dir, str) or not isinstance(name, str):
            diags.append(profile.diagnostic(
                "LRC668", "convert_for_comfyui needs output_dir and output_name: the converted "
                "file is named after them", ("run", "convert_for_comfyui"),
                rule="musubi-output-missing"))
            out_dir, name = out_dir or "output", name or "lora"
        src = str(Path(out_dir) / f"{name}.safetensors")
        dst = str(Path(out_dir) / f"{name}_comfyui.safetensors")
        script = CONVERTERS.get(p.family.architecture)
        if script is not None:
            return ["python", f"{MUSUBI}/{script}", src, dst]
        return ["python", f"{MUSUBI}/src/musubi_tuner/convert_lora.py", "--input", src,
                "--output", dst, "--target", "other"]

    def run_plan(self, profile: Profile, artifacts: MusubiArtifacts, trainer: str | Path,
                 run_dir: str | Path, commit: str | None,
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The steps ``lorac run`` runs (:mod:`lorac.run.steps`), and what the manifest
        records about them: the caching steps are skipped when every dataset's cache was made
        for this profile (:mod:`lorac.trainers.musubi.cache`); otherwise the text-encoder step
        writes the cache records once it has succeeded."""

        import json

        from lorac.config.inventory import load_pin
        from lorac.trainers.musubi import cache

        dataset = compile_dataset(crossing.translate(profile, plan(profile))[0]) or {}
        # a checkout whose commit cannot be told counts as the pin, as LRC665 counts it
        state = cache.state(str(profile.family), artifacts.step_options, dataset,
                            commit or load_pin("musubi").commit)
        if not dataset and profile.option("dataset_config") is not None:
            state["reason"] = ("the datasets are in the file dataset_config names, which lorac "
                               "does not read: every run caches them again")
        records = [{"path": str(Path(d["cache_directory"]) / cache.RECORD_NAME),
                    "text": json.dumps({"key": d["key"], "made_with": d["made_with"]},
                                       indent=1, sort_keys=True, default=str) + "\n"}
                   for d in state["datasets"] if isinstance(d["cache_directory"], str)]
        steps = []
        for step, argv in artifacts.steps:
            entry: dict[str, Any] = {"name": STEP_NAMES[step], "step": step,
                                     "argv": launch_argv(argv, trainer, run_dir)}
            if step != "train" and state["valid"]:
                entry["skip"] = "the cache is valid for this profile"
            if step == "text_encoder" and not state["valid"]:
                entry["then_write"] = records
            steps.append(entry)
        info = {"cache": {
            "skipped": state["valid"],
            "reason": state["reason"],
            "records": [r["path"] for r in records],
            "datasets": [{"cache_directory": d["cache_directory"], "key": d["key"],
                          "found": d["found"], "made_with": d["made_with"]}
                         for d in state["datasets"]],
        }}
        return {"steps": steps}, info


@hookimpl
def lorac_rules() -> list[Any]:
    """The findings of building a profile written for another trainer (LRC671, LRC672)."""
    return [rule() for rule in crossing.RULES]


@hookimpl
def lorac_backends() -> list[MusubiBackend]:
    """The musubi backend."""
    return [MusubiBackend()]
