"""The generated FLUX.1 counts are current, equal the count, and are used only while current."""

from __future__ import annotations

import pytest

from lorac.trainers.kohya import flux_shapes, flux_shapes_gen, vram


def test_committed_copy_is_current() -> None:
    assert flux_shapes_gen.main(["--check"]) == 0, \
        "run python -m lorac.trainers.kohya.flux_shapes_gen"


def test_generated_counts_are_the_count() -> None:
    assert flux_shapes_gen.count() == flux_shapes.SHAPES
    assert list(flux_shapes.SHAPES) == list(vram.Shapes.__dataclass_fields__)
    assert vram.Shapes(**flux_shapes_gen.load()) == vram.Shapes(**flux_shapes_gen.count())


def test_load_counts_again_when_the_copy_is_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[bool] = []
    real = flux_shapes_gen.count

    def count() -> dict[str, int]:
        counted.append(True)
        return real()

    monkeypatch.setattr(flux_shapes_gen, "count", count)
    assert flux_shapes_gen.load() == flux_shapes.SHAPES
    assert counted == []  # current: the copy, nothing counted
    monkeypatch.setattr(flux_shapes, "SHAPES", {**flux_shapes.SHAPES, "dit_total": 1})
    monkeypatch.setattr(flux_shapes, "SOURCES", "0" * 64)  # as after an edit of synth.py
    assert flux_shapes_gen.load() == real()
    assert counted == [True]
