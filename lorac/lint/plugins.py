"""The plugin manager: built-in plugins and the ``lorac`` entry-point group.

Built-in plugins are listed in :data:`BUILTIN` and registered through the same path as
third-party ones. A plugin that fails to import, a misspelt hook, a malformed rule or a code
clash stops lorac with the plugin's name (exit 3): a linter that silently skips a rule is a
linter that silently passes bad configs.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pluggy

from lorac.core.diagnostics import ExitCode, LoracError
from lorac.lint import hookspecs

BUILTIN: tuple[str, ...] = (
    "lorac.lint.rules.core",
    "lorac.lint.rules.outputs",
    "lorac.lint.rules.importing",
    "lorac.lint.rules.dataset",
    "lorac.lint.rules.network",
    "lorac.lint.rules.models",
    "lorac.trainers.kohya.rules.compat",
    "lorac.trainers.kohya.rules.families",
    "lorac.trainers.kohya.rules.lycoris",
    "lorac.lint.rules.secrets",
    "lorac.lint.rules.variables",
    "lorac.lint.rules.docs",
    "lorac.lint.rules.hygiene",
    "lorac.trainers.memory_rules",
    "lorac.trainers.kohya.rules.options",
    "lorac.trainers.kohya.rules.versions",
    "lorac.trainers.kohya.rules.silent",
    "lorac.trainers.kohya.rules.launchers",
    "lorac.trainers.kohya.emitter",
    "lorac.trainers.ai_toolkit.emitter",
    "lorac.trainers.musubi.emitter",
    "lorac.trainers.musubi.rules.checks",
    "lorac.trainers.musubi.rules.gpus",
    "lorac.trainers.ai_toolkit.rules.tables",
    "lorac.trainers.ai_toolkit.rules.traps",
    "lorac.trainers.ai_toolkit.rules.scheduler",
    "lorac.trainers.ai_toolkit.rules.gpus",
    "lorac.trainers.kohya.rules.tables",
    "lorac.trainers.tables",
)
GROUP = "lorac"
#: Built-in plugins of one trainer that ``lorac lint`` registers only when a linted profile
#: names that trainer (``[profile] backend`` or a ``[trainers.<name>]`` table): their rules
#: report nothing for any other profile, and importing and registering them is a third of a
#: cold lint. Every other command registers all of :data:`BUILTIN`.
BY_TRAINER: dict[str, tuple[str, ...]] = {
    "ai-toolkit": ("lorac.trainers.ai_toolkit.emitter", "lorac.trainers.ai_toolkit.rules.tables",
                   "lorac.trainers.ai_toolkit.rules.traps"),
    "musubi": ("lorac.trainers.musubi.emitter", "lorac.trainers.musubi.rules.checks"),
}


class _PluginManager(pluggy.PluginManager):
    """pluggy's plugin manager, finding the hook implementations of a module plugin sooner.

    pluggy asks :meth:`parse_hookimpl_opts` about every name of every plugin, and looks each
    up with :func:`inspect.getattr_static`: a fifth of a cold lint went there, on the
    classes and functions the rule modules import. For a plain module that lookup gives the
    module's own ``__dict__`` entry, so this reads the entry directly: a function's marker
    is its ``lorac_impl`` attribute, and a class, a module or plain data (neither callable nor
    a descriptor) is no hook implementation, as pluggy decides; anything else, any other kind
    of plugin and any ``__dunder__`` name still goes through pluggy.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        if type(plugin) is types.ModuleType and not name.startswith("__"):
            value = plugin.__dict__.get(name)
            if type(value) is types.FunctionType:
                opts = getattr(value, self.project_name + "_impl", None)
                return opts if isinstance(opts, dict) else None
            if isinstance(value, (type, types.ModuleType)):
                return None
            if not callable(value) and not hasattr(type(value), "__get__"):
                return None  # data: a constant, a table, ``annotations`` of __future__
        return super().parse_hookimpl_opts(plugin, name)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    version: str
    builtin: bool


