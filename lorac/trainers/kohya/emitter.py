"""The ``kohya`` backend: sd-scripts through ``accelerate launch``.

Formats:

``toml`` (default)
    ``config.toml`` for ``--config_file`` (the profile's option sections, kept for people;
    sd-scripts flattens them, library/args.py:1181-1191), ``dataset.toml`` for
    ``--dataset_config`` (``[general]`` / ``[[datasets]]`` / ``[[datasets.subsets]]``) and
    ``train.sh``.
``cli``
    every option on the command line (``--opt=value``, ``--flag``, ``--list a b``),
    ``dataset.toml`` and ``train.sh``.

Values are written with the type the script's argparse option converts to, because
``--config_file`` values are not converted (library/args.py:1193-1194): an integer for a float
option becomes ``1.0``, a number for a string option becomes a string. Dataset values get the
types sd-scripts' voluptuous schema demands (``network_multiplier = 1`` → ``1.0``).

``Artifacts.argv`` names two things lorac cannot know at build time with placeholder
prefixes: :data:`SD_SCRIPTS` (the sd-scripts checkout) and :data:`BUILD_DIR` (the folder the
files are written to). :func:`launch_argv` substitutes them; ``train.sh`` resolves them at run
time from ``$LORAC_SD_SCRIPTS`` and its own location. ``train.sh`` does not change directory:
relative paths in the profile (``data/subject``, ``output``) stay relative to where it is run,
like the profile's own paths are relative to the project.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, LoracError
from lorac.lint.hookspecs import Artifacts, hookimpl
from lorac.trainers import BUILD_DIR, CheckoutVar, run_env, shell_script
from lorac.trainers.module_count import LAYER_NEUTRAL_ARGS

#: ``train_blocks`` is counted (all, double, single); the rest of these leave the layers alone.
LAYER_NEUTRAL_FLUX = LAYER_NEUTRAL_ARGS | {"train_blocks"}

#: Prefix of the entry script in ``Artifacts.argv``: ``{sd_scripts}/flux_train_network.py``.
SD_SCRIPTS = "{sd_scripts}"
#: The environment variable ``train.sh`` reads for the sd-scripts checkout.
ENV_VAR = "LORAC_SD_SCRIPTS"
#: How ``train.sh`` finds the sd-scripts checkout.
CHECKOUT = CheckoutVar(SD_SCRIPTS, "sd_scripts", ENV_VAR, "the sd-scripts checkout")
#: Options lorac itself sets on the command line; a profile must not set them.
MANAGED = ("config_file", "output_config")

_ACCELERATE = (("gpus", "num_processes"), ("num_machines", "num_machines"),
               ("machine_rank", "machine_rank"), ("main_process_ip", "main_process_ip"),
               ("main_process_port", "main_process_port"),
               ("mixed_precision", "mixed_precision"),
               ("num_cpu_threads_per_process", "num_cpu_threads_per_process"))


# --------------------------------------------------------------------------- compiling


def script_for(profile: Profile) -> str:
    """The sd-scripts entry script of the profile's family (LoracError without one)."""

    from lorac.config.inventory import family_script

    script = family_script(profile.family)
    if script is None and profile.family is not None:
        raise LoracError(f"profile {profile.name!r}: sd-scripts does not train family "
                         f"{profile.family!r}; build it with the backend that does "
                         "(lorac backends list)")
    if script is None:
        raise LoracError(f"profile {profile.name!r} has no [profile] family; the kohya backend "
                         "needs it to choose the sd-scripts entry script")
    return script


def _typed(opt: Any, value: Any) -> Any:
    """``value`` with the type ``opt``'s argparse conversion gives (see the module docstring)."""

    if opt is None:
        return value
    if opt.is_list and isinstance(value, list):
        return [_scalar(opt.type, v) for v in value]
    if opt.is_flag:
        return value
    return _scalar(opt.type, value)


def _scalar(type_name: str, value: Any) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "float" and number:
        return float(value)
    if type_name in ("str", "path") and number:
        return str(value)
    return value


def compile_options(profile: Profile, inv: Any) -> dict[str, Any]:
    """The flat option mapping sd-scripts' namespace should hold (before its defaults), typed
    by ``inv``, the inventory of the profile's entry script."""

    out: dict[str, Any] = {}
    for name, (value, _kp) in profile.options().items():
        if name in MANAGED:
            raise LoracError(f"{profile.path}: {name} is set by lorac when it launches "
                             "sd-scripts; remove it from the profile")
        out[name] = _typed(inv.options.get(name), value)
    if "dataset_config" in out and isinstance(profile.get("dataset"), dict):
        raise LoracError(f"{profile.path}: dataset_config and a [dataset] section both name "
                         "the dataset; keep one")
    return out


