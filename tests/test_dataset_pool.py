"""The scanning pool (:func:`lorac.scan.dataset.run_parallel`): its parent stays idle while
the workers scan."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from lorac.scan import dataset


def _nap(i: int) -> int:
    time.sleep(0.002)
    return i * i


def _busy(i: int) -> int:
    """Keeps a core busy for 3 ms, as a scanning worker does."""

    end = time.perf_counter() + 0.003
    while time.perf_counter() < end:
        pass
    return i * i


def test_the_worker_handler_does_not_wake_for_each_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The stock ``Pool`` wakes its worker-handler thread whenever the result pipe is
    readable and loops until the result thread has read it: a tenth of a core in the parent,
    taken from the workers. The pool here wakes it only for a worker's end or the pool's
    close, a handful of times whatever the number of results."""

    from multiprocessing import pool

    assert issubclass(dataset._quiet_pool(), pool.Pool)
    wakes: list[int] = []
    real = pool.Pool._maintain_pool  # the handler calls Pool._maintain_pool once per wake

    def counted(*args: Any) -> None:
        wakes.append(1)
        real(*args)

    monkeypatch.setattr(pool.Pool, "_maintain_pool", staticmethod(counted))
    # every core busy, as in a scan: the result thread then waits for a core, and the stock
    # handler loops meanwhile
    workers = max(2, len(os.sched_getaffinity(0)))
    items = list(range(40 * workers))
    assert dataset.run_parallel(_busy, items, workers, chunksize=1) == [i * i for i in items]
    assert 1 <= len(wakes) < 20, len(wakes)


def test_results_come_in_order_and_through_on_result() -> None:
    items = list(range(50))
    assert dataset.run_parallel(_nap, items, 2) == [i * i for i in items]
    seen: list[int] = []
    done: list[int] = []
    assert dataset.run_parallel(_nap, items, 2, done.append, seen.append) == []
    assert sorted(seen) == [i * i for i in items] and done == list(range(1, 51))


def _collecting(_: int) -> bool:
    import gc

    return gc.isenabled()


def test_the_workers_collect_garbage_while_the_parent_pauses() -> None:
    """The analysis pauses the parent's cyclic collector (records make no cycles); the forked
    workers inherit the pause and end it: a scan of files that fail leaves cycles there."""

    import gc

    assert gc.isenabled()
    with dataset._collector_paused():
        assert not gc.isenabled()
        assert dataset.run_parallel(_collecting, list(range(8)), 2, pool_min=1) == [True] * 8
        with dataset._collector_paused():  # nested: the outer pause holds
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
