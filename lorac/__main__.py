"""Entry point: the cached fast path for ``lorac lint``, then the click CLI, then the one
top-level error handler (exit codes in :class:`lorac.core.diagnostics.ExitCode`).

``lorac lint [PATHS] [--format F] [--no-dataset]`` — what editors, pre-commit and CI run —
never imports click: a cache hit prints the stored report (:mod:`lorac.lint.cache`), a miss calls
:func:`lorac.lint.command.lint` directly. Every other command line goes through click.
"""

from __future__ import annotations

import gc
import sys

#: allocations between two young-generation collections (CPython's default is 700)
GC_THRESHOLD = 100_000


def main(argv: list[str] | None = None) -> int:
    # lorac builds tables that live until it exits; at the default threshold a profile with
    # 100,000 keys spent a quarter of its lint in full collections that freed nothing
    gc.set_threshold(max(GC_THRESHOLD, gc.get_threshold()[0]), *gc.get_threshold()[1:])
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lint"]:
        from lorac.lint.cache import fast_lint, parse_lint_argv

        simple = parse_lint_argv(argv[1:])
        if simple is not None:
            code = fast_lint(argv[1:])
            if code is not None:
                return code
            from lorac.core.console import Io, guarded
            from lorac.lint.command import LintOptions, lint

            paths, fmt, dataset = simple
            opts = LintOptions(paths=paths, fmt=fmt, dataset=dataset, argv=tuple(argv[1:]))
            return guarded(lambda: lint(opts, Io()))
    from lorac.cli import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
