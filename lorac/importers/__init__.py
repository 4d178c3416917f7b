"""``lorac import``: turn a trainer configuration people already have into a lorac profile.

Each source format has one module, in the folder of the trainer it comes from, with one public
function ``read(source, opts) -> Draft`` (:data:`READERS`):

- :mod:`lorac.trainers.kohya.import_toml` — an sd-scripts ``--config_file`` TOML (+ its dataset
  TOML)
- :mod:`lorac.trainers.kohya.import_gui` — a kohya_ss GUI preset / saved-config JSON
- :mod:`lorac.trainers.ai_toolkit.import_yaml` — an ai-toolkit job YAML
- :mod:`lorac.trainers.musubi.import_shell` — musubi-tuner commands (the three steps, in one
  script or some of them) or a musubi training TOML, into one profile
- :mod:`lorac.trainers.kohya.import_shell` — a shell script or command line running
  ``*_train_network.py`` (parsed, never executed), and its ``--env`` files

This module is what they share: the draft, option conversion, rendering, secrets withheld;
:mod:`lorac.importers.shell` is what the two shell importers share (reading a launcher, its
sourced and ``--env`` files, without running it).

A :class:`Draft` holds what was understood (kohya options with their values and where they were
written, a ``[dataset]`` table, ``[run]`` settings) and what was not: every source key without an
sd-scripts equivalent becomes an :class:`Unmapped` entry, reported as a diagnostic *and* kept as
a comment in the written profile, so nothing is dropped silently. :func:`render` writes the
profile with tomlkit, grouping options into sections with lorac's own small table
(:data:`SECTIONS`).

Import findings use codes LRC090–LRC096 (family 0, input):

========  ==========================  ==========================================================
LRC090    import-unmapped-key         a key of the source format with no sd-scripts equivalent
LRC091    import-bad-value            a value that does not convert to the option's type
LRC092    import-unknown-value        a value lorac cannot know without running something
LRC093    import-unknown-option       an option the trainer script does not define
LRC094    import-placeholder          a value that is a placeholder ("put the full path … here")
LRC095    import-note                 how a value was translated (information only)
LRC096    import-unsupported-syntax   a construct the importer reads past (heredoc, loop, …)
========  ==========================  ==========================================================
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lorac.core.diagnostics import Diagnostic, LoracError, Severity


@lru_cache(maxsize=1)
def rules() -> dict[str, Any]:
    """The import rules by code (:mod:`lorac.lint.rules.importing`): their names and
    default severities. Imported on first use, so ``import lorac.importers`` stays light."""

    from lorac.lint.rules.importing import RULES

    return {rule.code: rule for rule in RULES}

#: The reader of each input format (``lorac import --kind``), imported when used.
READERS = {
    "kohya-toml": "lorac.trainers.kohya.import_toml",
    "kohya-gui": "lorac.trainers.kohya.import_gui",
    "ai-toolkit": "lorac.trainers.ai_toolkit.import_yaml",
    "shell": "lorac.trainers.kohya.import_shell",
    "musubi": "lorac.trainers.musubi.import_shell",
}
KINDS = tuple(READERS)

SCHEMA_HEADER = "#:schema ../lorac/schema/profile.schema.json"

#: lorac's grouping of kohya options into profile sections: (section, exact names, prefixes).
#: The first section whose names or prefixes match wins; anything else goes to ``training``.
SECTIONS: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...] = (
    ("model", frozenset({
        "pretrained_model_name_or_path", "vae", "clip_l", "clip_g", "t5xxl", "ae", "v2",
        "v_parameterization", "model_type", "tokenizer_cache_dir", "fp8_base", "fp8_base_unet",
        "fp8_scaled", "disable_mmap_load_safetensors", "no_half_vae", "vae_batch_size",
    }), ()),
    ("network", frozenset({"dim_from_weights", "base_weights", "base_weights_multiplier",
                           "scale_weight_norms"}), ("network_", "loraplus_")),
    ("optimizer", frozenset({"learning_rate", "unet_lr", "text_encoder_lr", "max_grad_norm"}),
     ("optimizer_", "lr_")),
    ("saving", frozenset({"output_dir", "output_name", "resume", "training_comment",
                          "no_metadata"}),
     ("save_", "huggingface_", "metadata_", "resume_", "async_upload")),
    ("sampling", frozenset(), ("sample_",)),
    ("logging", frozenset({"logging_dir", "log_with", "log_prefix", "log_config"}),
     ("log_", "wandb_")),
)
SECTION_ORDER = ("model", "network", "optimizer", "training", "saving", "sampling", "logging")

def section_for(option: str) -> str:
    """The profile section lorac puts kohya option ``option`` in."""

    for section, names, prefixes in SECTIONS:
        if option in names or option.startswith(prefixes):
            return section
    return "training"


# --------------------------------------------------------------------------- the draft


@dataclass
class Value:
    """One imported option value.

    ``value`` is the typed value written to the profile; ``text`` (when not None) is what the
    profile holds instead, e.g. ``"${env:MODEL_DIR:-/models}/flux.safetensors"`` to keep the
    wiring to an environment variable visible. ``note`` becomes a trailing comment.
    """

    value: Any
    line: int = 0
    text: str | None = None
    note: str | None = None


@dataclass
class Unmapped:
    """A source key kept as a comment in the profile (its diagnostic says why)."""

    key: str
    raw: str
    reason: str
    section: str = "training"


@dataclass
class Draft:
    """What an importer understood and what it did not."""

    kind: str
    source: str
    family: str | None = None
    description: str = ""
    backend: str | None = None
    options: dict[str, Value] = field(default_factory=dict)
    dataset: dict[str, Any] | None = None
    run: dict[str, Any] = field(default_factory=dict)
    #: values for one trainer only: ``{trainer: {section: {key: value}}}``, rendered as
    #: ``[trainers.<trainer>.<section>]`` (the trainer's own keys, docs/profile.md)
    trainers: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    unmapped: list[Unmapped] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: values the reader saw under credential-like names (a script's ``export HF_TOKEN=…``),
    #: which :func:`withhold_secrets` keeps out of every option
    credentials: set[str] = field(default_factory=set)

    def report(self, code: str, message: str, *, line: int = 0,
               severity: Severity | None = None, hint: str | None = None,
               path: str | None = None) -> None:
        """Add a finding at ``line`` of the source (or of ``path``); ``severity`` defaults to
        the rule's own."""

        rule = rules()[code]
        self.diagnostics.append(Diagnostic(
            code=code, message=message, path=path or self.source, line=line, col=0,
            severity=rule.severity if severity is None else severity, rule=rule.name,
            hint=hint))

    def unmap(self, key: str, raw: Any, code: str, message: str, *, line: int = 0,
              severity: Severity | None = None, hint: str | None = None,
              section: str | None = None, path: str | None = None) -> None:
        """Report ``key`` as not imported and keep it as a comment."""

        self.report(code, message, line=line, severity=severity, hint=hint, path=path)
        self.keep(key, raw, code, section)

    def keep(self, key: str, raw: Any, code: str, section: str | None = None) -> None:
        """Keep ``key`` as a comment marked with ``code`` (reported elsewhere, or in a
        summary)."""

        self.unmapped.append(Unmapped(key, raw_text(raw), f"{code} {rules()[code].name}",
                                      section or section_for(key)))

    def set(self, name: str, value: Any, *, line: int = 0, text: str | None = None,
            note: str | None = None) -> None:
        self.options[name] = Value(value, line, text, note)


