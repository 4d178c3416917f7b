"""Read the generated backend knowledge: pins, option inventories, dataset schema, facts.

The files live under ``backends/`` in the source tree and are shipped as ``lorac/_backends``
in a wheel; :func:`backends_dir` finds whichever exists. They are produced by
:mod:`lorac.trainers.inventory_gen` and never edited by hand.

A user who trains with another trainer version regenerates the inventories from their own
checkout into a folder laid out like ``backends/`` and points lorac at it, either with the
``LORAC_INVENTORY_DIR`` environment variable or the ``root`` argument of each loader. A file
missing from that folder falls back to the shipped copy (so ``pin.toml`` and ``families.toml``
need not be regenerated).

This module imports only the standard library (json, pathlib, dataclasses, functools) so that
the CLI starts fast; ``difflib`` and ``tomllib`` are imported when first needed.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

ENV_VAR = "LORAC_INVENTORY_DIR"

_FLAG_ACTIONS = frozenset({"store_true", "store_false"})


# --------------------------------------------------------------------------------------------
# Locating and reading files


@functools.lru_cache(maxsize=1)
def backends_dir() -> Path:
    """Return the shipped backend-data folder.

    ``lorac/_backends`` inside an installed wheel, else the source tree's top-level ``backends/``.
    """
    package = Path(__file__).resolve().parent.parent
    installed = package / "_backends"
    return installed if installed.is_dir() else package.parent / "backends"


#: The folder of the trainer version lint runs against (:func:`use_version_root`), when no
#: *root* argument and no ``$LORAC_INVENTORY_DIR`` say otherwise.
_ACTIVE_ROOT: list[Path] = []


def use_version_root(root: Path | None) -> None:
    """Make *root* (a folder laid out like ``backends/``) the inventory every loader reads
    unless given a *root* or ``$LORAC_INVENTORY_DIR``; None goes back to the shipped default."""
    _ACTIVE_ROOT[:] = [] if root is None else [root]


def _override(root: Path | None) -> str | None:
    """The override folder in effect: *root*, else ``$LORAC_INVENTORY_DIR``, else the active
    version's folder (:func:`use_version_root`), else None."""
    override = root if root is not None else os.environ.get(ENV_VAR) or None
    if override is None and _ACTIVE_ROOT:
        override = _ACTIVE_ROOT[0]
    return None if override is None else str(override)


def _resolve(relative: str, root: Path | None) -> Path:
    """Find *relative* under *root*, else under ``$LORAC_INVENTORY_DIR``, else the shipped copy."""
    override = _override(root)
    if override is not None:
        candidate = Path(override) / relative
        if candidate.is_file():
            return candidate
    return _shipped(relative)


@functools.lru_cache(maxsize=256)
def _shipped(relative: str) -> Path:
    return backends_dir() / relative


@functools.lru_cache(maxsize=64)
def _read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the TOML file *path* into plain data (``tomllib``; ``tomlkit`` on Python 3.10).

    Not cached: a file that may change between calls (settings) reads it afresh.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomlkit

        return tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    with path.open("rb") as fh:
        return tomllib.load(fh)


#: ``backends/parsed.json``: the TOML files of ``backends/`` already parsed, keyed by the
#: SHA-256 of each file's bytes (written by :mod:`lorac.config.parsed_gen`)
PARSED = "parsed.json"


@functools.lru_cache(maxsize=1)
def _parsed() -> dict[str, Any]:
    try:
        with (backends_dir() / PARSED).open(encoding="utf-8") as fh:
            parsed = json.load(fh)["parsed"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def parsed_key(raw: bytes) -> str:
    """The key of a TOML file's bytes in ``backends/parsed.json``: their SHA-256, CRLF line
    ends read as LF (as TOML reads them: a checkout that converts line ends parses the same)."""
    from lorac.core.digest import sha256

    return sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


@functools.lru_cache(maxsize=16)
def _read_toml(path: Path) -> dict[str, Any]:
    """Parse the backend-data TOML file *path*, or take its parsed copy from
    ``backends/parsed.json`` when that holds one of exactly these bytes (JSON loads in C;
    parsing TOML in Python was a tenth of a cold lint). Any other file (edited, regenerated,
    a user's own inventory) is parsed, so a stale copy costs time, never a wrong answer."""
    data = _parsed().get(parsed_key(path.read_bytes()))
    return data if data is not None else read_toml(path)


def load_backend_toml(relative: str, root: Path | None = None) -> dict[str, Any]:
    """Return the backend-data TOML file *relative* (``ai-toolkit/mapping.toml``), found like
    every other file here (*root*, ``$LORAC_INVENTORY_DIR``, shipped copy). Cached; do not
    mutate."""
    return _read_toml(_resolve(relative, root))


def _closest(name: str, candidates: Any, n: int) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)


