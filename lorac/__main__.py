"""Entry point: the cached fast path for ``lorac lint``, then the click CLI, then the one
top-level error handler (exit codes in :class:`lorac.diagnostics.ExitCode`)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lint"] and "-v" not in argv:
        from lorac.cache import fast_lint

        code = fast_lint(argv[1:])
        if code is not None:
            return code
    from lorac.cli import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