def raw_text(raw: Any) -> str:
    """A source value as one line of text for a comment."""

    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = json.dumps(raw, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(raw)
    from lorac.core.secrets import shorten

    return shorten(text.replace("\r", " ").replace("\n", " "), 200)


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def comment_text(text: str) -> str:
    """``text`` fit for a TOML comment: control characters (which TOML forbids there, and
    newlines, which would end it) written as ``\\xNN``."""

    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# --------------------------------------------------------------------------- families


@lru_cache(maxsize=1)
def script_families() -> dict[str, str]:
    """Kohya entry script stem → the first family (``backends/kohya/families.toml``) that
    trains with it: ``flux_train_network`` → flux1-dev, ``train_network`` → sd15, …"""

    from lorac.config.inventory import load_families

    return {Path(f.script).stem: name for name, f in reversed(load_families().items())}


def flux_family(model: str) -> str:
    """flux1-schnell when the model path says so, else flux1-dev."""

    return "flux1-schnell" if "schnell" in model.lower() else "flux1-dev"


def inventory_for(family: str | None):
    """The kohya option inventory of ``family``'s entry script (train_network.py's when the
    family is unset or unknown)."""

    from lorac.config.inventory import family_script, load_kohya_inventory

    return load_kohya_inventory(family_script(family) or "train_network.py")


def check_family(family: str | None) -> str | None:
    """Validate a ``--family`` value against ``backends/kohya/families.toml`` and
    ``backends/musubi/families.toml``."""

    if family is None:
        return None
    from lorac.config.inventory import load_backend_toml, load_families

    names = sorted(load_families())
    names += sorted(load_backend_toml("musubi/families.toml")["families"])  # musubi-tuner's
    if family not in names:
        raise LoracError(f"unknown family {family!r} (expected one of: {', '.join(names)})")
    return family


# --------------------------------------------------------------------------- values


class ConversionError(ValueError):
    """A value that does not convert to an option's type (the message says why)."""


_INT_TEXT = re.compile(r"^\s*[+-]?\d+(_\d+)*\s*$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def convert_text(option: Any, text: str) -> Any:
    """Convert one command-line string the way argparse converts it for ``option``."""

    kind = option.type
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ConversionError(f"{text!r} is not an integer") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ConversionError(f"{text!r} is not a number") from None
    if kind.endswith("int_or_float"):
        try:
            return int(text) if _INT_TEXT.match(text) else float(text)
        except ValueError:
            raise ConversionError(f"{text!r} is not a number") from None
    return text


def check_choice(option: Any, value: Any) -> None:
    if option.choices and value not in option.choices:
        choices = ", ".join(repr(c) for c in option.choices)
        raise ConversionError(f"{value!r} is not one of {choices}")


def coerce(option: Any, value: Any, *, choices: bool = True) -> Any:
    """Convert a value from a JSON/TOML/YAML source to ``option``'s type.

    Numbers stored as strings (``"0.0001"``), integral floats for int options (``64.0``) and
    ``"true"``/``"false"`` for flags are accepted; anything else raises :class:`ConversionError`.
    """

    if option.is_flag:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConversionError(f"{raw_text(value)} is not true or false")
    if option.is_list:
        items = value if isinstance(value, list) else (
            value.split() if isinstance(value, str) else [value])
        return [_coerce_scalar(option, v) for v in items]
    out = _coerce_scalar(option, value)
    if choices:
        check_choice(option, out)
    return out


def _coerce_scalar(option: Any, value: Any) -> Any:
    kind = option.type
    if isinstance(value, bool) and kind != "bool":
        raise ConversionError(f"{value!r} is a boolean, the option takes {kind}")
    if isinstance(value, (dict, list)):
        raise ConversionError(f"{raw_text(value)} is a {type(value).__name__}, not one value")
    if kind == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return int(value)
        if isinstance(value, str):
            return convert_text(option, value.strip())
        raise ConversionError(f"{raw_text(value)} is not an integer")
    if kind == "float" or kind.endswith("int_or_float"):
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, str):
            return convert_text(option, value.strip())
        raise ConversionError(f"{raw_text(value)} is not a number")
    if kind in ("str", "path"):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)):
            return str(value)
        raise ConversionError(f"{raw_text(value)} is not a string")
    return value


