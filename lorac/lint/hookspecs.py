"""The lorac plugin contract: every hook a plugin may implement.

lorac is assembled from plugins. Its own rules and backends are plugins registered through the
same path as third-party ones (see :func:`lorac.lint.plugins.get_plugin_manager`); a third-party
package adds rules or backends by registering a module in the ``lorac`` entry-point group::

    [project.entry-points.lorac]
    my_rules = "my_package.lorac_plugin"

and implementing any of the hooks below with ``@lorac.hookimpl``. Hooks are called in
pluggy's order (last registered first); every hook here collects all results (none is
``firstresult``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from lorac.lint.rules import Rule
    from lorac.trainers import Backend

hookspec = pluggy.HookspecMarker("lorac")
hookimpl = pluggy.HookimplMarker("lorac")


# --------------------------------------------------------------------------- lint phase


@hookspec
def lorac_rules() -> list[Rule]:
    """Return the lint rules this plugin provides.

    Called once when the plugin manager is built, before any file is read. Each item is an
    instance of a :class:`lorac.lint.rules.Rule` subclass with its ``code``, ``name``, ``severity``
    and ``fix`` attributes set and a docstring in the sections *What it does / Why is this
    bad? / Example / Use instead / Fix safety*. Codes must be unique across all plugins: a
    clash stops lorac and names both plugins. Results of all plugins are concatenated.
    """


# --------------------------------------------------------------------------- emit phase


@hookspec
def lorac_backends() -> list[Backend]:
    """Return the backends (trainer emitters) this plugin provides.

    Called once when the plugin manager is built. Each item satisfies the
    :class:`lorac.trainers.Backend` protocol: a ``name`` (``kohya``, ``ai-toolkit``…), the
    ``formats`` it can emit and an ``emit(profile, fmt)`` method returning
    :class:`lorac.trainers.Artifacts`. Names must be unique across plugins. Results of all
    plugins are concatenated.
    """
