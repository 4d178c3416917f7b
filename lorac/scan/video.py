"""Video datasets as musubi-tuner reads them: clips, captions, frame counts, samples per clip.

:func:`video_subsets_of` resolves the ``[[dataset.datasets]]`` of a profile that name a
``video_directory`` the way musubi's ``BlueprintGenerator`` does (dataset → ``[general]`` →
the dataclass default; src/musubi_tuner/dataset/config_utils.py:247-266);
:func:`scan_videos` opens every clip with PyAV — the library musubi itself decodes with
(src/musubi_tuner/dataset/media_utils.py:154, ``av.open`` + ``container.decode(video=0)``) —
in the same process pool and SQLite cache as the images; :func:`analyse_video_folder` turns
the records into findings (LRC501, LRC525–LRC530) and the number of training samples each
clip yields.

Facts about musubi-tuner (v0.3.4, commit 30c658c4, the pin) this module relies on, paths
under src/musubi_tuner/dataset/:

* clips are ``glob(video_directory/*EXT)`` for the extensions of ``VIDEO_EXTENSIONS``,
  matched case-sensitively, lower and upper case (media_utils.py:34-51, 85-93);
* the caption of ``a.mp4`` is ``a`` + ``caption_extension``, opened without a fallback:
  a missing file raises (datasources.py:550-555); ``caption_extension`` has no default
  (config_utils.py:37);
* defaults: ``target_frames = (1,)``, ``frame_extraction = "head"``, ``frame_stride = 1``,
  ``frame_sample = 1``, ``max_frames = 129``, ``source_fps = None``,
  ``resolution = (960, 544)`` (config_utils.py:34, 67-72);
* ``target_frames`` are deduplicated, sorted and rounded down to 4n+1
  (image_video_dataset.py:644-657); ``uniform`` with ``frame_sample = 1`` becomes ``head``
  (:666-668); ``head`` loads only the first ``max(target_frames)`` frames (:669-671);
* the frame rate each architecture trains at: HunyuanVideo 24, Wan 16, FramePack 30,
  Kandinsky 5 24, HunyuanVideo 1.5 24 (image_video_dataset.py:579-583, 629-640); frames are
  dropped to it only when ``source_fps`` is set (:700-703, media_utils.py:195-215);
* samples per clip for each ``frame_extraction`` (image_video_dataset.py:742-771);
* buckets step by 16 pixels for every video architecture (bucket.py:41-49); with
  ``bucket_no_upscale`` a clip no larger than the bucket area keeps its size, rounded down
  to the step (bucket.py:109-115);
* a ``control_directory`` must hold a control clip (same name, the stem as a folder of
  images, or the stem with another video extension) for every clip, else musubi stops with
  ``ValueError`` (datasources.py:485-523).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lorac.config.profile import parse_resolution
from lorac.core.diagnostics import KeyPath, LoracError
from lorac.scan import dataset
from lorac.scan.dataset import CACHE_DIR, DatasetConfig, Finding, Listing

#: musubi's video extensions (media_utils.py:34-51), matched case-sensitively.
VIDEO_EXTENSIONS = frozenset(
    e for ext in (".mp4", ".webm", ".avi", ".mkv", ".mov", ".flv", ".wmv", ".m4v", ".mpg",
                  ".mpeg") for e in (ext, ext.upper()))
#: The frame rate each video architecture trains at (image_video_dataset.py:579-583, 629-640).
TARGET_FPS = {"hunyuan_video": 24.0, "wan": 16.0, "framepack": 30.0, "kandinsky5": 24.0,
              "hunyuan_video_1_5": 24.0}
RESOLUTION_STEP = 16  # bucket.py:41-49
VAE_FRAME_STRIDE = 4  # image_video_dataset.py:628
EXTRACTIONS = ("head", "chunk", "slide", "uniform", "full")
NEEDS_PYAV = "checking video clips needs PyAV: pip install 'lorac[video]'"
VIDEO_SCAN_VERSION = 1


@dataclass(frozen=True)
class VideoSpec:
    """One musubi video dataset, resolved; ``architecture`` is lorac's key of the family's
    musubi architecture (None: unknown, no frame-rate check)."""

    video_directory: str
    key_path: KeyPath = ()
    caption_extension: str | None = None
    caption_extension_at: KeyPath | None = None
    resolution: tuple[int, int] = (960, 544)
    enable_bucket: bool = False
    bucket_no_upscale: bool = False
    target_frames: tuple[int, ...] = (1,)
    frame_extraction: str = "head"
    frame_stride: int = 1
    frame_sample: int = 1
    max_frames: int = 129
    source_fps: float | None = None
    source_fps_at: KeyPath | None = None
    control_directory: str | None = None
    num_repeats: int = 1
    architecture: str | None = None

    @property
    def target_fps(self) -> float | None:
        return TARGET_FPS.get(self.architecture or "")

    def effective(self) -> tuple[str, tuple[int, ...]]:
        """(frame_extraction, target_frames) as musubi uses them: target frames rounded down
        to 4n+1 and deduplicated; ``uniform`` with one sample is ``head``."""

        frames = sorted({(f - 1) // VAE_FRAME_STRIDE * VAE_FRAME_STRIDE + 1
                         for f in self.target_frames}) or [1]
        extraction = self.frame_extraction
        if extraction == "uniform" and self.frame_sample == 1:
            extraction = "head"
        return extraction, tuple(frames)


def loaded_frames(frames: int, spec: VideoSpec) -> int:
    """How many frames musubi loads from a clip of ``frames`` decoded frames: the frame-rate
    conversion when ``source_fps`` is set (media_utils.py:195-215), and the first
    ``max(target_frames)`` only under ``head`` (image_video_dataset.py:669-671)."""

    extraction, targets = spec.effective()
    end = max(targets) if extraction == "head" else None
    target_fps = spec.target_fps
    if spec.source_fps is None or target_fps is None or spec.source_fps <= 0:
        return frames if end is None else min(frames, end)
    delta = target_fps / spec.source_fps
    fraction, previous, count = 0.0, -1, 0
    for _ in range(frames):  # the same float steps as musubi, so the same drops
        index = int(fraction)
        fraction += delta
        if index == previous:
            continue
        previous = index
        if end is not None and index >= end:
            break
        count += 1
    return count


def samples_per_clip(frame_count: int, spec: VideoSpec) -> int:
    """Training samples a clip of ``frame_count`` loaded frames yields
    (image_video_dataset.py:742-771)."""

    extraction, targets = spec.effective()
    n = 0
    for target in targets:
        if extraction == "head":
            n += frame_count >= target
        elif extraction == "chunk":
            n += sum(1 for i in range(0, frame_count, target) if i + target <= frame_count)
        elif extraction == "slide":
            if frame_count >= target:
                n += len(range(0, frame_count - target + 1, max(1, spec.frame_stride)))
        elif extraction == "uniform" and frame_count >= target:
            n += spec.frame_sample
    if extraction == "full":
        n = 1 if frame_count > 0 else 0
    return n


# --------------------------------------------------------------------------- scanning


@dataclass
class VideoRecord:
    """What one scan learnt about one clip."""

    path: str
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    error: str | None = None  # unreadable | empty | decode | no-video | bomb
    detail: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    frames: int = 0  # frames decoded
    declared: int = 0  # frames the container declares, or its duration × fps (0: unknown)
    codec: str = ""
    truncated: str = ""  # why decoding stopped early, when it did

    @property
    def ok(self) -> bool:
        return self.error is None


def have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def probe_video(path: str, max_pixels: int = dataset.PIL_MAX_IMAGE_PIXELS) -> dict[str, Any]:
    """Open and decode every frame of one clip as musubi does; never raises for a bad file.
    The frames are counted and dropped (memory stays at one frame); a frame size above
    ``max_pixels`` is refused before any frame is decoded."""

    rec = VideoRecord(path=path)
    try:
        st = os.stat(path)
        rec.size, rec.mtime_ns, rec.inode = st.st_size, st.st_mtime_ns, st.st_ino
        if not stat.S_ISREG(st.st_mode):
            rec.error, rec.detail = "unreadable", "not a regular file"
            return asdict(rec)
    except OSError as exc:
        rec.error, rec.detail = "unreadable", dataset._os_reason(exc)
        return asdict(rec)
    if not rec.size:
        rec.error, rec.detail = "empty", "zero-byte file"
        return asdict(rec)
    import av

    try:
        container = av.open(path)
    except Exception as exc:  # PyAV raises its own error types for every bad input
        rec.error, rec.detail = "decode", _short(exc)
        return asdict(rec)
    try:
        if not container.streams.video:
            rec.error, rec.detail = "no-video", "the file has no video stream"
            return asdict(rec)
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rec.width, rec.height = int(ctx.width or 0), int(ctx.height or 0)
        rec.codec = ctx.name or ""
        rate = stream.average_rate or stream.guessed_rate
        rec.fps = round(float(rate), 3) if rate else 0.0
        rec.declared = int(stream.frames or 0)
        if not rec.declared and rec.fps:  # Matroska and WebM store a duration, not a count
            seconds = (float(stream.duration * stream.time_base) if stream.duration
                       and stream.time_base else (container.duration or 0) / 1e6)
            rec.declared = round(seconds * rec.fps)
        if rec.width * rec.height > max_pixels:
            rec.error = "bomb"
            rec.detail = f"{rec.width}×{rec.height} = {rec.width * rec.height:,} pixels a frame"
            return asdict(rec)
        try:
            for _ in container.decode(video=0):
                rec.frames += 1
        except Exception as exc:  # musubi's loop would raise here: the clip stops the run
            rec.truncated = _short(exc)
        if rec.frames == 0:
            rec.error = "decode"
            rec.detail = rec.truncated or "no frame decodes"
        elif not rec.truncated and rec.declared and rec.frames < rec.declared - 1:
            rec.truncated = (f"{rec.frames} of the about {rec.declared} frames its header "
                             "declares decode")
    except Exception as exc:
        rec.error, rec.detail = "decode", _short(exc)
    finally:
        container.close()
    return asdict(rec)


def _short(exc: BaseException) -> str:
    text = (getattr(exc, "strerror", None) or str(exc)).strip() or exc.__class__.__name__
    return text if len(text) <= 200 else text[:197] + "…"


def _probe_task(args: tuple[str, int]) -> dict[str, Any]:
    return probe_video(*args)


def _cache_tag(config: DatasetConfig) -> str:
    return f"{dataset._cache_tag(config)}:video{VIDEO_SCAN_VERSION}"


def scan_videos(paths: Iterable[Path], config: DatasetConfig | None = None, *,
                cache_dir: Path | None = CACHE_DIR, progress: TextIO | None = None,
                show_progress: bool | None = None) -> dict[str, VideoRecord]:
    """Probe clips → records by path string, through the scan cache and the process pool
    of :func:`lorac.scan.dataset.scan`. Raises :class:`LoracError` when PyAV is missing and
    a clip is not in the cache."""

    from lorac.scan.scancache import ScanCache

    config = config or DatasetConfig()
    names = [str(p) for p in paths]
    cache = ScanCache(cache_dir, _cache_tag(config), {"videos": VideoRecord}) if (
        cache_dir is not None and config.cache) else None
    records: dict[str, VideoRecord] = {}
    try:
        by_folder: dict[str, list[str]] = {}
        for name in names:
            by_folder.setdefault(os.path.dirname(name), []).append(name)
        keys = {f: dataset._real(Path(f or ".")) for f in by_folder}
        todo: list[str] = []
        for folder, members in by_folder.items():
            entries = cache.load("videos", keys[folder]) if cache is not None else {}
            for name, st in zip(members, dataset._stats(members, config), strict=True):
                hit = entries.get(os.path.basename(name))
                if hit is not None and type(st) is tuple and hit[:3] == st[:3]:
                    records[name] = VideoRecord(name, *hit)
                else:  # not cached, changed, or its stat failed (an errno)
                    todo.append(name)
        if todo and not have_pyav():
            raise LoracError(NEEDS_PYAV)
        if todo:
            bar = Progress(len(todo), "decoding clips", progress, show_progress)
            done: list[VideoRecord] = []

            def arrived(raw: dict[str, Any]) -> None:
                rec = records[raw["path"]] = VideoRecord(**raw)
                if rec.error != "unreadable":
                    done.append(rec)

            dataset.run_parallel(_probe_task, [(p, config.max_pixels) for p in todo],
                                 dataset.worker_count(config), bar, arrived)
            if cache is not None:
                columns = cache.columns["videos"]
                grouped: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
                for rec in done:
                    grouped.setdefault(keys[os.path.dirname(rec.path)], []).append(
                        (os.path.basename(rec.path), tuple(getattr(rec, c) for c in columns)))
                for key, rows in grouped.items():
                    cache.store("videos", key, rows)
    finally:
        if cache is not None:
            cache.close()
    return records


Progress = dataset.Progress


# --------------------------------------------------------------------------- listing


def list_videos(folder: Path) -> Listing:
    """``folder`` as musubi globs it: ``images`` holds the clips (no recursion, no
    dot-files), ``others`` the rest."""

    out = Listing(folder)
    try:
        if not folder.exists():
            out.error = "is a broken link" if folder.is_symlink() else "does not exist"
            return out
        if not folder.is_dir():
            out.error = "is not a directory"
            return out
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (OSError, ValueError) as exc:
        out.error = (f"cannot be listed ({dataset._os_reason(exc)})"
                     if isinstance(exc, OSError) else f"cannot be listed ({exc})")
        return out
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                continue
        except OSError:
            pass
        path = folder / entry.name
        if os.path.splitext(entry.name)[1] in VIDEO_EXTENSIONS:
            out.images.append(path)
        else:
            out.others.append(path)
    return out


def _control_for(clip: Path, control_dir: Path) -> Path | None:
    """musubi's control path of ``clip`` (datasources.py:490-512), or None."""

    same = control_dir / clip.name
    if same.exists():
        return same
    stem = control_dir / clip.stem
    if stem.is_dir():
        return stem
    for ext in sorted(VIDEO_EXTENSIONS):
        other = control_dir / (clip.stem + ext)
        if other.exists():
            return other
    return None