def convert(option: Any, texts: list[str]) -> Any:
    """Convert the command-line strings given to ``option`` (none for a flag)."""

    if option.is_flag:
        if texts:
            raise ConversionError("the option is a flag and takes no value")
        return option.action == "store_true"
    if option.is_list:
        if option.nargs == "+" and not texts:
            raise ConversionError("the option needs at least one value")
        return [convert_text(option, t) for t in texts]
    if len(texts) != 1:
        raise ConversionError(f"the option takes one value, got {len(texts)}")
    value = convert_text(option, texts[0])
    check_choice(option, value)
    return value


PLACEHOLDER = re.compile(r"(?i)\b(put|path/to|/path/to|your[_ ]|goes[- ]here|here\b)")


def looks_placeholder(value: Any) -> bool:
    """``"put the full path to ae.sft here"`` and the like."""

    return isinstance(value, str) and bool(PLACEHOLDER.search(value)) and (
        "here" in value.lower() or "/path/to" in value.lower() or value.lower().startswith(
            "put "))


# --------------------------------------------------------------------------- datasets


def dataset_from_kohya(data: Mapping[str, Any], draft: Draft, display: str) -> dict[str, Any]:
    """An sd-scripts dataset-config document as a profile ``[dataset]`` table.

    ``[general]`` keys go to the top of ``[dataset]``; a single ``[[datasets]]`` entry is merged
    into it (its keys win, as sd-scripts' own fallback order does) with its subsets as
    ``[[dataset.subsets]]``; several become ``[[dataset.datasets]]``.
    """

    from lorac.config.inventory import load_dataset_schema

    schema = load_dataset_schema()
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in ("general", "datasets"):
            draft.unmap(f"dataset.{key}", value, "LRC090",
                        f"dataset config key {key!r} is neither [general] nor [[datasets]]",
                        path=display, section="dataset")
    general = data.get("general", {})
    if not isinstance(general, dict):
        raise LoracError(f"{display}: [general] must be a table")
    general_keys = schema.keys("general")
    for key, value in general.items():
        if key not in general_keys:
            _unknown_dataset_key(draft, key, value, "general", display, schema)
        else:
            out[key] = value
    datasets = data.get("datasets", [])
    if not isinstance(datasets, list) or not all(isinstance(d, dict) for d in datasets):
        raise LoracError(f"{display}: datasets must be an array of tables ([[datasets]])")
    converted = [_dataset(d, draft, display, schema) for d in datasets]
    if len(converted) == 1:
        single = converted[0]
        subsets = single.pop("subsets", None)
        out.update(single)
        if subsets is not None:
            out["subsets"] = subsets
    elif converted:
        out["datasets"] = converted
    return out


