"""Shared fixtures: a tmp project directory as cwd, and the CLI runner."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# which tests may skip (GPU, trainer checkout) and the skip count at the end: tests/skip_policy.py
from tests.skip_policy import (  # noqa: F401  (hooks, found by pytest in this module)
    pytest_configure,
    pytest_make_collect_report,
    pytest_runtest_makereport,
    pytest_terminal_summary,
)

if TYPE_CHECKING:
    from lorac.config.profile import Resolution

REPO = Path(__file__).resolve().parent.parent
#: Real-world configuration files from public projects (their sources: ``SOURCES.md`` there).
CORPUS = REPO / "tests" / "fixtures" / "corpus"


@pytest.fixture(autouse=True)
def _no_lint_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # tests call lorac in-process many times; the result cache is tested on its own
    monkeypatch.setenv("LORAC_NO_CACHE", "1")


@pytest.fixture
def json_backend(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the ``test`` backend (tests/json_backend.py) as a built-in plugin."""

    from lorac.lint import plugins

    monkeypatch.setattr(plugins, "BUILTIN", (*plugins.BUILTIN, "tests.json_backend"))
    return "test"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """An empty project directory that is the current directory during the test."""

    with contextlib.chdir(tmp_path):
        yield tmp_path


def has_c_compiler() -> bool:
    """Whether this Python's C compiler is here: where it is, installing lorac builds its
    optional C extension (lorac/scan/_native.c)."""

    import shutil
    import sysconfig

    return shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) is not None


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

    from lorac.config.profile import resolve

    write_files(root, {f"profiles/{name}.toml": text,
                       **{f"profiles/{k}.toml": v for k, v in others.items()}})
    return resolve(root / "profiles" / f"{name}.toml", env=env or {})


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CAP_VERSION_3 = 0x20080522
#: CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: what lets root read a file whatever its mode
_DAC_CAPS = (1 << 1) | (1 << 2)


@contextlib.contextmanager
def file_modes_bind() -> Iterator[None]:
    """File permissions bind this thread (and processes it forks) during the block, for root too.

    Root reads a file of mode 0 through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH; for root the
    block takes both out of the thread's effective capabilities (they stay permitted, so they
    come back on exit), and the kernel then answers EACCES as it does to any other user. A
    system where root cannot drop them fails the test instead of skipping it."""

    if os.geteuid() != 0:
        yield
        return
    if not sys.platform.startswith("linux"):
        raise RuntimeError("running as root on a system without Linux capabilities: the test "
                           "cannot make a file unreadable; run it as another user")
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_CAP_VERSION_3, 0)
    caps = (_CapData * 2)()

    def call(name: str) -> None:
        if getattr(libc, name)(ctypes.byref(header), caps) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{name}: {os.strerror(err)}")

    call("capget")
    saved = caps[0].effective
    caps[0].effective = saved & ~_DAC_CAPS
    call("capset")
    try:
        yield
    finally:
        caps[0].effective = saved
        call("capset")


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

    from lorac.config.inventory import load_pin

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