# --------------------------------------------------------------------------- findings


@dataclass
class VideoFolderResult:
    """One video dataset: listing, records, samples per clip, findings."""

    spec: VideoSpec
    listing: Listing
    records: dict[str, VideoRecord] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def total_samples(self) -> int:
        return sum(self.samples.values())

    def summary(self) -> str:
        extraction, targets = self.spec.effective()
        return (f"{len(self.listing.images)} clip(s), {self.total_samples} training sample(s) "
                f"per epoch before num_repeats (frame_extraction {extraction!r}, "
                f"target_frames {list(targets)})")

    def to_json(self) -> dict[str, Any]:
        extraction, targets = self.spec.effective()
        return {
            "video_directory": self.spec.video_directory,
            "caption_extension": self.spec.caption_extension,
            "error": self.listing.error,
            "frame_extraction": extraction,
            "target_frames": list(targets),
            "target_fps": self.spec.target_fps,
            "clips": [{**(asdict(self.records[str(p)]) if str(p) in self.records else
                          {"path": str(p)}), "samples": self.samples.get(str(p), 0)}
                      for p in self.listing.images],
            "samples": self.total_samples,
            "samples_with_repeats": self.total_samples * max(1, self.spec.num_repeats),
            "findings": [{"code": f.code, "file": f.file, "message": f.message,
                          "data": f.data} for f in self.findings],
        }


