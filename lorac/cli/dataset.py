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
    video: bool = False
    family: str | None = None
    target_frames: str | None = None
    frame_extraction: str | None = None
    frame_stride: int | None = None
    frame_sample: int | None = None
    max_frames: int | None = None
    source_fps: float | None = None
    control_directory: str | None = None


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


def _video_spec_for(opts: DatasetCheckOptions, settings: Any) -> tuple[Any, Any] | None:
    """(VideoSpec, profile or None) when ``opts.folder`` is checked as a musubi video
    dataset: ``--video``, a profile dataset whose ``video_directory`` is the folder, or a
    folder that holds clips and no image."""

    from dataclasses import replace as change

    from lorac.scan import dataset, video

    profile = None
    base = None
    target = os.path.realpath(opts.folder)
    if opts.profile:
        from lorac.lint.driver import load_profile

        profile = load_profile(opts.profile, settings)
        specs = video.video_subsets_of(profile)
        base = next((s for s in specs if os.path.realpath(s.video_directory) == target), None)
    if base is None and not opts.video:
        listing = video.list_videos(Path(opts.folder))
        if listing.error or not listing.images or dataset.list_folder(
                Path(opts.folder)).images:
            return None
    spec = base or video.VideoSpec(video_directory=opts.folder, architecture=video._architecture(
        profile.get("profile", "family")) if profile else None)
    changes: dict[str, Any] = {"video_directory": opts.folder}
    if opts.family:
        arch = video._architecture(opts.family)
        if arch is None:
            raise LoracError(f"--family {opts.family!r}: not a musubi-tuner family")
        changes["architecture"] = arch
    if opts.target_frames:
        try:
            frames = tuple(int(x) for x in opts.target_frames.split(","))
        except ValueError:
            frames = ()
        if not frames or min(frames) < 1:
            raise LoracError(f"--target-frames {opts.target_frames!r}: expected N[,N…] ≥ 1")
        changes["target_frames"] = frames
    for key in ("frame_extraction", "frame_stride", "frame_sample", "max_frames",
                "source_fps", "control_directory"):
        if getattr(opts, key) is not None:
            changes[key] = getattr(opts, key)
    if opts.caption_extension:
        ext = opts.caption_extension
        changes["caption_extension"] = ext if ext.startswith(".") else "." + ext
    if opts.resolution is not None:
        res = dataset.parse_resolution(opts.resolution)
        if res is None:
            raise LoracError(f"--resolution {opts.resolution!r}: expected N or W,H")
        changes["resolution"] = res
    return change(spec, **changes), profile


def _check_video(opts: DatasetCheckOptions, io: Any, settings: Any, config: Any,
                 spec: Any, profile: Any) -> int:
    from lorac.core.diagnostics import render, summary
    from lorac.lint.plugins import get_plugins
    from lorac.scan import video

    rules = get_plugins().rules
    result = video.analyse_video_folder(spec, config, progress=io.err,
                                        show_progress=opts.progress)
    diags = _diagnostics(result.findings, rules, settings, opts.folder)
    if opts.fmt == "json":
        report = result.to_json()
        report.update({"profile": profile.name if profile else None, "config": asdict(config),
                       "diagnostics": [d.to_json() for d in diags]})
        io.out.write(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        io.out.write(render(diags, opts.fmt, list(rules.values())))
        if opts.fmt == "text":
            io.err.write(printable(f"{opts.folder}: {result.summary()}") + "\n")
            io.err.write(summary(diags))
    return int(exit_code_for(diags, settings.fail_on))


def _diagnostics(findings: list[Any], rules: dict[str, Any], settings: Any,
                 folder: str) -> list[Diagnostic]:
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
            code=f.code, message=message, path=f.file or folder,
            severity=settings.severity_of(f.code, default), rule=rule.name if rule else "",
            hint=f.hint, data={"file": f.file, **f.data}))
    return sort_diagnostics(diags)


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
    found = _video_spec_for(opts, settings)
    if found is not None:
        return _check_video(opts, io, settings, config, *found)
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

    diags = _diagnostics(findings, rules, settings, opts.folder)

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
@click.option("--video", is_flag=True, help="Check FOLDER as a musubi-tuner video_directory "
              "(the default for a folder of clips and no images).")
@click.option("--family", help="The model family, for its frame rate (video).")
@click.option("--target-frames", help="target_frames, N[,N…] (video; default 1).")
@click.option("--frame-extraction", type=click.Choice(["head", "chunk", "slide", "uniform",
                                                        "full"]), help="Video; default head.")
@click.option("--frame-stride", type=click.IntRange(min=1), help="Video, slide.")
@click.option("--frame-sample", type=click.IntRange(min=1), help="Video, uniform.")
@click.option("--max-frames", type=click.IntRange(min=1), help="Video, full; default 129.")
@click.option("--source-fps", type=click.FloatRange(min=0, min_open=True),
              help="The clips' frame rate, for musubi's frame dropping (video).")
@click.option("--control-directory", help="Control clips (video).")
def check_command(folder: str, profile: str | None, as_json: bool, fmt: str,
                  caption_extension: str | None, triggers: tuple[str, ...],
                  class_tokens: str | None, resolution: str | None, fail_on: str | None,
                  no_cache: bool, video: bool, family: str | None, target_frames: str | None,
                  frame_extraction: str | None, frame_stride: int | None,
                  frame_sample: int | None, max_frames: int | None, source_fps: float | None,
                  control_directory: str | None) -> None:
    """Check the images and captions in FOLDER as sd-scripts will read them, or the clips
    of a musubi-tuner video dataset as musubi-tuner will read them."""
    import sys

    from lorac.core.console import Io

    opts = DatasetCheckOptions(
        folder=folder, profile=profile, fmt="json" if as_json else fmt,
        caption_extension=caption_extension, triggers=triggers, class_tokens=class_tokens,
        resolution=resolution, fail_on=fail_on, cache=not no_cache, video=video,
        family=family, target_frames=target_frames, frame_extraction=frame_extraction,
        frame_stride=frame_stride, frame_sample=frame_sample, max_frames=max_frames,
        source_fps=source_fps, control_directory=control_directory)
    sys.exit(check(opts, Io()))
