"""Launch a trainer, stream its output, sample the GPU, handle signals, write the manifest.

:func:`launch` is the one public function. The trainer runs as a child in its own session and
process group (``start_new_session=True``; never through a shell). Its stdout and stderr, merged,
go byte for byte to ``run_dir/train.log`` and, split on ``\\r`` and ``\\n``, through
:class:`lorac.run.progress.ProgressParser` into a display on stderr: a rich progress bar when stderr
is a terminal, a plain line every ``PLAIN_EVERY_S`` seconds and at each phase change otherwise.

Signals: the first SIGINT or SIGTERM that lorac receives is forwarded to the trainer's process
group (the terminal's Ctrl-C no longer reaches it directly, as it is in its own group); a second
one sends SIGKILL to the group. When the trainer has exited, whatever is left of its group
(dataloader workers, accelerate's children) is killed, so nothing outlives the run.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from lorac.core.diagnostics import printable
from lorac.core.secrets import environment_secrets, safe_cut, scrub
from lorac.run.manifest import MANIFEST_NAME, file_entries, new_manifest, utc_now, write_manifest
from lorac.run.progress import ProgressEvent, ProgressParser, split_lines
from lorac.run.telemetry import GpuSampler

__all__ = ["RunResult", "launch"]

LOG_NAME = "train.log"
PLAIN_EVERY_S = 15.0
RICH_EVERY_S = 0.1
TAIL_LINES = 40
#: A line of trainer output longer than this is written to the log before it ends (in pieces
#: cut where no credential is), keeping the last LINE_KEEP characters for the next piece.
LINE_LIMIT = 1 << 20
LINE_KEEP = 4096
#: Seconds to wait for the pipe to close after the trainer exited, before killing its group.
EOF_GRACE_S = 5.0
#: Set in the trainer's environment unless the caller sets them: unbuffered Python output (so
#: progress streams) and a wide console for rich's log lines (so markers are not wrapped).
DEFAULT_ENV = {"PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


@dataclass
class RunResult:
    """What a launch came to.

    status: "succeeded" (exit 0), "failed" (non-zero exit), "interrupted" (lorac got SIGINT or
    SIGTERM and passed it on), "stopped" (lorac ended the trainer at ``max_steps``).
    exit_code: the trainer's exit code; 128 + N when signal N ended it.
    """

    status: str
    exit_code: int
    duration_s: float
    run_dir: Path
    log_path: Path
    manifest_path: Path
    phase: str
    step: int | None = None
    total: int | None = None
    sec_per_it: float | None = None
    loss: float | None = None
    error: str | None = None
    peak_mib: dict[int, float] = field(default_factory=dict)
    phase_peaks_mib: dict[str, dict[int, float]] = field(default_factory=dict)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    pid: int = 0


class _Signals:
    """Forward SIGINT/SIGTERM to the child's group; the second one kills it."""

    def __init__(self) -> None:
        self.pgid: int | None = None
        self.count = 0
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.received = self.received or signum
        self.forward()

    def forward(self) -> None:
        """Pass what was received on to the child's group (once it has one): the first signal
        itself, SIGKILL from the second on. Called again when the group appears, for signals
        that came while the child was starting; that call counts nothing."""
        if self.pgid is None or self.received is None:
            return
        sig = self.received if self.count == 1 else signal.SIGKILL
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)
        try:
            yield self
        finally:
            for s, old in self._old.items():
                signal.signal(s, old)