def analyse_video_folder(spec: VideoSpec, config: DatasetConfig, *,
                         memo: dict[Any, Any] | None = None,
                         cache_dir: Path | None = CACHE_DIR, progress: TextIO | None = None,
                         show_progress: bool | None = None) -> VideoFolderResult:
    """The findings of one video dataset (LRC501, LRC525–LRC530) and its samples per clip."""

    memo = {} if memo is None else memo
    folder = Path(spec.video_directory)
    key = ("video-listing", dataset._real(folder))
    listing = memo.get(key)
    if listing is None:
        listing = memo[key] = list_videos(folder)
    result = VideoFolderResult(spec, listing)
    add = result.findings.append
    if listing.error:
        add(Finding("LRC501", f"video_directory {spec.video_directory} {listing.error}", None,
                    hint="musubi-tuner finds no clips there"))
        return result
    scan_key = ("video-scan", key[1])
    records = memo.get(scan_key)
    if records is None:
        records = memo[scan_key] = scan_videos(listing.images, config, cache_dir=cache_dir,
                                               progress=progress, show_progress=show_progress)
    result.records = {str(p): records[str(p)] for p in listing.images if str(p) in records}

    others = {p.name for p in listing.others}
    extraction, targets = spec.effective()
    target_fps = spec.target_fps
    control_dir = Path(spec.control_directory) if spec.control_directory else None
    for clip in listing.images:
        name = str(clip)
        rec = result.records.get(name)
        ext = spec.caption_extension
        caption = clip.stem + ext if ext else None
        if caption is None or caption not in others:
            why = ("caption_extension is not set, so musubi opens '' for every caption"
                   if caption is None else f"{caption} does not exist")
            add(Finding("LRC529", f"{name} has no caption: {why}; musubi stops with "
                        "FileNotFoundError when it caches the text encoder outputs "
                        "(dataset/datasources.py:550-553)", name, anchor="caption_extension",
                        hint="write the caption file" if caption else
                        "set caption_extension (e.g. \".txt\")"))
        if control_dir is not None and _control_for(clip, control_dir) is None:
            add(Finding("LRC530", f"{name} has no control clip in {control_dir} (same name, "
                        "a folder named after its stem, or its stem with a video extension):"
                        " musubi stops with ValueError (dataset/datasources.py:515-523)", name,
                        hint="add the control clip or remove the clip"))
        if rec is None:
            continue
        if not rec.ok:
            add(Finding("LRC525", f"{name} cannot be decoded ({rec.error}: {rec.detail})",
                        name, hint="re-encode or delete the clip",
                        data={"error": rec.error}))
            continue
        if rec.truncated:
            add(Finding("LRC525", f"{name} is truncated: {rec.truncated}; musubi "
                        f"decodes {rec.frames} frame(s)" + (" and then stops with the decoder's "
                        "error" if not rec.truncated.endswith("declares decode") else ""),
                        name, hint="re-encode or re-download the clip",
                        data={"error": "truncated", "frames": rec.frames}))
        loaded = loaded_frames(rec.frames, spec)
        samples = result.samples[name] = samples_per_clip(loaded, spec)
        if extraction != "full" and loaded < min(targets):
            add(Finding("LRC526", f"{name} has {loaded} frame(s) as musubi loads it, fewer "
                        f"than the shortest target_frames {min(targets)}: it yields no "
                        f"training sample under frame_extraction {extraction!r}", name,
                        anchor="target_frames", data={"frames": loaded, "samples": samples}))
        if (spec.source_fps is None and target_fps and rec.fps
                and abs(rec.fps - target_fps) > 0.01 * target_fps):
            add(Finding("LRC527", f"{name} runs at {rec.fps:g} fps and source_fps is not set: "
                        f"musubi keeps every frame, and the model, trained at "
                        f"{target_fps:g} fps, learns motion {rec.fps / target_fps:.2g}× as "
                        "slow as it is (dataset/image_video_dataset.py:579-583, 700-703)",
                        name, anchor="source_fps", hint=f"set source_fps = {rec.fps:g}",
                        data={"fps": rec.fps, "target_fps": target_fps}))
        _judge_size(rec, spec, add)
    return result


