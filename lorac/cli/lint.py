"""``lorac lint``, ``explain``, ``rules``, ``plugins`` and ``schema``: the lint stage and what
it knows about its rules and plugins."""

from __future__ import annotations

import json
import sys

import click

from lorac.core.console import Io
from lorac.core.diagnostics import RENDERERS, LoracError

FORMATS = click.Choice(RENDERERS)


@click.command()
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
    from lorac.lint import command

    # not cached: a command line the cache could store never reaches click (see __main__)
    opts = command.LintOptions(paths=paths, fmt=fmt, fail_on=fail_on, select=select,
                               ignore=ignore, fix=fix, unsafe_fixes=unsafe_fixes,
                               dataset=not no_dataset)
    sys.exit(command.lint(opts, Io()))


@click.command()
@click.argument("code")
def explain(code: str) -> None:
    """Explain a rule (by code or name)."""
    sys.exit(explain_rule(code, Io()))


@click.command()
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def rules(fmt: str) -> None:
    """List every rule with its code, name, family, severity and fixability."""
    sys.exit(list_rules(fmt, Io()))


@click.command()
@click.option("--write", is_flag=True, help="Regenerate lorac/schema/profile.schema.json.")
@click.option("--check", is_flag=True, help="Exit 1 when the committed schema is stale.")
def schema(write: bool, check: bool) -> None:
    """Print (or regenerate) the profile JSON Schema."""
    sys.exit(print_schema(write, check, Io()))


@click.command()
def plugins() -> None:
    """List the loaded plugins with their versions."""
    sys.exit(list_plugins(Io()))


def list_rules(fmt: str, io: Io) -> int:
    from lorac.lint.plugins import get_plugins

    rows = [{"code": r.code, "name": r.name, "family": r.family, "severity": str(r.severity),
             "fix": r.fix, "summary": r.summary} for r in get_plugins().rules.values()]
    if fmt == "json":
        io.out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    for r in rows:
        fix = {"safe": "fix", "unsafe": "unsafe-fix", "none": ""}[r["fix"]]
        io.out.write(f"{r['code']}  {r['name']:<34} {r['family']:<22} {r['severity']:<8} "
                     f"{fix}\n")
    return 0


def explain_rule(code: str, io: Io) -> int:
    from lorac.lint.plugins import get_plugins

    plugins = get_plugins()
    key = code.strip().upper()
    rule = plugins.rules.get(key)
    if rule is None:
        by_name = {r.name: r for r in plugins.rules.values()}
        rule = by_name.get(code.strip())
    if rule is None:
        raise LoracError(f"unknown rule {code!r} (see `lorac rules`)")
    fix = {"safe": "safe fix available (--fix)", "unsafe": "fix available with --unsafe-fixes",
           "none": "no automatic fix"}[rule.fix]
    io.out.write(f"{rule.code} {rule.name} ({rule.family}; default {rule.severity}; {fix})\n\n")
    io.out.write(rule.doc + "\n")
    return 0


def list_plugins(io: Io) -> int:
    from lorac.lint.plugins import get_plugins

    plugins = get_plugins()
    for info in plugins.infos:
        kind = "built-in" if info.builtin else "entry point"
        io.out.write(f"{info.name:<34} {info.version:<10} {kind:<12} {info.module}\n")
    io.out.write(f"\n{len(plugins.rules)} rules, backends: "
                 f"{', '.join(sorted(plugins.backends))}\n")
    return 0


def print_schema(write: bool, check: bool, io: Io) -> int:
    from lorac.config import schema_gen

    if write:
        return schema_gen.main([])
    if check:
        return schema_gen.main(["--check"])
    io.out.write(schema_gen.SCHEMA_FILE.read_text(encoding="utf-8"))
    return 0
