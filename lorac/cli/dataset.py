"""``lorac dataset check DIR``: the dataset rules (LRC5xx) on one folder, outside a lint run.

:func:`check` is the plain function (options in, exit code out); :data:`dataset` is the click
group the CLI registers. Without ``--profile`` the folder is judged with sd-scripts' defaults
(no trigger, no resolution) unless options say otherwise, except the caption extension, which
is the one the folder's captions use (sd-scripts' ``.caption`` when no image has a caption),
and image sizes, judged against 512×512, the smallest resolution a supported family trains at;
with ``--profile NAME`` the subset of that profile whose ``image_dir`` is DIR supplies every
setting (or, when none is, the profile's dataset-level settings), and the trigger comes from
``[profile] trigger``. Findings are reported at the file they are about; ``--json`` writes a
report with every score.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click

from lorac.core.diagnostics import (
    RENDERERS,
    Diagnostic,
    LoracError,
    Severity,
    exit_code_for,
    printable,
    sort_diagnostics,
)


@dataclass(frozen=True)
class DatasetCheckOptions:
    folder: str
    profile: str | None = None
    fmt: str = "text"
    caption_extension: str | None = None
    triggers: tuple[str, ...] = ()
    class_tokens: str | None = None
    resolution: str | None = None
    fail_on: str | None = None
    cache: bool = True
    progress: bool | None = None


def _spec_for(opts: DatasetCheckOptions, settings: Any) -> tuple[Any, list[str], Any]:
    """(SubsetSpec, triggers, profile or None) for the folder."""

    from lorac.scan import dataset

    profile = None
    base = None
    triggers = list(opts.triggers)
    if opts.profile:
        from lorac.lint.driver import load_profile

        profile = load_profile(opts.profile, settings)
        specs = dataset.subsets_of(profile)
        target = os.path.realpath(opts.folder)
        for spec in specs:
            if os.path.realpath(spec.image_dir) == target:
                base = spec
                break
        else:
            base = specs[0] if specs else None
        triggers = dataset.triggers_of(profile) + triggers
    ext = opts.caption_extension
    if ext and not ext.startswith("."):
        ext = "." + ext
    if ext is None and profile is None:
        # no profile says which captions the folder has: read it off the files themselves
        found, _count = dataset.detect_caption_extension(dataset.list_folder(Path(opts.folder)))
        ext = found
    resolution = None
    if opts.resolution is not None:
        resolution = dataset.parse_resolution(opts.resolution)
        if resolution is None:
            raise LoracError(f"--resolution {opts.resolution!r}: expected N or W,H")
    spec = dataset.folder_spec(opts.folder, base=base, caption_extension=ext,
                               resolution=resolution, class_tokens=opts.class_tokens)
    return spec, triggers, profile


def check(opts: DatasetCheckOptions, io: Any) -> int:
    """Run the dataset rules on ``opts.folder``; print diagnostics or the JSON report."""

    from lorac.config.settings import load_settings
    from lorac.core.diagnostics import render, summary
    from lorac.lint.plugins import get_plugins
    from lorac.scan import dataset

    overrides = {"fail-on": opts.fail_on} if opts.fail_on else None
    settings = load_settings(Path.cwd(), overrides)
    config = dataset.load_config(settings.raw.get("dataset"), settings.source)
    if not opts.cache:
        config = replace(config, cache=False)
    spec, triggers, profile = _spec_for(opts, settings)
    rules = get_plugins().rules

    result = dataset.analyse_folder(spec, config, triggers=triggers, progress=io.err,
                                    show_progress=opts.progress)
    findings = list(result.findings)
    if not result.listing.error:
        minimum = dataset.min_images_for(profile, config) if profile else config.min_images
        accum = dataset.accumulation_of(profile)[0] if profile else 1
        findings += dataset.count_findings(len(result.listing.images), minimum,
                                           spec.batch_size, accum)
        if spec.resolution is None:
            findings += dataset.tiny_image_findings(result, config)

    diags: list[Diagnostic] = []
    for f in findings:
        if not settings.enabled(f.code):
            continue
        rule = rules.get(f.code)
        default = rule.severity if rule is not None else Severity.WARNING
        message = f.message  # the location already names the file
        if f.file and message.startswith(f.file + " "):
            message = message[len(f.file) + 1:]
        diags.append(Diagnostic(
            code=f.code, message=message, path=f.file or opts.folder,
            severity=settings.severity_of(f.code, default), rule=rule.name if rule else "",
            hint=f.hint, data={"file": f.file, **f.data}))
    diags = sort_diagnostics(diags)

    if opts.fmt == "json":
        report = result.to_json()
        report.update({
            "profile": profile.name if profile else None,
            "triggers": triggers,
            "config": asdict(config),
            "diagnostics": [d.to_json() for d in diags],
        })
        from lorac.core.secrets import known_secrets, redact_data

        report = redact_data(report, known_secrets())  # captions may quote a token
        io.out.write(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        io.out.write(render(diags, opts.fmt, list(rules.values())))
        if opts.fmt == "text":
            n = len(result.listing.images)
            found = (" (the one the folder uses; sd-scripts' default is '.caption')"
                     if profile is None and opts.caption_extension is None
                     and spec.caption_extension != ".caption" else "")
            io.err.write(printable(f"{opts.folder}: {n} image(s), caption extension "
                                   f"{spec.caption_extension!r}{found}") + "\n")
            io.err.write(summary(diags))
    return int(exit_code_for(diags, settings.fail_on))


# --------------------------------------------------------------------------- click


@click.group()
def dataset() -> None:
    """Check training images and captions (the LRC5xx rules)."""


@dataset.command("check")
@click.argument("folder", type=click.Path())
@click.option("-p", "--profile", help="Take the subset settings and trigger from this profile.")
@click.option("--json", "as_json", is_flag=True, help="Write a JSON report with every score.")
@click.option("-f", "--format", "fmt", type=click.Choice(RENDERERS),
              default="text", show_default=True, help="Diagnostics format (--json: report).")
@click.option("--caption-extension", help="Override the caption extension (default: the "
              "profile's, else the one the folder's captions use, else .caption as sd-scripts).")
@click.option("-t", "--trigger", "triggers", multiple=True,
              help="A token every caption must contain (repeatable).")
@click.option("--class-tokens", help="The subset's class_tokens.")
@click.option("--resolution", help="Training resolution, N or W,H (enables the size checks).")
@click.option("--fail-on", type=click.Choice(["info", "warning", "error"]),
              help="Lowest severity that makes the exit code 1 (default: error).")
@click.option("--no-cache", is_flag=True, help="Rescan every image.")
def check_command(folder: str, profile: str | None, as_json: bool, fmt: str,
                  caption_extension: str | None, triggers: tuple[str, ...],
                  class_tokens: str | None, resolution: str | None, fail_on: str | None,
                  no_cache: bool) -> None:
    """Check the images and captions in FOLDER as sd-scripts will read them."""
    import sys

    from lorac.core.console import Io

    opts = DatasetCheckOptions(
        folder=folder, profile=profile, fmt="json" if as_json else fmt,
        caption_extension=caption_extension, triggers=triggers, class_tokens=class_tokens,
        resolution=resolution, fail_on=fail_on, cache=not no_cache)
    sys.exit(check(opts, Io()))
