"""Every ``file.py:N`` citation of sd-scripts in lorac's code names a line that exists at the
default pin (``backends/kohya/pin.toml``): v0.11.0 cut ``library/train_util.py`` from 6,688 lines
to a 218-line re-export shim, so a citation left from an older version points at nothing.

Needs ``LORAC_SD_SCRIPTS`` at the pinned commit.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.trainer.conftest import checkout

pytestmark = pytest.mark.trainer

CITATION = re.compile(r"((?:library/|networks/)?[a-z0-9_]+\.py):(\d+)(?:-(\d+))?")


def _resolve(root: Path, name: str) -> Path | None:
    for candidate in (name, f"library/{name}", f"networks/{name}"):
        if (root / candidate).is_file():
            return root / candidate
    return None


def test_sd_scripts_citations_exist_at_the_pin() -> None:
    root = checkout("LORAC_SD_SCRIPTS", pinned="kohya")
    checked, stale = 0, []
    lengths: dict[Path, int] = {}
    for source in sorted((REPO / "lorac").rglob("*.py")):
        if "ai_toolkit" in source.parts:
            continue
        text = source.read_text(encoding="utf-8")
        for match in CITATION.finditer(text):
            path = _resolve(root, match.group(1))
            if path is None:
                continue
            if path not in lengths:
                lengths[path] = len(path.read_text(encoding="utf-8").splitlines())
            last = int(match.group(3) or match.group(2))
            checked += 1
            if last > lengths[path]:
                line = text.count("\n", 0, match.start()) + 1
                stale.append(f"{source.relative_to(REPO)}:{line}: {match.group(0)}")
    assert checked > 100
    assert not stale, "citations past the end of their file at the pin:\n" + "\n".join(stale)
