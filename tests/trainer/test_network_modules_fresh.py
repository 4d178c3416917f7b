"""Regenerating ``backends/kohya/network_modules.toml`` from the pinned sd-scripts reproduces it.

Skipped unless ``LORAC_SD_SCRIPTS`` points at a checkout of the commit in
``backends/kohya/pin.toml``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.config import inventory
from lorac.trainers.kohya.network_args_gen import OUT_NAME, generate
from tests.trainer.conftest import checkout, version_checkout

pytestmark = pytest.mark.trainer


def test_network_modules_is_fresh(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS", pinned="kohya")
    written = generate(sd, tmp_path)
    committed = inventory.backends_dir() / "kohya" / OUT_NAME
    assert written.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8"), (
        f"{committed} is stale: python -m lorac.trainers.kohya.network_args_gen --from {sd}")


@pytest.mark.parametrize("version", inventory.kohya_versions(), ids=lambda v: v.name)
def test_every_shipped_version_network_modules_is_fresh(version: inventory.KohyaVersion,
                                                         tmp_path: Path) -> None:
    sd = version_checkout(version.commit)
    written = generate(sd, tmp_path)
    committed = version.root / "kohya" / OUT_NAME
    assert written.read_bytes() == committed.read_bytes(), (
        f"{committed} is stale: python -m lorac.trainers.kohya.network_args_gen --from {sd} "
        f"--out {version.root / 'kohya'}")
