"""``lorac backends …``: the pinned trainers, their generated knowledge, installing them."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import click

from lorac.core.diagnostics import LoracError, printable
from lorac.trainers.checkout import ENV

BACKENDS = click.Choice(tuple(ENV))


@click.group()
def backends() -> None:
    """Trainer pins, inventories and checkouts."""


@backends.command("list")
def list_cmd() -> None:
    """Show each backend's pinned trainer commit and the checkout lorac would use."""
    from lorac.config.inventory import load_pin
    from lorac.config.settings import load_settings
    from lorac.trainers.checkout import configured_checkout

    settings = load_settings()
    for name in ENV:
        pin = load_pin(name)
        click.echo(f"{name:<11} {pin.repository} @ {pin.commit[:10]} ({pin.date})")
        try:
            checkout = configured_checkout(settings, name)
        except LoracError as exc:
            click.echo(f"            checkout: none ({printable(exc.message)})")
            continue
        state = "matches the pin" if checkout.matches_pin else checkout.warning()
        click.echo(f"            checkout: {printable(checkout.path)} ({printable(state)})")


@backends.command()
@click.argument("backend", type=BACKENDS)
@click.option("--from", "checkout", required=True, type=click.Path(file_okay=False),
              help="A checkout of the trainer.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Where to write (default: the source tree's backends/NAME).")
def inventory(backend: str, checkout: str, out: str | None) -> None:
    """Regenerate BACKEND's option inventory from a checkout."""
    from lorac.trainers import inventory_gen

    args = [backend, "--from", checkout] + (["--out", out] if out else [])
    sys.exit(inventory_gen.main(args))


@backends.command()
@click.argument("backend", type=BACKENDS)
@click.argument("directory", required=False, type=click.Path())
@click.option("--dry-run", is_flag=True, help="Print the commands instead of running them.")
def install(backend: str, directory: str | None, dry_run: bool) -> None:
    """Clone BACKEND at the pinned commit into DIRECTORY and install its requirements."""
    from lorac.trainers.checkout import install_commands, settings_key

    target = Path(directory or settings_key(backend))
    if target.exists() and any(target.iterdir()):
        raise LoracError(f"{target} exists and is not empty")
    commands = install_commands(backend, target, sys.executable)
    for cmd in commands:
        click.echo("$ " + printable(shlex.join(str(c) for c in cmd)), err=True)
        if dry_run:
            continue
        try:
            result = subprocess.run(cmd, check=False)
        except FileNotFoundError as exc:
            raise LoracError(f"{cmd[0]} is not installed") from exc
        if result.returncode != 0:
            raise LoracError(f"`{' '.join(cmd[:3])} …` failed with exit code "
                             f"{result.returncode}", result.returncode)
    click.echo(f"export {ENV[backend]}={shlex.quote(str(target.resolve()))}")
