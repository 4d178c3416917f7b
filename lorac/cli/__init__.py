"""The command line: click commands only. Each parses its options into a frozen options
object, calls a plain function in :mod:`lorac.app` and returns its exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from lorac import __version__, app
from lorac.core.diagnostics import RENDERERS, ExitCode

FORMATS = click.Choice(RENDERERS)


def _call(fn: Callable[..., int], *args: Any) -> None:
    sys.exit(fn(*args, app.Io()))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lorac")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of internal errors.")
def cli(verbose: bool) -> None:
    """lorac: lint, compile and run LoRA training profiles."""
    # -v is read from the command line by run(): the handler is chosen before click parses


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-f", "--format", "fmt", type=FORMATS, default="text", show_default=True)
@click.option("--fail-on", type=click.Choice(["info", "warning", "error"]),
              help="Lowest severity that makes the exit code 1 (default: error).")
@click.option("--select", multiple=True, help="Enable only these code prefixes.")
@click.option("--ignore", multiple=True, help="Disable these code prefixes.")
@click.option("--fix", is_flag=True, help="Apply safe fixes.")
@click.option("--unsafe-fixes", is_flag=True, help="Apply safe and unsafe fixes.")
@click.option("--no-dataset", is_flag=True, help="Skip the dataset rules (LRC5xx).")
def lint(paths: tuple[str, ...], fmt: str, fail_on: str | None, select: tuple[str, ...],
         ignore: tuple[str, ...], fix: bool, unsafe_fixes: bool, no_dataset: bool) -> None:
    """Lint profiles (default: profiles/) and the files beside them."""
    # not cached: a command line the cache could store never reaches click (see __main__)
    opts = app.LintOptions(paths=paths, fmt=fmt, fail_on=fail_on, select=select,
                           ignore=ignore, fix=fix, unsafe_fixes=unsafe_fixes,
                           dataset=not no_dataset)
    _call(app.lint, opts)


@cli.command()
@click.argument("profile")
@click.option("-b", "--backend", help="kohya, ai-toolkit, … (default: [profile] backend or kohya)")
@click.option("--format", "fmt", help="Backend format, e.g. cli or toml for kohya.")
@click.option("-o", "--output", "out", type=click.Path(),
              help="Output folder (build/PROFILE): new, empty, or one lorac built.")
def build(profile: str, backend: str | None, fmt: str | None, out: str | None) -> None:
    """Compile PROFILE for a trainer."""
    _call(app.build, app.BuildOptions(profile=profile, backend=backend, fmt=fmt, out=out))


@cli.command()
@click.argument("profile")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def show(profile: str, fmt: str) -> None:
    """Print the resolved PROFILE with the provenance of every value."""
    _call(app.show, app.ShowOptions(profile=profile, fmt=fmt))


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def diff(a: str, b: str, fmt: str) -> None:
    """Print the effective differences between two resolved profiles."""
    _call(app.diff, app.DiffOptions(a=a, b=b, fmt=fmt))


@cli.command()
@click.argument("code")
def explain(code: str) -> None:
    """Explain a rule (by code or name)."""
    _call(app.explain, code)


@cli.command()
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def rules(fmt: str) -> None:
    """List every rule with its code, name, family, severity and fixability."""
    _call(app.rules, fmt)


@cli.command()
@click.option("--write", is_flag=True, help="Regenerate lorac/schema/profile.schema.json.")
@click.option("--check", is_flag=True, help="Exit 1 when the committed schema is stale.")
def schema(write: bool, check: bool) -> None:
    """Print (or regenerate) the profile JSON Schema."""
    _call(app.schema, write, check)


@cli.command()
def plugins() -> None:
    """List the loaded plugins with their versions."""
    _call(app.plugins_list)


from lorac.cli.backends import backends  # noqa: E402
from lorac.cli.runs import run as run_cmd  # noqa: E402
from lorac.cli.runs import runs, synth  # noqa: E402

cli.add_command(backends)
cli.add_command(run_cmd)
cli.add_command(runs)
cli.add_command(synth)

from lorac.cli.importing import import_cmd  # noqa: E402

cli.add_command(import_cmd)

from lorac.cli.dataset import dataset  # noqa: E402

cli.add_command(dataset)

from lorac.cli.vram import vram_cmd  # noqa: E402

cli.add_command(vram_cmd)


def run(argv: list[str]) -> int:
    """Run the CLI with the one top-level handler (:func:`lorac.app.guarded`) plus click's own
    usage errors: bad input never prints a traceback."""

    def call() -> int:
        try:
            cli.main(args=argv, prog_name="lorac", standalone_mode=False)
        except click.exceptions.Abort:
            return int(ExitCode.INTERRUPTED)
        except click.ClickException as exc:
            exc.show()
            return int(ExitCode.USAGE)
        return 0

    return app.guarded(call, verbose="-v" in argv or "--verbose" in argv)