def compile_dataset(profile: Profile) -> dict[str, Any] | None:
    """``[dataset]`` as sd-scripts' dataset config (``general`` / ``datasets``), or None.

    ``subsets`` of ``[dataset]`` form the first dataset, ``[[dataset.datasets]]`` the others;
    every other key of ``[dataset]`` goes to ``[general]``. Values are converted where the
    voluptuous schema wants a float (:func:`lorac.trainers.kohya.rules.options.emitted_value`).
    """

    from lorac.config.inventory import load_dataset_schema
    from lorac.trainers import dataset_groups
    from lorac.trainers.kohya.rules.options import dataset_variant, emitted_value

    data = profile.get("dataset")
    if not isinstance(data, dict):
        return None
    schema = load_dataset_schema()

    def convert(table: dict[str, Any], level: str, variant: str) -> dict[str, Any]:
        keys = schema.keys(level, variant)
        return {k: emitted_value(keys[k], v) if k in keys else v for k, v in table.items()}

    def dataset(own: dict[str, Any], subsets: list[Any]) -> dict[str, Any]:
        subs = [s for s in subsets if isinstance(s, dict)]
        variant = dataset_variant(subs) or "dreambooth"
        body = convert(own, "dataset", variant)
        body["subsets"] = [convert(s, "subset", variant) for s in subs]
        return body

    general = {k: v for k, v in data.items() if k not in ("subsets", "datasets")}
    (_, _, top_subsets), *others = dataset_groups(data)
    top = dataset({}, top_subsets)
    general = convert(general, "general", "dreambooth")
    datasets = [top] if top["subsets"] else []
    datasets += [dataset(own, subsets) for _, own, subsets in others]
    out: dict[str, Any] = {}
    if general:
        out["general"] = general
    out["datasets"] = datasets
    return out


def accelerate_options(profile: Profile) -> list[str]:
    """``accelerate launch`` options from ``[run]``, each one ``--name=value`` element.

    ``gpus`` is the number of GPUs of *each* machine; accelerate's ``--num_processes`` is the
    total over all machines, so it is ``gpus × num_machines`` (docs/multi-gpu.md).
    ``--multi_gpu`` comes first whenever more than one process runs.
    """

    from lorac.config.validate import run_section

    run = run_section(profile)
    gpus, machines = run.get("gpus", 1), run.get("num_machines", 1)
    args: list[str] = []
    for key, flag in _ACCELERATE:
        if key == "gpus" and key in run:
            args.append(f"--{flag}={gpus * machines}")
        elif key == "gpus" and machines > 1:  # one GPU per machine
            args.append(f"--{flag}={machines}")
        elif key in run:
            args.append(f"--{flag}={run[key]}")
    if gpus * machines > 1:
        args.insert(0, "--multi_gpu")
    extra = run.get("accelerate_args") or []
    args += [str(a) for a in extra]
    return args