class _Display:
    """Rich progress on a terminal, plain periodic lines otherwise, or nothing."""

    def __init__(self, mode: str, stream: TextIO) -> None:
        if mode == "auto":
            mode = "rich" if stream.isatty() else "plain"
        if mode not in ("rich", "plain", "none"):
            raise ValueError(f"display must be auto, rich, plain or none, not {mode!r}")
        self.mode = mode
        self.stream = stream
        self._last_draw = -1e9
        self._progress: Any = None
        self._task: Any = None
        self.known: set[str] = set()  # secret values to mask in what is shown

    def __enter__(self) -> _Display:
        if self.mode == "rich":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.fields[phase]:<18}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("run", total=None, phase="startup", info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def update(self, parser: ProgressParser, sampler: GpuSampler, ev: ProgressEvent | None) -> None:
        """Called for every line (``ev`` None when the line had no event) and every event.
        Rich redraws on every event and at most every RICH_EVERY_S seconds otherwise; plain
        prints at once on a phase change or an error, else at most every PLAIN_EVERY_S."""
        if self.mode == "none":
            return
        now = time.monotonic()
        urgent = ev is not None and ev.kind in ("phase", "error")
        if self.mode == "rich":
            if ev is None and now - self._last_draw < RICH_EVERY_S:
                return
            self._last_draw = now
            kw: dict[str, Any] = {"phase": parser.phase, "info": _status_text(parser, sampler)}
            if parser.total:
                kw.update(total=parser.total, completed=parser.step or 0)
            self._progress.update(self._task, **kw)
            if ev is not None and ev.kind == "error":
                from rich.markup import escape

                self._progress.console.print(
                    f"[red]{escape(printable(scrub(ev.message, self.known)))}")
        elif urgent or now - self._last_draw >= PLAIN_EVERY_S:
            self._last_draw = now
            info = _status_text(parser, sampler)
            print(f"lorac: [{parser.phase}] {info}".rstrip(), file=self.stream, flush=True)

    def say(self, text: str) -> None:
        if self.mode == "none":
            return
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)


