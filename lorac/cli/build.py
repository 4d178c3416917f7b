"""``lorac build PROFILE``: compile a profile for a trainer (:mod:`lorac.trainers.build`)."""

from __future__ import annotations

import sys

import click

from lorac.core.console import Io


@click.command()
@click.argument("profile")
@click.option("-b", "--backend", help="kohya, ai-toolkit, … (default: [profile] backend or kohya)")
@click.option("--format", "fmt", help="Backend format, e.g. cli or toml for kohya.")
@click.option("-o", "--output", "out", type=click.Path(),
              help="Output folder (build/PROFILE): new, empty, or one lorac built.")
def build(profile: str, backend: str | None, fmt: str | None, out: str | None) -> None:
    """Compile PROFILE for a trainer."""
    from lorac.trainers import build as stage

    sys.exit(stage.build(stage.BuildOptions(profile=profile, backend=backend, fmt=fmt, out=out),
                         Io()))
