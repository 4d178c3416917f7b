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
