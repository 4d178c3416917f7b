"""Shared fixtures: a tmp project directory as cwd, and the CLI runner."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lorac.profile import Resolution

REPO = Path(__file__).resolve().parent.parent
#: Real-world configuration files from public projects (their sources: ``SOURCES.md`` there).
CORPUS = REPO / "tests" / "fixtures" / "corpus"


@pytest.fixture(autouse=True)
def _no_lint_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # tests call lorac in-process many times; the result cache is tested on its own
    monkeypatch.setenv("LORAC_NO_CACHE", "1")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """An empty project directory that is the current directory during the test."""

    with contextlib.chdir(tmp_path):
        yield tmp_path


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def resolved(root: Path, text: str, name: str = "p", env: Mapping[str, str] | None = None,
             **others: str) -> Resolution:
    """Write ``profiles/<name>.toml`` (and ``profiles/<key>.toml`` for each of ``others``) under
    ``root`` and resolve it with ``env`` (empty when None, never the process environment)."""

    from lorac.profile import resolve

    write_files(root, {f"profiles/{name}.toml": text,
                       **{f"profiles/{k}.toml": v for k, v in others.items()}})
    return resolve(root / "profiles" / f"{name}.toml", env=env or {})


def lorac(*args: str) -> tuple[int, str, str]:
    """Run the lorac CLI in-process; returns (exit code, stdout, stderr)."""

    import io

    from lorac.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def fake_trainer(root: Path, accelerate_source: str) -> tuple[Path, Path]:
    """A stand-in ``accelerate`` executable and a minimal sd-scripts checkout at the pin.

    Returns (folder to put first on PATH, checkout for LORAC_SD_SCRIPTS).
    """

    from lorac.inventory import load_pin

    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "accelerate"
    fake.write_text(accelerate_source)
    fake.chmod(0o755)
    sd = root / "sd-scripts"
    sd.mkdir()
    (sd / "train_network.py").write_text("")
    (sd / ".lorac-commit").write_text(load_pin("kohya").commit)
    return bin_dir, sd
