"""Linting against a checkout whose commit lorac does not ship: its inventory is generated once
into the user cache, and the next lint reads it without generating again.

Needs ``LORAC_SD_SCRIPTS_VERSIONS`` (or ``LORAC_SD_SCRIPTS``) to list a checkout at 48d368fa.
The checkout is presented under an unknown commit (a folder of links to its files with another
``.lorac-commit``), so that nothing shipped answers for it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lorac.config import inventory, kohya_version
from tests.conftest import lorac, write_files
from tests.trainer.conftest import version_checkout

pytestmark = pytest.mark.trainer

OLD = "48d368fa557731ad0488c07304dfeba8c07910eb"
UNKNOWN = "0123456789abcdef0123456789abcdef01234567"

PROFILE = """[profile]
family = "sdxl"

[network]
network_module = "networks.lora"
network_dim = 16
network_alpha = 16

[optimizer]
learning_rate = 1e-4

[training]
mixed_precision = "bf16"
train_inpainting = true
"""


def _relabelled(checkout: Path, target: Path, commit: str) -> Path:
    target.mkdir(parents=True)
    for entry in checkout.iterdir():
        if entry.name not in (".lorac-commit", ".git"):
            (target / entry.name).symlink_to(entry.resolve())
    (target / ".lorac-commit").write_text(commit + "\n", encoding="utf-8")
    return target


def test_an_unshipped_commit_is_generated_once_and_cached(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = version_checkout(OLD)
    sd = _relabelled(old, tmp_path / "sd", UNKNOWN)
    cache = tmp_path / "user-cache"
    monkeypatch.setenv(kohya_version.CACHE_ENV, str(cache))
    monkeypatch.setenv("LORAC_SD_SCRIPTS", str(sd))
    monkeypatch.setenv("LORAC_NO_CACHE", "1")  # time the inventory, not the result cache
    monkeypatch.delenv(inventory.ENV_VAR, raising=False)
    write_files(project, {"profiles/p.toml": PROFILE})
    try:
        start = time.perf_counter()
        code, out, err = lorac("lint", "--no-dataset")
        first = time.perf_counter() - start
        assert code == 1, out + err
        assert ("LRC623 --train_inpainting is not accepted by sd-scripts 01234567; it exists in "
                "v0.11.1, 37a1cbbc") in out
        generated = cache / "sd-scripts" / UNKNOWN
        assert (generated / kohya_version.COMPLETE).is_file()
        data = json.loads((generated / "kohya" / "inventory" / "sdxl_train_network.json")
                          .read_text(encoding="utf-8"))
        assert data["source"]["commit"] == UNKNOWN
        # the generated inventory is the shipped 48d368fa one but for the commit
        shipped = inventory.shipped_kohya_version(OLD)
        assert shipped is not None
        ref = json.loads((shipped.root / "kohya" / "inventory" / "sdxl_train_network.json")
                         .read_text(encoding="utf-8"))
        assert data["options"] == ref["options"]
        stamp = (generated / kohya_version.COMPLETE).stat().st_mtime_ns
        start = time.perf_counter()
        code2, out2, _ = lorac("lint", "--no-dataset")
        second = time.perf_counter() - start
        assert (code2, out2) == (code, out)
        assert (generated / kohya_version.COMPLETE).stat().st_mtime_ns == stamp
        print(f"first lint (generates) {first:.2f}s, second lint (cached) {second:.2f}s")
        assert second < first / 5
    finally:
        inventory.use_version_root(None)
