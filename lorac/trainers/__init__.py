"""The trainer-neutral part of every backend, and one folder per trainer below.

A backend turns a resolved :class:`~lorac.config.profile.Profile` into the files a trainer reads and
the command that launches it. Backends are plugins (hook ``lorac_backends``); the core never
names one. What a backend is and returns, :class:`Backend` and :class:`Artifacts`, is part of
the plugin contract (:mod:`lorac.lint.hookspecs`) and importable from here too; this module
holds what emitters share: writing ``train.sh``, reading ``[run.env]`` and the datasets of
``[dataset]``.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, NamedTuple

from lorac.core.diagnostics import KeyPath, LoracError

if TYPE_CHECKING:
    from lorac.config.profile import Profile


def __getattr__(name: str) -> Any:
    # Backend and Artifacts from the plugin contract, without importing pluggy for every user
    # of a trainer module
    if name in ("Artifacts", "Backend"):
        from lorac.lint import hookspecs

        return getattr(hookspecs, name)
    raise AttributeError(name)


# --------------------------------------------------------------------------- train.sh

#: Prefix of emitted files in ``Artifacts.argv``: ``{build_dir}/config.toml``.
BUILD_DIR = "{build_dir}"

class CheckoutVar(NamedTuple):
    """How ``train.sh`` finds the trainer checkout: the ``Artifacts.argv`` placeholder prefix
    (``{sd_scripts}``), the shell variable it becomes (``sd_scripts``), the environment variable
    that sets it (``LORAC_SD_SCRIPTS``) and what it names (``the sd-scripts checkout``)."""

    prefix: str
    shell: str
    env_var: str
    what: str


def run_env(profile: Profile) -> dict[str, str]:
    """``[run.env]`` as strings: a :class:`LoracError` for a name that
    :func:`lorac.core.envnames.problem` refuses (lint reports the same as LRC209, at the key)
    or a value with a NUL character."""

    from lorac.config.validate import run_section
    from lorac.core.envnames import problem

    env = run_section(profile).get("env", {})
    out = {}
    for name, value in env.items():
        why = problem(name)
        if why is not None:
            raise LoracError(f"{profile.path}: {why[0]}")
        if "\x00" in str(value):
            raise LoracError(f"{profile.path}: [run.env] {name} contains a NUL character")
        out[name] = str(value)
    return out


def shell_script(argv: list[str], env: dict[str, str], header: str, checkout: CheckoutVar,
                 placeholders: Collection[int]) -> str:
    """``train.sh`` running ``argv`` with every element quoted for bash.

    ``env`` reaches the trainer only through ``exec env NAME=value … argv``, after the script's
    own variables (``here``, ``checkout.shell``) have been expanded: no name in ``env`` is ever
    assigned in the shell, so none can change what the script runs (``here=…`` moving
    ``--config_file``) or stop it (``SHELLOPTS: readonly variable``). A variable whose name
    reads like a credential (``HF_TOKEN``, ``WANDB_API_KEY``) is not written down: the script
    requires it in the caller's environment, which the trainer inherits (the check reads the
    name in the shell; the script's own names never read like credentials).

    The elements at the indices ``placeholders`` that start with ``checkout.prefix`` or
    :data:`BUILD_DIR` become ``"$<checkout.shell>"/…`` / ``"$here"/…``; every other element is
    ``shlex.quote``-d.
    """

    from lorac.core.secrets import looks_secret_name

    lines = ["#!/usr/bin/env bash"]
    lines += [f"# {line}" for line in header.splitlines()]
    lines += [
        "set -euo pipefail",
        'here="$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)"',
        f'{checkout.shell}="${{{checkout.env_var}:?set {checkout.env_var} to {checkout.what}}}"',
    ]
    assigned = []
    for name, value in env.items():
        if looks_secret_name(name):  # never written down: taken from the caller's environment
            lines.append(f': "${{{name}:?set {name} in the environment}}"')
        else:
            assigned.append(shlex.quote(f"{name}={value}"))
    words = []
    for i, arg in enumerate(argv):
        if i in placeholders and arg.startswith(checkout.prefix + "/"):
            words.append(f'"${checkout.shell}"/' + shlex.quote(arg[len(checkout.prefix) + 1:]))
        elif i in placeholders and arg.startswith(BUILD_DIR + "/"):
            words.append('"$here"/' + shlex.quote(arg[len(BUILD_DIR) + 1:]))
        else:
            words.append(shlex.quote(arg))
    command = f"{words[0]} {words[1]} " + " \\\n  ".join(words[2:])
    if assigned:  # the user's names go to env(1) as arguments, never to the shell
        command = " \\\n  ".join(["env", *assigned, command])
    lines.append(f"exec {command}")
    return "\n".join(lines) + "\n"


def shell_steps(steps: list[tuple[str, list[str], Collection[int]]], env: dict[str, str],
                header: str, checkout: CheckoutVar) -> str:
    """``train.sh`` running several commands in order, stopping at the first that fails; each
    step is ``(comment, argv, placeholders)`` with ``argv``/``placeholders`` as for
    :func:`shell_script`.

    ``env`` reaches every command only as arguments of ``env(1)`` (``env NAME=value … argv``),
    never assigned in the shell, so no name in it can change what the script runs; the last
    command is ``exec``-ed. A name that reads like a credential is not written down but
    required from the caller's environment, which the commands inherit.
    """

    from lorac.core.secrets import looks_secret_name

    lines = ["#!/usr/bin/env bash"]
    lines += [f"# {line}" for line in header.splitlines()]
    lines += [
        "set -euo pipefail",
        'here="$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)"',
        f'{checkout.shell}="${{{checkout.env_var}:?set {checkout.env_var} to {checkout.what}}}"',
    ]
    assigned = []
    for name, value in env.items():
        if looks_secret_name(name):
            lines.append(f': "${{{name}:?set {name} in the environment}}"')
        else:
            assigned.append(shlex.quote(f"{name}={value}"))
    for n, (comment, argv, placeholders) in enumerate(steps):
        words = []
        for i, arg in enumerate(argv):
            if i in placeholders and arg.startswith(checkout.prefix + "/"):
                words.append(f'"${checkout.shell}"/' + shlex.quote(arg[len(checkout.prefix) + 1:]))
            elif i in placeholders and arg.startswith(BUILD_DIR + "/"):
                words.append('"$here"/' + shlex.quote(arg[len(BUILD_DIR) + 1:]))
            else:
                words.append(shlex.quote(arg))
        command = " \\\n  ".join(["env", *assigned, *words] if assigned else words)
        lines.append(f"# {comment}")
        lines.append(("exec " if n == len(steps) - 1 else "") + command)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- [dataset]


def dataset_groups(data: dict[str, Any]) -> list[tuple[KeyPath, dict[str, Any], list[Any]]]:
    """The datasets of ``[dataset]`` (``data``) in the order sd-scripts gets them, each as
    ``(key_path, own keys, subsets)``.

    The first is ``[dataset]``'s own ``subsets`` (key path ``("dataset",)``, no keys of its
    own: the other keys of ``[dataset]`` are ``[general]``); then each ``[[dataset.datasets]]``
    table, without its ``subsets`` key. Subsets keep their positions (items that are not tables
    included, so that key paths stay right); a ``subsets`` that is not a list counts as none.
    """

    def subsets(table: dict[str, Any]) -> list[Any]:
        subs = table.get("subsets")
        return subs if isinstance(subs, list) else []

    groups: list[tuple[KeyPath, dict[str, Any], list[Any]]] = [(("dataset",), {}, subsets(data))]
    datasets = data.get("datasets")
    if isinstance(datasets, list):
        groups += [(("dataset", "datasets", i), {k: v for k, v in ds.items() if k != "subsets"},
                    subsets(ds)) for i, ds in enumerate(datasets) if isinstance(ds, dict)]
    return groups
