"""LRC514 / LRC515 are judged once per image size and reported for every image of it."""

from __future__ import annotations

from pathlib import Path

from lorac.scan import dataset


def test_every_image_of_a_judged_size_gets_its_own_finding(tmp_path: Path) -> None:
    from PIL import Image

    for name, size in (("a.png", (200, 200)), ("b.png", (200, 200)), ("c.png", (1024, 100)),
                       ("d.png", (1024, 100)), ("e.png", (1024, 1024))):
        Image.new("RGB", size, (len(name) * 40, 90, 200)).save(tmp_path / name)
    spec = dataset.SubsetSpec(image_dir=str(tmp_path), key_path=(), resolution=(1024, 1024),
                              enable_bucket=True, min_bucket_reso=256, max_bucket_reso=2048)
    result = dataset.analyse_folder(spec, dataset.DatasetConfig(), cache_dir=None)
    by_file: dict[str, list[tuple[str, str]]] = {}
    for f in result.findings:
        if f.code in ("LRC514", "LRC515"):
            assert f.message.startswith(f"{f.file} ")  # each names its own file
            by_file.setdefault(Path(f.file or "").name, []).append(
                (f.code, f.message.split(" ", 1)[1]))
    assert sorted(by_file) == ["a.png", "b.png", "c.png", "d.png"]  # e.png fits its bucket
    assert by_file["a.png"] == by_file["b.png"] and by_file["c.png"] == by_file["d.png"]
    assert [c for c, _ in by_file["a.png"]] == ["LRC514"]
    assert "LRC515" in [c for c, _ in by_file["c.png"]]
    data = [f.data for f in result.findings if f.code == "LRC514"]
    assert data[0] == data[1] and data[0]["bucket"] is not data[1]["bucket"]
