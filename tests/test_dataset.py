"""The dataset scanner, the LRC5xx rules and ``lorac dataset check``."""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
import types
from pathlib import Path

import pytest

from lorac.core.diagnostics import LoracError
from lorac.scan import dataset
from tests.conftest import file_modes_bind, lorac, write_files
from tests.make_dataset_fixture import EXPECTED, build, write_profile

#: the sd-scripts checkout that LORAC_SD_SCRIPTS names (None without it: those tests skip)
SD_SCRIPTS = Path(os.environ["LORAC_SD_SCRIPTS"]) if os.environ.get("LORAC_SD_SCRIPTS") else None


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture dataset (data/) and a copy with only its clean images (clean/)."""

    root = tmp_path_factory.mktemp("dataset")
    build(root / "data")
    (root / "clean").mkdir()
    for path in (root / "data").glob("clean_*"):
        shutil.copy2(path, root / "clean" / path.name)
    return root


@pytest.fixture
def fx(fixture_root: Path, project: Path) -> Path:
    for name in ("data", "clean"):
        os.symlink(fixture_root / name, project / name)
    write_profile(project / "profiles" / "p.toml", "data")
    return project


def _found(diags: list[dict]) -> set[tuple[str, str]]:
    return {(d["code"], os.path.basename(d["data"]["file"])) for d in diags}


def test_fixture_lint_reports_exactly_the_planted_problems(fx: Path) -> None:
    code, out, err = lorac("lint", "profiles/p.toml", "--select", "LRC5", "-f", "json")
    assert "Traceback" not in err
    diags = json.loads(out)
    assert _found(diags) == EXPECTED
    assert code == 1
    assert all(d["path"] == os.path.join("profiles", "p.toml") for d in diags)


def test_fixture_dataset_check_reports_the_same(fx: Path) -> None:
    code, out, err = lorac("dataset", "check", "data", "--profile", "profiles/p.toml", "--json")
    assert "Traceback" not in err
    report = json.loads(out)
    assert _found(report["diagnostics"]) == EXPECTED
    assert code == 1
    # every score is in the report
    images = {os.path.basename(i["path"]): i for i in report["images"]}
    assert len(images) == 16
    for name, rec in images.items():
        if name == "truncated.jpg":
            assert rec["error"] == "truncated"
            continue
        assert rec["blur"] > 0 and len(rec["phash"]) == 16
        # no file of the fixture may be a copy of another: none is hashed
        assert rec["sha256"] == "", name
    assert report["blur_median"] > 0
    _, text, _ = lorac("dataset", "check", "data", "--profile", "profiles/p.toml")
    assert "data/blurred.jpg: LRC518" in text and "sharpness" in text


def test_clean_images_yield_nothing(fx: Path) -> None:
    (fx / "lorac.toml").write_text("[dataset]\nmin-images = 8\n")
    write_profile(fx / "profiles" / "p.toml", "clean")
    code, out, err = lorac("lint", "profiles/p.toml", "--select", "LRC5")
    assert (code, out) == (0, ""), out + err
    code, out, _ = lorac("dataset", "check", "clean", "-p", "profiles/p.toml")
    assert (code, out) == (0, ""), out


def test_no_dataset_skips_the_family(fx: Path) -> None:
    _, out, _ = lorac("lint", "profiles/p.toml", "--select", "LRC5", "--no-dataset")
    assert "LRC5" not in out


def test_rescan_reads_the_cache(fx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lorac("dataset", "check", "data", "-p", "profiles/p.toml")
    assert (fx / ".lorac_cache" / "dataset" / "scan.sqlite3").is_file()

    def boom(*_a: object) -> dict:
        raise AssertionError("scanned an unchanged file")

    monkeypatch.setattr(dataset, "scan_file", boom)
    monkeypatch.setattr(dataset, "_POOL_MIN", 10**9)  # keep any scan in this process
    _, out, err = lorac("dataset", "check", "data", "-p", "profiles/p.toml", "--json")
    assert "Traceback" not in err and _found(json.loads(out)["diagnostics"]) == EXPECTED


def test_cache_notices_a_changed_file(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    build(folder, clean=2, only=())
    cache = tmp_path / "cache"
    first = dataset.scan(sorted(folder.glob("*.jpg")), cache_dir=cache)
    target = folder / "clean_01.jpg"
    (folder / "clean_02.jpg").replace(target)  # same name, other content and inode
    again = dataset.scan([target], cache_dir=cache)
    moved, replaced = again[str(target)], first[str(folder / "clean_02.jpg")]
    assert (moved.blur, moved.phash) == (replaced.blur, replaced.phash)
    assert (moved.blur, moved.phash) != (first[str(target)].blur, first[str(target)].phash)


def test_scan_gives_the_records_in_the_order_asked(tmp_path: Path) -> None:
    """Cached and fresh records, from two folders and interleaved, come back in the order of
    the paths given (the analysis then keeps them without sorting them again)."""

    one, two = tmp_path / "one", tmp_path / "two"
    build(one, clean=3, only=())
    build(two, clean=3, only=())
    paths = [p for pair in zip(sorted(one.glob("*.jpg")), sorted(two.glob("*.jpg")),
                               strict=True) for p in pair]
    cache = tmp_path / "cache"
    dataset.scan(paths[::3], cache_dir=cache)  # a third of them cached
    got = dataset.scan(paths[::-1], cache_dir=cache)
    assert list(got) == [str(p) for p in paths[::-1]]
    assert all(rec.ok for rec in got.values())


def test_bad_input_gives_one_diagnostic_each(project: Path) -> None:
    d = project / "d"
    build(d, clean=1, only=("huge",))
    os.symlink("loop.jpg", d / "loop.jpg")
    os.symlink("missing.png", d / "broken.png")
    (d / "text.jpg").write_text("hello, I am not a JPEG\n")
    (d / "zero.png").write_bytes(b"")
    code, out, err = lorac("dataset", "check", "d", "--caption-extension", "txt",
                           "--resolution", "1024")
    assert code == 1 and "Traceback" not in err
    expect = {
        "d/loop.jpg: LRC511": "symbolic link loop",
        "d/broken.png: LRC511": "broken symbolic link",
        "d/text.jpg: LRC511": "not an image",
        "d/zero.png: LRC511": "zero-byte",
        "d/huge.png: LRC513": "50000×50000",
    }
    for prefix, words in expect.items():
        line = next((ln for ln in out.splitlines() if ln.startswith(prefix)), "")
        assert words in line, (prefix, out)
    # the rest of the set was still judged
    assert "clean_01.jpg" not in out
    code, out, err = lorac("dataset", "check", "nowhere")
    assert code == 1 and "nowhere: LRC501" in out and "does not exist" in out
    assert "Traceback" not in err


def test_unreadable_file(project: Path) -> None:
    d = project / "d"
    build(d, clean=1, only=())
    (d / "clean_01.jpg").chmod(0)
    try:
        with file_modes_bind():
            _, out, _ = lorac("dataset", "check", "d", "--caption-extension", ".txt")
    finally:
        (d / "clean_01.jpg").chmod(0o644)
    assert "LRC511" in out and "permission denied" in out


def test_scan_file_never_raises(tmp_path: Path) -> None:
    (tmp_path / "dir.jpg").mkdir()
    rec = dataset.scan_file(str(tmp_path / "dir.jpg"))
    assert rec["error"] == "unreadable"
    rec = dataset.scan_file(str(tmp_path / "absent.jpg"))
    assert rec["error"] == "unreadable"


def test_image_properties(tmp_path: Path) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (64, 48)).save(tmp_path / "rot.jpg", exif=exif)
    Image.new("CMYK", (64, 64)).save(tmp_path / "cmyk.jpg")
    Image.new("I;16", (64, 64)).save(tmp_path / "deep.png")
    Image.new("RGBA", (64, 64)).save(tmp_path / "alpha.png")
    recs = dataset.scan(sorted(tmp_path.iterdir()), cache_dir=None)
    by = {Path(p).name: r for p, r in recs.items()}
    assert by["rot.jpg"].orientation == 6 and by["rot.jpg"].width == 64
    assert by["cmyk.jpg"].mode == "CMYK"
    assert by["deep.png"].bit_depth == 16
    assert by["alpha.png"].has_alpha


def test_blur_score_orders_sharp_above_blurred() -> None:
    from PIL import Image, ImageFilter

    from tests.make_dataset_fixture import make_image

    sharp = make_image(3, (512, 512)).convert("L")
    soft = sharp.filter(ImageFilter.GaussianBlur(3))
    a = dataset._laplacian_variance(sharp)
    b = dataset._laplacian_variance(soft)
    assert a > 10 * b > 0
    # against the definition, pixel by pixel, on a small image
    tiny = Image.frombytes("L", (5, 4), bytes((i * 37) % 256 for i in range(20)))
    px = tiny.load()
    lap = [px[x - 1, y] + px[x + 1, y] + px[x, y - 1] + px[x, y + 1] - 4 * px[x, y]
           for y in range(1, 3) for x in range(1, 4)]
    mean = sum(lap) / len(lap)
    assert dataset._laplacian_variance(tiny) == round(
        sum((v - mean) ** 2 for v in lap) / len(lap), 3)


def test_caption_extension_resolution_follows_sd_scripts(project: Path) -> None:
    from lorac.config.profile import resolve

    write_files(project, {"profiles/p.toml": """[profile]
