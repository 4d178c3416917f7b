"""Finding a trainer checkout and checking it against the pin.

Order: ``$LORAC_SD_SCRIPTS`` (or ``$LORAC_AI_TOOLKIT``), then ``[tool.lorac] sd-scripts`` /
``ai-toolkit``. ``lorac backends install`` creates a checkout at the pinned commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lorac.diagnostics import LoracError
from lorac.inventory import load_pin

ENV = {"kohya": "LORAC_SD_SCRIPTS", "ai-toolkit": "LORAC_AI_TOOLKIT"}
MARKER = {"kohya": "train_network.py", "ai-toolkit": "toolkit/config_modules.py"}


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
            return (f"{self.path} is at {self.commit[:10]}, lorac's knowledge is of "
                    f"{self.pinned[:10]}; regenerate it with `lorac backends inventory "
                    f"{self.backend} --from {self.path}` and set LORAC_INVENTORY_DIR")
        return None


def commit_of(path: Path) -> str | None:
    """The checkout's commit: ``git rev-parse HEAD``, else a ``.lorac-commit`` file."""

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

    env_name = ENV[backend]
    raw = os.environ.get(env_name)
    path = Path(raw) if raw else configured
    if path is None:
        raise LoracError(f"no {backend} checkout: set {env_name}, add `{_key(backend)} = "
                         f"\"PATH\"` under [tool.lorac], or run `lorac backends install "
                         f"{backend} DIR`")
    if not (path / MARKER[backend]).is_file():
        raise LoracError(f"{path} is not a {backend} checkout (no {MARKER[backend]})")
    return Checkout(backend, path, commit_of(path), load_pin(backend).commit)


def _key(backend: str) -> str:
    return "sd-scripts" if backend == "kohya" else "ai-toolkit"


def install_commands(backend: str, target: Path, python: str) -> list[list[str]]:
    """The commands ``lorac backends install`` runs (no shell involved)."""

    pin = load_pin(backend)
    return [
        ["git", "clone", "--filter=blob:none", "--no-checkout", pin.repository, str(target)],
        ["git", "-C", str(target), "checkout", "--detach", pin.commit],
        [python, "-m", "pip", "install", "-r", str(target / "requirements.txt")],
    ]
