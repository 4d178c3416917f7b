"""Regenerating the inventories from the pinned trainer checkouts reproduces the committed files.

Skipped unless ``LORAC_SD_SCRIPTS`` (and, for ai-toolkit, ``LORAC_AI_TOOLKIT``) point at checkouts
of the commits in ``backends/*/pin.toml``. Every other shipped sd-scripts version
(``[[versions]]`` of ``backends/kohya/pin.toml``) is checked against a checkout at its commit
listed in ``LORAC_SD_SCRIPTS_VERSIONS`` (separated like PATH).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.config import inventory
from lorac.trainers.inventory_gen import generate_ai_toolkit, generate_kohya
from tests.trainer.conftest import checkout, version_checkout

pytestmark = pytest.mark.trainer


def _assert_identical(written: list[Path], out: Path, backend: str) -> None:
    shipped = inventory.backends_dir() / backend
    assert written
    for path in written:
        committed = shipped / path.relative_to(out)
        assert committed.is_file(), f"{committed} is not committed"
        assert path.read_bytes() == committed.read_bytes(), (
            f"{committed} is stale: python -m lorac.trainers.inventory_gen {backend} --from ..."
        )


def test_kohya_inventory_is_fresh(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS", pinned="kohya")
    _assert_identical(generate_kohya(sd, tmp_path), tmp_path, "kohya")


def test_ai_toolkit_inventory_is_fresh(tmp_path: Path) -> None:
    toolkit = checkout("LORAC_AI_TOOLKIT", pinned="ai-toolkit")
    _assert_identical(generate_ai_toolkit(toolkit, tmp_path), tmp_path, "ai-toolkit")


@pytest.mark.parametrize("version", inventory.kohya_versions(), ids=lambda v: v.name)
def test_every_shipped_kohya_version_is_fresh(version: inventory.KohyaVersion,
                                              tmp_path: Path) -> None:
    sd = version_checkout(version.commit)
    written = generate_kohya(sd, tmp_path / "kohya")
    shipped = version.root / "kohya" / "inventory"
    assert {p.name for p in written} == {p.name for p in shipped.glob("*.json")}
    for path in written:
        committed = shipped / path.name
        assert path.read_bytes() == committed.read_bytes(), (
            f"{committed} is stale: python -m lorac.trainers.inventory_gen kohya --from {sd} "
            f"--out {version.root / 'kohya'}")
