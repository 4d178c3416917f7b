"""Import an sd-scripts ``--config_file`` TOML (and the dataset TOML it names).

sd-scripts flattens the file's sections into one namespace (``library/train_util.py``
``read_config_from_file``, lines 4748–4761 at the pinned commit): a top-level table's keys are
lifted to the top, later keys win. This importer does the same, checks every option against the
inventory of the family's entry script, and reads ``dataset_config`` (or ``--dataset-config``)
into ``[dataset]``.
"""

from __future__ import annotations

from typing import Any

from lorac.config import document
from lorac.core.diagnostics import LoracError
from lorac.importers import (
    Draft,
    Settings,
    Source,
    guess_family,
    import_options,
    inventory_for,
    parse_toml,
)


def flatten(doc: document.Document) -> list[tuple[str, Any, int]]:
    """``(name, value, line)`` in file order, sections lifted the way sd-scripts lifts them."""

    items: list[tuple[str, Any, int]] = []
    for section, table in doc.data.items():
        if isinstance(table, dict):
            for key, value in table.items():
                items.append((key, value, doc.position((section, key))[0]))
        else:
            items.append((section, table, doc.position((section,))[0]))
    last = {name: i for i, (name, _, _) in enumerate(items)}
    return [item for i, item in enumerate(items) if last[item[0]] == i]


def read(source: Source, settings: Settings) -> Draft:
    """Read ``source`` as a kohya ``--config_file`` TOML."""

    doc = parse_toml(source)
    draft = Draft(kind="kohya-toml", source=source.display)
    if "datasets" in doc.data or "general" in doc.data:
        raise LoracError(f"{source.display} is a dataset config ([[datasets]]), not a "
                         "--config_file; import the config file and pass this one with "
                         "--dataset-config")
    items = flatten(doc)
    draft.family = settings.family or guess_family(
        {name: value for name, value, _ in items}, draft)
    inventory = inventory_for(draft.family)
    import_options(draft, items, inventory, source.path.parent, settings)
    return draft
