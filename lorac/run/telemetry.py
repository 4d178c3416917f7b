"""GPU memory and utilisation sampling through NVML, kept as peaks per run phase.

A :class:`GpuSampler` thread reads every GPU every ``interval`` seconds (200 ms by default) and
keeps, for each phase it is told about (:meth:`GpuSampler.set_phase`, fed from
:mod:`lorac.run.progress`), the largest memory use and utilisation seen on each GPU.

Which "used" is reported: ``nvmlDeviceGetMemoryInfo`` with ``version=nvmlMemory_v2`` when the
driver and nvidia-ml-py offer it. Its ``used`` leaves out the memory the driver reserves and matches
``nvidia-smi``; the v1 struct's ``used`` counts the reserved memory too, which on an H100
measured for lorac read a constant ~480 MiB above ``nvidia-smi``. Where v2 is missing the v1
value is reported, and :attr:`GpuSampler.memory_api` says which one was used.

Where several jobs share a GPU the device's "used" is their sum. Once :attr:`GpuSampler.group`
names the trainer's process group, every sample also adds up NVML's per-process ``usedGpuMemory``
(``nvmlDeviceGetComputeRunningProcesses``) over the processes of that group, kept per phase as
``process_memory_mib``: this job's own memory, whatever else runs beside it.

Host memory: a second thread adds up the proportional set size (``Pss`` of
``/proc/<pid>/smaps_rollup``) of the trainer's process tree (the :attr:`GpuSampler.group` leader
and its descendants, found through ``/proc/<pid>/task/<tid>/children``), kept per phase as
``host_rss_mib``: the peak of the sum. Pss shares a page among the processes that map it, so the
forked workers of a data loader do not count their parent's memory again (the sum of ``VmRSS``
did: measured on an H100 host, an SDXL run of sd-scripts read 131 GB that way on a 128 GiB
machine). Reading ``smaps_rollup`` walks the page tables (about 18 ms per GB resident), so this
thread waits at least one second and four times its last reading between readings. Where the
kernel has no ``smaps_rollup`` (before Linux 4.14), ``VmRSS`` is summed, an upper bound, and
``host_rss_api`` says so. Linux only; elsewhere it stays empty.

nvidia-ml-py (``pynvml``) is imported lazily; without it, or without a driver, the sampler takes no
GPU samples (host memory is still sampled) and :attr:`GpuSampler.reason` says why.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["GpuInfo", "GpuSampler", "PhasePeak"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    uuid: str
    memory_total_mib: float


@dataclass
class PhasePeak:
    """The largest values seen on one GPU during one phase."""

    memory_used_mib: float = 0.0
    process_memory_mib: float | None = None  # the run's own processes; None: not sampled
    utilization_pct: int = 0
    samples: int = 0
    first_s: float = 0.0  # seconds since the sampler started
    last_s: float = 0.0


@dataclass
class _State:
    phase: str = "startup"
    peaks: dict[str, dict[int, PhasePeak]] = field(default_factory=dict)
    series: dict[int, list[tuple[float, float, str]]] = field(default_factory=dict)
    host: dict[str, float] = field(default_factory=dict)  # phase -> peak RSS of the tree (MiB)


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` (every thread's ``children`` file)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                out += [int(x) for x in fh.read().split()]
        except (OSError, ValueError):
            continue
    return out


def _kib_field_mib(path: str, key: str) -> float:
    """The ``key`` line (in kB) of a ``/proc`` file in MiB: ``VmRSS:`` of ``status``, ``Pss:``
    of ``smaps_rollup`` (0 when the process is gone or has none, as a zombie)."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _rss_mib(pid: int) -> float:
    return _kib_field_mib(f"/proc/{pid}/status", "VmRSS:")


def _pss_mib(pid: int) -> float:
    return _kib_field_mib(f"/proc/{pid}/smaps_rollup", "Pss:")


@functools.cache
def _has_rollup() -> bool:
    """Whether this kernel has ``/proc/<pid>/smaps_rollup`` (Linux 4.14 and later)."""
    return os.path.exists("/proc/self/smaps_rollup")


#: What :func:`tree_rss_mib` adds up, by whether ``smaps_rollup`` was there.
HOST_API = {True: "sum of Pss (/proc/<pid>/smaps_rollup) over the trainer's process tree: "
                  "a page shared by several processes counts once",
            False: "sum of VmRSS (/proc/<pid>/status) over the trainer's process tree: pages "
                   "shared by forked processes count once per process (an upper bound)"}


