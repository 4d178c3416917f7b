"""Writing outputs atomically, without following symlinks out of the target directory.

The output-folder rule, used by every command that writes a folder (``lorac build``, ``lorac
synth``, the synthetic set of ``lorac run --synthetic``; a run folder is always new): lorac
writes into a folder only when it is new, empty, or one lorac wrote itself, which it tells by
its marker file (``lorac-build.json`` of a build folder, listing the files beside it;
``lorac-synth.json`` of a synthetic set). A build folder is replaced only when it holds
nothing but the marker and the files the marker lists; anything else is refused with one line
that names the folder, says why, and what to do. No option overrides the rule.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from lorac.core.diagnostics import LoracError

#: The record ``lorac build`` writes into every build folder (since its first version): the
#: profile, backend, format and ``files``, the names of the other files it wrote there.
BUILD_MARKER = "lorac-build.json"
#: How many names a refusal shows, and how many entries lorac reads to decide.
_SHOWN = 3
_MAX_ENTRIES = 10_000


#: Trainer options naming a folder or file the trainer writes, and where ``lorac run`` puts
#: each inside the run folder instead of what the profile says (``output_dir`` always, the
#: others when the profile sets them). kohya opens ``console_log_file`` with mode "w".
RUN_FOLDER_PATHS = {"output_dir": "output", "logging_dir": "logs",
                    "console_log_file": "console.log"}
#: Trainer options that name a file or folder inside an output folder, kept by ``lorac run``
#: as they are: kohya joins ``output_dir/output_name.safetensors`` (with ``os.path.join``: an
#: absolute name replaces the folder) and ``logging_dir/log_prefix<time>``; ai-toolkit writes
#: to ``training_folder/name``.
OUTPUT_NAMES = ("output_name", "log_prefix")


def output_name_problem(option: str, value: object) -> str | None:
    """Why ``option = value`` (one of :data:`OUTPUT_NAMES`) would make the trainer write
    outside its output folder, or None when it is a plain name."""

    if not isinstance(value, str) or option not in OUTPUT_NAMES:
        return None
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", value):
        why = "is an absolute path: the trainer would write outside the run folder"
    elif ".." in parts:
        why = "climbs out with '..': the trainer would write outside the run folder"
    elif len(parts) > 1:
        why = "holds a path separator: the trainer joins it onto the output folder as a name"
    else:
        return None
    return f"{why} — give a plain name"


def quoted(value: str, limit: int = 80) -> str:
    """``value`` quoted for a one-line message, cut to about ``limit`` characters."""

    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + "…" + text[-4:]


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
    import tempfile  # here, not at the top: lint imports this module and never writes

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


def _show(name: str) -> str:
    return name if name.isprintable() else ascii(name)


def _names(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(_show(n) for n in names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _entries(folder: Path, limit: int = _MAX_ENTRIES) -> list[str]:
    """Up to ``limit`` names directly in ``folder``; a :class:`LoracError` when unreadable."""

    try:
        with os.scandir(folder) as it:
            out = []
            for entry in it:
                out.append(entry.name)
                if len(out) >= limit:
                    break
            return out
    except OSError as exc:
        raise LoracError(f"cannot read {_show(str(folder))}: {exc.strerror or exc}") from None


def _is_current_or_above(target: Path) -> bool:
    here = os.path.realpath(os.getcwd())
    there = os.path.realpath(target)
    return here == there or here.startswith(there.rstrip(os.sep) + os.sep)


def _recorded_files(folder: Path, marker: str) -> set[str] | None:
    """The names the marker of a lorac build folder lists (plus the marker), or None when
    ``folder/marker`` is missing or is not such a record."""

    path = folder / marker
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            record = json.loads(fh.read(1024 * 1024))
    except (OSError, ValueError, RecursionError):
        return None
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        return None
    names = set()
    for name in files:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or name != rel.as_posix():
            return None
        names.add(name)
    return names | {marker}


def _foreign(folder: Path, owned: set[str]) -> list[str]:
    """Entries under ``folder`` (relative paths) that are not in ``owned`` or a folder of one:
    links, special files and anything unlisted. Stops after a few, or after too many entries
    to be a build folder."""

    dirs = {p.as_posix() for name in owned for p in Path(name).parents if p != Path(".")}
    found: list[str] = []
    seen = 0
    stack = [""]
    while stack and len(found) < _SHOWN + 1:
        rel = stack.pop()
        for name in _entries(folder / rel if rel else folder):
            seen += 1
            if seen > _MAX_ENTRIES:
                return found or [f"more than {_MAX_ENTRIES} entries"]
            path = f"{rel}/{name}" if rel else name
            full = folder / path
            if path in dirs and full.is_dir() and not full.is_symlink():
                stack.append(path)
            elif not (path in owned and full.is_file() and not full.is_symlink()):
                found.append(path)
    return found


def check_folder(target: Path, marker: str, *, replace: bool) -> bool:
    """The output-folder rule for ``target`` (see the module docstring).

    Returns False when ``target`` does not exist or is an empty folder, True when it is a
    folder lorac wrote (it holds ``marker``; with ``replace``, also nothing that the marker
    does not list); any other folder, a file, or (with ``replace``) the current folder or one
    above it is a :class:`LoracError` saying why and what to do.
    """

    shown = _show(str(target))
    if target.is_symlink():
        raise LoracError(f"{shown} is a symbolic link; lorac does not write through links "
                         "(name the real folder instead)")
    if not target.exists():
        return False
    if not target.is_dir():
        raise LoracError(f"{shown} exists and is not a directory; name a new or empty folder")
    if replace and _is_current_or_above(target):
        raise LoracError(f"refusing to write into {shown}: it is the current folder or one "
                         "above it; name a new or empty folder (the default is build/PROFILE)")
    names = _entries(target, _SHOWN + 1)
    if not names:
        return False
    if not replace:
        record = target / marker
        if record.is_file() and not record.is_symlink():
            return True
        names = _entries(target)
        raise LoracError(f"refusing to write into {shown}: it holds files lorac did not write "
                         f"({_names(names)}) and no {marker}; name a new or empty folder")
    owned = _recorded_files(target, marker)
    if owned is None:
        names = _entries(target)
        what = (f"its {marker} is not a record lorac wrote" if marker in names
                else f"it holds files lorac did not write ({_names(names)})")
        raise LoracError(f"refusing to replace {shown}: {what}; lorac replaces only a folder "
                         "it built itself — name a new or empty folder, or empty this one "
                         "yourself")
    foreign = _foreign(target, owned)
    if foreign:
        raise LoracError(f"refusing to replace {shown}: besides lorac's build files it holds "
                         f"{_names(foreign)}; move them out, or name another folder")
    return True


def _remove_owned(folder: Path, owned: set[str]) -> None:
    """Remove the files of ``owned`` under ``folder``, then the folders they leave empty;
    anything else stays where it is."""

    for name in owned:
        path = folder / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    for current, _dirs, _files in os.walk(folder, topdown=False):
        try:
            os.rmdir(current)
        except OSError:
            pass


def write_tree(target: Path, files: Mapping[str, str], *,
               executable: Iterable[str] = (), marker: str = BUILD_MARKER) -> None:
    """Replace directory ``target`` by one holding exactly ``files``, all or nothing.

    ``target`` must pass :func:`check_folder` (new, empty, or a folder lorac wrote whose
    ``marker`` lists everything in it); ``files`` should hold that ``marker``, listing the
    other names under ``"files"``, for the folder to be replaceable by the next build. The
    files are written into a sibling staging directory, which is then renamed into place; a
    previous ``target`` is moved aside first and its files removed last. File names must be
    relative and stay inside ``target``.
    """
    import shutil
    import tempfile

    _check_target(target)
    check_no_links(target)
    existing = check_folder(target, marker, replace=True)
    owned = (_recorded_files(target, marker) or set()) if existing else set()
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
            os.chmod(stage, target.stat().st_mode & 0o7777)  # the folder keeps its mode
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
            os.rmdir(old)
            os.replace(target, old)
            if _foreign(old, owned):  # something was added since the check: put it back
                os.replace(old, target)
                old = None
                raise LoracError(f"refusing to replace {_show(str(target))}: files appeared "
                                 "in it while lorac was writing; nothing was replaced")
        os.replace(stage, target)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)
        if isinstance(exc, OSError):
            raise LoracError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
    if old is not None:
        _remove_owned(old, owned)