def _judge_size(rec: VideoRecord, spec: VideoSpec, add: Any) -> None:
    """LRC528: a clip that keeps its own size (``bucket_no_upscale``, no larger than the bucket
    area) and whose sides are not multiples of the bucket step loses the remainder."""

    step = RESOLUTION_STEP
    w, h = rec.width, rec.height
    if not (w and h) or (w % step == 0 and h % step == 0):
        return
    area = spec.resolution[0] * spec.resolution[1]
    if spec.enable_bucket and spec.bucket_no_upscale and w * h <= area:
        bw, bh = w - w % step, h - h % step
        add(Finding("LRC528", f"{rec.path} is {w}×{h}, not a multiple of the {step}-pixel "
                    f"bucket step: with bucket_no_upscale musubi trains it at {bw}×{bh}, "
                    "cropping the rest (dataset/bucket.py:109-115)", rec.path,
                    anchor="video_directory", hint=f"crop or scale the clip to {bw}×{bh}",
                    data={"bucket": [bw, bh]}))


# --------------------------------------------------------------------------- profiles


def _architecture(family: Any) -> str | None:
    if not isinstance(family, str):
        return None
    from lorac.config.inventory import load_backend_toml

    try:
        table = load_backend_toml("musubi/families.toml").get("families", {})
    except LoracError:
        return None
    entry = table.get(family)
    return entry.get("architecture") if isinstance(entry, dict) else None


