"""Rules LRC601–LRC607: a profile checked against the option inventory of its family's script.

The profile schema knows every option of *any* supported sd-scripts entry script; these rules
know the one script the profile's ``[profile] family`` launches (``backends/kohya/families.toml``)
and sd-scripts' dataset-config schema (``backends/kohya/inventory/dataset_config.json``).

Facts about sd-scripts (commit in ``backends/kohya/pin.toml``) these rules rest on:

* ``library/args.py:1133`` ``read_config_from_file``: ``--config_file`` is read with
  ``toml.load`` (4746), every section is flattened into one dict (4748–4758), and the dict becomes
  the namespace that ``parser.parse_args(namespace=…)`` fills in (4760–4761). argparse applies an
  option's ``type`` only to strings it reads from the command line, never to values already in the
  namespace: a config-file value reaches the trainer with exactly its TOML type. Keys that no
  option declares are kept silently.
* ``library/accelerator_setup.py:50``: ``args.resolution.split(",")`` — a TOML integer crashes here.
* ``library/args.py:50`` ``int_or_float`` converts command-line strings only.
* ``train_network.py:1074``: ``net_arg.split("=", 1)`` for each item of ``network_args``: a plain
  string is iterated character by character.
* ``library/config_util.py:168`` ``ConfigSanitizer``: voluptuous schemas with bare types
  (``isinstance``, no conversion; ``float`` rejects ``1``), ``Required("image_dir")`` for DreamBooth
  subsets, ``Required("metadata_file")`` for fine-tuning subsets, and
  ``validate_flex_dataset`` (config_util.py:336) refusing DreamBooth and fine-tuning subsets mixed
  in one dataset.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from lorac.config.profile import Profile
from lorac.core.diagnostics import Diagnostic, Edit, KeyPath, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule
from lorac.trainers import dataset_groups

INT_OR_FLOAT = "int_or_float"
"""The name ends every version's ``int_or_float`` type carries: it was
``library.train_util.add_optimizer_arguments.<locals>.int_or_float`` up to v0.10 and is
``library.args.add_optimizer_arguments.<locals>.int_or_float`` from v0.11.0 on."""


def _canonical(type_name: str) -> str:
    """``type_name`` with any version's ``…int_or_float`` folded to :data:`INT_OR_FLOAT`."""
    return INT_OR_FLOAT if type_name.endswith(INT_OR_FLOAT) else type_name
CONFIG_LOADER = "library/args.py:1181-1194"


# --------------------------------------------------------------------------- shared helpers


def family_script(profile: Profile) -> str | None:
    """The kohya entry script of the profile's family, or None (no or unknown family)."""

    from lorac.config import inventory

    return inventory.family_script(profile.family)


def other_trainer(profile: Profile) -> bool:
    """True when the profile's family is one sd-scripts does not train (another backend's,
    such as musubi-tuner's ``wan2.1-t2v-1.3b``): the sd-scripts rules leave it alone."""

    return profile.family is not None and family_script(profile) is None


def option_spec(profile: Profile, name: str) -> Any:
    """The :class:`~lorac.config.inventory.Option` ``name`` has for the profile's script.

    Without a family any inventoried script answers (:func:`option_spec_any`); for another
    trainer's family none does.
    """

    from lorac.config.inventory import load_kohya_inventory

    script = family_script(profile)  # (once: lint asks this for every option of every rule)
    if script is None:
        return None if profile.family is not None else option_spec_any(name)  # other trainer
    return load_kohya_inventory(script).options.get(name)


