"""Finding a trainer checkout and checking it against the pin.

Order: ``$LORAC_SD_SCRIPTS`` (or ``$LORAC_AI_TOOLKIT``, ``$LORAC_MUSUBI_TUNER``), then
``[tool.lorac] sd-scripts`` / ``ai-toolkit`` / ``musubi-tuner``. ``lorac backends install``
creates a checkout at the pinned commit.

Cheap to import (the CLI's ``backends`` choices come from :data:`ENV`): the pins are read
when needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorac.core.diagnostics import LoracError

ENV = {"kohya": "LORAC_SD_SCRIPTS", "ai-toolkit": "LORAC_AI_TOOLKIT",
       "musubi": "LORAC_MUSUBI_TUNER"}
MARKER = {"kohya": "train_network.py", "ai-toolkit": "toolkit/config_modules.py",
          "musubi": "src/musubi_tuner/training/trainer_base.py"}


@dataclass(frozen=True)
class Checkout:
    backend: str
    path: Path
    commit: str | None
    pinned: str

    @property
    def matches_pin(self) -> bool:
        return self.commit == self.pinned

    def warning(self) -> str | None:
        if self.commit is None:
            return (f"cannot tell which commit {self.path} is at; lorac's knowledge is of "
                    f"{self.pinned[:10]}")
        if not self.matches_pin:
            if self.backend == "kohya":
                from lorac.config.inventory import shipped_kohya_version

                if shipped_kohya_version(self.commit) is not None:
                    return None  # lint reads that version's shipped inventory
                return (f"{self.path} is at {self.commit[:10]}, which lorac does not ship; "
                        f"`lorac lint` generates its inventory once and caches it")
            return (f"{self.path} is at {self.commit[:10]}, lorac's knowledge is of "
                    f"{self.pinned[:10]}; regenerate it with `lorac backends inventory "
                    f"{self.backend} --from {self.path}` and set LORAC_INVENTORY_DIR")
        return None


def commit_of(path: Path) -> str | None:
    """The checkout's commit: ``git rev-parse HEAD``, else a ``.lorac-commit`` file."""

    import shutil
    import subprocess  # (here: lint imports this module for every musubi-tuner profile)

    marker = path / ".lorac-commit"
    if marker.is_file():
        text = marker.read_text(encoding="utf-8").strip()
        return text or None
    if shutil.which("git") and (path / ".git").exists():
        result = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"],
                                capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return result.stdout.strip()
    return None


def find_checkout(backend: str, configured: Path | None = None) -> Checkout:
    """The trainer checkout to use, or a :class:`LoracError` saying how to get one."""

    from lorac.config.inventory import load_pin

    if backend not in ENV:
        raise LoracError(f"lorac knows no trainer checkout for backend {backend!r} "
                         f"(only {', '.join(ENV)})")
    env_name = ENV[backend]
    raw = os.environ.get(env_name)
    path = Path(raw) if raw else configured
    if path is None:
        raise LoracError(f"no {backend} checkout: set {env_name}, add `{settings_key(backend)} "
                         f"= \"PATH\"` under [tool.lorac], or run `lorac backends install "
                         f"{backend} DIR`")
    if not (path / MARKER[backend]).is_file():
        raise LoracError(f"{path} is not a {backend} checkout (no {MARKER[backend]})")
    return Checkout(backend, path, commit_of(path), load_pin(backend).commit)


def configured_checkout(settings: Any, backend: str) -> Checkout:
    """:func:`find_checkout` with the path ``settings`` (``[tool.lorac] sd-scripts`` or
    ``ai-toolkit``) gives for ``backend``."""

    configured = getattr(settings, settings_key(backend).replace("-", "_"), None)
    return find_checkout(backend, configured)


def settings_key(backend: str) -> str:
    """The ``[tool.lorac]`` key naming ``backend``'s checkout (also the default folder name
    ``lorac backends install`` clones into)."""
    return {"kohya": "sd-scripts", "musubi": "musubi-tuner"}.get(backend, "ai-toolkit")


def install_commands(backend: str, target: Path, python: str) -> list[list[str]]:
    """The commands ``lorac backends install`` runs (no shell involved)."""
    from lorac.config.inventory import load_pin

    pin = load_pin(backend)
    return [
        ["git", "clone", "--filter=blob:none", "--no-checkout", pin.repository, str(target)],
        ["git", "-C", str(target), "checkout", "--detach", pin.commit],
        # musubi-tuner is a package (src/musubi_tuner) that its scripts import installed
        [python, "-m", "pip", "install", "-e", str(target)] if backend == "musubi" else
        [python, "-m", "pip", "install", "-r", str(target / "requirements.txt")],
    ]