# --------------------------------------------------------------------------------------------
# Pins and families


class Pin(NamedTuple):
    """The trainer version a backend is generated against (``backends/<backend>/pin.toml``)."""

    name: str
    repository: str
    commit: str
    date: str


def load_pin(backend: str, root: Path | None = None) -> Pin:
    """Return the ``[trainer]`` table of ``<backend>/pin.toml`` (``kohya`` or ``ai-toolkit``)."""
    data = _read_toml(_resolve(f"{backend}/pin.toml", root))["trainer"]
    return Pin(
        name=data["name"],
        repository=data["repository"],
        commit=data["commit"],
        date=str(data["date"]),
    )


class KohyaVersion(NamedTuple):
    """One sd-scripts version lorac ships an inventory of (``[[versions]]`` of
    ``kohya/pin.toml``); ``root`` is its folder laid out like ``backends/``."""

    commit: str
    date: str
    name: str
    root: Path

    @property
    def short(self) -> str:
        return self.commit[:8]


def kohya_versions() -> list[KohyaVersion]:
    """The shipped sd-scripts versions, oldest first (never an override's: a user's own
    inventory folder is one version, not a list)."""
    data = _read_toml(_shipped("kohya/pin.toml"))
    return [
        KohyaVersion(commit=v["commit"], date=str(v["date"]), name=v["name"],
                     root=backends_dir() / v["path"] if v["path"] else backends_dir())
        for v in data.get("versions", ())
    ]


def shipped_kohya_version(commit: str) -> KohyaVersion | None:
    """The shipped version at *commit* (a full commit, or a prefix of at least 7 hex digits)."""
    if len(commit) < 7:
        return None
    return next((v for v in kohya_versions() if v.commit.startswith(commit)), None)


def option_versions(name: str, script: str) -> list[KohyaVersion]:
    """The shipped versions whose *script* accepts option *name* (a dest or a flag)."""
    stem = script[:-3] if script.endswith(".py") else script
    found = []
    for version in kohya_versions():
        path = version.root / "kohya" / "inventory" / f"{stem}.json"
        if path.is_file() and name in _kohya_inventory(path):
            found.append(version)
    return found


class Family(NamedTuple):
    """A model family's kohya entry script and the network modules that suit it."""

    name: str
    script: str
    network_modules: tuple[str, ...]
    evidence: tuple[str, ...]


def load_families(root: Path | None = None) -> dict[str, Family]:
    """Return ``backends/kohya/families.toml`` as ``{family: Family}`` (cached; do not mutate)."""
    return _families(_resolve("kohya/families.toml", root))


@functools.lru_cache(maxsize=8)
def _families(path: Path) -> dict[str, Family]:
    table = _read_toml(path)["families"]
    return {
        name: Family(
            name=name,
            script=entry["script"],
            network_modules=tuple(entry.get("network_modules", ())),
            evidence=tuple(entry.get("evidence", ())),
        )
        for name, entry in table.items()
    }


def family_script(family: str | None, root: Path | None = None) -> str | None:
    """The kohya entry script of ``family`` (``flux_train_network.py``, …); None when the
    family is unset or unknown."""
    entry = load_families(root).get(family) if family else None
    return entry.script if entry else None


