"""The per-file scan cache of the dataset rules: one SQLite database under ``.lorac_cache/``.

Why SQLite (the standard library's ``sqlite3``) and not a JSON file per folder: a JSON file
is rewritten whole on every change and parsed whole on every run (100,000 entries took
seconds both ways), and a crash between ``write`` and ``rename`` could only lose the whole
file. SQLite reads only the folder asked for, writes only the rows that changed, commits in
batches while a long first scan is still running (so an interrupted scan keeps what it did),
and its journal makes every commit all-or-nothing: a process killed mid-write leaves the
previous state, never a torn file. Several ``lorac`` processes may share the database; one
that cannot get the lock within a few seconds simply runs without the cache.

Each table holds one kind of record (a dataclass: images, videos), one column per field, keyed
by (folder id, file name); a row is valid while the file's (size, mtime_ns, inode) are those it
was stored with. The ``meta`` table holds a tag per table (the scanner version and the
settings that change a score); a different tag empties that table.

A folder of :data:`SNAPSHOT_FROM` rows or more also gets a snapshot: all its rows of one kind
in one JSON text, a list per column, which loads in about 60 % of the time the rows take
(100,000 image records: 0.21-0.24 s against 0.36-0.40 s; their captions 0.11-0.14 s against
0.20-0.22 s). A column whose values are all one (most of an image record's: no error, JPEG,
RGB, 8 bits, no alpha) is kept as ``{"same": value}``: a third less text to parse. A lorac
from before that reads such a snapshot as damaged, and loads the rows. JSON, not ``marshal``
or ``pickle``: the cache lies in the repository's folder, where anyone who can commit can
put one, and loading JSON runs nothing.

A snapshot is written by a load that found none, in the transaction that read the rows, and
deleted by every store to that folder and kind, in the transaction that changes them: it is
always the rows as they are. Every tag carries :data:`LAYOUT`, so a lorac that stores
without deleting snapshots (one from before them) never shares a table with one that reads
them: whichever opens the database re-tags the table it finds under the other's tag, and
that empties it and drops its snapshots. (A trigger on each row would do the same for any
writer, at 7 µs a row stored: 2 % of a first scan of small images.)
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

FILE_NAME = "scan.sqlite3"
_TIMEOUT_S = 5.0
SNAPSHOT_FROM = 2000  # rows of a folder from which a load keeps them in one blob as well
LAYOUT = "snapshots1"  # part of every table's tag: how the tables are kept, beside what is in them


def _sql_type(annotation: Any) -> str:
    text = str(annotation)
    if "float" in text:
        return "REAL"
    if "int" in text or "bool" in text:
        return "INTEGER"
    return "TEXT"


def _to_columns(rows: dict[str, tuple[Any, ...]]) -> str:
    """The snapshot of ``rows`` (file name → the row after it): :func:`_from_columns`."""

    columns: list[Any] = [list(rows)]
    for column in zip(*rows.values(), strict=True):
        first = column[0]
        same = column.count(first) == len(column) and len(set(map(type, column))) == 1
        columns.append({"same": first} if same else column)
    return json.dumps(columns, separators=(",", ":"))


def _from_columns(text: Any, width: int) -> dict[str, tuple[Any, ...]] | None:
    """The rows of a snapshot (file name → the row after it), or ``None`` when it is not
    ``width`` columns of one length, the first of names: damaged, or written by another. A
    column may be ``{"same": value}``, that value in every row."""

    try:
        columns = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None
    if not (isinstance(columns, list) and len(columns) == width and columns
            and isinstance(columns[0], list)
            and all(isinstance(name, str) for name in columns[0])):
        return None
    count = len(columns[0])
    for i, column in enumerate(columns):
        if isinstance(column, dict) and len(column) == 1 and "same" in column:
            columns[i] = [column["same"]] * count
        elif not (isinstance(column, list) and len(column) == count):
            return None
    return dict(zip(columns[0], zip(*columns[1:], strict=True), strict=True))


class ScanCache:
    """A connection to the cache database in ``cache_dir`` for records of ``kinds`` (table
    name → dataclass whose first field is ``path``). Every method swallows database errors:
    a cache that cannot be used is an empty cache."""

    def __init__(self, cache_dir: Path, tag: str, kinds: dict[str, type]) -> None:
        self.kinds = kinds
        self.columns = {name: [f.name for f in fields(cls) if f.name != "path"]
                        for name, cls in kinds.items()}
        self.db: sqlite3.Connection | None = None
        path = cache_dir / FILE_NAME
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            ignore = cache_dir.parent / ".gitignore"
            if cache_dir.parent.name == ".lorac_cache" and not ignore.exists():
                ignore.write_text("*\n")
            try:
                self._open(path, tag)
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):
                    raise  # locked or read-only: leave the file alone
                self.close()  # not a database (or damaged beyond its journal): start again
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                self._open(path, tag)
        except (OSError, sqlite3.Error):
            self.close()

    def _open(self, path: Path, tag: str) -> None:
        self.db = sqlite3.connect(path, timeout=_TIMEOUT_S, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._prepare(tag)

    def _prepare(self, tag: str) -> None:
        assert self.db is not None
        db = self.db
        tag = f"{tag};{LAYOUT}"
        if self._prepared(tag):
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            db.execute("CREATE TABLE IF NOT EXISTS folders (id INTEGER PRIMARY KEY, "
                       "path TEXT UNIQUE)")
            # a rowid table: its key is an index of its own, which a lookup reads without the
            # blob (in a WITHOUT ROWID table every lookup reads the whole blob: 10 ms a row)
            db.execute("CREATE TABLE IF NOT EXISTS snapshots (kind TEXT, folder INTEGER, "
                       "data BLOB, PRIMARY KEY (kind, folder))")
            for name, cls in self.kinds.items():
                # each kind of record has its own tag: opening the video table with another
                # scanner version leaves the images alone
                row = db.execute("SELECT value FROM meta WHERE key = ?",
                                 (f"tag:{name}",)).fetchone()
                if row is None or row[0] != tag:
                    db.execute(f"DROP TABLE IF EXISTS {name}")
                    db.execute("DELETE FROM snapshots WHERE kind = ?", (name,))
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"tag:{name}", tag))
                cols = ", ".join(f"{f.name} {_sql_type(f.type)}" for f in fields(cls)
                                 if f.name != "path")
                db.execute(f"CREATE TABLE IF NOT EXISTS {name} (folder INTEGER, name TEXT, "
                           f"{cols}, PRIMARY KEY (folder, name)) WITHOUT ROWID")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _prepared(self, tag: str) -> bool:
        """Whether every table is there and every kind's table has ``tag``: read in one
        query, without the write lock and the dozen statements that make them (a check of a
        small folder opens the cache three or four times)."""

        assert self.db is not None
        names = ("meta", "folders", "snapshots", *self.kinds)
        try:
            rows = self.db.execute(
                "SELECT 'table', name FROM sqlite_master WHERE type = 'table' AND name IN "
                f"({', '.join('?' * len(names))}) UNION ALL SELECT key, value FROM meta "
                f"WHERE key IN ({', '.join('?' * len(self.kinds))})",
                (*names, *(f"tag:{name}" for name in self.kinds))).fetchall()
        except sqlite3.OperationalError:  # no meta table yet: a new file
            return False
        tables = {value for key, value in rows if key == "table"}
        tags = {key: value for key, value in rows if key != "table"}
        return tables == set(names) and all(tags.get(f"tag:{name}") == tag
                                            for name in self.kinds)

    @property
    def usable(self) -> bool:
        return self.db is not None

    def _folder_id(self, folder: str, create: bool) -> int | None:
        assert self.db is not None
        row = self.db.execute("SELECT id FROM folders WHERE path = ?", (folder,)).fetchone()
        if row is None and create:
            return self.db.execute("INSERT INTO folders (path) VALUES (?)", (folder,)).lastrowid
        return None if row is None else int(row[0])

    def load(self, kind: str, folder: str) -> dict[str, tuple[Any, ...]]:
        """File name → the stored row (the record's fields after ``path``, in order)."""

        if self.db is None:
            return {}
        db = self.db
        try:
            fid = self._folder_id(folder, create=False)
            if fid is None:
                return {}
            snapshot = db.execute("SELECT data FROM snapshots WHERE kind = ? AND folder = ?",
                                  (kind, fid)).fetchone()
            if snapshot is not None:
                rows = _from_columns(snapshot[0], 1 + len(self.columns[kind]))
                if rows is not None:
                    return rows
            return self._load_rows(kind, fid)
        except sqlite3.Error:
            return {}

    def _load_rows(self, kind: str, fid: int) -> dict[str, tuple[Any, ...]]:
        """The rows of a folder, kept as its snapshot too when they are many. The rows are
        read in a transaction that becomes a write only to keep the snapshot: SQLite refuses
        that step when another connection has changed the database since the read, so a
        snapshot is never of rows that have changed (and the folder goes without one)."""

        assert self.db is not None
        db = self.db
        cols = ", ".join(["name", *self.columns[kind]])
        db.execute("BEGIN")
        try:
            rows = {r[0]: r[1:] for r in db.execute(
                f"SELECT {cols} FROM {kind} WHERE folder = ?", (fid,)).fetchall()}
            if len(rows) >= SNAPSHOT_FROM:
                try:
                    db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)",
                               (kind, fid, _to_columns(rows)))
                except sqlite3.OperationalError:  # changed since the read, busy, read-only
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    return rows
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return rows

    def store(self, kind: str, folder: str, rows: Iterable[tuple[str, Sequence[Any]]],
              stale: Iterable[str] = ()) -> None:
        """Insert or replace ``(file name, row)`` pairs and delete the ``stale`` names, in
        one transaction."""

        if self.db is None:
            return
        cols = self.columns[kind]
        marks = ", ".join("?" * (len(cols) + 2))
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                fid = self._folder_id(folder, create=True)
                self.db.execute("DELETE FROM snapshots WHERE kind = ? AND folder = ?",
                                (kind, fid))
                self.db.executemany(f"INSERT OR REPLACE INTO {kind} VALUES ({marks})",
                                    ((fid, name, *row) for name, row in rows))
                self.db.executemany(f"DELETE FROM {kind} WHERE folder = ? AND name = ?",
                                    ((fid, name) for name in stale))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except sqlite3.Error:  # pragma: no cover
                pass
            self.db = None

    def __enter__(self) -> ScanCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