def _status_text(parser: ProgressParser, sampler: GpuSampler) -> str:
    parts = []
    if parser.total:
        parts.append(f"step {parser.step}/{parser.total}")
    if parser.sec_per_it is not None:
        parts.append(f"{parser.sec_per_it:.2f} s/it")
    if parser.loss is not None:
        parts.append(f"loss {parser.loss:.4g}")
    peaks = sampler.peaks().get(parser.phase, {})
    for i, pk in sorted(peaks.items()):
        parts.append(f"gpu{i} {pk.memory_used_mib / 1024:.1f} GiB")
    return "  ".join(parts)


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def launch(
    argv: list[str],
    run_dir: Path,
    *,
    env: dict[str, str] | None = None,
    display: str = "auto",
    max_steps: int | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
    stream: TextIO | None = None,
    on_event: Callable[[ProgressEvent], None] | None = None,
    sample_interval: float = 0.2,
    secrets: Iterable[str] = (),
    on_tick: Callable[[dict[str, Any]], None] | None = None,
    tick_s: float = 5.0,
    parser: ProgressParser | None = None,
) -> RunResult:
    """Run ``argv`` (a trainer command, e.g. ``accelerate launch … flux_train_network.py …``).

    ``run_dir`` is created; ``train.log`` and ``manifest.json`` go there. ``env`` adds to (and
    overrides) this process's environment for the trainer; only these variables' names, and the
    values of the non-secret-looking ones, go to the manifest. ``display``: auto | rich | plain |
    none, shown on ``stream`` (stderr by default). ``max_steps``: end the trainer (SIGTERM to its
    group) once the ``steps`` bar reaches it; the status is then "stopped". ``manifest_extra``:
    caller-owned manifest keys (see :mod:`lorac.run.manifest`). ``on_event`` sees every
    parsed event. ``on_tick`` gets, every ``tick_s`` seconds while the trainer runs, the live
    manifest keys ``telemetry``, ``phases`` and ``progress`` (for the run's report page).
    ``parser``: reads the trainer's output (default: kohya's, :class:`ProgressParser`).
    ``secrets``: values never to write or show; they, the values of the secret-looking variables
    of the trainer's environment and recognisable tokens (:func:`lorac.core.secrets.scrub`) are
    masked in ``train.log``, the manifest's ``command`` and the lines echoed on failure.

    Returns a :class:`RunResult`; raises only when the trainer cannot be started at all
    (``FileNotFoundError`` for a missing executable, and the like).
    """
    if not argv:
        raise ValueError("empty trainer command")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG_NAME
    manifest_path = run_dir / MANIFEST_NAME
    stream = stream if stream is not None else sys.stderr

    child_env = dict(os.environ)
    set_env = {k: v for k, v in DEFAULT_ENV.items() if k not in os.environ}
    set_env.update(env or {})
    child_env.update(set_env)
    known = set(secrets) | environment_secrets(child_env)

    manifest = new_manifest([scrub(str(a), known) for a in argv], run_dir, set_env,
                            manifest_extra, known=known)
    write_manifest(manifest_path, manifest)

    parser = parser if parser is not None else ProgressParser()
    sampler = GpuSampler(interval=sample_interval)
    signals = _Signals()
    phases: list[dict[str, Any]] = [{"phase": "startup", "at_s": 0.0}]
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    stopped = False
    start = time.monotonic()

    with (
        open(log_path, "wb") as log,
        _Display(display, stream) as view,
        sampler,
        signals.installed(),
    ):
        view.known = known
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            start_new_session=True,
        )
        signals.pgid = proc.pid  # the child leads its own group
        sampler.group = proc.pid
        signals.forward()  # a signal that came while the child was starting
        assert proc.stdout is not None
        chunks: queue.Queue[bytes | None] = queue.Queue()
        reader = threading.Thread(
            target=_pump, args=(proc.stdout.fileno(), chunks), name="lorac-reader", daemon=True
        )
        reader.start()
        pending = ""
        unlogged = b""
        last_was_bar = False
        exited_at: float | None = None
        last_tick = time.monotonic() - tick_s  # the first tick comes at once
        try:
            while True:
                try:
                    chunk = chunks.get(timeout=0.2)
                except queue.Empty:
                    chunk = b""
                if chunk is None:  # EOF: every writer of the pipe is gone
                    break
                if chunk:
                    # whole lines (\n or \r) to the log, so a secret is never split; a line
                    # longer than LINE_LIMIT is cut where no credential is (_cut_long_line)
                    unlogged += chunk
                    cut = max(unlogged.rfind(b"\n"), unlogged.rfind(b"\r"))
                    if cut >= 0:
                        log.write(_scrub_bytes(unlogged[:cut + 1], known))
                        unlogged = unlogged[cut + 1:]
                        log.flush()
                    elif len(unlogged) > LINE_LIMIT:
                        head, unlogged = _cut_long_line(unlogged, known)
                        log.write(head)
                        log.flush()
                    lines, pending = split_lines(pending + chunk.decode("utf-8", "replace"))
                    for line in lines:
                        events = parser.feed(line)
                        is_bar = any(e.kind in ("step", "bar") for e in events)
                        if is_bar and last_was_bar and tail:
                            tail[-1] = line  # keep one line per tqdm bar, its last redraw
                        else:
                            tail.append(line)
                        last_was_bar = is_bar
                        for ev in events:
                            if ev.kind == "phase":
                                sampler.set_phase(ev.phase)
                                at = round(time.monotonic() - start, 2)
                                phases.append({"phase": ev.phase, "at_s": at})
                            if on_event is not None:
                                on_event(ev)
                            view.update(parser, sampler, ev)
                        if not events:
                            view.update(parser, sampler, None)
                if on_tick is not None and time.monotonic() - last_tick >= tick_s:
                    last_tick = time.monotonic()
                    on_tick({"telemetry": sampler.summary(), "phases": list(phases),
                             "progress": {"phase": parser.phase, "step": parser.step,
                                          "total": parser.total, "loss": parser.loss,
                                          "sec_per_it": parser.sec_per_it}})
                if max_steps is not None and not stopped and (parser.step or 0) >= max_steps:
                    stopped = True
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGTERM)
                if proc.poll() is not None:
                    # The trainer is gone; a grandchild may still hold the pipe open.
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > EOF_GRACE_S:
                        _kill_group(proc.pid)
            if unlogged:
                log.write(_scrub_bytes(unlogged, known))
            if pending:
                tail.append(pending)
                parser.feed(pending)
            returncode = proc.wait()
        finally:
            if proc.poll() is None:  # lorac itself is failing: take the trainer down with it
                _kill_group(proc.pid)
                proc.wait()
            _kill_group(proc.pid)  # leftovers of the group (workers, grandchildren)
            reader.join(timeout=5)
            proc.stdout.close()

    duration = round(time.monotonic() - start, 2)
    code = _exit_code(returncode)
    if signals.count:
        status = "interrupted"
    elif stopped:
        status = "stopped"
    elif code == 0:
        status = "succeeded"
    else:
        status = "failed"

    peaks = sampler.peaks()
    outputs = file_entries(run_dir)
    progress = {
        "phase": parser.phase,
        "step": parser.step,
        "total": parser.total,
        "sec_per_it": parser.sec_per_it,
        "loss": parser.loss,
        "error": scrub(parser.error, known) if parser.error else parser.error,
    }
    manifest.update(
        status=status,
        exit_code=code,
        ended_at=utc_now(),
        duration_s=duration,
        progress=progress,
        phases=phases,
        telemetry=sampler.summary(),
        outputs=outputs,
    )
    manifest["versions"]["driver"] = sampler.driver_version
    write_manifest(manifest_path, manifest)

    result = RunResult(
        status=status,
        exit_code=code,
        duration_s=duration,
        run_dir=run_dir,
        log_path=log_path,
        manifest_path=manifest_path,
        **progress,
        peak_mib=sampler.peak_mib(),
        phase_peaks_mib={
            p: {i: pk.memory_used_mib for i, pk in g.items()} for p, g in peaks.items()
        },
        outputs=outputs,
        tail=[scrub(line, known) for line in tail],
        pid=proc.pid,
    )
    if display != "none":
        _report(result, stream)
    return result