class Plugins:
    """The loaded plugins, their rules and backends."""

    def __init__(self, pm: pluggy.PluginManager, infos: list[PluginInfo],
                 pending: dict[str, tuple[str, ...]] | None = None) -> None:
        self.pm = pm
        self.infos = infos
        #: trainers whose built-in plugins are not registered yet (:data:`BY_TRAINER`)
        self.pending = dict(pending or {})

    def load_trainers(self, names: Iterable[str] | None = None) -> None:
        """Register the pending built-in plugins of the trainers ``names`` (all when None);
        the rule and backend tables are rebuilt on their next use."""

        from lorac import __version__

        wanted = [n for n in (self.pending if names is None else names) if n in self.pending]
        if not wanted:
            return
        for trainer in wanted:
            for modname in self.pending.pop(trainer):
                module = importlib.import_module(modname)
                if self.pm.is_registered(module):
                    continue
                self.pm.register(module, name=modname)
                self.infos.append(PluginInfo(modname, modname, __version__, True))
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise LoracError(f"plugin {exc.plugin!r}: {exc}", ExitCode.INTERNAL) from None
        self.__dict__.pop("rules", None)
        self.__dict__.pop("backends", None)

    @property
    def backend_names(self) -> list[str]:
        """Every backend's name, those of pending trainers included (nothing is imported)."""
        return sorted({*self.backends, *self.pending})

    @cached_property
    def rules(self) -> dict:
        from lorac.lint.rules import validate_rule

        rules: dict = {}
        owners: dict[str, str] = {}
        for impl in reversed(self.pm.hook.lorac_rules.get_hookimpls()):
            plugin = impl.plugin_name
            for rule in impl.function() or ():
                validate_rule(rule, plugin)
                if rule.code in rules:
                    raise LoracError(f"rule code {rule.code} is defined by both plugin "
                                     f"{owners[rule.code]} and plugin {plugin}",
                                     ExitCode.INTERNAL)
                rules[rule.code] = rule
                owners[rule.code] = plugin
        return dict(sorted(rules.items()))

    @cached_property
    def backends(self) -> dict:
        from lorac.lint.hookspecs import Backend

        out: dict = {}
        for impl in reversed(self.pm.hook.lorac_backends.get_hookimpls()):
            for backend in impl.function() or ():
                if not isinstance(backend, Backend):
                    raise LoracError(f"plugin {impl.plugin_name}: {backend!r} is not a backend",
                                     ExitCode.INTERNAL)
                if backend.name in out:
                    raise LoracError(f"backend {backend.name!r} is defined twice "
                                     f"(plugin {impl.plugin_name})", ExitCode.INTERNAL)
                out[backend.name] = backend
        return out

    def backend(self, name: str):
        try:
            return self.backends[name]
        except KeyError:
            known = ", ".join(sorted(self.backends)) or "none"
            raise LoracError(f"unknown backend {name!r} (available: {known})") from None


@dataclass(frozen=True)
class EntryPoint:
    """One ``[lorac]`` entry point of an installed distribution."""

    name: str
    value: str
    dist_dir: str

    def load(self) -> object:
        module, _, attr = self.value.partition(":")
        obj: object = importlib.import_module(module.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        return obj

    @property
    def version(self) -> str:
        try:
            with open(os.path.join(self.dist_dir, "METADATA"), encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
                    if not line.strip():
                        break
        except OSError:
            pass
        return ""


_DIST = re.compile(r"^(?P<name>[^-]+)-[^-]+\.(dist|egg)-info$")


def find_entry_points(group: str = GROUP) -> list[EntryPoint]:
    """The ``group`` entry points of the distributions on ``sys.path``.

    Reads ``entry_points.txt`` directly, as :mod:`importlib.metadata` would (the first
    distribution of a name on ``sys.path`` wins), without importing it: that import alone costs
    about 30 ms of every lint.
    """

    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            m = _DIST.match(name)
            if not m:
                continue
            dist = m.group("name").lower().replace("_", "-").replace(".", "-")
            if dist in seen:
                continue
            seen.add(dist)
            path = os.path.join(entry or ".", name, "entry_points.txt")
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except OSError:
                continue
            section = None
            for raw in text.splitlines():
                line = raw.strip()
                if not line or line[0] in "#;":
                    continue
                if line.startswith("[") and line.endswith("]"):
                    section = line[1:-1].strip()
                elif section == group and "=" in line:
                    key, _, value = line.partition("=")
                    found.append(EntryPoint(key.strip(), value.strip(),
                                            os.path.join(entry or ".", name)))
    return found


def get_plugins(*, entry_points: bool = True, lazy: bool = False) -> Plugins:
    """Build the plugin manager: built-ins first, then the ``lorac`` entry-point group. With
    ``lazy``, the plugins of :data:`BY_TRAINER` wait for :meth:`Plugins.load_trainers`."""

    from lorac import __version__

    pm = _PluginManager("lorac")
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    pending = {t: mods for t, mods in BY_TRAINER.items() if all(m in BUILTIN for m in mods)} \
        if lazy else {}
    waiting = {m for mods in pending.values() for m in mods}
    for modname in BUILTIN:
        if modname in waiting:
            continue
        module = importlib.import_module(modname)
        pm.register(module, name=modname)
        infos.append(PluginInfo(modname, modname, __version__, True))
    if entry_points:
        for ep in sorted(find_entry_points(GROUP), key=lambda e: e.name):
            try:
                plugin = ep.load()
            except Exception as exc:
                raise LoracError(f"plugin {ep.name!r} ({ep.value}) failed to load: "
                                 f"{exc.__class__.__name__}: {exc}", ExitCode.INTERNAL) from None
            if pm.is_registered(plugin):
                continue
            pm.register(plugin, name=ep.name)
            infos.append(PluginInfo(ep.name, ep.value, ep.version, False))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise LoracError(f"plugin {exc.plugin!r}: {exc}", ExitCode.INTERNAL) from None
    return Plugins(pm, infos, pending)