family = "flux1-dev"

[training]
caption_extension = "txt"

[dataset]
resolution = [1024, 768]
keep_tokens = 2

[[dataset.datasets]]
batch_size = 2
[[dataset.datasets.subsets]]
image_dir = "a"
[[dataset.datasets.subsets]]
image_dir = "b"
caption_extension = ".tags"
""", "profiles/q.toml": """[profile]
family = "flux1-dev"

[[dataset.subsets]]
image_dir = "c"
"""})
    profile = resolve(Path("profiles/p.toml")).profile
    a, b = dataset.subsets_of(profile)
    assert (a.caption_extension, a.caption_extension_at) == (".txt",
                                                              ("training", "caption_extension"))
    assert b.caption_extension == ".tags"
    assert a.resolution == (1024, 768) and a.keep_tokens == 2 and a.batch_size == 2
    (c,) = dataset.subsets_of(resolve(Path("profiles/q.toml")).profile)
    assert (c.caption_extension, c.caption_extension_at) == (".caption", None)


def test_parse_resolution_rejects_sides_that_are_not_positive(project: Path) -> None:
    assert dataset.parse_resolution(1024) == (1024, 1024)
    assert dataset.parse_resolution("1024x768") == (1024, 768)
    assert dataset.parse_resolution([768, 1024]) == (768, 1024)
    for bad in (0, -512, "0", [0, 512], "512,-1", True, 1.5, "big"):
        assert dataset.parse_resolution(bad) is None, bad
    # resolution = 0 once reached the bucket arithmetic and failed LRC501 with ZeroDivisionError
    build(project / "d", clean=1, only=())
    (project / "profiles").mkdir()
    (project / "profiles" / "p.toml").write_text(
        '[profile]\nfamily = "flux1-dev"\n\n[dataset]\nresolution = 0\n'
        'caption_extension = ".txt"\n\n[[dataset.subsets]]\nimage_dir = "d"\n')
    code, out, err = lorac("lint", "profiles/p.toml", "--select", "LRC5")
    assert code in (0, 1) and "ZeroDivisionError" not in out + err, out + err


def test_config_errors_are_usage_errors(project: Path) -> None:
    with pytest.raises(LoracError, match="unknown dataset setting"):
        dataset.load_config({"blur-ratoi": 0.3})
    with pytest.raises(LoracError, match="wrong type"):
        dataset.load_config({"min-images": "many"})
    assert dataset.load_config({"min-images": 3, "blur-ratio": 0.5}).min_images == 3
    (project / "lorac.toml").write_text("[dataset]\nnear-duplicate-distance = -1\n")
    (project / "d").mkdir()
    code, _, err = lorac("dataset", "check", "d")
    assert code == 2 and "must not be negative" in err and "Traceback" not in err


def test_rules_register_dependencies(fx: Path) -> None:
    from lorac.config.profile import resolve
    from lorac.config.settings import Settings
    from lorac.lint.plugins import get_plugins
    from lorac.lint.rules import ProfileContext, ProjectContext
    from lorac.lint.rules.dataset import analysis_for

    profile = resolve(Path("profiles/p.toml")).profile
    project = ProjectContext(root=fx, settings=Settings(), files={}, resolutions={})
    analysis_for(ProfileContext(profile, project))
    assert os.path.join("data", "blurred.jpg") in project.cache["deps"]
    assert os.path.join("data", "orphan.txt") in project.cache["deps"]
    assert "data" in project.cache["dep_dirs"]
    rules = get_plugins(entry_points=False).rules
    assert all(code in rules for code in (f"LRC5{n:02d}" for n in range(1, 25)))


def test_progress_bar_only_when_asked() -> None:
    import io

    buf = io.StringIO()
    bar = dataset.Progress(3, "scanning", buf)  # StringIO is not a terminal
    bar(3)
    assert buf.getvalue() == ""
    bar = dataset.Progress(3, "scanning", buf, enabled=True)
    bar(1)
    bar(3)
    assert "3/3" in buf.getvalue()


def _square(x: int) -> int:
    return x * x


def test_parallel_map_keeps_order() -> None:
    items = list(range(40))
    assert dataset.run_parallel(_square, items, 2) == [x * x for x in items]


# --------------------------------------------------------------------------- bucketing


def _sd_scripts_bucketing() -> types.SimpleNamespace:
    """sd-scripts' make_bucket_resolutions and BucketManager, taken from the checkout."""

    import numpy as np

    assert SD_SCRIPTS is not None

    def extract(path: Path, name: str) -> str:
        source = path.read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if getattr(node, "name", None) == name:
                return ast.get_source_segment(source, node) or ""
        raise LookupError(name)

    ns: dict = {"math": math, "np": np}
    exec(extract(SD_SCRIPTS / "library" / "model_util.py", "make_bucket_resolutions"), ns)
    ns["model_util"] = types.SimpleNamespace(make_bucket_resolutions=ns[
        "make_bucket_resolutions"])
    ns["Tuple"] = tuple
    # v0.11.0 moved BucketManager to library/dataset.py and its crop maths to library/utils.py
    home = SD_SCRIPTS / "library" / "dataset.py"
    if not home.is_file():
        home = SD_SCRIPTS / "library" / "train_util.py"
    else:
        exec("from typing import Tuple\n" + extract(SD_SCRIPTS / "library" / "utils.py",
                                                      "get_crop_ltrb"), ns)
    exec("from typing import Tuple\n" + extract(home, "BucketManager"), ns)
    return types.SimpleNamespace(**ns)


