"""``lorac inspect FILE.safetensors``: what a saved LoRA is and what it was trained with.

:func:`inspect` is the plain function (options in, exit code out). It prints the key format and
trainer, network module, rank and alpha (per module where they differ), base model and family,
the blocks and text encoders the LoRA touches, the recorded training settings and the tensors'
health; with ``--profile`` every recorded setting that the profile writes otherwise is an
LRC307 finding at the profile's position. Exit code 0 when the file is healthy and agrees with
the profile, 1 on NaN/inf, a LoRA that never trained or a finding, 2 when the file cannot be
read.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import click

from lorac.core.console import Io
from lorac.core.diagnostics import (
    Diagnostic,
    ExitCode,
    LoracError,
    printable,
    render_text,
    sort_diagnostics,
)


@dataclass(frozen=True)
class InspectOptions:
    path: str
    profile: str | None = None
    fmt: str = "text"
    health: bool = True


@click.command("inspect")
@click.argument("path", metavar="FILE")
@click.option("-p", "--profile", default=None, help="Compare the recorded settings with it.")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--no-health", is_flag=True, help="Read the header only; skip the tensors.")
def inspect_cmd(path: str, profile: str | None, fmt: str, no_health: bool) -> None:
    """Inspect a saved LoRA FILE (.safetensors): format, rank, alpha, settings, health."""
    sys.exit(inspect(InspectOptions(path, profile, fmt, not no_health), Io()))


def profile_findings(inspection: Any, profile_name: str) -> list[Diagnostic]:
    """The LRC307 findings of ``inspection`` against the profile named ``profile_name``."""

    from lorac.config.profile import display_path
    from lorac.lint.driver import resolve_named
    from lorac.lint.rules.docs import LoraFileContradicts, lora_findings

    res, diags = resolve_named(profile_name)
    if res.profile is None:
        raise LoracError(f"profile {profile_name!r} does not resolve: "
                         + "; ".join(d.message for d in diags[:3]))
    return sort_diagnostics(lora_findings(LoraFileContradicts(), res.profile, inspection,
                                          display_path(inspection.path)))


def run_overrides(lora_path: str) -> tuple[str, dict[str, str]] | None:
    """The manifest of the ``lorac run`` that saved ``lora_path`` and the options it overrode
    (``--max-steps``, the run folder's paths), or None when the file is not in a run folder."""

    from pathlib import Path

    for folder in list(Path(lora_path).resolve().parents)[:4]:
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            continue
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            overrides = data["profile"]["overrides"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a manifest of something else: no overrides to account for
        if isinstance(overrides, dict):
            return str(manifest), {str(k): str(v) for k, v in overrides.items()}
        return None
    return None


def _split_overridden(findings: list[Diagnostic], overrides: dict[str, str]
                      ) -> tuple[list[Diagnostic], list[str]]:
    """Findings about an option the run itself overrode are what the run was asked to do, not a
    contradiction: they become notes."""

    kept, notes = [], []
    for d in findings:
        key = d.key_path[-1] if d.key_path else ""
        if isinstance(key, str) and key in overrides:
            notes.append(f"{key} = {overrides[key]}: set by the run, not the profile")
        else:
            kept.append(d)
    return kept, notes


def inspect(opts: InspectOptions, io: Io) -> int:
    from lorac.scan.lora import inspect_file

    found = inspect_file(opts.path, health=opts.health)
    findings = profile_findings(found, opts.profile) if opts.profile else []
    notes: list[str] = []
    run = run_overrides(opts.path) if findings else None
    if run is not None:
        findings, notes = _split_overridden(findings, run[1])
    health = found.health
    unhealthy = health is not None and (bool(health.nonfinite) or health.never_trained)
    if opts.fmt == "json":
        body = found.to_json()
        body["findings"] = [d.to_json() for d in findings]
        if notes:
            body["run_overrides"] = {"manifest": run[0] if run else None, "notes": notes}
        io.out.write(json.dumps(body, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        io.out.write(render(found))
        if notes and run is not None:
            io.out.write(f"  the run overrode ({printable(run[0])}):\n")
            for note in notes:
                io.out.write(f"    {printable(note)}\n")
        if findings:
            io.out.write(render_text(findings))
    return int(ExitCode.FINDINGS if findings or unhealthy else ExitCode.OK)


def _count(table: dict[Any, int], unit: str = "") -> str:
    return ", ".join(f"{_value(k)}{unit} ({v})" for k, v in table.items()) or "not recorded"


def _value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(found: Any) -> str:
    """The text report of an :class:`~lorac.scan.lora.Inspection`."""

    lines = [f"{printable(found.path)}: {found.size} bytes"]
    add = lines.append
    add(f"  format:      {found.key_format} ({', '.join(found.kinds)}), "
        f"trainer {found.trainer}")
    add(f"  module:      {printable(found.network_module or 'not recorded')}")
    add(f"  modules:     {len(found.modules)}")
    rank = _value(found.rank) if found.rank is not None else _count(found.ranks)
    if found.full_matrix:
        rank = (rank + ", " if found.ranks else "") + \
            f"full matrix ({found.full_matrix}: LoKr without a low-rank factor, scale 1)"
    add(f"  rank:        {rank}")
    if found.alphas:
        alpha = _value(found.alpha) if found.alpha is not None else _count(found.alphas)
    else:
        alpha = "not stored (scale 1: alpha = rank)"
    add(f"  alpha:       {alpha}")
    if len(found.ranks) > 1 or len(found.alphas) > 1 or (found.ranks and found.rank is None):
        for m in found.modules:
            add(f"    {printable(m.name)}: rank {m.rank}, alpha "
                f"{_value(m.alpha) if m.alpha is not None else '-'}")
    add(f"  base model:  {printable(found.base_model or 'not recorded')}"
        f" (family {found.family or 'unknown'})")
    add("  carries:     " + ", ".join(f"{k} ({v})" for k, v in found.components.items()))
    add("  blocks:      " + ", ".join(printable(k) for k in found.blocks))
    if found.settings:
        add("  recorded settings:")
        width = max(len(k) for k in found.settings)
        for key, value in found.settings.items():
            shown = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) \
                else str(value)
            if len(shown) > 200:
                shown = shown[:197] + "..."
            add(f"    {printable(key).ljust(width)}  {printable(shown)}")
    else:
        add("  recorded settings: none (no ss_* metadata)")
    if found.unknown_tensors:
        add(f"  other tensors: {len(found.unknown_tensors)} "
            f"(e.g. {printable(found.unknown_tensors[0])})")
    h = found.health
    if h is not None:
        verdict = []
        if h.nonfinite:
            verdict.append(f"NaN or inf in {len(h.nonfinite)} tensors "
                           f"(first {printable(h.nonfinite[0])})")
        if h.never_trained:
            verdict.append(f"every up-weight is zero ({h.up_modules} modules): "
                           "this LoRA never trained")
        elif h.zero_up:
            verdict.append(f"{len(h.zero_up)} of {h.up_modules} modules have all-zero "
                           "up-weights")
        add(f"  health:      {'; '.join(verdict) if verdict else 'ok'} "
            f"({h.tensors_checked} tensors read)")
        if h.block_norms:
            add("  up-weight norm by block:")
            for block, norm in h.block_norms.items():
                add(f"    {printable(block)}  {norm:.4g}")
    return "\n".join(lines) + "\n"