def _dataset(data: dict, draft: Draft, display: str, schema: Any) -> dict[str, Any]:
    variant = "fine_tuning" if any(
        isinstance(s, dict) and "metadata_file" in s for s in data.get("subsets", [])) \
        else "dreambooth"
    keys = schema.keys("dataset", variant)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "subsets":
            continue
        if key in keys:
            out[key] = value
        else:
            _unknown_dataset_key(draft, key, value, "dataset", display, schema, variant)
    subsets = data.get("subsets", [])
    if not isinstance(subsets, list) or not all(isinstance(s, dict) for s in subsets):
        raise LoracError(f"{display}: subsets must be an array of tables")
    sub_keys = schema.keys("subset", variant)
    out_subsets = []
    for subset in subsets:
        clean = {}
        for key, value in subset.items():
            if key in sub_keys:
                clean[key] = value
            else:
                _unknown_dataset_key(draft, key, value, "subset", display, schema, variant)
        out_subsets.append(clean)
    out["subsets"] = out_subsets
    return out


def _unknown_dataset_key(draft: Draft, key: str, value: Any, level: str, display: str,
                         schema: Any, variant: str = "dreambooth") -> None:
    close = schema.closest(key, level, variant, n=1)
    draft.unmap(f"dataset.{key}", value, "LRC090",
                f"{key!r} is not a {level}-level key of sd-scripts' dataset config",
                hint=f"did you mean {close[0]!r}?" if close else None, path=display,
                section="dataset")


# --------------------------------------------------------------------------- rendering


def render(draft: Draft, *, schema_header: bool) -> str:
    """The profile TOML text for ``draft`` (tomlkit; every unmapped key kept as a comment)."""

    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment(comment_text(f"Imported by `lorac import` from {draft.source} "
                                         f"({draft.kind}).")))
    if draft.unmapped:
        doc.add(tomlkit.comment(f"{len(draft.unmapped)} key(s) were not imported; they are "
                                "kept below as comments marked `not imported`."))
    doc.add(tomlkit.nl())

    profile = tomlkit.table()
    profile.add("description", draft.description or f"Imported from {draft.source}")
    if draft.family:
        profile.add("family", draft.family)
    if draft.backend:
        profile.add("backend", draft.backend)
    doc.add("profile", profile)

    by_section: dict[str, list[tuple[str, Value]]] = {}
    for key, value in draft.options.items():
        by_section.setdefault(section_for(key), []).append((key, value))
    comments: dict[str, list[Unmapped]] = {}
    for item in draft.unmapped:
        comments.setdefault(item.section, []).append(item)
    for section in SECTION_ORDER:
        entries = by_section.get(section, [])
        notes = comments.pop(section, [])
        if not entries and not notes:
            continue
        table = tomlkit.table()
        for key, value in entries:
            table.add(key, value.text if value.text is not None else value.value)
            if value.note:
                table[key].comment(comment_text(value.note))
        _add_unmapped(table, notes)
        doc.add(section, table)

    dataset_notes = comments.pop("dataset", [])
    if draft.dataset is not None:
        doc.add("dataset", _dataset_table(draft.dataset, dataset_notes))
    elif dataset_notes:
        table = tomlkit.table()
        _add_unmapped(table, dataset_notes)
        doc.add("dataset", table)
    run_notes = comments.pop("run", [])
    if draft.run or run_notes:
        table = tomlkit.table()
        for key, value in draft.run.items():
            table.add(key, value)
        _add_unmapped(table, run_notes)
        doc.add("run", table)
    if draft.trainers:
        trainers = tomlkit.table(is_super_table=True)
        for trainer, sections in draft.trainers.items():
            own = tomlkit.table(is_super_table=True)
            for section, values in sections.items():
                table = tomlkit.table()
                for key, value in values.items():
                    table.add(key, _inline(value))
                own.add(section, table)
            trainers.add(trainer, own)
        doc.add("trainers", trainers)
    rest = [u for items in comments.values() for u in items]
    if rest:
        doc.add(tomlkit.nl())
        _add_unmapped(doc, rest)
    text = tomlkit.dumps(doc)
    if schema_header:
        text = SCHEMA_HEADER + "\n" + text
    return text if text.endswith("\n") else text + "\n"


def _inline(value: Any) -> Any:
    """``value`` with every mapping an inline table (a value inside a section stays one line)."""

    import tomlkit

    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for key, item in value.items():
            table.append(key, _inline(item))
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        for item in value:
            array.append(_inline(item))
        return array
    return value


def _add_unmapped(container: Any, items: list[Unmapped]) -> None:
    import tomlkit

    for item in items:
        key = item.key.split(".", 1)[1] if item.key.startswith("dataset.") else item.key
        line = f"not imported ({item.reason}): {key} = {item.raw}"
        container.add(tomlkit.comment(comment_text(line)))