@pytest.mark.trainer
@pytest.mark.skipif(SD_SCRIPTS is None, reason="LORAC_SD_SCRIPTS is not set")
def test_buckets_match_sd_scripts() -> None:
    pytest.importorskip("numpy")
    sd = _sd_scripts_bucketing()
    sizes = [(1024, 1024), (512, 512), (1024, 768), (3000, 800), (600, 2000), (4000, 3000),
             (1000, 1000), (333, 777), (2048, 512)]
    for reso in [(1024, 1024), (768, 768), (1024, 768)]:
        for no_upscale in (False, True):
            spec = dataset.SubsetSpec(image_dir=".", key_path=(), resolution=reso,
                                      enable_bucket=True, bucket_no_upscale=no_upscale)
            manager = sd.BucketManager(no_upscale, reso, 256, 1024, 64)
            if not no_upscale:
                manager.make_buckets()
                assert dataset.bucket_list(spec) == manager.predefined_resos
            for w, h in sizes:
                want_reso, want_resized, _ = manager.select_bucket(w, h)
                got_reso, got_resized = dataset.select_bucket(w, h, spec)
                assert (tuple(got_reso), tuple(got_resized)) == (
                    tuple(want_reso), tuple(want_resized)), (reso, no_upscale, w, h)


def test_phash_is_imagehash_phash() -> None:
    import imagehash  # a run-time dependency of lorac
    from PIL import Image, ImageFilter

    from tests.make_dataset_fixture import make_image

    flips = 0
    for seed in range(8):
        im = make_image(seed, (256, 192) if seed % 2 else (256, 256)).convert("L")
        if seed == 3:
            im = im.filter(ImageFilter.GaussianBlur(4))
        small = im.resize((64, 64), Image.Resampling.BOX)
        ours = int(dataset._phash(im), 16)
        theirs = int(str(imagehash.phash(small)), 16)
        # equal but for a coefficient within PIL's 8-bit rounding of the median
        assert (ours ^ theirs).bit_count() <= 2, seed
        flips += (ours ^ theirs).bit_count()
    assert flips <= 4  # over all eight images: most agree exactly


