"""``lorac show PROFILE`` and ``lorac diff A B``: resolved profiles, and what really differs
between two, with where every value was written (credentials masked)."""

from __future__ import annotations

import json
import sys
from typing import Any, NamedTuple

import click

from lorac.config.values import leaves, masked, masked_provenance, toml_key, toml_value
from lorac.core.console import Io
from lorac.core.diagnostics import (
    ExitCode,
    Severity,
    exit_code_for,
    format_key_path,
    printable,
    render_text,
    sort_diagnostics,
)

TRAINER_OPTION = click.option(
    "--trainer", default=None, metavar="NAME",
    help="Show the values as trainer NAME gets them: its [trainers.NAME] options in place.")


@click.command("show")
@click.argument("profile")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@TRAINER_OPTION
def show_cmd(profile: str, fmt: str, trainer: str | None) -> None:
    """Print the resolved PROFILE with the provenance of every value."""
    sys.exit(show(ShowOptions(profile=profile, fmt=fmt, trainer=trainer), Io()))


@click.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@TRAINER_OPTION
def diff_cmd(a: str, b: str, fmt: str, trainer: str | None) -> None:
    """Print the effective differences between two resolved profiles (``NAME@TRAINER``: the
    profile as that trainer gets it, e.g. ``lorac diff final@kohya final@ai-toolkit``)."""
    sys.exit(diff(DiffOptions(a=a, b=b, fmt=fmt, trainer=trainer), Io()))


class ShowOptions(NamedTuple):
    profile: str
    fmt: str = "text"
    trainer: str | None = None


def _as_trainer(profile: Any, trainer: str | None) -> Any:
    from lorac.config.trainer_values import for_trainer

    return profile if trainer is None else for_trainer(profile, trainer)


def show(opts: ShowOptions, io: Io) -> int:
    from lorac.core.secrets import scrub_message
    from lorac.lint.driver import resolve_named

    res, diags = resolve_named(opts.profile)
    if res.profile is None:
        io.err.write(render_text(diags))
        return int(ExitCode.FINDINGS)
    profile = _as_trainer(res.profile, opts.trainer)
    if opts.fmt == "json":
        body = {
            "profile": scrub_message(profile.name), "path": scrub_message(profile.path),
            "chain": [scrub_message(p) for p in profile.chain],
            "data": masked(profile.data), "provenance": masked_provenance(profile),
        }
        io.out.write(json.dumps(body, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        chain = " → ".join(printable(p) for p in profile.chain)
        seen_by = f" (as {printable(opts.trainer)} gets it)" if opts.trainer else ""
        io.out.write(f"# {printable(profile.name)}: {chain}{seen_by}\n")
        # (a top-level key that should be a table is shown as written)
        _show_table(io, profile, (), profile.data)
    if diags:
        io.err.write(render_text(diags))
    return int(exit_code_for(diags, Severity.ERROR))


def _show_table(io: Io, profile: Any, path: tuple, table: dict, header: str | None = None) -> None:
    """``table`` (of the resolved profile) as TOML lines, each with where it was written: keys
    and values masked (:func:`masked`) and escaped (:func:`printable`); positions are
    looked up with the real keys."""

    if path:
        io.out.write(f"\n{printable(header or '[' + format_key_path(path) + ']')}\n")
    lines = {}
    for key, value in table.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            ((shown_key, shown),) = masked({key: value}).items()
            lines[key] = printable(f"{toml_key(shown_key)} = {toml_value(shown)}")
    width = max((len(line) for line in lines.values()), default=0)
    for key, line in lines.items():
        io.out.write(f"{line.ljust(width)}  # {printable(profile.where((*path, key)))}\n")
    for key, value in table.items():
        if isinstance(value, dict):
            _show_table(io, profile, (*path, key), value)
        elif _is_table_array(value):
            for i, item in enumerate(value):
                _show_table(io, profile, (*path, key, i), item,
                            f"[[{format_key_path((*path, key))}]]")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


class DiffOptions(NamedTuple):
    a: str
    b: str
    fmt: str = "text"
    trainer: str | None = None


def _at_trainer(name: str) -> tuple[str, str | None]:
    """``final@ai-toolkit`` → ``("final", "ai-toolkit")``: a profile as one trainer gets it."""

    base, sep, trainer = name.rpartition("@")
    return (base, trainer) if sep and base and trainer else (name, None)


def diff(opts: DiffOptions, io: Io) -> int:
    from lorac.core.secrets import scrub_message
    from lorac.lint.driver import resolve_named

    (a, a_trainer), (b, b_trainer) = _at_trainer(opts.a), _at_trainer(opts.b)
    left, ldiags = resolve_named(a)
    right, rdiags = resolve_named(b)
    if left.profile is None or right.profile is None:
        io.err.write(render_text(sort_diagnostics(ldiags + rdiags)))
        return int(ExitCode.FINDINGS)
    lp = _as_trainer(left.profile, a_trainer or opts.trainer)
    rp = _as_trainer(right.profile, b_trainer or opts.trainer)
    la, lb = leaves(lp.data), leaves(rp.data)
    # compared as they are, shown with credentials masked
    pa, pb = leaves(masked(lp.data)), leaves(masked(rp.data))
    skip = {("profile", "extends"), ("profile", "description")}
    rows = []
    for key in sorted(set(la) | set(lb), key=lambda k: [str(p) for p in k]):
        if key in skip or la.get(key, _MISSING) == lb.get(key, _MISSING):
            continue
        rows.append({
            "key": scrub_message(format_key_path(key)),
            opts.a: pa.get(key, None), opts.b: pb.get(key, None),
            "only": opts.a if key not in lb else opts.b if key not in la else None,
            "where": {opts.a: scrub_message(str(lp.where(key))) if key in la else None,
                      opts.b: scrub_message(str(rp.where(key))) if key in lb else None},
        })
    if opts.fmt == "json":
        io.out.write(json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n")
        return 0
    if not rows:
        io.out.write(f"{printable(opts.a)} and {printable(opts.b)} resolve to the same values\n")
        return 0
    for row in rows:
        a = "(unset)" if row["only"] == opts.b else toml_value(row[opts.a])
        b = "(unset)" if row["only"] == opts.a else toml_value(row[opts.b])
        io.out.write(printable(f"{row['key']}: {a} → {b}") + "\n")
        where_a, where_b = row["where"][opts.a], row["where"][opts.b]
        io.out.write(f"    {printable(opts.a)}: {printable(where_a or '-')}\n"
                     f"    {printable(opts.b)}: {printable(where_b or '-')}\n")
    return 0


_MISSING = object()
