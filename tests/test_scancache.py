"""The SQLite scan cache (lorac/scan/scancache.py): round trip, crash safety, bad files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorac.scan import dataset, scancache
from lorac.scan.scancache import FILE_NAME, ScanCache
from tests.make_dataset_fixture import build


@dataclass
class Rec:
    path: str
    size: int = 0
    score: float | None = None
    note: str = ""


def test_round_trip_and_stale_rows(tmp_path: Path) -> None:
    with ScanCache(tmp_path, "t1", {"recs": Rec}) as cache:
        cache.store("recs", "/f", [("a", (1, 0.5, "x")), ("b", (2, None, ""))])
        cache.store("recs", "/g", [("a", (3, 1.0, "y"))])
        cache.store("recs", "/f", [], stale=["b"])
    with ScanCache(tmp_path, "t1", {"recs": Rec}) as cache:
        assert cache.load("recs", "/f") == {"a": (1, 0.5, "x")}
        assert cache.load("recs", "/g") == {"a": (3, 1.0, "y")}
    with ScanCache(tmp_path, "t2", {"recs": Rec}) as cache:  # another scanner version
        assert cache.load("recs", "/f") == {}


_WRITER = textwrap.dedent("""
    import os, signal, sys
    from dataclasses import dataclass
    from pathlib import Path
    from lorac.scan.scancache import ScanCache

    @dataclass
    class Rec:
        path: str
        size: int = 0
        score: float | None = None
        note: str = ""

    cache = ScanCache(Path(sys.argv[1]), "t", {"recs": Rec})
    cache.store("recs", "/f", [(f"old{i}", (i, 1.0, "kept")) for i in range(1000)])

    def rows():
        for i in range(100000):
            if i == 50000:  # killed in the middle of the transaction, as a crash would be
                os.kill(os.getpid(), signal.SIGKILL)
            yield f"new{i}", (i, 2.0, "torn" * 50)

    cache.store("recs", "/f", rows())
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_an_up_to_date_cache_opens_while_another_process_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a cache whose tables and tags are already right takes no write lock: a check
    reads it while another process holds the lock (a scan committing its batches)."""

    with ScanCache(tmp_path, "t1", {"recs": Rec}) as cache:
        cache.store("recs", "/f", [("a", (1, 0.5, "x"))])
    writer = sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the write lock, held
    monkeypatch.setattr(scancache, "_TIMEOUT_S", 0.2)
    try:
        with ScanCache(tmp_path, "t1", {"recs": Rec}) as cache:
            assert cache.usable and cache.load("recs", "/f") == {"a": (1, 0.5, "x")}
        with ScanCache(tmp_path, "t2", {"recs": Rec}) as cache:  # must write: waits, gives up
            assert not cache.usable and cache.load("recs", "/f") == {}
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    with ScanCache(tmp_path, "t2", {"recs": Rec}) as cache:  # the lock gone: a new tag
        assert cache.usable and cache.load("recs", "/f") == {}


def test_a_process_killed_mid_write_leaves_the_last_commit(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path)], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with ScanCache(tmp_path, "t", {"recs": Rec}) as cache:
        rows = cache.load("recs", "/f")
    assert len(rows) == 1000 and all(k.startswith("old") for k in rows)


def test_a_damaged_cache_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"\x00garbage, not a database" * 100)
    with ScanCache(tmp_path, "t", {"recs": Rec}) as cache:
        assert cache.usable and cache.load("recs", "/f") == {}
        cache.store("recs", "/f", [("a", (1, None, ""))])
    with ScanCache(tmp_path, "t", {"recs": Rec}) as cache:
        assert cache.load("recs", "/f") == {"a": (1, None, "")}


def test_an_unwritable_cache_is_no_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = ScanCache(blocker / "cache", "t", {"recs": Rec})  # a file where a folder should be
    assert not cache.usable and cache.load("recs", "/f") == {}
    cache.store("recs", "/f", [("a", (1, None, ""))])  # ignored, no error


def test_scan_records_survive_the_cache_exactly(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    build(folder, clean=3, only=())
    paths = sorted(folder.glob("*.jpg"))
    first = dataset.scan(paths, cache_dir=tmp_path / "cache")
    again = dataset.scan(paths, cache_dir=tmp_path / "cache")
    assert again == first
    assert all(type(r.has_alpha) is bool for r in again.values())


def test_an_interrupted_scan_keeps_the_batches_it_committed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "d"
    build(folder, clean=5, only=())
    paths = sorted(folder.glob("*.jpg"))
    monkeypatch.setattr(dataset, "_FLUSH_EVERY", 2)
    monkeypatch.setattr(dataset, "_POOL_MIN", 10 ** 9)
    real, calls = dataset.scan_file, []

    def scan_then_stop(path: str, max_pixels: int) -> dict:
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(path, max_pixels)

    monkeypatch.setattr(dataset, "scan_file", scan_then_stop)
    with pytest.raises(KeyboardInterrupt):
        dataset.scan(paths, cache_dir=tmp_path / "cache")
    calls.clear()
    dataset.scan(paths, cache_dir=tmp_path / "cache")
    assert calls == [str(p) for p in paths[4:]]  # the first four were committed in two batches


def test_each_kind_keeps_its_own_tag(tmp_path: Path) -> None:
    """Images and clips share the database under different scanner tags: opening one kind
    must not empty the other (a lint run over images and clips did exactly that)."""

    @dataclass
    class Clip:
        path: str
        frames: int = 0

    with ScanCache(tmp_path, "images-v3", {"recs": Rec}) as cache:
        cache.store("recs", "/f", [("a", (1, None, ""))])
    with ScanCache(tmp_path, "clips-v1", {"clips": Clip}) as cache:
        cache.store("clips", "/f", [("c", (25,))])
    with ScanCache(tmp_path, "images-v3", {"recs": Rec}) as cache:
        assert cache.load("recs", "/f") == {"a": (1, None, "")}
    with ScanCache(tmp_path, "clips-v1", {"clips": Clip}) as cache:
        assert cache.load("clips", "/f") == {"c": (25,)}


# -- snapshots: a large folder's rows in one blob, always the rows as they are


def _snapshots(root: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(root / FILE_NAME) as db:
        return db.execute("SELECT kind, folder FROM snapshots ORDER BY kind").fetchall()


def _rows(n: int, note: str = "x") -> list[tuple[str, tuple]]:
    return [(f"f{i}", (i, i / 2, note)) for i in range(n)]


_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 1.0, 2.5]),
                   st.sampled_from(["", "JPEG", "x"]))


@settings(max_examples=200, deadline=None)
@given(width=st.integers(1, 4), data=st.data())
def test_a_snapshot_gives_back_its_rows_value_for_value(width: int, data: st.DataObject) -> None:
    """Columns of one value are kept once; 1, 1.0 and True are three values, not one."""

    names = data.draw(st.lists(st.text(max_size=3), min_size=1, max_size=6, unique=True))
    column = st.lists(_VALUE, min_size=len(names), max_size=len(names))
    columns = [data.draw(st.one_of(column, _VALUE.map(lambda v: [v] * len(names))))
               for _ in range(width)]
    rows = dict(zip(names, zip(*columns, strict=True), strict=True))
    back = scancache._from_columns(scancache._to_columns(rows), width + 1)
    assert back == rows
    assert back is not None and all(
        [type(v) for v in back[n]] == [type(v) for v in rows[n]] for n in names)


def test_a_snapshot_keeps_a_column_of_one_value_once() -> None:
    rows = {f"f{i}": (i, None, "JPEG", True, 1.5 if i else 1) for i in range(3)}
    text = scancache._to_columns(rows)
    assert text.count('"JPEG"') == 1 and '{"same":null}' in text and '{"same":true}' in text
    assert scancache._from_columns(text, 6) == rows
    full = json.dumps([list(rows), *map(list, zip(*rows.values(), strict=True))])
    assert scancache._from_columns(full, 6) == rows  # a snapshot of lists, as before
    for bad in ('[["a"], {"same": 1, "also": 2}]', '[["a"], {"all": 1}]', '[["a"], [1, 2]]',
                '[["a", "b"], 3]', '[[1], [2]]', '[]', '{"same": 1}'):
        assert scancache._from_columns(bad, 2) is None, bad


def test_a_large_folder_loads_from_its_snapshot(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scancache, "SNAPSHOT_FROM", 3)
    with ScanCache(tmp_path, "t", {"recs": Rec}) as cache:
        cache.store("recs", "/big", _rows(5))
        cache.store("recs", "/small", _rows(2))
        assert _snapshots(tmp_path) == []
        want = dict(_rows(5))
        assert cache.load("recs", "/big") == want  # from the rows, kept as a snapshot
        assert cache.load("recs", "/small") == dict(_rows(2))  # too few for one
        assert _snapshots(tmp_path) == [("recs", 1)]

        def no_rows(*args: object) -> None:
            raise AssertionError("read the rows although the snapshot is there")

        monkeypatch.setattr(cache, "_load_rows", no_rows)
        assert cache.load("recs", "/big") == want


@pytest.mark.parametrize("change", ["store", "stale", "older writer", "another table's tag"])
def test_any_change_to_the_rows_drops_the_snapshot(tmp_path: Path, change: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scancache, "SNAPSHOT_FROM", 3)
    with ScanCache(tmp_path, "t", {"recs": Rec}) as cache:
        cache.store("recs", "/big", _rows(5))
        cache.store("recs", "/other", _rows(4))
        cache.load("recs", "/big")
        cache.load("recs", "/other")
        assert len(_snapshots(tmp_path)) == 2
        want = dict(_rows(5))
        if change == "store":
            cache.store("recs", "/big", [("f1", (9, 9.0, "new"))])
            want["f1"] = (9, 9.0, "new")
        elif change == "stale":
            cache.store("recs", "/big", [], stale=["f4"])
            del want["f4"]
        elif change == "older writer":
            # a lorac from before snapshots: its tag has no LAYOUT, so it re-tags the table
            # (emptied) before it writes a row, and this one re-tags it back at its next open
            with sqlite3.connect(tmp_path / FILE_NAME) as db:
                db.execute("UPDATE meta SET value = 't' WHERE key = 'tag:recs'")
                db.execute("DELETE FROM recs")
                db.execute("INSERT INTO recs VALUES (1, 'f0', 7, 7.0, 'old')")
            with ScanCache(tmp_path, "t", {"recs": Rec}) as reopened:
                assert _snapshots(tmp_path) == []
                assert reopened.load("recs", "/big") == {}
            return
        if change == "another table's tag":
            with ScanCache(tmp_path, "t2", {"others": Rec}):
                pass
            assert len(_snapshots(tmp_path)) == 2  # its own table only
            with ScanCache(tmp_path, "t2", {"recs": Rec}) as other:
                assert other.load("recs", "/big") == {}
            assert _snapshots(tmp_path) == []
            return
        assert _snapshots(tmp_path) == [("recs", 2)]  # the other folder keeps its own
        assert cache.load("recs", "/big") == want


@pytest.mark.parametrize("data", [
    b"\0\xff", "not json", '"a text"', "[[1, 2]]", '[["f0"], [1], [2.0]]',  # too few columns
    '[["f0", "f1"], [1], [2.0], ["x"]]',  # columns of unequal length
    '[[0], [1], [2.0], ["x"]]',  # a name that is no name
    "[" * 100_000,  # nested past the parser's recursion
])
def test_a_damaged_snapshot_is_read_again_from_the_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: str | bytes) -> None:
    """A snapshot is JSON (never marshal or pickle: the cache may come with a repository);
    one that is not the folder's columns is ignored, and the rows are read instead."""

    monkeypatch.setattr(scancache, "SNAPSHOT_FROM", 3)
    with ScanCache(tmp_path, "t", {"recs": Rec}) as cache:
        cache.store("recs", "/big", _rows(5))
        cache.load("recs", "/big")
        with sqlite3.connect(tmp_path / FILE_NAME) as db:
            db.execute("UPDATE snapshots SET data = ?", (data,))
        assert cache.load("recs", "/big") == dict(_rows(5))
        assert cache.load("recs", "/big") == dict(_rows(5))  # from the snapshot written again