def _dataset_table(data: dict[str, Any], notes: list[Unmapped]) -> Any:
    import tomlkit

    table = tomlkit.table()
    for key, value in data.items():
        if key in ("subsets", "datasets") or value is None:  # TOML has no null
            continue
        table.add(key, value)
    _add_unmapped(table, notes)
    for key in ("subsets", "datasets"):
        if key not in data:
            continue
        aot = tomlkit.aot()
        for item in data[key]:
            entry = tomlkit.table()
            for k, v in item.items():
                if k == "subsets" or v is None:
                    continue
                entry.add(k, v)
            if "subsets" in item:
                sub_aot = tomlkit.aot()
                for sub in item["subsets"]:
                    sub_table = tomlkit.table()
                    for k, v in sub.items():
                        if v is not None:
                            sub_table.add(k, v)
                    sub_aot.append(sub_table)
                entry.add("subsets", sub_aot)
            aot.append(entry)
        table.add(key, aot)
    return table


# --------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class Source:
    """The file being imported: its path, display name and text."""

    path: Path
    display: str
    text: str


def read_source(path: Path) -> Source:
    """Read ``path`` as UTF-8 text (size-limited); unreadable input raises :class:`LoracError`."""

    from lorac.config import document
    from lorac.config.profile import display_path

    shown = display_path(path)
    try:
        text = document.read_text(path, shown)
    except document.LoadError as exc:
        raise LoracError(f"{shown}: {exc.diagnostic.message}") from None
    return Source(path, shown, text)


def detect(source: Source) -> str:
    """Which importer reads ``source`` (one of :data:`KINDS`), from its name and content."""

    suffix = source.path.suffix.lower()
    if suffix == ".json":
        return "kohya-gui"
    if suffix in (".yaml", ".yml"):
        return "ai-toolkit"
    if suffix == ".toml":
        return "kohya-toml"
    if "musubi_tuner" in source.text or re.search(
            r"_cache_(latents|pixel|text_encoder_outputs)\.py", source.text):
        return "musubi"
    if suffix in (".sh", ".bash", ".zsh", ".cmd", ".bat", ".txt", "") or \
            "train_network" in source.text:
        return "shell"
    raise LoracError(f"{source.display}: cannot tell the format from the name; "
                     f"pass --from ({', '.join(KINDS)})")


def line_of_key(text: str, key: str, *, style: str) -> int:
    """1-based line where ``key`` is first written in JSON (``"key":``) or YAML (``key:``)."""

    key = str(key)  # YAML keys may be null, numbers or dates
    if style == "json":
        pattern = re.compile(r'"' + re.escape(key) + r'"\s*:')
    else:
        pattern = re.compile(r"^\s*-?\s*['\"]?" + re.escape(key) + r"['\"]?\s*:", re.M)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else 0


@dataclass(frozen=True)
class Settings:
    """What the command line tells every importer."""

    family: str | None = None
    dataset_config: Path | None = None
    env_files: tuple[Path, ...] = ()
    keep_env: bool = True


def read(source: Source, kind: str, settings: Settings) -> Draft:
    """Run the importer for ``kind`` on ``source``.

    ``settings.family`` is checked here, before the source is parsed, and
    ``settings.dataset_config`` is read into ``[dataset]`` here after the importer ran (an
    ai-toolkit job brings its own ``datasets``, so there it is only noted as ignored).
    """

    import importlib

    if kind not in KINDS:
        raise LoracError(f"unknown input format {kind!r} (expected one of: {', '.join(KINDS)})")
    check_family(settings.family)
    module = importlib.import_module(READERS[kind])
    draft = module.read(source, settings)
    if settings.dataset_config is not None:
        if kind == "musubi":
            pass  # read by the musubi reader (musubi's own dataset format)
        elif kind == "ai-toolkit":
            draft.report("LRC095", "--dataset-config is read only for kohya inputs; ignored "
                         "(the job's datasets are imported)")
        else:
            draft.dataset = load_dataset_file(settings.dataset_config, draft)
    return withhold_secrets(draft)


#: The variables the trainer's libraries read in place of sd-scripts' credential options.
SECRET_ENV = {"huggingface_token": "HF_TOKEN", "wandb_api_key": "WANDB_API_KEY"}


_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_VAR_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _written(value: Value) -> list[str]:
    """What the profile would write out itself for ``value``: a literal's strings, or a
    reference text (:attr:`Value.text`) with ``${name}`` dropped and each ``${env:NAME:-d}``
    replaced by its default ``d`` (the profile holds the default, not the variable)."""

    if value.text is None:
        return _strings(value.value)
    return [_ENV_REF.sub(lambda m: m.group(2) or "", _VAR_REF.sub("", value.text))]