def _report(r: RunResult, stream: TextIO) -> None:
    if r.status in ("failed", "interrupted"):
        print(f"lorac: last lines of {printable(r.log_path)}:", file=stream)
        for line in r.tail[-20:]:
            print(f"  | {printable(line)}", file=stream)
    peak = ", ".join(f"gpu{i} {v / 1024:.1f} GiB" for i, v in sorted(r.peak_mib.items()))
    print(
        f"lorac: {r.status} (exit code {r.exit_code}) after {r.duration_s:.0f} s"
        + (f"; peak {peak}" if peak else "")
        + f"; manifest {printable(r.manifest_path)}",
        file=stream,
        flush=True,
    )


def _cut_long_line(data: bytes, known: set[str]) -> tuple[bytes, bytes]:
    """``data``, a line longer than :data:`LINE_LIMIT` still being written: its head to log
    now, scrubbed, and the rest to keep. The cut comes before the last :data:`LINE_KEEP`
    characters and never inside a credential (:func:`lorac.core.secrets.safe_cut`), so every token
    is masked whole — no fragment of it reaches the log on either side of the cut."""

    text = data.decode("utf-8", "surrogateescape")
    cut = safe_cut(text, known, keep=LINE_KEEP) or len(text) - LINE_KEEP
    head, rest = text[:cut], text[cut:]
    return (scrub(head, known).encode("utf-8", "surrogateescape"),
            rest.encode("utf-8", "surrogateescape"))


def _scrub_bytes(data: bytes, known: set[str]) -> bytes:
    """``data`` with secrets masked; bytes that are not UTF-8 pass through unchanged."""

    text = data.decode("utf-8", "surrogateescape")
    clean = scrub(text, known)
    return data if clean == text else clean.encode("utf-8", "surrogateescape")


def _pump(fd: int, out: queue.Queue[bytes | None]) -> None:
    """Copy the pipe into ``out`` chunk by chunk; ``None`` marks the end."""
    try:
        while chunk := os.read(fd, 1 << 16):
            out.put(chunk)
    except OSError:
        pass
    finally:
        out.put(None)
