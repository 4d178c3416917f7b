"""Where a command writes, and the one top-level error handler.

Every command is a plain function ``(options, io) -> exit code``: reports go to ``io.out``
(stdout), chatter and progress to ``io.err`` (stderr). :func:`guarded` runs a command under the
error policy of :class:`~lorac.core.diagnostics.ExitCode`; ``lorac`` calls it once, from
:mod:`lorac.__main__` (the lint fast path) or :func:`lorac.cli.run`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from lorac.core.diagnostics import ExitCode, LoracError, printable


@dataclass(frozen=True)
class Io:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)


def guarded(call: Any, verbose: bool = False) -> int:
    """Run ``call()`` under the one top-level error policy: a :class:`LoracError` is one line
    and its exit code, Ctrl-C is 130, anything else is an internal error (exit 3) whose
    traceback only ``-v`` shows. Bad input never prints a traceback."""

    try:
        return int(call() or 0)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except LoracError as exc:
        sys.stderr.write(f"lorac: error: {printable(exc.message)}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("lorac: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if verbose:
            raise
        sys.stderr.write(f"lorac: internal error: {exc.__class__.__name__}: {printable(exc)} "
                         "(rerun with -v for the traceback)\n")
        return int(ExitCode.INTERNAL)
