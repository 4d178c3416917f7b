"""musubi-tuner's own code on lorac's knowledge and output.

Skipped unless ``LORAC_MUSUBI_TUNER`` points at a musubi-tuner checkout (the commit of
``backends/musubi/pin.toml``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.config import inventory
from lorac.trainers.inventory_gen import generate_musubi
from tests.trainer.conftest import checkout

pytestmark = pytest.mark.trainer


def test_musubi_knowledge_is_fresh(tmp_path: Path) -> None:
    musubi = checkout("LORAC_MUSUBI_TUNER", pinned="musubi")
    written = generate_musubi(musubi, tmp_path)
    shipped = inventory.backends_dir() / "musubi"
    generated = {p.relative_to(tmp_path) for p in written}
    committed = {p.relative_to(shipped) for p in shipped.rglob("*.json")}
    assert generated == committed, "a generated file is not committed, or one is left over"
    for rel in sorted(generated):
        assert (tmp_path / rel).read_bytes() == (shipped / rel).read_bytes(), (
            f"backends/musubi/{rel} is stale: python -m lorac.trainers.inventory_gen musubi "
            "--from ..."
        )