def video_subsets_of(profile: Any) -> list[VideoSpec]:
    """The ``[[dataset.datasets]]`` of ``profile`` that name a ``video_directory``, each
    setting resolved dataset → ``[dataset]`` (musubi's ``[general]``) → musubi's default."""

    data = profile.get("dataset")
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), list):
        return []
    general = {k: v for k, v in data.items() if k not in ("subsets", "datasets")}
    arch = _architecture(profile.get("profile", "family"))
    out = []
    for i, ds in enumerate(data["datasets"]):
        if not isinstance(ds, dict) or not isinstance(ds.get("video_directory"), str):
            continue
        base: KeyPath = ("dataset", "datasets", i)

        def look(key: str, default: Any, *kinds: type, ds: dict = ds,
                 base: KeyPath = base) -> tuple[Any, KeyPath | None]:
            for table, at in ((ds, base), (general, ("dataset",))):
                value = table.get(key)
                if value is not None:
                    ok = isinstance(value, kinds) and not (
                        isinstance(value, bool) and bool not in kinds)
                    return (value if ok else default), (*at, key)
            return default, None

        ext, ext_at = look("caption_extension", None, str)
        res = parse_resolution(look("resolution", None, int, str, list)[0]) or (960, 544)
        frames = look("target_frames", [1], list)[0]
        frames = tuple(f for f in frames if isinstance(f, int) and not isinstance(f, bool)
                       and f > 0) or (1,)
        extraction = look("frame_extraction", "head", str)[0]
        fps, fps_at = look("source_fps", None, int, float)
        out.append(VideoSpec(
            video_directory=ds["video_directory"], key_path=(*base, "video_directory"),
            caption_extension=ext, caption_extension_at=ext_at, resolution=res,
            enable_bucket=bool(look("enable_bucket", False, bool)[0]),
            bucket_no_upscale=bool(look("bucket_no_upscale", False, bool)[0]),
            target_frames=frames,
            frame_extraction=extraction if extraction in EXTRACTIONS else "head",
            frame_stride=max(1, look("frame_stride", 1, int)[0]),
            frame_sample=max(1, look("frame_sample", 1, int)[0]),
            max_frames=max(1, look("max_frames", 129, int)[0]),
            source_fps=float(fps) if fps is not None else None, source_fps_at=fps_at,
            control_directory=look("control_directory", None, str)[0],
            num_repeats=max(1, look("num_repeats", 1, int)[0]),
            architecture=arch))
    return out


def add_videos(analysis: dataset.ProfileAnalysis, profile: Any, config: DatasetConfig, *,
               memo: dict[Any, Any] | None = None, cache_dir: Path | None = CACHE_DIR,
               show_progress: bool | None = None) -> dataset.ProfileAnalysis:
    """Add the video datasets of ``profile`` and their findings (each at the profile key it
    belongs to) to ``analysis`` (from :func:`lorac.scan.dataset.analyse_profile`)."""

    for spec in video_subsets_of(profile):
        result = analyse_video_folder(spec, config, memo=memo, cache_dir=cache_dir,
                                      show_progress=show_progress)
        analysis.videos.append(result)
        analysis.findings.extend((f, anchor_key(spec, f.anchor)) for f in result.findings)
    return analysis


def anchor_key(spec: VideoSpec, anchor: str) -> KeyPath:
    """The profile key a finding with ``anchor`` is reported at."""

    if anchor == "caption_extension" and spec.caption_extension_at:
        return spec.caption_extension_at
    if anchor == "source_fps" and spec.source_fps_at:
        return spec.source_fps_at
    return spec.key_path
