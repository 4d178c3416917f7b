"""The wheel ships the backend knowledge and the schema."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_backends_and_schema(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(REPO)], check=True,
                   capture_output=True)
    wheel = next(tmp_path.glob("lorac-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lorac/_backends/kohya/pin.toml" in names
    assert "lorac/_backends/kohya/inventory/flux_train_network.json" in names
    assert "lorac/_backends/ai-toolkit/pin.toml" in names
    assert "lorac/schema/profile.schema.json" in names
    assert not any(n.startswith("backends/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "lorac = lorac.__main__:main" in text
