"""The plugin manager: built-in plugins and the ``lorac`` entry-point group.

Built-in plugins are listed in :data:`BUILTIN` and registered through the same path as
third-party ones. A plugin that fails to import, a misspelt hook, a malformed rule or a code
clash stops lorac with the plugin's name (exit 3): a linter that silently skips a rule is a
linter that silently passes bad configs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata

import pluggy

from lorac import hookspecs
from lorac.diagnostics import ExitCode, LoracError

BUILTIN: tuple[str, ...] = (
    "lorac.plugins.rules.core",
    "lorac.plugins.rules.importing",
    "lorac.plugins.dataset_rules",
    "lorac.plugins.rules.network",
    "lorac.plugins.rules.compat",
    "lorac.plugins.rules.secrets",
    "lorac.plugins.rules.variables",
    "lorac.plugins.rules.docs",
    "lorac.plugins.rules.hygiene",
    "lorac.plugins.rules.memory",
    "lorac.plugins.test_backend",
    "lorac.plugins.inventory_rules",
    "lorac.plugins.kohya",
    "lorac.plugins.ai_toolkit",
)
GROUP = "lorac"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    version: str
    builtin: bool


class Plugins:
    """The loaded plugins, their rules and backends."""

    def __init__(self, pm: pluggy.PluginManager, infos: list[PluginInfo]) -> None:
        self.pm = pm
        self.infos = infos

    @cached_property
    def rules(self) -> dict:
        from lorac.rules import validate_rule

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
        from lorac.backend import Backend

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


def _version(dist: metadata.Distribution | None) -> str:
    return dist.version if dist is not None else ""


def get_plugins(*, entry_points: bool = True) -> Plugins:
    """Build the plugin manager: built-ins first, then the ``lorac`` entry-point group."""

    from lorac import __version__

    pm = pluggy.PluginManager("lorac")
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    for modname in BUILTIN:
        module = importlib.import_module(modname)
        pm.register(module, name=modname)
        infos.append(PluginInfo(modname, modname, __version__, True))
    if entry_points:
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            try:
                plugin = ep.load()
            except Exception as exc:
                raise LoracError(f"plugin {ep.name!r} ({ep.value}) failed to load: "
                                 f"{exc.__class__.__name__}: {exc}", ExitCode.INTERNAL) from None
            if pm.is_registered(plugin):
                continue
            pm.register(plugin, name=ep.name)
            infos.append(PluginInfo(ep.name, ep.value, _version(ep.dist), False))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise LoracError(f"plugin {exc.plugin!r}: {exc}", ExitCode.INTERNAL) from None
    return Plugins(pm, infos)
