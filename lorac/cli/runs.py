"""``lorac run``, ``lorac runs`` and ``lorac synth``: click parsing only."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lorac.core.console import Io


@click.command()
@click.argument("profile")
@click.option("-b", "--backend", help="kohya or ai-toolkit (default: [profile] backend or kohya)")
@click.option("--format", "fmt", help="Backend format (kohya: toml or cli).")
@click.option("--dry-run", is_flag=True, help="Print the command and the files, launch nothing.")
@click.option("--force", is_flag=True, help="Run despite lint errors (recorded in the manifest).")
@click.option("--max-steps", type=click.IntRange(min=1), help="Override max_train_steps.")
@click.option("--synthetic", is_flag=True,
              help="Swap the model paths for synthetic checkpoints of the same shapes.")
@click.option("--synth-dir", type=click.Path(), help="Where the synthetic set is (or goes).")
@click.option("--runs-dir", type=click.Path(), help="Parent of the run folders (runs/).")
@click.option("--display", type=click.Choice(["auto", "rich", "plain", "none"]), default="auto")
def run(profile: str, backend: str | None, fmt: str | None, dry_run: bool, force: bool,
        max_steps: int | None, synthetic: bool, synth_dir: str | None, runs_dir: str | None,
        display: str) -> None:
    """Build PROFILE, lint it, and launch the trainer in a fresh run folder."""
    from lorac.run.launch import RunOptions, run_profile

    opts = RunOptions(profile=profile, backend=backend, fmt=fmt, dry_run=dry_run, force=force,
                      max_steps=max_steps, synthetic=synthetic, synth_dir=synth_dir,
                      runs_dir=runs_dir, display=display)
    sys.exit(run_profile(opts, Io()))


@click.group(invoke_without_command=True)
@click.option("--runs-dir", type=click.Path(), help="Parent of the run folders (runs/).")
@click.pass_context
def runs(ctx: click.Context, runs_dir: str | None) -> None:
    """List past runs (or `runs show ID`)."""
    ctx.obj = runs_dir
    if ctx.invoked_subcommand is None:
        from lorac.run.launch import list_runs

        sys.exit(list_runs(runs_dir, Io()))


@runs.command()
@click.argument("run_id")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def show(runs_dir: str | None, run_id: str, fmt: str) -> None:
    """Print one run's manifest."""
    from lorac.run.launch import show_run

    sys.exit(show_run(run_id, runs_dir, fmt, Io()))


@runs.command()
@click.argument("run_id")
@click.pass_obj
def report(runs_dir: str | None, run_id: str) -> None:
    """Write RUN_ID's report.html (a self-contained page) and print its path."""
    from lorac.run.launch import report_run

    sys.exit(report_run(run_id, runs_dir, Io()))


@runs.command()
@click.argument("a")
@click.argument("b")
@click.option("-o", "--output", default=None, help="The page to write (default: "
              "runs/compare-A-B.html).")
@click.pass_obj
def compare(runs_dir: str | None, a: str, b: str, output: str | None) -> None:
    """Put runs A and B on one page and print its path."""
    from lorac.run.launch import compare_runs

    sys.exit(compare_runs(a, b, runs_dir, output, Io()))


@click.command()
@click.argument("family")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--tiny", is_flag=True, help="Same key names, tiny sizes (for CPU tests).")
@click.option("--device", default="auto", help="cuda, cpu or auto.")
@click.option("-b", "--backend", type=click.Choice(["ai-toolkit"]), default=None,
              help="ai-toolkit: a diffusers-format folder (default: the kohya or musubi "
              "layout of FAMILY).")
def synth(family: str, directory: str, tiny: bool, device: str, backend: str | None) -> None:
    """Write synthetic checkpoints of FAMILY's real shapes into DIRECTORY (new, empty, or a
    synthetic set lorac wrote)."""
    from lorac.run.launch import make_synthetic

    made = make_synthetic(family, Path(directory), tiny=tiny, device=device, backend=backend)
    click.echo(f"wrote {made.bytes_written / 1e9:.2f} GB in {made.seconds:.1f} s", err=True)
    for name, value in made.trainer_args().items():
        click.echo(f"{name} = {value}")
