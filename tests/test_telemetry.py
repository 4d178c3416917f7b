"""Host memory sampling of the run telemetry (lorac/run/telemetry.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from lorac.run.telemetry import GpuSampler, tree_rss_mib


def test_host_rss_of_the_trainer_tree_is_kept_per_phase() -> None:
    """A child that holds ~200 MiB under a parent of the run's process group: the tree's
    resident memory is sampled from /proc, per phase, without NVML."""
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("no /proc")
    code = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
            "\"b = bytearray(200 * 2**20); import time; time.sleep(30)\"]); p.wait()")
    parent = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        sampler = GpuSampler(interval=0.05)
        sampler.group = parent.pid
        sampler.start()
        sampler.set_phase("train")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (sampler.host_peaks().get("train") or 0) < 200:
            time.sleep(0.1)
        assert (tree_rss_mib(parent.pid) or 0) >= 200
        sampler.stop()
        summary = sampler.summary()
        assert summary["host_rss_mib"]["train"] >= 200
        assert summary["host_rss_peak_mib"] == max(summary["host_rss_mib"].values())
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_forked_workers_do_not_count_their_parents_memory_again(monkeypatch) -> None:
    """A parent holding ~300 MiB forks three workers (as a data loader does): the tree holds
    ~300 MiB of memory, not ~1200 (what the sum of VmRSS reads)."""
    if not os.path.exists("/proc/self/smaps_rollup"):
        pytest.skip("no /proc/<pid>/smaps_rollup on this kernel")
    code = ("import os, time\n"
            "b = bytearray(300 * 2**20)\n"
            "for i in range(0, len(b), 4096): b[i] = 1\n"
            "for _ in range(3):\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(30); os._exit(0)\n"
            "print('ready', flush=True); time.sleep(30)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(_tree_pids(parent.pid)) < 4:
            time.sleep(0.05)
        assert len(_tree_pids(parent.pid)) == 4
        rss_sum = sum(_vmrss(p) for p in _tree_pids(parent.pid))
        assert rss_sum >= 1100  # what the old sum read
        held = tree_rss_mib(parent.pid) or 0
        assert 290 <= held <= 450
        sampler = GpuSampler(interval=0.05)
        sampler.group = parent.pid
        sampler.start()
        sampler.set_phase("train")
        time.sleep(0.3)
        sampler.stop()
        summary = sampler.summary()
        assert 290 <= summary["host_rss_mib"]["train"] <= 450
        assert summary["host_rss_api"].startswith("sum of Pss")
        # a kernel without smaps_rollup: the VmRSS sum, named as the upper bound it is
        from lorac.run import telemetry

        monkeypatch.setattr(telemetry, "_has_rollup", lambda: False)
        assert (tree_rss_mib(parent.pid) or 0) >= 1100
        assert telemetry.HOST_API[telemetry._tree_memory(parent.pid)[1]].startswith(
            "sum of VmRSS")
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def _tree_pids(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}") else []:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                todo += [int(x) for x in fh.read().split()]
    return out


def _vmrss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0
