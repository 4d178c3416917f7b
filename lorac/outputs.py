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


def write_file(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""

    _check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tree(target: Path, files: Mapping[str, str], *,
               executable: Iterable[str] = ()) -> None:
    """Replace directory ``target`` by one holding exactly ``files``, all or nothing.

    The files are written into a sibling staging directory, which is then renamed into place;
    a previous ``target`` is moved aside first and removed last. File names must be relative
    and stay inside ``target``.
    """

    _check_target(target)
    executable = set(executable)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new."))
    old: Path | None = None
    try:
        for name, text in files.items():
            rel = Path(name)
            if rel.is_absolute() or ".." in rel.parts:
                raise LoracError(f"refusing to write {name!r} outside {target}")
            dest = stage / rel
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
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
