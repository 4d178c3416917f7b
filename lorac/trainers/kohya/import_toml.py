"""Import an sd-scripts ``--config_file`` TOML (and the dataset TOML it names).

sd-scripts flattens the file's sections into one namespace (``library/args.py``
``read_config_from_file``, lines 1181–1194 at the pinned commit): a top-level table's keys are
lifted to the top, later keys win. This importer does the same, checks every option against the
inventory of the family's entry script, and reads ``dataset_config`` (or ``--dataset-config``)
into ``[dataset]``.

A file that mixes training options with a dataset config's ``[general]`` / ``[[datasets]]`` is
read in both roles at once: the options into the profile, the dataset tables into
``[dataset]``, and a warning says what sd-scripts itself does with such a file (:data:`MIXED`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lorac.config import document
from lorac.core.diagnostics import LoracError, Severity
from lorac.importers import (
    Draft,
    Settings,
    Source,
    dataset_from_kohya,
    guess_family,
    import_options,
    inventory_for,
    model_kind,
    parse_toml,
)


def flatten(doc: document.Document, skip: tuple[str, ...] = ()) -> list[tuple[str, Any, int]]:
    """``(name, value, line)`` in file order, sections lifted the way sd-scripts lifts them
    (the top-level keys ``skip`` left out)."""

    items: list[tuple[str, Any, int]] = []
    for section, table in doc.data.items():
        if section in skip:
            continue
        if isinstance(table, dict):
            for key, value in table.items():
                items.append((key, value, doc.position((section, key))[0]))
        else:
            items.append((section, table, doc.position((section,))[0]))
    last = {name: i for i, (name, _, _) in enumerate(items)}
    return [item for i, item in enumerate(items) if last[item[0]] == i]


#: What sd-scripts does with a file that holds training options and dataset tables, in each
#: role (pinned commit): as ``--config_file`` the ``[general]`` keys become options and
#: ``[[datasets]]`` is one more attribute nothing reads, so the dataset comes from
#: ``--train_data_dir`` or nowhere ("No data found", and the script returns); as
#: ``--dataset_config`` the voluptuous schema allows only ``general`` and ``datasets``.
MIXED = ("as --config_file, sd-scripts lifts [general]'s keys into its options and ignores "
         "[[datasets]] (library/args.py:1181-1194), so training finds no images "
         "(train_network.py:982-986 'No data found') unless --dataset_config or "
         "--train_data_dir names them; as --dataset_config, its schema refuses every key but "
         "[general] and [[datasets]] (library/config_util.py:360-365, 376-382)")
_DATASET_TABLES = ("general", "datasets")


def read(source: Source, settings: Settings) -> Draft:
    """Read ``source`` as a kohya ``--config_file`` TOML (see :data:`MIXED` for one that also
    holds a dataset config)."""

    doc = parse_toml(source)
    draft = Draft(kind="kohya-toml", source=source.display)
    mixed = any(k in doc.data for k in _DATASET_TABLES)
    if mixed and all(k in _DATASET_TABLES for k in doc.data):
        raise LoracError(f"{source.display} is a dataset config ([general]/[[datasets]] "
                         "only), not a --config_file; import the config file and pass this "
                         "one with --dataset-config")
    if mixed:
        line = doc.position(("datasets",) if "datasets" in doc.data else ("general",))[0]
        draft.report("LRC095", f"{source.display} mixes training options with a dataset "
                     f"config: {MIXED}; lorac imports the options into the profile and the "
                     "dataset tables into [dataset], which `lorac build` writes as a dataset "
                     "config of its own", line=line, severity=Severity.WARNING)
        tables = {k: doc.data[k] for k in _DATASET_TABLES if k in doc.data}
        items = flatten(doc, skip=_DATASET_TABLES)
        if settings.dataset_config is None and not any(n == "dataset_config" for n, _, _ in
                                                       items):
            draft.dataset = dataset_from_kohya(tables, draft, source.display)
        else:
            draft.report("LRC095", "the file's [general]/[[datasets]] are not imported: a "
                         "dataset config is given, and sd-scripts reads that one",
                         line=line, severity=Severity.WARNING)
    else:
        items = flatten(doc)
    options = {name: value for name, value, _ in items}
    draft.family = settings.family or guess_family(options, draft) or family_from_file_name(
        source, options, draft)
    inventory = inventory_for(draft.family)
    import_options(draft, items, inventory, source.path.parent, settings,
                   unchecked=config_file_choice)
    return draft


def family_from_file_name(source: Source, options: Mapping[str, Any],
                          draft: Draft) -> str | None:
    """The family a TOML's own name gives (``sdxl_inpainting_test_lora.toml``) when its
    options name none: no model whose name says a kind, a module any family uses; a
    ``--config_file`` is made for one script, and its name is often all that says which."""

    if model_kind(options.get("pretrained_model_name_or_path")) is not None or \
            str(options.get("network_module") or "") not in ("", "networks.lora",
                                                             "lycoris.kohya"):
        return None
    words = set(re.split(r"[^a-z0-9]+", source.path.stem.lower()))
    family = "sdxl" if "sdxl" in words else "sd15" if words & {"sd15", "sd1"} else None
    if family is not None:
        draft.report("LRC095", f"model family {family} (from the file name "
                     f"{source.path.name!r}); pass --family to choose another")
    return family


def config_file_choice(name: str, value: Any, options: Mapping[str, Any]) -> tuple[bool, str]:
    """What sd-scripts (pinned commit) does with ``name = value`` from a ``--config_file``
    when the value is none of argparse's choices: ``(changes nothing, what it does)``."""

    if name == "max_token_length" and value == 75:
        return True, ("75 tokens is what the SD/SDXL scripts use when it is unset "
                      "(library/strategy_sd.py:36-39, library/strategy_sdxl.py:28-31: the "
                      "tokenizer's 77 = 75 + 2)")
    if name == "dynamo_backend" and not options.get("torch_compile"):
        return True, ("dynamo_backend is read only with torch_compile "
                      "(library/accelerator_setup.py:116-118), which is off")
    if name == "dynamo_backend" and str(value).upper() == "NO":
        return False, ("accelerate then compiles nothing "
                       "(library/accelerator_setup.py:116-118): torch_compile is off in effect")
    return False, "the script meets the value where it uses the option"
