"""``lorac import FILE``: write a profile from a kohya TOML, kohya_ss GUI JSON, ai-toolkit YAML
or training shell script (see :mod:`lorac.importers`).

:func:`import_file` is the plain function (options in, exit code out); :data:`import_cmd` is its
click command, registered by :mod:`lorac.cli`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import click

from lorac.core.diagnostics import (
    ExitCode,
    LoracError,
    Severity,
    printable,
    render_text,
    sort_diagnostics,
)

#: codes that mean "something in the input was not carried into the profile" (for --strict)
UNMAPPED_CODES = frozenset({"LRC090", "LRC091", "LRC092", "LRC093"})


@dataclass(frozen=True)
class ImportOptions:
    """The options of ``lorac import``."""

    file: str
    output: str | None = None
    env_files: tuple[str, ...] = ()
    dataset_config: str | None = None
    family: str | None = None
    name: str | None = None
    kind: str | None = None
    keep_env: bool = True
    force: bool = False
    strict: bool = False


def _target(opts: ImportOptions, source: Path) -> Path:
    if opts.output:
        return Path(opts.output)
    name = opts.name or re.sub(r"[^A-Za-z0-9_-]+", "-", source.stem).strip("-").lower()
    return Path("profiles") / f"{name or 'imported'}.toml"


def _under_profiles(path: Path) -> bool:
    return path.parent.name == "profiles"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def import_file(opts: ImportOptions, io) -> int:
    """Import ``opts.file`` and write the profile; findings go to ``io.err``."""

    from lorac import importers
    from lorac.config.profile import display_path
    from lorac.core.outputs import write_file

    source_path = Path(opts.file)
    target = _target(opts, source_path)
    inputs = [source_path, *map(Path, opts.env_files)] + (
        [Path(opts.dataset_config)] if opts.dataset_config else [])
    if target.exists() and any(_same_file(target, i) for i in inputs):
        raise LoracError(f"refusing to write the profile over {display_path(target)}, which "
                         "is an input of this import (not even with --force); name another "
                         "file with -o")
    if target.exists() and not opts.force:
        raise LoracError(f"{display_path(target)} exists; pass --force to overwrite it")
    source = importers.read_source(source_path)
    kind = opts.kind or importers.detect(source)
    settings = importers.Settings(
        family=opts.family,
        dataset_config=Path(opts.dataset_config) if opts.dataset_config else None,
        env_files=tuple(Path(e) for e in opts.env_files), keep_env=opts.keep_env)
    draft = importers.read(source, kind, settings)
    if opts.env_files and (kind not in ("shell", "musubi") or
                           source_path.suffix.lower() == ".toml"):
        draft.report("LRC095", "--env is read only for shell scripts; ignored")
    text = importers.render(draft, schema_header=_under_profiles(target))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON "\ud800" and YAML "\ud800" decode to these
        raise LoracError(f"{source.display}: holds a lone surrogate "
                         f"({text[exc.start]!r}), which UTF-8 cannot encode") from None
    write_file(target, text)
    diags = sort_diagnostics(draft.diagnostics)
    if diags:
        io.err.write(render_text(diags))
    unmapped = [d for d in diags if d.code in UNMAPPED_CODES and d.severity >= Severity.WARNING]
    io.err.write(f"wrote {printable(display_path(target))} ({len(draft.options)} options"
                 f"{', dataset' if draft.dataset is not None else ''}; "
                 f"{len(draft.unmapped)} key(s) kept as comments)\n")
    if opts.strict and unmapped:
        return int(ExitCode.FINDINGS)
    return int(ExitCode.OK)


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Profile to write (default: profiles/NAME.toml).")
@click.option("--env", "env_files", multiple=True, type=click.Path(dir_okay=False),
              help="Env file the script sources (shell scripts; repeatable).")
@click.option("--dataset-config", type=click.Path(dir_okay=False),
              help="sd-scripts dataset TOML to import into [dataset].")
@click.option("--family", help="Model family (default: from the input).")
@click.option("--name", help="Profile name, for the default output path.")
@click.option("--from", "kind", type=click.Choice(["kohya-toml", "kohya-gui", "ai-toolkit",
                                                    "shell", "musubi"]),
              help="Input format (default: from the file name).")
@click.option("--keep-env/--no-keep-env", default=True, show_default=True,
              help="Keep environment variables as ${env:NAME:-default} in string options.")
@click.option("--force", is_flag=True, help="Overwrite an existing profile.")
@click.option("--strict", is_flag=True, help="Exit 1 when some input was not imported.")
def import_cmd(file: str, output: str | None, env_files: tuple[str, ...],
               dataset_config: str | None, family: str | None, name: str | None,
               kind: str | None, keep_env: bool, force: bool, strict: bool) -> None:
    """Write a profile from a kohya TOML, kohya_ss GUI JSON, ai-toolkit YAML or shell script."""
    import sys

    from lorac.core.console import Io

    opts = ImportOptions(file=file, output=output, env_files=env_files,
                         dataset_config=dataset_config, family=family, name=name, kind=kind,
                         keep_env=keep_env, force=force, strict=strict)
    sys.exit(import_file(opts, Io()))
