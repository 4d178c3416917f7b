"""The command line: click commands only, one module per command group. Each command parses
its options into a frozen options object, calls a plain function of its stage and exits with
that function's exit code; :func:`run` wraps it all in the one top-level handler."""

from __future__ import annotations

import click

from lorac import __version__
from lorac.cli.backends import backends
from lorac.cli.build import build
from lorac.cli.dataset import dataset
from lorac.cli.importing import import_cmd
from lorac.cli.inspect import inspect_cmd
from lorac.cli.lint import explain, lint, plugins, rules, schema
from lorac.cli.runs import run as run_cmd
from lorac.cli.runs import runs, synth
from lorac.cli.show import diff_cmd, show_cmd
from lorac.cli.vram import vram_cmd
from lorac.core.console import guarded
from lorac.core.diagnostics import ExitCode


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lorac")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of internal errors.")
def cli(verbose: bool) -> None:
    """lorac: lint, compile and run LoRA training profiles."""
    # -v is read from the command line by run(): the handler is chosen before click parses


for command in (lint, build, show_cmd, diff_cmd, explain, rules, schema, plugins, backends,
                run_cmd, runs, synth, import_cmd, dataset, vram_cmd, inspect_cmd):
    cli.add_command(command)


def run(argv: list[str]) -> int:
    """Run the CLI with the one top-level handler (:func:`lorac.core.console.guarded`) plus
    click's own usage errors: bad input never prints a traceback."""

    def call() -> int:
        try:
            cli.main(args=argv, prog_name="lorac", standalone_mode=False)
        except click.exceptions.Abort:
            return int(ExitCode.INTERRUPTED)
        except click.ClickException as exc:
            exc.show()
            return int(ExitCode.USAGE)
        return 0

    return guarded(call, verbose="-v" in argv or "--verbose" in argv)