def withhold_secrets(draft: Draft) -> Draft:
    """``draft`` with no credential left in it: never copy a secret into a new profile.

    The credentials are: what an option named like one writes out itself (its literal, or the
    default of its ``${env:NAME:-default}``), the default of a ``${env:NAME:-…}`` whose
    ``NAME`` reads like a credential (an ``--env`` file's ``WANDB_API_KEY=…`` becomes such a
    default), the values the reader saw under credential names (:attr:`Draft.credentials`:
    a script's ``export WANDB_API_KEY=…``) and recognisable tokens. Every option that writes
    one out — also ``wandb_run_name = "run-$WANDB_API_KEY"``, or an option fed by a variable
    that fed a credential — becomes a ``${env:NAME}`` reference (the variable it read, else
    ``huggingface_token`` → ``HF_TOKEN``, ``wandb_api_key`` → ``WANDB_API_KEY``, else the
    option's name in capitals) with an LRC095 warning that shows only a fingerprint; comments
    of unmapped keys, ``[run]``, ``[dataset]`` and the findings' messages are masked
    (:func:`lorac.core.secrets.redact_data`), and everything printed afterwards hides them
    (:func:`lorac.core.secrets.remember`).
    """

    from dataclasses import replace

    from lorac.core.secrets import fingerprint, looks_secret_name, mask, redact_data, remember, scan

    def tokens(text: str) -> list[str]:
        return [text[s.start:s.end] for s in scan(text) if not s.name]

    known: set[str] = set(draft.credentials)
    for key, value in draft.options.items():
        for text in _strings(value.text):
            known.update(m.group(2) for m in _ENV_REF.finditer(text)
                         if m.group(2) and looks_secret_name(m.group(1)))
        for text in _written(value):
            known.update(tokens(text))
            if text and looks_secret_name(key):
                known.add(text)
    for key, value in list(draft.options.items()):
        shown = [t for text in _written(value) + _strings(value.text) for t in tokens(text)]
        shown += [k for k in known if len(k) >= 8 and any(
            k in text for text in _written(value) + _strings(value.text))]
        shown += [t for t in _written(value) if t and looks_secret_name(key)]
        if not shown:
            continue
        only = _ENV_REF.fullmatch(value.text or "")
        env = only.group(1) if only else SECRET_ENV.get(
            key, re.sub(r"[^A-Za-z0-9_]", "_", key).upper())
        draft.options[key] = Value(None, value.line, f"${{env:{env}}}",
                                   f"credential withheld by lorac import; set {env}")
        draft.report("LRC095", f"{key} held a credential ({fingerprint(shown[0])}); the profile "
                     f"reads it from ${{env:{env}}} instead", line=value.line,
                     hint=f"export {env}=… where the trainer runs, keep the value out of the "
                     "repository, and revoke the exposed one", severity=Severity.WARNING)
    remember(known)
    draft.unmapped = [replace(u, raw=mask(u.raw) if looks_secret_name(u.key.rsplit(".", 1)[-1])
                              and u.raw and "${" not in u.raw else redact_data(u.raw, known))
                      for u in draft.unmapped]
    draft.run = redact_data(draft.run, known)
    if draft.dataset is not None:
        draft.dataset = redact_data(draft.dataset, known)
    draft.description = redact_data(draft.description, known)
    draft.diagnostics = [replace(d, message=redact_data(d.message, known),
                                 hint=redact_data(d.hint, known)) for d in draft.diagnostics]
    return draft


def guess_family(options: Mapping[str, Any], draft: Draft) -> str | None:
    """Guess the model family from kohya options (network module, model paths)."""

    module = str(options.get("network_module") or "")
    model = str(options.get("pretrained_model_name_or_path") or "").lower()
    reason = ""
    family = None
    own = {"networks.lora_lumina": "lumina", "networks.lora_hunyuan_image": "hunyuan-image",
           "networks.lora_anima": "anima"}
    if module in own:
        family, reason = own[module], f"network_module {module!r}"
    elif options.get("gemma2"):
        family, reason = "lumina", "the gemma2 option"
    elif options.get("byt5"):
        family, reason = "hunyuan-image", "the byt5 option"
    elif options.get("qwen3"):
        family, reason = "anima", "the qwen3 option"
    elif options.get("model_type") == "chroma":
        family, reason = "chroma", "model_type 'chroma'"
    elif "flux" in module or options.get("ae") or (options.get("t5xxl") and not options.get(
            "clip_g")):
        family = flux_family(model)
        reason = f"network_module {module!r}" if module else "the ae/t5xxl options"
    elif "sd3" in module or options.get("clip_g"):
        family, reason = "sd3", f"network_module {module!r}" if module else "clip_g"
    elif "xl" in model:
        family, reason = "sdxl", "the model file name"
    elif options.get("sdxl") is True and module in ("", "networks.lora", "lycoris.kohya"):
        # the kohya_ss GUI's key (and some forks' option): the user's own word for SDXL
        family, reason = "sdxl", "sdxl = true"
    if family is None:
        family, reason = _family_from_model(options, module)
    if family:
        draft.report("LRC095", f"model family {family} (from {reason}); pass --family to "
                     "choose another")
    raw_model = options.get("pretrained_model_name_or_path")
    if family is None and model_kind(raw_model) == "flux2":
        draft.report("LRC095", f"the model and the options disagree: {raw_model!r} is a "
                     f"FLUX.2 model, network_module {module or '(unset)'} is "
                     f"{_module_owners(module)}, and no sd-scripts script trains FLUX.2; "
                     "no family is set", severity=Severity.ERROR,
                     hint="train FLUX.2 with musubi-tuner or ai-toolkit (--family flux2-dev)")
    else:
        check_model_agrees(draft, family, raw_model, module)
    return family