def test_blur_score_is_the_laplacian_variance_at_every_shape() -> None:
    """The int16/telescoped computation against the plain definition in float64, on random
    images of odd shapes (3 rows, 3 columns, wider than tall, the 256-px box)."""

    import numpy as np

    rng = np.random.default_rng(5)
    for h, w in ((3, 3), (3, 17), (17, 3), (4, 5), (171, 256), (256, 171), (256, 256)):
        a = rng.integers(0, 256, (h, w), dtype=np.uint8)
        if h > 100:  # extreme values too: the Laplacian's range is ±1020
            a[::7] = 255
            a[:, ::5] = 0
        f = a.astype(np.float64)
        lap = f[:-2, 1:-1] + f[2:, 1:-1] + f[1:-1, :-2] + f[1:-1, 2:] - 4 * f[1:-1, 1:-1]
        want = round(float(lap.var()), 3)
        assert dataset._laplacian_variance(a) == pytest.approx(want, abs=1e-3), (h, w)
        assert dataset._laplacian_variance(a) == dataset._laplacian_variance(
            a.copy(order="F")), (h, w)  # not C-contiguous
    assert dataset._laplacian_variance(np.zeros((2, 9), np.uint8)) == 0.0



def test_blur_and_phash_from_several_threads() -> None:
    """The kept work arrays are per thread: threads scoring different images at once get
    the scores of a serial run."""

    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    rng = np.random.default_rng(9)
    images = [rng.integers(0, 256, (64 + 8 * i, 256 - 8 * i), dtype=np.uint8)
              for i in range(12)]
    serial = [(dataset._laplacian_variance(a), dataset._phash(a)) for a in images]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(lambda a: (dataset._laplacian_variance(a),
                                            dataset._phash(a)), images)) == serial

