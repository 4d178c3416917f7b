"""Writing outputs atomically, without following symlinks out of the target directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from lorac.diagnostics import LoracError


def _check_target(target: Path) -> None:
    if target.is_symlink():
        raise LoracError(f"{target} is a symbolic link; lorac does not write through links")
    for parent in target.parents:
        if parent.is_symlink() and not parent.resolve().is_dir():
            raise LoracError(f"{parent} is a broken symbolic link")


def check_no_links(path: Path) -> None:
    """Refuse ``path`` when it, or a folder of it that lorac names itself, is a symbolic link.

    For a relative path every prefix is checked (``build`` and ``build/final`` of
    ``build/final``), so ``build/`` or ``runs/`` linked elsewhere is refused; of an absolute
    path (given on purpose, e.g. ``-o /mnt/big/out``) only the last component.
    """

    candidates = [path] if path.is_absolute() else [
        Path(*path.parts[:i]) for i in range(1, len(path.parts) + 1)]
    for candidate in candidates:
        if candidate.name not in ("", ".", "..") and candidate.is_symlink():
            raise LoracError(f"{candidate} is a symbolic link; lorac does not write through "
                             "links (name the real folder instead)")


def safe_join(root: Path, name: str) -> Path:
    """``root / name`` for a relative ``name`` that stays inside ``root``."""

    rel = Path(name)
    if not name or rel.is_absolute() or ".." in rel.parts:
        raise LoracError(f"refusing to write {name!r} outside {root}")
    return root / rel


def write_file(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""

    _check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # a file where a folder should be, no permission, …
        raise LoracError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise LoracError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def write_tree(target: Path, files: Mapping[str, str], *,
               executable: Iterable[str] = ()) -> None:
    """Replace directory ``target`` by one holding exactly ``files``, all or nothing.

    The files are written into a sibling staging directory, which is then renamed into place;
    a previous ``target`` is moved aside first and removed last. File names must be relative
    and stay inside ``target``.
    """

    _check_target(target)
    check_no_links(target)
    executable = set(executable)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new."))
    except OSError as exc:
        raise LoracError(f"cannot write {target}: {exc.strerror or exc}") from None
    old: Path | None = None
    try:
        for name, text in files.items():
            dest = safe_join(stage, name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
            if name in executable:
                os.chmod(dest, 0o755)
        if target.exists():
            if not target.is_dir():
                raise LoracError(f"{target} exists and is not a directory")
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
            os.rmdir(old)
            os.replace(target, old)
        os.replace(stage, target)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)
        if isinstance(exc, OSError):
            raise LoracError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