_SD1_RESOLUTION = 768  # the largest side SD 1.x/2.x recipes train at


def _family_from_model(options: Mapping[str, Any], module: str) -> tuple[str | None, str]:
    """The family of an sd-scripts config whose options name none: from the model's name,
    the ``v2`` flags, a resolution of at most 768 px, as the kohya_ss GUI importer assumes
    SD 1.x where no SDXL/FLUX/SD3 checkbox is set. A module of another family, or a model
    name that says another kind, decides nothing here."""

    from lorac.config.model_names import model_kind

    kind = model_kind(options.get("pretrained_model_name_or_path"))
    by_kind = {"sd1": "sd15", "sdxl": "sdxl", "sd3": "sd3"}
    if kind in by_kind:
        return by_kind[kind], "the model name"
    if kind is not None or (module and module != "networks.lora"):
        return None, ""
    if options.get("v2") is True or options.get("v_parameterization") is True:
        return "sd15", "v2 (train_network.py trains SD 2.x as well)"
    sides = _sides(options.get("resolution"))
    if sides and max(sides) <= _SD1_RESOLUTION:
        return "sd15", f"resolution {options.get('resolution')}"
    return None, ""


def _sides(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        parts = value.replace("x", ",").split(",")
        return [int(p) for p in parts if p.strip().isdigit()]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


def _module_owners(module: str | None) -> str:
    from lorac.config.inventory import load_families

    owners = [f"{name} ({f.script})" for name, f in load_families().items()
              if module and module in f.network_modules]
    return "the module of " + ", ".join(owners) if owners else "no family's module"


def model_kind(name: Any) -> str | None:
    from lorac.config.model_names import model_kind as kind

    return kind(name)


def check_model_agrees(draft: Draft, family: str | None, model: Any, module: str | None, *,
                       script: str | None = None, line: int = 0) -> bool:
    """Report (LRC095, error) a model whose name says another kind than ``family`` trains,
    naming the model, the script and the network module; True when they agree."""

    from lorac.config.inventory import family_script
    from lorac.config.model_names import KIND_NAMES, disagrees

    kind = disagrees(model, family)
    if kind is None:
        return True
    script = script or family_script(family) or "?"
    draft.report("LRC095", f"the model, the script and the network module disagree: "
                 f"{model!r} is a {KIND_NAMES[kind]} model, but {script} trains {family} "
                 f"and network_module {module or '(unset)'} is {_module_owners(module)}",
                 line=line, severity=Severity.ERROR,
                 hint="run the script of the model's family with its module, or train "
                 "the model the script is for")
    return False


def parse_toml(source: Source) -> Any:
    """Parse a TOML source into a :class:`lorac.config.document.Document`; invalid TOML raises
    :class:`LoracError` with its position."""

    from lorac.config import document

    try:
        return document.parse(source.text, source.display)
    except document.LoadError as exc:
        d = exc.diagnostic
        raise LoracError(f"{d.path}:{d.line}:{d.col}: {d.message}") from None


def load_dataset_file(path: Path, draft: Draft) -> dict[str, Any]:
    """Read an sd-scripts dataset-config TOML into a ``[dataset]`` table."""

    source = read_source(path)
    return dataset_from_kohya(parse_toml(source).data, draft, source.display)


def take_dataset_config(draft: Draft, value: Any, line: int, settings: Settings,
                        *bases: Path,
                        load: Callable[[Path, Draft], dict[str, Any]] | None = None) -> bool:
    """Handle the ``dataset_config`` option; False when the caller keeps it as an option.

    With ``--dataset-config`` the option is dropped (that file is read instead); otherwise the
    file it names (as given, else under ``bases``) is read into ``[dataset]`` by ``load``
    (sd-scripts' format unless told otherwise). A file that is not found is reported (LRC095)
    and left to the caller to keep as the option, which names the file for the trainer.
    """

    if settings.dataset_config is not None:
        return True
    found = find_relative(value, *bases) if isinstance(value, str) else None
    if found is None:
        draft.report("LRC095", f"dataset config {raw_text(value)} not found; kept as the "
                     "dataset_config option (pass --dataset-config FILE to import it)",
                     line=line, severity=Severity.WARNING)
        return False
    draft.dataset = (load or load_dataset_file)(found, draft)
    return True


def find_relative(name: str, *bases: Path) -> Path | None:
    """``name`` as given, else relative to each of ``bases``; None when no such file."""

    candidate = Path(name)
    if candidate.is_file():
        return candidate
    if not candidate.is_absolute():
        for base in bases:
            if (base / candidate).is_file():
                return base / candidate
    return None


#: ``(option, value, every option of the file) -> (changes nothing, what the trainer does)``
#: for a value outside argparse's choices that a ``--config_file`` hands to the script
#: unchecked (the kohya TOML reader's ``config_file_choice``).
ChoiceCheck = Callable[[str, Any, Mapping[str, Any]], tuple[bool, str]]


def import_options(draft: Draft, items: list[tuple[str, Any, int]], inventory: Any,
                   base: Path, settings: Settings, *,
                   unchecked: ChoiceCheck | None = None) -> None:
    """Check typed ``(name, value, line)`` kohya options against ``inventory`` into ``draft``.

    Shared by the kohya TOML importer and the shell importer (for its ``--config_file``).
    With ``unchecked`` the options come from a ``--config_file``, whose values sd-scripts
    never checks against argparse's choices: a value outside them is judged by what the
    script does with it (``unchecked``), not refused.
    """

    every = {name: value for name, value, _ in items}

    for name, value, line in items:
        if name == "config_file":
            continue
        if name == "dataset_config":
            if not take_dataset_config(draft, value, line, settings, base):
                draft.set("dataset_config", value, line=line)
            continue
        option = inventory.get(name)
        if option is None:
            close = inventory.closest(name, n=1)
            draft.unmap(name, value, "LRC093", f"{name!r} is not an option of "
                        f"{inventory.script}", line=line,
                        hint=f"did you mean {close[0]!r}?" if close else None)
            continue
        if unchecked is None:
            set_checked(draft, option, value, key=name, line=line)
        else:
            set_unchecked(draft, option, value, key=name, line=line, every=every,
                          verdict=unchecked)


def set_unchecked(draft: Draft, option: Any, value: Any, *, key: str, line: int,
                  every: Mapping[str, Any], verdict: ChoiceCheck) -> None:
    """:func:`set_checked` for a value that reaches sd-scripts through a ``--config_file``
    (a kohya TOML, or the one the kohya_ss GUI writes from its JSON): one outside argparse's
    choices is judged by ``verdict`` (what the script does with it), not refused."""

    if option.choices and not option.is_list:
        try:
            converted = coerce(option, value, choices=False)
        except ConversionError:
            pass  # a wrong type: set_checked reports it
        else:
            if converted not in option.choices:
                _outside_choices(draft, option, converted, key, line,
                                 verdict(option.dest, converted, every))
                return
    set_checked(draft, option, value, key=key, line=line)


def _outside_choices(draft: Draft, option: Any, value: Any, key: str, line: int,
                     verdict: tuple[bool, str]) -> None:
    """A ``--config_file`` value outside argparse's choices, which sd-scripts takes as it is
    (``library/args.py:1193-1194``: the file's values fill the namespace argparse parses
    into, and argparse checks choices only for what the command line gives)."""

    inert, truth = verdict
    choices = ", ".join(repr(c) for c in option.choices if c is not None)
    if inert:
        draft.keep(key, value, "LRC095")
        draft.report("LRC095", f"{key} = {raw_text(value)} is none of argparse's choices "
                     f"({choices}), but a --config_file value is not checked against them, "
                     f"and this one changes nothing: {truth}; left out of the profile",
                     line=line, severity=Severity.INFO)
        return
    draft.unmap(key, value, "LRC091", f"{key}: {raw_text(value)} is none of argparse's "
                f"choices ({choices}); from a --config_file sd-scripts takes it unchecked: "
                f"{truth}", line=line, severity=Severity.WARNING)


def set_checked(draft: Draft, option: Any, value: Any, *, key: str, line: int) -> None:
    """Set ``option`` from the source value ``value`` of ``key``, converted to its type.

    A value that does not convert is kept as a comment (LRC091); a placeholder value is set
    and reported (LRC094).
    """

    try:
        converted = coerce(option, value)
    except ConversionError as exc:
        draft.unmap(key, value, "LRC091", f"{key}: {exc}", line=line)
        return
    if looks_placeholder(converted):
        draft.report("LRC094", f"{key} is a placeholder ({raw_text(converted)}); set the real "
                     "value", line=line)
    draft.set(option.dest, converted, line=line)
