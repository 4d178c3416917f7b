"""Regenerating ``backends/kohya/network_modules.toml`` from the pinned sd-scripts reproduces it.

Skipped unless ``LORAC_SD_SCRIPTS`` points at a checkout of the commit in
``backends/kohya/pin.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lorac import inventory
from lorac.inventory_gen import checkout_commit
from lorac.network_args_gen import OUT_NAME, generate

pytestmark = pytest.mark.trainer


def test_network_modules_is_fresh(tmp_path: Path) -> None:
    value = os.environ.get("LORAC_SD_SCRIPTS")
    if not value:
        pytest.skip("LORAC_SD_SCRIPTS is not set")
    checkout = Path(value)
    pinned = inventory.load_pin("kohya").commit
    if checkout_commit(checkout) != pinned:
        pytest.fail(f"LORAC_SD_SCRIPTS={checkout} is not at the pinned commit {pinned}")
    written = generate(checkout, tmp_path)
    committed = inventory.backends_dir() / "kohya" / OUT_NAME
    assert written.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8"), (
        f"{committed} is stale: python -m lorac.network_args_gen --from {checkout}")
