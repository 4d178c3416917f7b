"""Video datasets as musubi-tuner reads them (lorac/scan/video.py, LRC525–LRC530).

The clips are written by the tests with PyAV (the dev extra), small and fast: 64×48 pixels,
MPEG-4 Part 2 in .mp4 or .mkv.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorac.core.diagnostics import LoracError
from lorac.scan import dataset, video
from tests import make_clips
from tests.conftest import lorac, write_files


def write_clip(path: Path, frames: int, fps: int = 16, size: tuple[int, int] = (64, 48),
               caption: str | None = "ohwx woman walking") -> Path:
    make_clips.write_clip(path, frames, fps, size)
    if caption is not None:
        path.with_suffix(".txt").write_text(caption + "\n")
    return path


# --------------------------------------------------------------------------- samples


def _spec(**kw: object) -> video.VideoSpec:
    return video.VideoSpec(video_directory="d", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("frames", "kw", "expected"), [
    # head: one sample per target that fits (image_video_dataset.py:742-745)
    (40, {"target_frames": (1, 25, 45)}, 2),
    (50, {"target_frames": (1, 25, 45)}, 3),
    # targets round down to 4n+1 and merge: 24 → 21, 23 → 21 (:649-657)
    (30, {"target_frames": (23, 24)}, 1),
    # chunk: whole windows from 0 in steps of the target (:746-751)
    (50, {"target_frames": (9,), "frame_extraction": "chunk"}, 5),
    (50, {"target_frames": (9, 25), "frame_extraction": "chunk"}, 5 + 2),
    # slide: every frame_stride while a window fits (:752-757)
    (20, {"target_frames": (9,), "frame_extraction": "slide", "frame_stride": 5}, 3),
    (8, {"target_frames": (9,), "frame_extraction": "slide"}, 0),
    # uniform: frame_sample windows per target that fits (:758-764); one sample is head
    (50, {"target_frames": (9, 45), "frame_extraction": "uniform", "frame_sample": 4}, 8),
    (50, {"target_frames": (9, 45), "frame_extraction": "uniform", "frame_sample": 1}, 2),
    # full: one sample whatever the length (:765-769)
    (300, {"frame_extraction": "full"}, 1),
])
def test_samples_per_clip(frames: int, kw: dict, expected: int) -> None:
    spec = _spec(**kw)
    assert video.samples_per_clip(video.loaded_frames(frames, spec), spec) == expected


def test_head_loads_only_the_longest_target() -> None:
    spec = _spec(target_frames=(1, 25))
    assert video.loaded_frames(100, spec) == 25
    assert video.loaded_frames(100, _spec(target_frames=(25,), frame_extraction="chunk")) == 100


def test_source_fps_drops_frames_like_musubi() -> None:
    # 30 fps to Wan's 16: musubi keeps frame i when int(i · 16/30) is new (media_utils.py:195-215)
    spec = _spec(architecture="wan", source_fps=30.0, frame_extraction="full")
    assert video.loaded_frames(30, spec) == 16
    assert video.loaded_frames(60, spec) == 32
    assert video.loaded_frames(30, _spec(architecture="wan", frame_extraction="full")) == 30
    # head stops at max(target_frames) counted in the converted frames
    head = _spec(architecture="wan", source_fps=30.0, target_frames=(9,))
    assert video.loaded_frames(60, head) == 9


# --------------------------------------------------------------------------- clips


def test_probe_reads_what_musubi_reads(tmp_path: Path) -> None:
    rec = video.probe_video(str(write_clip(tmp_path / "a.mp4", 25, fps=24)))
    assert (rec["error"], rec["frames"], rec["fps"], rec["width"], rec["height"]) == (
        None, 25, 24.0, 64, 48)


def test_bad_clips_are_findings_not_crashes(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    good = write_clip(folder / "good.mkv", 40)
    data = good.read_bytes()
    (folder / "cut.mkv").write_bytes(data[: len(data) // 2])  # frames, then nothing
    (folder / "cut.txt").write_text("ohwx\n")
    mp4 = write_clip(folder / "nomoov.mp4", 20).read_bytes()
    (folder / "nomoov.mp4").write_bytes(mp4[: len(mp4) // 2])  # the index is at the end
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "empty.txt").write_text("ohwx\n")
    (folder / "text.mov").write_text("not a clip\n")
    (folder / "text.txt").write_text("ohwx\n")
    result = video.analyse_video_folder(video.VideoSpec(str(folder), caption_extension=".txt"),
                                        dataset.DatasetConfig(), cache_dir=None)
    by_file = {(f.code, Path(f.file or "").name) for f in result.findings}
    assert by_file == {("LRC525", "cut.mkv"), ("LRC525", "nomoov.mp4"),
                       ("LRC525", "empty.mp4"), ("LRC525", "text.mov")}
    cut = next(f for f in result.findings if f.file and f.file.endswith("cut.mkv"))
    assert "truncated" in cut.message
    assert result.samples[str(good)] == 1


def test_a_frame_larger_than_max_pixels_is_not_decoded(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "big.mp4", 3, size=(128, 96))
    rec = video.probe_video(str(clip), max_pixels=64 * 64)
    assert rec["error"] == "bomb" and rec["frames"] == 0


def test_folder_findings(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    write_clip(folder / "ok.mp4", 30)
    write_clip(folder / "short.mp4", 5)
    write_clip(folder / "fast.mp4", 30, fps=30)
    write_clip(folder / "nocap.mp4", 30, caption=None)
    write_clip(folder / "odd.mp4", 30, size=(72, 40))
    (tmp_path / "control").mkdir()
    write_clip(tmp_path / "control" / "ok.mp4", 30, caption=None)
    spec = video.VideoSpec(str(folder), caption_extension=".txt", target_frames=(9, 17),
                           architecture="wan", enable_bucket=True, bucket_no_upscale=True,
                           resolution=(512, 512), control_directory=str(tmp_path / "control"))
    result = video.analyse_video_folder(spec, dataset.DatasetConfig(), cache_dir=None)
    found = sorted((f.code, Path(f.file or "").name) for f in result.findings)
    controls = [("LRC530", n) for n in ("fast.mp4", "nocap.mp4", "odd.mp4", "short.mp4")]
    assert found == sorted([("LRC526", "short.mp4"), ("LRC527", "fast.mp4"),
                            ("LRC528", "odd.mp4"), ("LRC529", "nocap.mp4"), *controls])
    assert result.samples == {str(folder / n): s for n, s in (
        ("fast.mp4", 2), ("nocap.mp4", 2), ("odd.mp4", 2), ("ok.mp4", 2), ("short.mp4", 0))}
    assert result.total_samples == 8


def test_clips_go_through_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clips = [write_clip(tmp_path / "c" / f"{i}.mp4", 9) for i in range(3)]
    first = video.scan_videos(clips, cache_dir=tmp_path / "cache")

    def boom(*_a: object) -> dict:
        raise AssertionError("decoded an unchanged clip")

    monkeypatch.setattr(video, "probe_video", boom)
    assert video.scan_videos(clips, cache_dir=tmp_path / "cache") == first


def test_without_pyav_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = write_clip(tmp_path / "a.mp4", 3)
    monkeypatch.setattr(video, "have_pyav", lambda: False)
    with pytest.raises(LoracError, match=r"PyAV: pip install 'lorac\[video\]'"):
        video.scan_videos([clip], cache_dir=None)


# --------------------------------------------------------------------------- lint and CLI


PROFILE = """[profile]
family = "wan2.1-t2v-1.3b"
backend = "musubi"

