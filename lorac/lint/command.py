"""``lorac lint`` as a plain function: options in, exit code out.

Called by the click command (:mod:`lorac.cli.lint`) and, for the command lines the result cache
knows, straight from :mod:`lorac.__main__` without click. Loads the settings and plugins, runs
:func:`lorac.lint.driver.lint`, applies fixes and re-lints, renders the report to ``io.out`` and
the summary to ``io.err``, and stores the result in the cache (:mod:`lorac.lint.cache`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from lorac.core.console import Io
from lorac.core.diagnostics import render, summary


class LintOptions(NamedTuple):
    paths: tuple[str, ...] = ()
    fmt: str = "text"
    fail_on: str | None = None
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    fix: bool = False
    unsafe_fixes: bool = False
    dataset: bool = True
    argv: tuple[str, ...] | None = None  # the command line after ``lint``, for the cache


def lint(opts: LintOptions, io: Io) -> int:
    from lorac.config.settings import load_settings
    from lorac.lint import cache as lint_cache
    from lorac.lint.driver import lint as run_lint
    from lorac.lint.plugins import get_plugins

    overrides: dict[str, Any] = {}
    if opts.select:
        overrides["select"] = list(opts.select)
    if opts.ignore:
        overrides["ignore"] = list(opts.ignore)
    if opts.fail_on:
        overrides["fail-on"] = opts.fail_on
    settings = load_settings(Path.cwd(), overrides)
    from lorac.config.kohya_version import select as select_kohya_version

    active = select_kohya_version(settings)  # the configured checkout's sd-scripts version
    plugins = get_plugins(lazy=True)  # a trainer's plugins when a profile names it
    if opts.fmt == "sarif":  # SARIF lists every rule
        plugins.load_trainers()
    paths = [Path(p) for p in opts.paths] or [settings.profiles if settings.profiles.exists()
                                               else Path("profiles")]
    options = {"dataset": opts.dataset}
    report = run_lint(paths, settings, plugins, options=options)
    diags = report.diagnostics
    if opts.fix or opts.unsafe_fixes:
        from lorac.lint.fix import apply_fixes

        fixed = apply_fixes(diags, unsafe=opts.unsafe_fixes)
        if fixed:
            io.err.write(f"fixed {fixed} finding(s)\n")
            report = run_lint(paths, settings, plugins, options=options)
            diags = report.diagnostics
    text = render(diags, opts.fmt, list(plugins.rules.values()))
    io.out.write(text)
    code = report.exit_code(settings.fail_on)
    if opts.fmt == "text":
        io.err.write(summary(diags))
    if active is not None:
        report.read |= {str(p) for p in active.markers}
    if opts.argv is not None and not (opts.fix or opts.unsafe_fixes):
        lint_cache.store(list(opts.argv), [str(p) for p in paths], report, text, int(code))
    return int(code)