def test_phash_of_other_sizes_is_imagehash_phash() -> None:
    """Sides that are not multiples of 64, and images of at most 64 px, through the folded
    box/Lanczos/DCT matrices."""

    import imagehash
    import numpy as np
    from PIL import Image

    from tests.make_dataset_fixture import make_image

    flips = 0
    for seed, size in enumerate(((200, 150), (256, 100), (64, 64), (48, 40), (100, 48))):
        im = make_image(seed, size).convert("L")
        small = im if max(size) <= 64 else im.resize((64, 64), Image.Resampling.BOX)
        ours = int(dataset._phash(im), 16)
        assert dataset._phash(np.asarray(im)) == dataset._phash(im)
        theirs = int(str(imagehash.phash(small)), 16)
        assert (ours ^ theirs).bit_count() <= 2, size
        flips += (ours ^ theirs).bit_count()
    assert flips <= 4


def _png(path: Path, size: tuple[int, int], shade: int) -> None:
    from PIL import Image

    Image.new("RGB", size, (shade, 255 - shade, (shade * 7) % 256)).save(path)


def test_check_without_profile_reads_the_folders_own_caption_extension(project: Path) -> None:
    # .txt captions: sd-scripts' default .caption would see none and check nothing
    d = project / "d"
    d.mkdir()
    for i, shade in enumerate((10, 120, 240)):
        _png(d / f"img{i}.png", (768, 768), shade)
    (d / "img0.txt").write_text("ohwx person, smiling\n")
    (d / "img1.txt").write_text("a person in a park\n")
    (d / "lost.txt").write_text("ohwx person\n")
    _, out, err = lorac("dataset", "check", "d", "-t", "ohwx", "--no-cache")
    assert "Traceback" not in err
    assert "caption extension '.txt' (the one the folder uses" in err
    assert "d/img2.png: LRC503" in out  # no caption
    assert "d/lost.txt: LRC504" in out  # a caption without an image
    assert "d/img1.txt: LRC508" in out  # a caption without the trigger
    assert "LRC502" not in out
    # an explicit extension still wins, and a folder without captions keeps sd-scripts' default
    _, out, err = lorac("dataset", "check", "d", "--caption-extension", ".caption", "--no-cache")
    assert "LRC502" in out and "caption extension '.caption'" in err


@pytest.mark.parametrize("tie, expect", [((".caption", ".txt"), ".txt"),
                                         ((".caption",), ".caption"), ((), None)])
def test_detect_caption_extension(tmp_path: Path, tie: tuple[str, ...],
                                  expect: str | None) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.npz").write_bytes(b"")  # a latent cache, not a caption
    for ext in tie:
        (tmp_path / f"a{ext}").write_text("x")
    found, count = dataset.detect_caption_extension(dataset.list_folder(tmp_path))
    assert (found, count) == (expect, 1 if expect else 0)


def test_check_without_resolution_flags_tiny_images(project: Path) -> None:
    d = project / "d"
    d.mkdir()
    _png(d / "tiny.png", (64, 64), 30)
    _png(d / "fine.png", (512, 640), 200)
    for name in ("tiny", "fine"):
        (d / f"{name}.txt").write_text("a photo\n")
    _, out, err = lorac("dataset", "check", "d", "--no-cache")
    assert "Traceback" not in err
    tiny = [ln for ln in out.splitlines() if " LRC514 " in ln]
    assert len(tiny) == 1 and tiny[0].startswith("d/tiny.png: LRC514 is 64×64, below 512×512")
    # with a resolution the usual check judges against it instead
    _, out, _ = lorac("dataset", "check", "d", "--resolution", "1024", "--no-cache")
    assert "below 512×512" not in out and "d/tiny.png: LRC514" in out