def load_network_modules(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """``backends/kohya/network_modules.toml``: module → facts (``args``, ``bools``,
    ``alpha_default``, …), with LyCORIS's ``lycoris.kohya`` from ``kohya/lycoris.toml``. Cached;
    do not mutate."""
    return _network_modules(_resolve("kohya/network_modules.toml", root),
                            _resolve("kohya/lycoris.toml", root))


@functools.lru_cache(maxsize=8)
def _network_modules(path: Path, lycoris: Path) -> dict[str, dict[str, Any]]:
    modules = dict(_read_toml(path).get("modules", {}))
    if lycoris.is_file():
        modules.update(_read_toml(lycoris).get("modules", {}))
    return modules


def load_lycoris(root: Path | None = None) -> dict[str, Any]:
    """``backends/kohya/lycoris.toml``: ``source`` (package, version, sha256), ``lycoris``
    (``algos``, ``presets``, ``aliases``, ``scaling``, each with where it is) and the module's
    ``network_args`` facts. Cached; do not mutate."""
    return _read_toml(_resolve("kohya/lycoris.toml", root))


# --------------------------------------------------------------------------------------------
# kohya argparse inventories


class Option(NamedTuple):
    """One argparse option of a kohya entry script, as its parser defines it.

    ``type`` is ``"int"``, ``"float"``, ``"str"``, ``"bool"`` (store_true/store_false),
    ``"path"`` (pathlib.Path), ``"const"`` (store_const), or the dotted name of a custom
    callable. ``default`` is the parser's default *as given* — argparse does not convert
    non-string defaults, so e.g. a float option may have an int default. ``path``/``line`` give
    the ``add_argument`` call in the trainer checkout.
    """

    dest: str
    flags: tuple[str, ...]
    type: str
    default: Any
    choices: tuple[Any, ...] | None
    action: str
    nargs: int | str | None
    line: int | None
    path: str | None
    required: bool = False
    const: Any = None

    @property
    def is_flag(self) -> bool:
        """True for store_true/store_false options (take no value on the command line)."""
        return self.action in _FLAG_ACTIONS

    @property
    def is_list(self) -> bool:
        """True when the option collects several values (nargs ``*``/``+``/N>1, or append)."""
        return (
            self.action == "append"
            or self.nargs in ("*", "+")
            or (isinstance(self.nargs, int) and self.nargs > 1)
        )

    @property
    def location(self) -> str:
        """``path:line`` of the defining ``add_argument`` call, or ``""`` when unknown."""
        return f"{self.path}:{self.line}" if self.path else ""


class Inventory(NamedTuple):
    """Every option of one kohya entry script at one trainer commit."""

    commit: str
    script: str
    options: dict[str, Option]

    def get(self, name: str) -> Option | None:
        """Return the option named *name* (a dest such as ``network_dim`` or a flag such as
        ``--network_dim``), or None."""
        option = self.options.get(name)
        if option is not None:
            return option
        for candidate in self.options.values():
            if name in candidate.flags:
                return candidate
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Return up to *n* option dests that look like *name* (for "did you mean" hints)."""
        return _closest(name.lstrip("-"), self.options, n)


def _option(entry: dict[str, Any]) -> Option:
    choices = entry.get("choices")
    return Option(
        dest=entry["dest"],
        flags=tuple(entry.get("flags", ())),
        type=entry["type"],
        default=entry.get("default"),
        choices=tuple(choices) if choices is not None else None,
        action=entry.get("action", "store"),
        nargs=entry.get("nargs"),
        line=entry.get("line"),
        path=entry.get("path"),
        required=bool(entry.get("required", False)),
        const=entry.get("const"),
    )


@functools.lru_cache(maxsize=16)
def _kohya_inventory(path: Path) -> Inventory:
    data = _read_json(path)
    return Inventory(
        commit=data["source"]["commit"],
        script=data["source"]["script"],
        options={dest: _option(entry) for dest, entry in data["options"].items()},
    )


def load_kohya_inventory(script: str, root: Path | None = None) -> Inventory:
    """Return the inventory of kohya entry script *script* (``flux_train_network.py`` or its
    stem ``flux_train_network``).

    Raises:
        FileNotFoundError: when no inventory exists for that script.
    """
    stem = script[:-3] if script.endswith(".py") else script
    return _kohya_inventory(_resolve(f"kohya/inventory/{stem}.json", root))


def kohya_scripts(root: Path | None = None) -> list[str]:
    """Return the entry scripts that have an inventory (``["flux_train_network.py", ...]``):
    those of the override folder and of the shipped copy, which answers for the rest."""
    folders = [_shipped("kohya/inventory")]
    override = _override(root)
    if override is not None:
        folders.append(Path(override) / "kohya" / "inventory")
    stems = {p.stem for folder in folders for p in folder.glob("*.json")}
    return sorted(f"{stem}.py" for stem in stems if stem != "dataset_config")


def kohya_options(root: Path | None = None) -> dict[str, Option]:
    """Every option of any inventoried entry script: ``{dest: Option}``, the first script in
    :func:`kohya_scripts` order answering for an option they share (their types agree at the
    pinned commit; ``tests/test_inventory_rules.py`` checks), with the choices of every script
    (lumina's ``timestep_sampling`` adds ``nextdit_shift``). Cached per override folder; do
    not mutate."""
    return _kohya_options(_override(root))


@functools.lru_cache(maxsize=8)
def _kohya_options(override: str | None) -> dict[str, Option]:
    root = Path(override) if override is not None else None
    union: dict[str, Option] = {}
    for script in kohya_scripts(root):
        for name, option in load_kohya_inventory(script, root).options.items():
            first = union.setdefault(name, option)
            if first.choices is not None and option.choices is not None:
                merged = first.choices + tuple(c for c in option.choices
                                               if c not in first.choices)
                if merged != first.choices:  # a family's script offers more choices
                    union[name] = first._replace(choices=merged)
    return union


# --------------------------------------------------------------------------------------------
# kohya dataset config (voluptuous schema)


_ACCEPT_CHECKS: dict[str, Any] = {
    # voluptuous checks a bare type with isinstance: bool passes as int, int fails as float.
    "int": lambda v: isinstance(v, int),
    "float": lambda v: isinstance(v, float),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "dict": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
    "list": lambda v: isinstance(v, (list, tuple)),
    "[int, int]": lambda v: (
        isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(i, int) for i in v)
    ),
    "[float, float]": lambda v: (
        isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(i, float) for i in v)
    ),
}


class DatasetKey(NamedTuple):
    """One key of kohya's dataset-config schema at one level.

    ``type`` is the voluptuous expression (``"int"``, ``"Any(float, int)"``,
    ``"Any(int, ExactSequence([int, int]))"``); ``accepts`` lists the shapes it lets through.
    """

    name: str
    type: str
    accepts: tuple[str, ...]
    required: bool
    defined_in: tuple[str, ...] = ()

    def accepts_value(self, value: Any) -> bool | None:
        """Whether sd-scripts' validator would take *value* (None when lorac cannot tell)."""
        known = [_ACCEPT_CHECKS.get(a) for a in self.accepts]
        if any(check is None for check in known):
            return None
        return any(check(value) for check in known if check is not None)


class DatasetSchema(NamedTuple):
    """kohya's dataset-config schema: ``general`` keys, and per variant the dataset and subset keys.

    Variants are ``dreambooth``, ``fine_tuning`` and ``controlnet``; levels are ``general``,
    ``dataset`` and ``subset``. ``raw`` is the whole generated document (fragments and lines).
    """

    commit: str
    general: dict[str, DatasetKey]
    variants: dict[str, dict[str, dict[str, DatasetKey]]]
    raw: dict[str, Any]

    def keys(self, level: str, variant: str = "dreambooth") -> dict[str, DatasetKey]:
        """Return the keys allowed at *level* (``general``/``dataset``/``subset``)."""
        if level == "general":
            return self.general
        return self.variants[variant][level]

    def closest(self, name: str, level: str, variant: str = "dreambooth", n: int = 3) -> list[str]:
        """Return up to *n* keys of that level that look like *name*."""
        return _closest(name, self.keys(level, variant), n)


def _dataset_keys(block: dict[str, Any]) -> dict[str, DatasetKey]:
    return {
        name: DatasetKey(
            name=name,
            type=entry["type"],
            accepts=tuple(entry["accepts"]),
            required=bool(entry["required"]),
            defined_in=tuple(entry.get("defined_in", ())),
        )
        for name, entry in block["keys"].items()
    }


@functools.lru_cache(maxsize=4)
def _dataset_schema(path: Path) -> DatasetSchema:
    data = _read_json(path)
    return DatasetSchema(
        commit=data["source"]["commit"],
        general=_dataset_keys(data["general"]),
        variants={
            variant: {level: _dataset_keys(block) for level, block in levels.items()}
            for variant, levels in data["variants"].items()
        },
        raw=data,
    )


def load_dataset_schema(root: Path | None = None) -> DatasetSchema:
    """Return kohya's dataset-config schema (``kohya/inventory/dataset_config.json``)."""
    return _dataset_schema(_resolve("kohya/inventory/dataset_config.json", root))


# --------------------------------------------------------------------------------------------
# ai-toolkit config keys and facts


class ToolkitKey(NamedTuple):
    """One key an ai-toolkit config class reads with ``kwargs.get(key, default)``.

    ``default`` is set when the default is a literal (``default_is_literal``); otherwise
    ``default_expr`` holds the expression and ``default_from`` the key it copies, if any.
    ``type`` is inferred from a literal default (``"none"`` for None, ``"expr"`` otherwise).
    """

    name: str
    type: str
    default: Any
    default_expr: str
    default_is_literal: bool
    default_from: str | None
    annotation: str | None
    attribute: str | None
    line: int


class ToolkitKeys(NamedTuple):
    """The keys of every config class in ai-toolkit's ``toolkit/config_modules.py``."""

    commit: str
    file: str
    classes: dict[str, dict[str, ToolkitKey]]

    def get(self, class_name: str, key: str) -> ToolkitKey | None:
        """Return *key* of *class_name* (e.g. ``("NetworkConfig", "linear_alpha")``), or None."""
        return self.classes.get(class_name, {}).get(key)

    def closest(self, class_name: str, key: str, n: int = 3) -> list[str]:
        """Return up to *n* keys of *class_name* that look like *key*."""
        return _closest(key, self.classes.get(class_name, {}), n)


@functools.lru_cache(maxsize=4)
def _toolkit_keys(path: Path) -> ToolkitKeys:
    data = _read_json(path)
    classes = {
        cls: {
            key: ToolkitKey(
                name=key,
                type=e["type"],
                default=e["default"],
                default_expr=e["default_expr"],
                default_is_literal=e["default_is_literal"],
                default_from=e.get("default_from"),
                annotation=e.get("annotation"),
                attribute=e.get("attribute"),
                line=e["line"],
            )
            for key, e in block["keys"].items()
        }
        for cls, block in data["classes"].items()
    }
    return ToolkitKeys(
        commit=data["source"]["commit"], file=data["source"]["file"], classes=classes
    )


def load_ai_toolkit_keys(root: Path | None = None) -> ToolkitKeys:
    """Return ai-toolkit's config keys (``ai-toolkit/inventory/config_keys.json``)."""
    return _toolkit_keys(_resolve("ai-toolkit/inventory/config_keys.json", root))


class Fact(NamedTuple):
    """A trainer behaviour that overrides configuration, with the source line that shows it."""

    id: str
    description: str
    file: str
    line: int
    applies_to: tuple[str, ...]

    @property
    def location(self) -> str:
        """``file:line`` in the trainer checkout."""
        return f"{self.file}:{self.line}"


def load_ai_toolkit_facts(root: Path | None = None) -> dict[str, Fact]:
    """Return ``ai-toolkit/facts.json`` as ``{fact_id: Fact}``."""
    data = _read_json(_resolve("ai-toolkit/facts.json", root))
    return {
        fid: Fact(
            id=fid,
            description=e["description"],
            file=e["file"],
            line=e["line"],
            applies_to=tuple(e.get("applies_to", ())),
        )
        for fid, e in data["facts"].items()
    }