def option_argv(options: dict[str, Any], inv: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """Options as command-line elements, and ``(option, problem)`` for what a command line
    cannot carry."""

    argv: list[str] = []
    problems: list[tuple[str, str]] = []
    for name, value in options.items():
        opt = inv.options.get(name)
        flag = opt.flags[0] if opt is not None and opt.flags else f"--{name}"
        if opt is not None and opt.is_flag:
            if value is True:
                argv.append(flag)
            elif value is not False:
                problems.append((name, f"{name} is a flag and must be true or false"))
            continue
        if isinstance(value, list):
            argv.append(flag)
            for item in value:
                text = _text(item)
                if text.startswith("-") and not _negative_number(text):
                    problems.append((name, f"{name} item {text!r} starts with '-': argparse "
                                           "would read it as an option (use --format toml)"))
                argv.append(text)
            continue
        argv.append(f"{flag}={_text(value)}")
    return argv, problems


def _negative_number(text: str) -> bool:
    # argparse's _negative_number_matcher (the parser has no option that looks like one)
    return re.fullmatch(r"-\d+$|-\d*\.\d+$", text) is not None


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- files


def dump_toml(data: dict[str, Any], header: str = "") -> str:
    """TOML text (tomlkit) with ``header`` as leading comment lines."""

    import tomlkit

    doc = tomlkit.document()
    for line in header.splitlines():
        doc.add(tomlkit.comment(line))
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            aot = tomlkit.aot()
            for item in value:
                aot.append(_table(item))
            doc.add(key, aot)
        elif isinstance(value, dict):
            doc.add(key, _table(value))
        else:
            doc.add(key, value)
    return tomlkit.dumps(doc)


def _table(data: dict[str, Any]) -> Any:
    import tomlkit

    table = tomlkit.table()
    nested = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            nested.append((key, value))
        else:
            table.add(key, value)
    for key, value in nested:
        aot = tomlkit.aot()
        for item in value:
            aot.append(_table(item))
        table.add(key, aot)
    return table


def _placeholders(argv: list[str]) -> set[int]:
    """The indices of the elements the emitter made placeholders: the entry script and the
    ``--config_file`` / ``--dataset_config`` values right after it."""

    s = next((i for i, arg in enumerate(argv)
              if arg.startswith(SD_SCRIPTS + "/") and arg.endswith(".py")), None)
    if s is None:
        return set()
    return {s} | {i for i in (s + 2, s + 4)
                  if i < len(argv) and argv[i - 1] in ("--config_file", "--dataset_config")}


def launch_argv(argv: list[str], sd_scripts: str | Path, build_dir: str | Path) -> list[str]:
    """``argv`` with :data:`SD_SCRIPTS` and :data:`BUILD_DIR` replaced by real paths.

    Only the elements the emitter made placeholders are replaced (the entry script and the
    ``--config_file`` / ``--dataset_config`` values right after it); an option value that
    happens to start with ``{sd_scripts}/`` is left alone.
    """

    out = list(argv)
    for i in _placeholders(argv):
        arg = argv[i]
        if arg.startswith(SD_SCRIPTS + "/"):
            out[i] = str(Path(sd_scripts) / arg[len(SD_SCRIPTS) + 1:])
        elif arg.startswith(BUILD_DIR + "/"):
            out[i] = str(Path(build_dir) / arg[len(BUILD_DIR) + 1:])
    return out


# --------------------------------------------------------------------------- backend


class KohyaBackend:
    """sd-scripts' LoRA entry scripts (flux/sdxl/sd3/sd15) through ``accelerate launch``."""

    name = "kohya"
    formats = ("toml", "cli")
    description = "kohya sd-scripts: --config_file TOML (toml) or a command line (cli)"

    def emit(self, profile: Profile, fmt: str) -> Artifacts:
        """Compile ``profile`` (see the module docstring)."""

        from lorac.config.inventory import load_kohya_inventory

        if fmt not in self.formats:
            raise LoracError(f"backend kohya has no format {fmt!r}")
        script = script_for(profile)
        inv = load_kohya_inventory(script)
        options = compile_options(profile, inv)
        dataset = compile_dataset(profile)
        header = (f"Generated by lorac from {profile.path} (profile {profile.name}) for "
                  f"{script}; do not edit — change the profile and rebuild.")
        files: dict[str, str] = {}
        diags: list[Diagnostic] = []
        argv = ["accelerate", "launch", *accelerate_options(profile), f"{SD_SCRIPTS}/{script}"]
        if fmt == "toml":
            sections: dict[str, Any] = {}
            for section, table in profile.option_sections():
                sections[section] = {k: options[k] for k in table if k in options}
            files["config.toml"] = dump_toml(sections, header)
            argv += ["--config_file", f"{BUILD_DIR}/config.toml"]
        if dataset is not None:
            files["dataset.toml"] = dump_toml(dataset, header)
            argv += ["--dataset_config", f"{BUILD_DIR}/dataset.toml"]
        if fmt == "cli":
            words, problems = option_argv(options, inv)
            argv += words
            where = profile.options()
            for name, problem in problems:
                diags.append(profile.diagnostic("LRC604", problem, where[name][1],
                                                rule="list-option-not-list"))
        for arg in argv:
            if "\x00" in arg:
                raise LoracError(f"{profile.path}: a value contains a NUL character, which no "
                                 "command line can carry")
        files["train.sh"] = shell_script(argv, run_env(profile), header, CHECKOUT,
                                         _placeholders(argv))
        return Artifacts(files=files, executable={"train.sh"}, argv=argv, diagnostics=diags,
                         options=options)

    def expected_modules(self, profile: Profile) -> tuple[int | None, str | None]:
        """How many modules sd-scripts wraps for ``profile``, or why lorac cannot say
        (:mod:`lorac.trainers.module_count`): counted for FLUX.1 with ``networks.lora_flux``
        from the model's layers (:func:`lorac.trainers.kohya.vram.lora_modules`)."""

        from lorac.trainers.module_count import layer_args

        family = profile.family or ""
        module = profile.option("network_module", "networks.lora_flux"
                                if family.startswith("flux1") else "networks.lora")
        if not family.startswith("flux1") or module != "networks.lora_flux":
            where = family or "a profile without a family"
            return None, f"lorac does not know the layers {module} wraps in {where}"
        args = layer_args(profile.option("network_args"), LAYER_NEUTRAL_FLUX)
        if args:
            return None, (f"network_args {', '.join(args)} change which layers "
                          "networks.lora_flux wraps; lorac does not count them")
        if profile.option("network_train_text_encoder_only") is True:
            return None, "network_train_text_encoder_only: lorac counts the DiT's modules only"
        from lorac.trainers.kohya import vram

        cfg = vram.config_from_profile(profile)
        if cfg.train_blocks not in ("all", "double", "single"):
            return None, f"train_blocks={cfg.train_blocks} is not one lorac counts"
        return len(vram.lora_modules(cfg)), None

    def launch_argv(self, argv: list[str], trainer: str | Path, build_dir: str | Path,
                    ) -> list[str]:
        """``argv`` with the placeholders replaced (see :func:`launch_argv`)."""

        return launch_argv(argv, trainer, build_dir)


@hookimpl
def lorac_backends() -> list[KohyaBackend]:
    """The kohya backend."""

    return [KohyaBackend()]
