"""Dataset rules (LRC5xx): the images and captions every profile trains on.

Each rule is profile-scoped: for every resolved profile, the folders its ``[[dataset.subsets]]``
(or ``[[dataset.datasets]]`` → ``subsets``) name in ``image_dir`` — relative to the current
directory, as sd-scripts reads them — are listed and scanned once per lint run
(:func:`lorac.scan.dataset.analyse_profile`; scores are cached under ``.lorac_cache/dataset/``), and
each rule reports the findings of its code at the profile key they belong to (``image_dir``,
``caption_extension``, ``class_tokens``, ``keep_tokens``, ``[profile] trigger``), naming the
file in the message. Thresholds come from ``[tool.lorac.dataset]`` (see
:class:`lorac.scan.dataset.DatasetConfig`). ``lorac lint --no-dataset`` skips the whole family.

The dataset folders' files and the folders themselves are recorded in
``project.cache["deps"]`` / ``project.cache["dep_dirs"]`` so that the lint result cache
notices a changed image.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule


def analysis_for(ctx: ProfileContext) -> Any:
    """The (memoised) :class:`lorac.scan.dataset.ProfileAnalysis` of ``ctx.profile``."""

    from lorac.scan import dataset, video

    cache = ctx.project.cache
    per_profile = cache.setdefault("dataset_analysis", {})
    key = id(ctx.profile)
    if key not in per_profile:
        config = cache.get("dataset_config")
        if config is None:
            config = cache["dataset_config"] = dataset.load_config(
                ctx.settings.raw.get("dataset"), ctx.settings.source)
        memo = cache.setdefault("dataset_memo", {})
        result = video.add_videos(dataset.analyse_profile(ctx.profile, config, memo=memo),
                                  ctx.profile, config, memo=memo)
        files, dirs = dataset.dependencies(result)
        cache.setdefault("deps", set()).update(files)
        cache.setdefault("dep_dirs", set()).update(dirs)
        per_profile[key] = result
    return per_profile[key]


class _DatasetRule(Rule):
    scope = "profile"
    groups = ("dataset",)

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        for finding, key_path in analysis_for(ctx).findings:
            if finding.code == self.code:
                yield self.at(ctx.profile, key_path, finding.message, hint=finding.hint,
                              file=finding.file, **finding.data)


class ImageDirMissing(_DatasetRule):
    """What it does
    Reports an ``image_dir`` that does not exist, is not a folder, or cannot be listed.

    Why is this bad?
    sd-scripts only logs "not directory" and carries on with the other subsets
    (library/dreambooth_dataset.py:117-119): the run trains without that data, or stops much later
    with "no images" after the models have loaded.

    Example
        [[dataset.subsets]]
        image_dir = "data/subjcet"

    Use instead
        [[dataset.subsets]]
        image_dir = "data/subject"

    Fix safety
    No fix: only a person knows where the images are.
    """

    code = "LRC501"
    name = "image-dir-missing"


class CaptionExtensionMismatch(_DatasetRule):
    """What it does
    Reports a subset where no image has a caption with the ``caption_extension`` sd-scripts
    will use, while the images do have caption files with another extension.

    Why is this bad?
    sd-scripts' default caption extension is ``.caption`` (library/config_util.py:86 for the
    dataset config, library/args.py:913 for the command line), not ``.txt``. A folder of
    ``a.png`` + ``a.txt`` without ``caption_extension = ".txt"`` trains every image with only
    the class tokens (or nothing): hours of training on no captions.

    Example
        [dataset]
        resolution = 1024            # data/subject holds a.png + a.txt

    Use instead
        [dataset]
        resolution = 1024
        caption_extension = ".txt"

    Fix safety
    No automatic fix; the hint names the extension found beside the images.
    """

    code = "LRC502"
    name = "caption-extension-mismatch"


class ImageWithoutCaption(_DatasetRule):
    """What it does
    Reports an image that has no caption file (``stem`` + ``caption_extension``).

    Why is this bad?
    sd-scripts trains it with the subset's ``class_tokens`` as its whole caption, or with an
    empty caption when there are none (library/dreambooth_dataset.py:230-241) — usually a file that
    was forgotten, not a choice.

    Example
    ``data/subject/img_07.jpg`` with no ``img_07.txt``.

    Use instead
    Write ``img_07.txt``.

    Fix safety
    No fix.
    """

    code = "LRC503"
    name = "image-without-caption"
    severity = Severity.WARNING


class CaptionWithoutImage(_DatasetRule):
    """What it does
    Reports a caption file that no image in the folder reads.

    Why is this bad?
    sd-scripts reads captions only beside images; an orphan caption is usually the sign of an
    image that was renamed, converted (``a.heic`` → ``b.jpg``) or deleted by mistake.

    Example
    ``data/subject/img_12.txt`` with no ``img_12.jpg``/``.png``/….

    Use instead
    Restore the image or delete the caption.

    Fix safety
    No fix.
    """

    code = "LRC504"
    name = "caption-without-image"
    severity = Severity.WARNING


class ImageStemClash(_DatasetRule):
    """What it does
    Reports two images with the same name and different extensions (``a.png`` + ``a.jpg``).

    Why is this bad?
    Both read the same caption file ``a.txt`` (library/dreambooth_dataset.py:90-97), so they
    cannot be described separately; most often one is a converted copy of the other and the
    subject is trained twice as often.

    Example
    ``img_03.png`` and ``img_03.jpg`` in one folder.

    Use instead
    Keep one, or rename the other and give it its own caption.

    Fix safety
    No fix.
    """

    code = "LRC505"
    name = "image-stem-clash"
    severity = Severity.WARNING


class EmptyCaption(_DatasetRule):
    """What it does
    Reports a caption file that is empty, or whose first line is blank.

    Why is this bad?
    An empty file stops sd-scripts with an assertion while it builds the dataset
    (library/dreambooth_dataset.py:107); a blank first line trains the image with an empty caption,
    because only the first line is read (library/dreambooth_dataset.py:112).

    Example
    ``img_04.txt`` of zero bytes.

    Use instead
    Write the caption on the first line.

    Fix safety
    No fix.
    """

    code = "LRC506"
    name = "empty-caption"


class CaptionNotUtf8(_DatasetRule):
    """What it does
    Reports a caption file that is not UTF-8 (or cannot be read), with the offending byte.

    Why is this bad?
    sd-scripts opens captions as UTF-8 and re-raises the ``UnicodeDecodeError``
    (library/dreambooth_dataset.py:101-106): the run dies while building the dataset.

    Example
    A caption saved as Windows-1252 containing ``café``.

    Use instead
    Re-save it as UTF-8.

    Fix safety
    No fix.
    """

    code = "LRC507"
    name = "caption-not-utf8"


class CaptionMissingTrigger(_DatasetRule):
    """What it does
    Reports a caption that does not contain the profile's trigger (``[profile] trigger``) or
    the subset's ``class_tokens`` (as whole words, case-insensitive; ``caption_prefix`` and
    ``caption_suffix`` count).

    Why is this bad?
    When a caption file exists, sd-scripts does not add the class tokens; an image whose
    caption lacks the trigger teaches the subject without binding it to the trigger, so the
    LoRA responds to it less reliably.

    Example
        [profile]
        trigger = "ohwx woman"       # img_05.txt: "a woman in a red coat"

    Use instead
    ``img_05.txt``: ``ohwx woman, in a red coat``.

    Fix safety
    No fix.
    """

    code = "LRC508"
    name = "caption-missing-trigger"


class TriggerNotKept(_DatasetRule):
    """What it does
    Reports a caption whose trigger is not in the part ``keep_tokens`` (the first N
    ``caption_separator`` tokens) or ``keep_tokens_separator`` holds in place.

    Why is this bad?
    With ``shuffle_caption`` the tokens after the kept ones are shuffled every step
    (library/dataset.py:548-568): a trigger that is not kept moves around and loses its
    role as the anchor of the concept.

    Example
        keep_tokens = 1              # caption: "smiling, ohwx woman, outdoors"

    Use instead
    Caption ``ohwx woman, smiling, outdoors``.

    Fix safety
    No fix.
    """

    code = "LRC509"
    name = "trigger-not-kept"
    severity = Severity.WARNING


class NearDuplicateCaptions(_DatasetRule):
    """What it does
    Reports groups of captions whose word sets overlap by ``caption-similarity`` (Jaccard,
    default 0.9) or more.

    Why is this bad?
    Captions that do not describe what differs between images push those differences (pose,
    clothes, background) into the trigger: the LoRA then reproduces them everywhere.

    Example
    ``a.txt`` and ``b.txt`` both ``ohwx woman, portrait, smiling``.

    Use instead
    Describe each image: ``ohwx woman, portrait, smiling, red scarf, park``.

    Fix safety
    No fix.
    """

    code = "LRC510"
    name = "near-duplicate-captions"
    severity = Severity.WARNING


class ImageUndecodable(_DatasetRule):
    """What it does
    Reports an image file that cannot be read or decoded: zero bytes, not an image (a text
    file named ``.jpg``), a broken or looping symbolic link, no permission, a decoder error.

    Why is this bad?
    sd-scripts reads image sizes while building buckets and decodes pixels while caching
    latents; a bad file stops the run there, after the models have loaded.

    Example
    ``img_09.jpg`` of zero bytes.

    Use instead
    Replace or delete the file.

    Fix safety
    No fix.
    """

    code = "LRC511"
    name = "image-undecodable"


class ImageTruncated(_DatasetRule):
    """What it does
    Reports an image whose data ends early (an interrupted upload or download).

    Why is this bad?
    PIL raises "image file is truncated" when the pixels are loaded: the run stops in latent
    caching, or trains on a half-grey image where truncated loading is allowed.

    Example
    ``img_10.jpg`` cut off at 60 % of its bytes.

    Use instead
    Copy the file again.

    Fix safety
    No fix.
    """

    code = "LRC512"
    name = "image-truncated"


class ImageTooLarge(_DatasetRule):
    """What it does
    Reports an image with more pixels than ``max-pixels`` (default PIL's decompression-bomb
    limit, 89,478,485), judged from the header without decoding it.

    Why is this bad?
    PIL warns above that size and refuses images of twice that with
    ``DecompressionBombError``; even below, decoding a 50,000 × 50,000 image takes gigabytes
    of memory in every data-loader worker — only to downscale it to 1024 px.

    Example
    A 12,000 × 9,000 panorama scan.

    Use instead
    Downscale it to about the training resolution before training.

    Fix safety
    No fix.
    """

    code = "LRC513"
    name = "image-too-large"


class ImageTooSmall(_DatasetRule):
    """What it does
    Reports an image that reaches its bucket at less than ``min-resolution-ratio`` (default
    0.8) of the training resolution: upscaled into a bucket, or (with
    ``bucket_no_upscale``) trained in a smaller bucket, following sd-scripts' bucketing
    (library/dataset.py:251-311).

    Why is this bad?
    Upscaled images teach softness and upscaling artefacts; small buckets train the model at
    a resolution you do not generate at.

    Example
    A 512 × 512 image with ``resolution = 1024``.

    Use instead
    Use a larger original, or drop the image.

    Fix safety
    No fix.
    """

    code = "LRC514"
    name = "image-too-small"
    severity = Severity.WARNING


class AspectRatioNoBucket(_DatasetRule):
    """What it does
    Reports an image whose aspect ratio no bucket fits: more than ``max-crop`` (default 15 %)
    of it is cropped away to fill the nearest bucket (or the one ``resolution`` square without
    ``enable_bucket``).

    Why is this bad?
    sd-scripts centre-crops (or randomly crops) the excess (library/utils.py:206-234):
    a face at the edge of a panorama may not be in the training image at all.

    Example
    A 3000 × 800 banner with buckets up to 2:1.

    Use instead
    Crop the image yourself to the part that matters.

    Fix safety
    No fix.
    """

    code = "LRC515"
    name = "aspect-ratio-no-bucket"
    severity = Severity.WARNING


class ExifRotation(_DatasetRule):
    """What it does
    Reports an image with an EXIF orientation other than "normal".

    Why is this bad?
    Viewers rotate the picture by the tag, so it looks upright to you; sd-scripts loads the
    raw pixels with PIL without applying it (library/utils.py:170-179), so the model
    trains on a sideways or upside-down subject.

    Example
    A phone portrait stored landscape with orientation 6.

    Use instead
    Apply the rotation to the pixels (``PIL.ImageOps.exif_transpose``) and save again.

    Fix safety
    No fix.
    """

    code = "LRC516"
    name = "exif-rotation"
    severity = Severity.WARNING


class UnusualImageMode(_DatasetRule):
    """What it does
    States images that are CMYK, more than 8 bits per channel, or have an alpha channel.

    Why is this bad?
    sd-scripts converts everything to 8-bit RGB (library/utils.py:177): CMYK colours
    shift, 16-bit detail is cut, and transparent areas become whatever colour the hidden pixels
    hold (usually black) unless ``alpha_mask = true``.

    Example
    A PNG cut-out with a transparent background.

    Use instead
    Flatten onto a background and save as 8-bit RGB, or set ``alpha_mask = true``.

    Fix safety
    No fix.
    """

    code = "LRC517"
    name = "unusual-image-mode"
    severity = Severity.INFO


class BlurryImage(_DatasetRule):
    """What it does
    Reports an image whose sharpness — the variance of the Laplacian of a grey 256-px
    downscale — is below ``blur-ratio`` (default 20 %) of the folder's median (with at least
    ``blur-min-images`` images), or below ``blur-min``. The score is in the message.

    Why is this bad?
    A LoRA learns blur as readily as the subject: a few soft images make every generation
    soft.

    Example
    A motion-blurred phone shot among sharp portraits.

    Use instead
    Replace it with a sharp image or drop it.

    Fix safety
    No fix.
    """

    code = "LRC518"
    name = "blurry-image"
    severity = Severity.WARNING


class DuplicateImages(_DatasetRule):
    """What it does
    Reports groups of byte-identical image files (same SHA-256, taken of the files that share
    their size and scan facts with another).

    Why is this bad?
    A duplicated image is trained twice as often: the LoRA overfits to that one pose and
    background.

    Example
    ``img_01.jpg`` and ``img_01 (copy).jpg``.

    Use instead
    Keep one copy.

    Fix safety
    No fix.
    """

    code = "LRC519"
    name = "duplicate-images"
    severity = Severity.WARNING


class NearDuplicateImages(_DatasetRule):
    """What it does
    Reports groups of images whose perceptual hashes (imagehash ``phash``) differ by at most
    ``near-duplicate-distance`` bits (default 6 of 64): resized, recompressed or slightly
    edited copies.

    Why is this bad?
    Like exact duplicates, they over-weight one shot; they are harder to spot by eye in a
    folder of hundreds.

    Example
    ``img_01.jpg`` and ``img_01_edit.jpg`` (brightened, resized).

    Use instead
    Keep the best one.

    Fix safety
    No fix.
    """

    code = "LRC520"
    name = "near-duplicate-images"
    severity = Severity.WARNING


class TooFewImages(_DatasetRule):
    """What it does
    Reports a profile whose training subsets (not ``is_reg``) hold fewer distinct images than
    ``min-images`` (default 15), or the larger ``min-images-by-tag`` minimum of a goal named
    in ``[profile] tags`` (default ``style = 30``).

    Why is this bad?
    Too few images overfit: the LoRA reproduces the training shots instead of the subject.

    Example
    Nine photos for an identity LoRA.

    Use instead
    Add images, or lower ``min-images`` in ``[tool.lorac.dataset]`` if you know better.

    Fix safety
    No fix.
    """

    code = "LRC521"
    name = "too-few-images"
    severity = Severity.WARNING


class FewerImagesThanBatch(_DatasetRule):
    """What it does
    Reports a profile with fewer distinct training images than one optimizer step consumes
    (``batch_size`` × ``gradient_accumulation_steps``).

    Why is this bad?
    Every step then averages over repeats of the same images: the effective batch is smaller
    than configured and the learning rate tuned for it is too high.

    Example
        [training]
        gradient_accumulation_steps = 4    # with batch_size 4 and 10 images

    Use instead
    Lower the batch or the accumulation, or add images.

    Fix safety
    No fix.
    """

    code = "LRC522"
    name = "fewer-images-than-batch"
    severity = Severity.WARNING


class ImageNotRead(_DatasetRule):
    """What it does
    Reports images sd-scripts will not read: extensions outside its case-sensitive list
    (``.png .jpg .jpeg .webp .bmp`` in lower or upper case; library/dataset.py:77 — so
    ``.Jpg``, ``.gif``, ``.tif``, ``.heic`` are skipped) and images in subfolders of
    ``image_dir`` (its glob does not recurse, library/dataset.py:1448-1457).

    Why is this bad?
    They look like part of the dataset and silently are not.

    Example
    ``data/subject/IMG_0042.HEIC``, ``data/subject/extra/01.jpg``.

    Use instead
    Convert or rename them, or make the subfolder a subset of its own.

    Fix safety
    No fix.
    """

    code = "LRC523"
    name = "image-not-read"
    severity = Severity.WARNING


class MultilineCaption(_DatasetRule):
    """What it does
    Reports a caption file with more than one non-empty line when ``enable_wildcard`` is off.

    Why is this bad?
    sd-scripts uses only the first line (library/dreambooth_dataset.py:112); everything after it is
    silently dropped.

    Example
    ``ohwx woman`` on line 1, the description on line 2.

    Use instead
    Put the whole caption on one line.

    Fix safety
    No fix.
    """

    code = "LRC524"
    name = "multiline-caption"
    severity = Severity.WARNING


class VideoUndecodable(_DatasetRule):
    """What it does
    Reports a clip in a musubi-tuner ``video_directory`` that PyAV — the library musubi
    decodes with (src/musubi_tuner/dataset/media_utils.py:154) — cannot open or decode: an
    empty file, no video stream, a frame larger than ``max-pixels``, a decoder error, or a
    clip that stops decoding before its last frame (truncated).

    Why is this bad?
    musubi decodes every clip while it caches latents; a decoder error there stops the
    caching step, and a truncated clip trains on fewer frames than it seems to hold.

    Example
    ``data/clips/take3.mp4`` was copied while it was still being written.

    Use instead
    Re-encode the clip (``ffmpeg -i take3.mp4 -c:v libx264 take3_fixed.mp4``) or delete it.

    Fix safety
    No fix.
    """

    code = "LRC525"
    name = "video-undecodable"


class VideoTooShort(_DatasetRule):
    """What it does
    Reports a clip that has fewer frames, as musubi-tuner loads it (after the frame-rate
    conversion of ``source_fps`` and, under ``frame_extraction = "head"``, the first
    ``max(target_frames)`` frames), than the shortest of its ``target_frames`` (rounded down
    to 4n+1, src/musubi_tuner/dataset/image_video_dataset.py:644-657).

    Why is this bad?
    ``head``, ``chunk``, ``slide`` and ``uniform`` extract a sample only where a whole window
    of ``target_frames`` fits (image_video_dataset.py:742-764): the clip yields no training
    sample at all, silently.

    Example
        [[dataset.datasets]]
        video_directory = "data/clips"     # holds a 30-frame clip
        target_frames = [45]

    Use instead
        target_frames = [25, 45]           # or drop the short clip

    Fix safety
    No fix.
    """

    code = "LRC526"
    name = "video-too-short"
    severity = Severity.WARNING


class VideoFrameRate(_DatasetRule):
    """What it does
    Reports a clip whose frame rate differs from the one the family's architecture trains at
    — HunyuanVideo 24, Wan 16, FramePack 30, Kandinsky 5 24, HunyuanVideo 1.5 24 fps
    (src/musubi_tuner/dataset/image_video_dataset.py:579-583, 629-640) — while ``source_fps``
    is not set.

    Why is this bad?
    musubi drops frames to the training rate only when ``source_fps`` is given
    (image_video_dataset.py:700-703, media_utils.py:195-215); otherwise every frame is kept
    and a 30 fps clip teaches Wan motion at about half its speed.

    Example
        [[dataset.datasets]]
        video_directory = "data/clips"     # 30 fps clips, family wan2.1-t2v-14b

    Use instead
        source_fps = 30.0

    Fix safety
    No fix; the hint names the clip's frame rate.
    """

    code = "LRC527"
    name = "video-frame-rate"
    severity = Severity.WARNING


class VideoSizeOffStep(_DatasetRule):
    """What it does
    Reports a clip that keeps its own size in training (``enable_bucket`` and
    ``bucket_no_upscale``, no larger than the bucket area) but whose width or height is not a
    multiple of musubi-tuner's 16-pixel bucket step (src/musubi_tuner/dataset/bucket.py:41-49,
    109-115).

    Why is this bad?
    musubi rounds the size down to the step and crops the rest of every frame.

    Example
    A 854×480 clip trains at 848×480.

    Use instead
    Crop or scale the clip to multiples of 16 yourself, where you choose what is cut.

    Fix safety
    No fix.
    """

    code = "LRC528"
    name = "video-size-off-step"
    severity = Severity.INFO


class VideoWithoutCaption(_DatasetRule):
    """What it does
    Reports a clip without a caption file (its stem + ``caption_extension``), or every clip
    when ``caption_extension`` is not set.

    Why is this bad?
    musubi-tuner opens the caption of every clip without a fallback
    (src/musubi_tuner/dataset/datasources.py:550-553): a missing file stops the
    text-encoder caching step with ``FileNotFoundError``.

    Example
    ``data/clips/walk.mp4`` without ``data/clips/walk.txt``.

    Use instead
    Write ``walk.txt``.

    Fix safety
    No fix.
    """

    code = "LRC529"
    name = "video-without-caption"


class VideoControlMissing(_DatasetRule):
    """What it does
    Reports a clip that has no control clip in the dataset's ``control_directory``: none with
    the same name, no folder named after its stem, no file of its stem with another video
    extension (src/musubi_tuner/dataset/datasources.py:485-512).

    Why is this bad?
    musubi stops with ``ValueError: Could not find matching control videos/images``
    (datasources.py:515-523) as soon as it builds the dataset.

    Example
    ``data/clips/walk.mp4`` and no ``data/control/walk.mp4``.

    Use instead
    Add the control clip, or move the clip out of the dataset.

    Fix safety
    No fix.
    """

    code = "LRC530"
    name = "video-control-missing"


RULES: tuple[type[_DatasetRule], ...] = (
    ImageDirMissing, CaptionExtensionMismatch, ImageWithoutCaption, CaptionWithoutImage,
    ImageStemClash, EmptyCaption, CaptionNotUtf8, CaptionMissingTrigger, TriggerNotKept,
    NearDuplicateCaptions, ImageUndecodable, ImageTruncated, ImageTooLarge, ImageTooSmall,
    AspectRatioNoBucket, ExifRotation, UnusualImageMode, BlurryImage, DuplicateImages,
    NearDuplicateImages, TooFewImages, FewerImagesThanBatch, ImageNotRead, MultilineCaption,
    VideoUndecodable, VideoTooShort, VideoFrameRate, VideoSizeOffStep, VideoWithoutCaption,
    VideoControlMissing,
)


@hookimpl
def lorac_rules() -> list[Rule]:
    return [cls() for cls in RULES]
