"""Lint against the sd-scripts version the user runs.

When a checkout is configured (``$LORAC_SD_SCRIPTS``, else ``[tool.lorac] sd-scripts``) and no
``$LORAC_INVENTORY_DIR`` says otherwise, lint reads the option inventory of that checkout's
commit: the shipped one when lorac ships that version (``[[versions]]`` of
``backends/kohya/pin.toml``), else one generated from the checkout once and kept in the user
cache, keyed by commit, so that the next lint pays nothing. Generation runs lorac's generators
in a child process (``python -m lorac.trainers.inventory_gen``); nothing is fetched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from lorac.config import inventory
from lorac.core.diagnostics import LoracError

# shutil, subprocess and tempfile are imported where a checkout is read: every lint imports
# this module, few configure a checkout
CHECKOUT_ENV = "LORAC_SD_SCRIPTS"
CACHE_ENV = "LORAC_CACHE_DIR"
#: Written last into a generated folder: a folder without it is incomplete and regenerated.
COMPLETE = ".complete"


class ActiveVersion(NamedTuple):
    """The sd-scripts version a lint run reads: its commit, where its inventory lies, whether
    lorac ships it, and the checkout files that tell its commit (for the lint result cache)."""

    commit: str
    root: Path
    shipped: bool
    checkout: Path
    markers: tuple[Path, ...]


def cache_dir() -> Path:
    """Where generated inventories are kept: ``$LORAC_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/lorac``, else ``~/.cache/lorac``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lorac"


def _commit(path: Path) -> tuple[str | None, tuple[Path, ...]]:
    """The checkout's commit and the files it was read from (``.lorac-commit``, else git's)."""
    marker = path / ".lorac-commit"
    if marker.is_file():
        return marker.read_text(encoding="utf-8").strip() or None, (marker,)
    git = path / ".git"
    if not git.is_dir():
        return None, ()
    import shutil
    import subprocess

    if shutil.which("git"):
        proc = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            head = git / "HEAD"
            markers = [head]
            text = head.read_text(encoding="utf-8").strip() if head.is_file() else ""
            if text.startswith("ref: "):
                markers.append(git / text[5:])
            return proc.stdout.strip(), tuple(markers)
    return None, ()


def configured_checkout(settings: Any) -> Path | None:
    """The sd-scripts checkout named by ``$LORAC_SD_SCRIPTS`` or ``[tool.lorac] sd-scripts``."""
    raw = os.environ.get(CHECKOUT_ENV)
    path = Path(raw) if raw else getattr(settings, "sd_scripts", None)
    return path if path is not None and (path / "train_network.py").is_file() else None


def generate(checkout: Path, commit: str) -> Path:
    """The cached inventory folder of *checkout* at *commit*, generated first when missing.

    Raises:
        LoracError: when the checkout cannot be read.
    """
    target = cache_dir() / "sd-scripts" / commit
    if (target / COMPLETE).is_file():
        return target
    import shutil
    import subprocess
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{commit[:8]}-", dir=target.parent))
    try:
        for module in ("lorac.trainers.inventory_gen", "lorac.trainers.kohya.network_args_gen"):
            backend = ["kohya"] if module.endswith("inventory_gen") else []
            proc = subprocess.run(
                [sys.executable, "-m", module, *backend, "--from", str(checkout),
                 "--out", str(work / "kohya")],
                capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise LoracError(f"cannot generate the option inventory of sd-scripts "
                                 f"{commit[:8]} from {checkout}: {tail}; unset "
                                 f"{CHECKOUT_ENV} or set {inventory.ENV_VAR}")
        (work / COMPLETE).write_text(commit + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def select(settings: Any) -> ActiveVersion | None:
    """Choose the inventory lint reads (see the module docstring) and make it the loaders'
    default (:func:`lorac.config.inventory.use_version_root`). Returns None, leaving the
    shipped default in place, when no checkout is configured or ``$LORAC_INVENTORY_DIR`` is
    set."""
    inventory.use_version_root(None)
    if os.environ.get(inventory.ENV_VAR):
        return None
    checkout = configured_checkout(settings)
    if checkout is None:
        return None
    commit, markers = _commit(checkout)
    if commit is None:
        return None
    version = inventory.shipped_kohya_version(commit)
    if version is not None:
        root, shipped = version.root, True
    else:
        root, shipped = generate(checkout, commit), False
    inventory.use_version_root(None if root == inventory.backends_dir() else root)
    return ActiveVersion(commit, root, shipped, checkout, markers)


def active_commit() -> str:
    """The commit lint reads now: the active version's, else the default pin's."""
    return inventory.load_kohya_inventory("train_network").commit


def version_label(commit: str) -> str:
    """``v0.11.1`` for a shipped tagged version, else the short commit."""
    version = inventory.shipped_kohya_version(commit)
    return version.name if version is not None else commit[:8]
