"""The lint result cache: hits on an unchanged tree, misses on any change it depends on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, write_files


def _lint(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "LORAC_NO_CACHE"}
    full.update(env)
    full["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "lorac", "lint", *args],
                          cwd=cwd, env=full, capture_output=True, text=True, timeout=60)


def _hit(result: subprocess.CompletedProcess) -> bool:
    # a cache hit never imports the lint stage
    return not any(line.rstrip().endswith("| lorac.lint.driver")
                   or line.rstrip().endswith(" lorac.lint.driver")
                   for line in result.stderr.splitlines())


def test_cache_hits_and_invalidates(tmp_path: Path) -> None:
    write_files(tmp_path, {
        "profiles/base.toml": '[vars]\nroot = "${env:LORAC_T_ROOT:-/m}"\n',
        "profiles/p.toml": '[profile]\nextends = "base"\n[network]\nnetwork_dim = 4\n',
    })
    first = _lint(tmp_path, "profiles", "--no-dataset")
    assert first.returncode == 0 and not _hit(first)
    again = _lint(tmp_path, "profiles", "--no-dataset")
    assert again.returncode == 0 and _hit(again)
    assert (tmp_path / ".lorac_cache" / ".gitignore").read_text() == "*\n"

    # a change in a parent profile
    (tmp_path / "profiles" / "base.toml").write_text('[network]\nnetwrok_alpha = 1\n')
    changed = _lint(tmp_path, "profiles", "--no-dataset")
    assert changed.returncode == 1 and not _hit(changed) and "LRC004" in changed.stdout
    cached = _lint(tmp_path, "profiles", "--no-dataset")
    assert cached.returncode == 1 and _hit(cached) and cached.stdout == changed.stdout

    # a touched but identical file still hits (the key is the content)
    os.utime(tmp_path / "profiles" / "base.toml", (1, 1))
    touched = _lint(tmp_path, "profiles", "--no-dataset")
    assert touched.returncode == 1 and _hit(touched) and touched.stdout == changed.stdout

    # a new file in the folder
    (tmp_path / "profiles" / "new.toml").write_text("[profile]\n")
    assert not _hit(_lint(tmp_path, "profiles", "--no-dataset"))

    # an environment variable the profiles read
    (tmp_path / "profiles" / "base.toml").write_text('[vars]\nroot = "${env:LORAC_T_ROOT}"\n')
    unset = _lint(tmp_path, "profiles", "--no-dataset")
    assert unset.returncode == 1 and "LRC202" in unset.stdout
    still = _lint(tmp_path, "profiles", "--no-dataset")
    assert still.returncode == 1 and _hit(still) and still.stdout == unset.stdout
    set_ = _lint(tmp_path, "profiles", "--no-dataset", LORAC_T_ROOT="/x")
    assert set_.returncode == 0 and not _hit(set_)

    # options the cache does not know bypass it
    assert not _hit(_lint(tmp_path, "profiles", "--no-dataset", "--select", "LRC0"))


def test_code_fingerprint_covers_every_module_and_data_file() -> None:
    # a change to any module of the package (in any folder) or to the backend data must miss
    from lorac.lint.cache import _code_files

    covered = {Path(p).resolve() for p, _ in _code_files()}
    package = REPO / "lorac"
    expected = {p.resolve() for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    expected |= {p.resolve() for p in (REPO / "backends").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    assert expected and not expected - covered, sorted(map(str, expected - covered))[:5]