def _kind(value: Any) -> str:
    """The value's TOML type for a message; floats are "a float" (argparse's word)."""

    from lorac.config.validate import type_name

    return "a float" if isinstance(value, float) else type_name(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def scalar_ok(type_name: str, value: Any) -> bool | None:
    """Whether a config-file value of ``type_name`` works unconverted (None: lorac can't tell)."""

    type_name = _canonical(type_name)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name in ("float", INT_OR_FLOAT):
        return _number(value)
    if type_name in ("str", "path"):
        return isinstance(value, str)
    return None


def converted(type_name: str, value: Any) -> Any:
    """What argparse's ``type`` would have made of the command-line text of ``value``.

    Returns :data:`NO_CONVERSION` when the command line would reject it too.
    """

    text = value if isinstance(value, str) else None
    type_name = _canonical(type_name)
    try:
        if type_name == "int":
            if text is not None:
                return int(text)
            if isinstance(value, float) and value.is_integer():
                return int(value)
        elif type_name == "float" and text is not None:
            return float(text)
        elif type_name == INT_OR_FLOAT and text is not None:
            number = float(text)
            return int(number) if number >= 1 and number.is_integer() else number
        elif type_name in ("str", "path") and _number(value):
            return str(value)
    except ValueError:
        pass
    return NO_CONVERSION


NO_CONVERSION = object()


def _fixable(profile: Profile, kp: KeyPath) -> bool:
    return profile.where(kp).kind == "file" and kp in profile.provenance


def _type_label(type_name: str) -> str:
    return {"int": "an integer", "float": "a number", "str": "a string", "path": "a string (path)",
            INT_OR_FLOAT: "a number (int or float)"}.get(_canonical(type_name), type_name)


# --------------------------------------------------------------------------- rules


class _OptionRule(Rule):
    groups = ("kohya",)

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        profile = ctx.profile
        for name, (value, kp) in profile.options().items():
            opt = option_spec(profile, name)
            if opt is not None:
                yield from self.check_option(profile, name, value, kp, opt)

    def check_option(self, profile: Profile, name: str, value: Any, kp: KeyPath,
                     opt: Any) -> Iterator[Diagnostic]:
        return iter(())


class OptionNotInScript(Rule):
    """What it does
    Reports a trainer option that the profile's family's sd-scripts entry script does not have
    (``t5xxl`` in an ``sdxl`` profile: ``sdxl_train_network.py`` has no such option), with the
    closest option that script does have. A profile without ``[profile] family`` gets one
    informational finding instead: lorac cannot tell which script will read it.

    Why is this bad?
    sd-scripts flattens ``--config_file`` into the argparse namespace and keeps keys that no
    option declares (``library/args.py:1181-1194``): the value is silently never read.
    The profile claims a setting the run does not have.

    Example
        [profile]
        family = "sdxl"
        [model]
        t5xxl = "/models/t5xxl_fp16.safetensors"

    Use instead
    Remove the option, or set the family whose script reads it.

    Fix safety
    No fix: whether the option or the family is wrong only a person knows.
    """

    code = "LRC601"
    name = "option-not-in-script"
    groups = ("kohya",)

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        from lorac.config.inventory import load_kohya_inventory

        profile = ctx.profile
        script = family_script(profile)
        if script is None:
            # a family kohya lacks, or a profile for another trainer: not sd-scripts' options
            if profile.options() and profile.family is None and profile.backend == "kohya":
                d = self.at(profile, ("profile",), "profile has no [profile] family: its options "
                            "are not checked against one sd-scripts entry script",
                            hint="set family to one of: "
                            + ", ".join(inventory_families()))
                yield d.with_severity(Severity.INFO)
            return
        from lorac.config.inventory import option_versions

        inv = load_kohya_inventory(script)
        for name, (_value, kp) in profile.options().items():
            if name in inv.options or option_spec_any(name) is None:
                continue  # unknown to every script: the schema reports it (LRC004)
            if option_versions(name, script):
                continue  # another version's script has it: LRC623 says which
            close = inv.closest(name, 1)
            yield self.at(profile, kp, f"{name} is not an option of {script} (family "
                          f"{profile.family}); sd-scripts keeps it without reading it",
                          hint=f"did you mean {close[0]!r}?" if close else
                          "remove it, or change [profile] family")


def inventory_families() -> list[str]:
    """The families lorac knows (``backends/kohya/families.toml``), in file order."""

    from lorac.config.inventory import load_families

    return list(load_families())


def option_spec_any(name: str) -> Any:
    """The option ``name`` in any inventoried script, or None."""

    from lorac.config.inventory import kohya_options

    return kohya_options().get(name)


class OptionWrongType(_OptionRule):
    """What it does
    Reports a trainer option whose value has a type other than the one the script's argparse
    option converts to: a string for a number (``learning_rate = "1e-4"``), a number for a
    string (``resolution = 1024``), a string for ``lr_warmup_steps`` (``int_or_float``), also
    for each item of a list option.

    Why is this bad?
    ``--config_file`` values skip argparse's conversion (``library/args.py:1181-1194``):
    ``resolution = 1024`` reaches ``args.resolution.split(",")``
    (library/accelerator_setup.py:50) as an integer and the run stops after loading the model;
    ``learning_rate = "1e-4"`` fails inside the optimizer.

    Example
        [training]
        resolution = 1024
        learning_rate = "1e-4"

    Use instead
        [training]
        resolution = "1024,1024"
        learning_rate = 1e-4

    Fix safety
    Safe: the fix writes what argparse would have made of the same text on the command line
    (``"1e-4"`` → ``0.0001``, ``1024`` → ``"1024"``). Values that come from a variable or the
    environment are not rewritten.
    """

    code = "LRC602"
    name = "option-wrong-type"
    fix = "safe"

    def check_option(self, profile: Profile, name: str, value: Any, kp: KeyPath,
                     opt: Any) -> Iterator[Diagnostic]:
        if opt.is_flag:
            return
        items = list(enumerate(value)) if opt.is_list and isinstance(value, list) else (
            [(None, value)] if not opt.is_list else [])
        for index, item in items:
            ok = scalar_ok(opt.type, item)
            if ok is None or ok:
                continue
            where = kp if index is None else (*kp, index)
            new = converted(opt.type, item)
            fix = []
            if new is not NO_CONVERSION and _fixable(profile, where):
                fix = [Edit(profile.where(where).path, where, new)]
            label = name if index is None else f"{name}[{index}]"
            yield self.at(profile, where, f"{label} must be {_type_label(opt.type)}, not "
                          f"{_kind(item)} ({item!r}); sd-scripts' --config_file loader does not "
                          f"convert values ({CONFIG_LOADER})",
                          hint=f"write {name} = {_toml(new)}" if new is not NO_CONVERSION
                          else None, fix=fix)


def _toml(value: Any) -> str:
    from lorac.config.values import toml_value

    return toml_value(value)


class OptionNotInChoices(_OptionRule):
    """What it does
    Reports a value outside the choices of the script's argparse option
    (``console_log_level``, ``dynamo_backend``, ``timestep_sampling`` …), with the closest choice.

    Why is this bad?
    argparse checks ``choices`` only for command-line text; a config-file value outside them
    reaches the trainer unchecked (``library/args.py:1181-1194``) and falls through to
    whatever the code does for an unknown value.

    Example
        timestep_sampling = "Shift"

    Use instead
        timestep_sampling = "shift"

    Fix safety
    No fix; the hint names the closest choice.
    """

    code = "LRC603"
    name = "option-not-in-choices"

    def check_option(self, profile: Profile, name: str, value: Any, kp: KeyPath,
                     opt: Any) -> Iterator[Diagnostic]:
        if not opt.choices:
            return
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if any(item == c and isinstance(item, bool) == isinstance(c, bool)
                   for c in opt.choices):
                continue
            if not isinstance(item, (str, int, float)):
                continue
            from difflib import get_close_matches

            text = [str(c) for c in opt.choices]
            close = [c for c in text if c.lower() == str(item).lower()] or \
                get_close_matches(str(item), text, n=1)
            where = kp if index is None else (*kp, index)
            yield self.at(profile, where, f"{name} is {item!r}; {opt.location or 'the option'} "
                          f"allows only: {', '.join(text)}",
                          hint=f"did you mean {close[0]!r}?" if close else None)


class ListOptionNotList(_OptionRule):
    """What it does
    Reports a scalar given to an option that takes several values (``nargs="*"``:
    ``network_args``, ``optimizer_args``, ``lr_scheduler_args``, ``base_weights`` …).

    Why is this bad?
    sd-scripts iterates the value (``for net_arg in args.network_args``, train_network.py:1074):
    a string is walked character by character and ``"conv_dim=4"`` becomes the items
    ``"c"``, ``"o"`` …; the run stops with a confusing ``split`` error, or worse, a one-item
    string passes unnoticed.

    Example
        network_args = "conv_dim=4 conv_alpha=1"

    Use instead
        network_args = ["conv_dim=4", "conv_alpha=1"]

    Fix safety
    Unsafe: the fix splits a string the way a shell splits a command line, which is what the
    author most likely meant; a scalar number becomes a one-item list.
    """

    code = "LRC604"
    name = "list-option-not-list"
    fix = "unsafe"

    def check_option(self, profile: Profile, name: str, value: Any, kp: KeyPath,
                     opt: Any) -> Iterator[Diagnostic]:
        if not opt.is_list or isinstance(value, list):
            return
        new: Any = None
        if isinstance(value, str):
            try:
                new = shlex.split(value)
            except ValueError:
                new = None
        elif _number(value):
            new = [value]
        # an Edit must be hashable: the list goes in as a tuple (tomlkit writes an array)
        fix = [Edit(profile.where(kp).path, kp, tuple(new))] if new is not None and _fixable(
            profile, kp) else []
        yield self.at(profile, kp, f"{name} takes a list (nargs {opt.nargs!r}), not "
                      f"{_kind(value)}; sd-scripts iterates it item by item",
                      hint=f"write {name} = {_toml(new)}" if new is not None else None, fix=fix)


class FlagNotBoolean(_OptionRule):
    """What it does
    Reports a ``store_true`` option (``fp8_base``, ``gradient_checkpointing``,
    ``cache_latents`` …) set to something other than ``true``/``false``.

    Why is this bad?
    sd-scripts tests these with ``if args.fp8_base:``; from ``--config_file`` the value is not
    converted (``library/args.py:1181-1194``), so ``fp8_base = "false"`` — a non-empty
    string — turns the option **on**.

    Example
        fp8_base = "false"
        cache_latents = 1

    Use instead
        fp8_base = false
        cache_latents = true

    Fix safety
    Safe for ``"true"``/``"false"`` (any case), ``0`` and ``1``; other values get no fix.
    """

    code = "LRC605"
    name = "flag-not-boolean"
    fix = "safe"

    _WORDS: ClassVar[dict[str, bool]] = {"true": True, "false": False, "yes": True,
                                         "no": False, "on": True, "off": False}

    def check_option(self, profile: Profile, name: str, value: Any, kp: KeyPath,
                     opt: Any) -> Iterator[Diagnostic]:
        if not opt.is_flag or isinstance(value, bool):
            return
        new: bool | None = None
        if isinstance(value, str):
            new = self._WORDS.get(value.strip().lower())
        elif isinstance(value, int) and value in (0, 1):
            new = bool(value)
        fix = [Edit(profile.where(kp).path, kp, new)] if new is not None and _fixable(
            profile, kp) else []
        truth = "on" if value else "off"
        yield self.at(profile, kp, f"{name} is a flag (store_true) and must be true or false, "
                      f"not {_kind(value)} ({value!r}); sd-scripts reads it as {truth}",
                      hint=f"write {name} = {str(new).lower()}" if new is not None else None,
                      fix=fix)


# --------------------------------------------------------------------------- dataset


def dataset_variant(subsets: list[Any]) -> str | None:
    """The ConfigSanitizer schema a dataset's subsets select (``validate_flex_dataset``,
    library/config_util.py:336): None when DreamBooth and fine-tuning subsets are mixed."""

    dicts = [s for s in subsets if isinstance(s, dict)]
    if dicts and all("conditioning_data_dir" in s for s in dicts):
        return "controlnet"
    if all("metadata_file" in s for s in dicts) and dicts:
        return "fine_tuning"
    if all("metadata_file" not in s for s in dicts):
        return "dreambooth"
    return None


def emitted_value(key: Any, value: Any) -> Any:
    """``value`` as the emitter writes it for a dataset key: an integer becomes a float where
    voluptuous wants ``float`` and not ``int`` (``network_multiplier = 1`` → ``1.0``)."""

    accepts = set(key.accepts)
    if _number(value) and isinstance(value, int) and "float" in accepts and "int" not in accepts:
        return float(value)
    if isinstance(value, list) and "[float, float]" in accepts and len(value) == 2 and all(
            _number(v) for v in value):
        return [float(v) for v in value]
    return value


def dataset_levels(profile: Profile) -> Iterator[tuple[str, str, KeyPath, dict[str, Any]]]:
    """Every table of ``[dataset]`` as ``(level, variant, key_path, table)``: ``[dataset]``
    itself (level ``general``), each ``[[dataset.datasets]]`` (``dataset``, without its
    ``subsets``) and each subset, in :func:`~lorac.trainers.dataset_groups` order."""

    data = profile.get("dataset")
    if not isinstance(data, dict) or other_trainer(profile):
        return
    for n, (base, own, subsets) in enumerate(dataset_groups(data)):
        variant = dataset_variant(subsets) or "dreambooth"
        yield ("general", variant, base, data) if n == 0 else ("dataset", variant, base, own)
        for i, sub in enumerate(subsets):
            if isinstance(sub, dict):
                yield ("subset", variant, (*base, "subsets", i), sub)


class DatasetValueInvalid(Rule):
    """What it does
    Checks every value of ``[dataset]`` (general keys, ``[[dataset.subsets]]``,
    ``[[dataset.datasets]]``) against sd-scripts' dataset-config schema with voluptuous'
    exact semantics (bare types: ``isinstance``, no conversion), and reports what lorac's
    emitter cannot convert either: a string for an integer (``num_repeats = "10"``), a float
    for an integer (``num_repeats = 2.5``), a three-item ``resolution``. Integers where
    voluptuous wants a float are fine: the emitter writes ``1.0``.

    Why is this bad?
    ``ConfigSanitizer`` (library/config_util.py:168) rejects the whole dataset config at start-up
    with ``Invalid user config`` and no hint of which key.

    Example
        [[dataset.subsets]]
        image_dir = "data/subject"
        num_repeats = "10"

    Use instead
        num_repeats = 10

    Fix safety
    No fix.
    """

    code = "LRC606"
    name = "dataset-value-invalid"
    groups = ("kohya", "dataset")

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        from lorac.config.inventory import load_dataset_schema

        schema = load_dataset_schema()
        profile = ctx.profile
        for level, variant, base, table in dataset_levels(profile):
            keys = schema.keys(level, variant)
            for name, value in table.items():
                if name in ("subsets", "datasets") or name not in keys:
                    continue  # unknown keys: the profile schema reports them (LRC004)
                key = keys[name]
                if key.accepts_value(emitted_value(key, value)) is False:
                    yield self.at(profile, (*base, name), f"{name} must be {key.type} for "
                                  f"sd-scripts' dataset config, not {_kind(value)} ({value!r})",
                                  hint="ConfigSanitizer checks types with isinstance and "
                                  "converts nothing")


class DatasetMissingRequired(Rule):
    """What it does
    Reports a ``[dataset]`` that sd-scripts' ``ConfigSanitizer`` would refuse for what is
    missing: a subset without its required key (``image_dir`` for DreamBooth-style subsets,
    ``metadata_file`` for fine-tuning, ``conditioning_data_dir`` for ControlNet), a dataset
    that mixes DreamBooth and fine-tuning subsets, or a ``[dataset]`` with no subsets at all.

    Why is this bad?
    The trainer stops at start-up (``Required(...)`` in library/config_util.py;
    ``validate_flex_dataset`` at config_util.py:336), or with no subsets trains on nothing.

    Example
        [[dataset.subsets]]
        class_tokens = "ohwx woman"
        num_repeats = 10

    Use instead
        [[dataset.subsets]]
        image_dir = "data/subject"
        class_tokens = "ohwx woman"
        num_repeats = 10

    Fix safety
    No fix.
    """

    code = "LRC607"
    name = "dataset-missing-required"
    groups = ("kohya", "dataset")

    def check(self, ctx: ProfileContext) -> Iterable[Diagnostic]:
        from lorac.config.inventory import load_dataset_schema

        schema = load_dataset_schema()
        profile = ctx.profile
        data = profile.get("dataset")
        if not isinstance(data, dict) or other_trainer(profile):
            return
        groups = dataset_groups(data)
        if not any(subs for _, _, subs in groups) and "train_data_dir" not in profile.options():
            yield self.at(profile, ("dataset",), "[dataset] has no subsets: sd-scripts would "
                          "find no images to train on",
                          hint="add [[dataset.subsets]] with image_dir = \"…\"")
        for base, _own, subs in groups:
            variant = dataset_variant(subs)
            if variant is None:
                yield self.at(profile, (*base, "subsets"), "DreamBooth subsets (no "
                              "metadata_file) and fine-tuning subsets (metadata_file) cannot be "
                              "mixed in one dataset (library/config_util.py:336)",
                              hint="split them into [[dataset.datasets]] entries")
                continue
            keys = schema.keys("subset", variant)
            for i, sub in enumerate(subs):
                if not isinstance(sub, dict):
                    continue
                for name, key in keys.items():
                    if key.required and name not in sub:
                        yield self.at(profile, (*base, "subsets", i), f"subset {i} has no "
                                      f"{name} (required for {variant.replace('_', '-')} "
                                      f"subsets)", hint=f'add {name} = "…"')


RULES = (OptionNotInScript, OptionWrongType, OptionNotInChoices, ListOptionNotList,
         FlagNotBoolean, DatasetValueInvalid, DatasetMissingRequired)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The inventory rules (LRC601–LRC607)."""

    return [cls() for cls in RULES]