def test_a_snapshot_key_lookup_does_not_read_the_blob(tmp_path: Path) -> None:
    """A store deletes its folder's snapshot by key, a load looks it up. In a WITHOUT ROWID
    table the key and the blob are one b-tree record, and a lookup reads whole blobs: with an
    11 MB snapshot of another folder there, a lookup per row took 19 s for 2,000 rows. The key
    must be an index of its own, which the lookup uses."""

    with ScanCache(tmp_path, "t", {"recs": Rec}) as cache:
        assert cache.db is not None
        plan = " ".join(row[-1] for row in cache.db.execute(
            "EXPLAIN QUERY PLAN DELETE FROM snapshots WHERE kind = 'recs' AND folder IN (1)"))
        assert "USING INDEX sqlite_autoindex_snapshots_1" in plan, plan
        cache.db.execute("INSERT INTO snapshots VALUES ('recs', 99, ?)", (b"\0" * (1 << 20),))
        cache.store("recs", "/f", _rows(2000))
        assert cache.load("recs", "/f") == dict(_rows(2000))
        assert [r[0] for r in cache.db.execute("SELECT folder FROM snapshots ORDER BY folder")
                ] == [1, 99]  # its own, and the other folder's untouched


def test_no_snapshot_of_rows_another_writer_changed_after_the_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store by another connection between a load's read and its snapshot: the load
    returns what it read, and keeps no snapshot of it; the next load has the new row."""

    import json
    from types import SimpleNamespace

    monkeypatch.setattr(scancache, "SNAPSHOT_FROM", 3)
    with ScanCache(tmp_path, "t", {"recs": Rec}) as cache, \
            ScanCache(tmp_path, "t", {"recs": Rec}) as other:
        cache.store("recs", "/big", _rows(5))

        def dumps(value: object, **kwargs: object) -> str:  # runs between read and write
            other.store("recs", "/big", [("new", (9, 9.0, "later"))])
            return json.dumps(value, **kwargs)

        monkeypatch.setattr(scancache, "json", SimpleNamespace(dumps=dumps, loads=json.loads))
        assert cache.load("recs", "/big") == dict(_rows(5))
        assert _snapshots(tmp_path) == []
        assert cache.load("recs", "/big") == {**dict(_rows(5)), "new": (9, 9.0, "later")}
