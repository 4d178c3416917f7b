"""Regenerating the inventories from the pinned trainer checkouts reproduces the committed files.

Skipped unless ``LORAC_SD_SCRIPTS`` (and, for ai-toolkit, ``LORAC_AI_TOOLKIT``) point at checkouts
of the commits in ``backends/*/pin.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lorac import inventory
from lorac.inventory_gen import checkout_commit, generate_ai_toolkit, generate_kohya

pytestmark = pytest.mark.trainer


def _checkout(env: str, backend: str) -> Path:
    value = os.environ.get(env)
    if not value:
        pytest.skip(f"{env} is not set")
    path = Path(value)
    pinned = inventory.load_pin(backend).commit
    if checkout_commit(path) != pinned:
        pytest.fail(f"{env}={path} is not at the pinned commit {pinned}")
    return path


def _assert_identical(written: list[Path], out: Path, backend: str) -> None:
    shipped = inventory.backends_dir() / backend
    assert written
    for path in written:
        committed = shipped / path.relative_to(out)
        assert committed.is_file(), f"{committed} is not committed"
        assert path.read_bytes() == committed.read_bytes(), (
            f"{committed} is stale: python -m lorac.inventory_gen {backend} --from ..."
        )


def test_kohya_inventory_is_fresh(tmp_path: Path) -> None:
    checkout = _checkout("LORAC_SD_SCRIPTS", "kohya")
    _assert_identical(generate_kohya(checkout, tmp_path), tmp_path, "kohya")


def test_ai_toolkit_inventory_is_fresh(tmp_path: Path) -> None:
    checkout = _checkout("LORAC_AI_TOOLKIT", "ai-toolkit")
    _assert_identical(generate_ai_toolkit(checkout, tmp_path), tmp_path, "ai-toolkit")