[dataset]
resolution = [512, 512]
caption_extension = ".txt"
batch_size = 1

[[dataset.datasets]]
video_directory = "clips"
target_frames = [1, 17]
frame_extraction = "head"
"""


def test_lint_reports_clip_findings_at_the_dataset(project: Path) -> None:
    write_files(project, {"profiles/v.toml": PROFILE})
    write_clip(project / "clips" / "ok.mp4", 20)
    write_clip(project / "clips" / "fast.mp4", 20, fps=30)
    write_clip(project / "clips" / "nocap.mp4", 20, caption=None)
    code, out, err = lorac("lint", "profiles/v.toml", "--select", "LRC5")
    assert "Traceback" not in err, err
    lines = sorted(line.split(" [")[0] for line in out.splitlines() if ": LRC5" in line)
    assert [ln.split(": ")[1].split()[0] for ln in lines] == ["LRC527", "LRC529"]
    assert all(ln.startswith("profiles/v.toml:") for ln in lines)
    assert code == 1  # LRC529 is an error: musubi stops on the missing caption


def test_dataset_check_on_a_folder_of_clips(project: Path) -> None:
    write_files(project, {"profiles/v.toml": PROFILE})
    write_clip(project / "clips" / "ok.mp4", 20)
    write_clip(project / "clips" / "short.mp4", 10)
    code, out, err = lorac("dataset", "check", "clips", "-p", "profiles/v.toml", "--json")
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["frame_extraction"] == "head" and report["target_frames"] == [1, 17]
    assert {Path(c["path"]).name: c["samples"] for c in report["clips"]} == {
        "ok.mp4": 2, "short.mp4": 1}
    assert report["samples"] == 3 and report["diagnostics"] == [] and code == 0
    _, out, err = lorac("dataset", "check", "clips", "--caption-extension", ".txt",
                           "--target-frames", "25", "--family", "hunyuan-video")
    assert "LRC526" in out and "LRC527" in out  # 16 fps clips for a 24 fps family
    assert "0 training sample(s)" in err


def test_dataset_check_without_pyav(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_clip(project / "clips" / "a.mp4", 3)
    monkeypatch.setattr(video, "have_pyav", lambda: False)
    code, _, err = lorac("dataset", "check", "clips", "--no-cache")
    assert code == 2 and "pip install 'lorac[video]'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_missing_or_wrong_video_directory(tmp_path: Path) -> None:
    (tmp_path / "file.mp4").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    for name, words in (("nowhere", "does not exist"), ("file.mp4", "is not a directory"),
                        ("link", "is a broken link")):
        result = video.analyse_video_folder(video.VideoSpec(str(tmp_path / name)),
                                            dataset.DatasetConfig(), cache_dir=None)
        assert [(f.code, words in f.message) for f in result.findings] == [("LRC501", True)]