def tree_rss_mib(root: int) -> float | None:
    """Memory of ``root`` and all its descendants (MiB, shared pages counted once where the
    kernel tells them apart: see :data:`HOST_API`); None without ``/proc``."""
    return _tree_memory(root)[0]


def _tree_memory(root: int) -> tuple[float | None, bool]:
    """(MiB of the tree, whether it is a Pss sum)."""
    if not os.path.isdir(f"/proc/{root}"):
        return None, True
    proportional = _has_rollup()
    read = _pss_mib if proportional else _rss_mib
    seen: set[int] = set()
    todo = [root]
    total = 0.0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += read(pid)
        todo += _children(pid)
    return total, proportional


#: Least seconds between two readings of the host memory (see the module's docstring).
HOST_INTERVAL_S = 1.0

#: Most points kept per GPU for the memory-over-time chart; past it every second one is dropped
#: (the time resolution halves, the memory stays bounded over a run of days).
MAX_POINTS = 2000


class GpuSampler:
    """Sample NVML in a daemon thread; use as a context manager or call start()/stop()."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.available = False
        self.reason: str | None = None
        self.memory_api: str | None = None
        self.driver_version: str | None = None
        self.nvml_version: str | None = None
        self.gpus: list[GpuInfo] = []
        self.baseline_mib: dict[int, float] = {}
        self.group: int | None = None  # process group whose per-process memory is summed
        self._pgids: dict[int, int] = {}
        self._state = _State()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._host_thread: threading.Thread | None = None
        self._host_proportional = True
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._t0 = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> GpuSampler:
        self._t0 = time.monotonic()
        self._start_gpu()
        self._thread = threading.Thread(target=self._run, name="lorac-nvml", daemon=True)
        self._thread.start()
        self._host_thread = threading.Thread(target=self._run_host, name="lorac-host-memory",
                                             daemon=True)
        self._host_thread.start()
        return self

    def _start_gpu(self) -> None:
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            self.reason = "nvidia-ml-py is not installed (pip install 'lorac[gpu]')"
            return
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.reason = f"NVML could not start: {exc}"
            return
        self._nvml = pynvml
        try:
            self.driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
            self.nvml_version = _text(pynvml.nvmlSystemGetNVMLVersion())
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                self._handles.append(h)
                mem = self._memory(h)
                self.gpus.append(
                    GpuInfo(
                        index=i,
                        name=_text(pynvml.nvmlDeviceGetName(h)),
                        uuid=_text(pynvml.nvmlDeviceGetUUID(h)),
                        memory_total_mib=round(mem.total / MIB, 1),
                    )
                )
                self.baseline_mib[i] = round(mem.used / MIB, 1)
        except Exception as exc:
            self.reason = f"NVML query failed: {exc}"
            self._shutdown()
            return
        if not self._handles:
            self.reason = "NVML sees no GPU"
            self._shutdown()
            return
        self.available = True

    def stop(self) -> None:
        self._stop.set()
        for attr in ("_thread", "_host_thread"):
            thread = getattr(self, attr)
            if thread is not None:
                thread.join(timeout=5)
                setattr(self, attr, None)
        self._sample()  # one last reading, so a short run still has one
        self._sample_host()
        self._shutdown()

    def __enter__(self) -> GpuSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- phases and results ------------------------------------------------------------------
    def set_phase(self, phase: str) -> None:
        with self._lock:
            self._state.phase = phase

    def peaks(self) -> dict[str, dict[int, PhasePeak]]:
        with self._lock:
            return {
                p: {i: PhasePeak(**asdict(v)) for i, v in g.items()}
                for p, g in self._state.peaks.items()
            }

    def peak_mib(self) -> dict[int, float]:
        """The run's peak memory per GPU over every phase."""
        out: dict[int, float] = {}
        for per_gpu in self.peaks().values():
            for i, pk in per_gpu.items():
                out[i] = max(out.get(i, 0.0), pk.memory_used_mib)
        return out

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record for the manifest."""
        return {
            "available": self.available,
            "reason": self.reason,
            "memory_api": self.memory_api,
            "interval_s": self.interval,
            "driver_version": self.driver_version,
            "nvml_version": self.nvml_version,
            "gpus": [asdict(g) for g in self.gpus],
            "baseline_mib": {str(i): v for i, v in self.baseline_mib.items()},
            "peak_mib": {str(i): v for i, v in self.peak_mib().items()},
            "phases": {
                phase: {str(i): asdict(pk) for i, pk in per_gpu.items()}
                for phase, per_gpu in self.peaks().items()
            },
            "series": {str(i): [list(p) for p in pts] for i, pts in self.series().items()},
            "host_rss_mib": self.host_peaks(),
            "host_rss_peak_mib": max(self.host_peaks().values(), default=None),
            "host_rss_api": HOST_API[self._host_proportional],
        }

    def host_peaks(self) -> dict[str, float]:
        """Peak resident memory of the trainer's process tree per phase (MiB)."""
        with self._lock:
            return dict(self._state.host)

    def series(self) -> dict[int, list[tuple[float, float, str]]]:
        """(seconds since start, MiB used, phase) per GPU, at most :data:`MAX_POINTS` each."""
        with self._lock:
            return {i: list(pts) for i, pts in self._state.series.items()}

    # -- sampling ----------------------------------------------------------------------------
    def _memory(self, handle: Any) -> Any:
        nv = self._nvml
        v2 = getattr(nv, "nvmlMemory_v2", None)
        if v2 is not None and self.memory_api != "nvmlDeviceGetMemoryInfo (v1)":
            try:
                mem = nv.nvmlDeviceGetMemoryInfo(handle, version=v2)
                self.memory_api = "nvmlDeviceGetMemoryInfo (v2: used excludes reserved)"
                return mem
            except Exception:
                pass
        self.memory_api = "nvmlDeviceGetMemoryInfo (v1)"
        return nv.nvmlDeviceGetMemoryInfo(handle)

    def _sample(self) -> None:
        now = round(time.monotonic() - self._t0, 3)
        readings: list[tuple[int, float, int, float | None]] = []  # gpu, MiB, %, group MiB
        for i, h in enumerate(self._handles):
            try:
                used = self._memory(h).used / MIB
                try:
                    util = int(self._nvml.nvmlDeviceGetUtilizationRates(h).gpu)
                except Exception:
                    util = 0
            except Exception:
                continue
            readings.append((i, used, util, self._group_memory(h)))
        if not readings:
            return
        with self._lock:
            per_gpu = self._state.peaks.setdefault(self._state.phase, {})
            for i, used, util, own in readings:
                pk = per_gpu.get(i)
                if pk is None:
                    pk = per_gpu[i] = PhasePeak(first_s=now)
                pk.memory_used_mib = max(pk.memory_used_mib, round(used, 1))
                if own is not None:
                    pk.process_memory_mib = max(pk.process_memory_mib or 0.0, round(own, 1))
                pk.utilization_pct = max(pk.utilization_pct, util)
                pk.samples += 1
                pk.last_s = now
                pts = self._state.series.setdefault(i, [])
                pts.append((now, round(used, 1), self._state.phase))
                if len(pts) > MAX_POINTS:
                    del pts[1::2]

    def _sample_host(self) -> float:
        """One reading of the trainer tree's host memory; returns what it took (seconds)."""
        if self.group is None:
            return 0.0
        t = time.monotonic()
        with self._lock:
            ph = self._state.phase
        mib, proportional = _tree_memory(self.group)
        if mib is not None:
            with self._lock:
                self._state.host[ph] = max(self._state.host.get(ph, 0.0), round(mib, 1))
                self._host_proportional = proportional
        return time.monotonic() - t

    def _run_host(self) -> None:
        while not self._stop.is_set():
            took = self._sample_host()
            self._stop.wait(max(HOST_INTERVAL_S, 4.0 * took))

    def _group_memory(self, handle: Any) -> float | None:
        """MiB used on this GPU by the processes of :attr:`group`; None when not known."""
        if self.group is None:
            return None
        try:
            procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except Exception:
            return None
        total = 0.0
        for p in procs:
            used = getattr(p, "usedGpuMemory", None)
            if used is not None and self._pgid(int(p.pid)) == self.group:
                total += used / MIB
        return total

    def _pgid(self, pid: int) -> int | None:
        if pid not in self._pgids:
            try:
                self._pgids[pid] = os.getpgid(pid)
            except OSError:  # gone already, or a process of another namespace
                return None
        return self._pgids[pid]

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def _shutdown(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None
            self._handles = []


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
