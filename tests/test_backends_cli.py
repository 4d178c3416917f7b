from __future__ import annotations

from pathlib import Path

import pytest

from lorac.trainer import commit_of, find_checkout
from tests.conftest import lorac


def test_install_dry_run_prints_the_pinned_commands(project: Path) -> None:
    from lorac.inventory import load_pin

    code, out, err = lorac("backends", "install", "kohya", "sd", "--dry-run")
    assert code == 0
    pin = load_pin("kohya")
    assert f"$ git clone --filter=blob:none --no-checkout {pin.repository} sd" in err
    assert f"checkout --detach {pin.commit}" in err
    assert "pip install -r sd/requirements.txt" in err
    assert out.startswith("export LORAC_SD_SCRIPTS=")


def test_install_refuses_a_non_empty_directory(project: Path) -> None:
    (project / "sd" / "x").mkdir(parents=True)
    code, _, err = lorac("backends", "install", "kohya", "sd")
    assert code == 2 and "sd exists and is not empty" in err
    code, _, err = lorac("backends", "install", "nope")
    assert code == 2 and "Invalid value" in err


def test_find_checkout(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LORAC_SD_SCRIPTS", raising=False)
    with pytest.raises(Exception, match="set LORAC_SD_SCRIPTS"):
        find_checkout("kohya")
    fake = project / "sd"
    fake.mkdir()
    monkeypatch.setenv("LORAC_SD_SCRIPTS", str(fake))
    with pytest.raises(Exception, match="not a kohya checkout"):
        find_checkout("kohya")
    (fake / "train_network.py").write_text("")
    (fake / ".lorac-commit").write_text("0" * 40 + "\n")
    checkout = find_checkout("kohya")
    assert commit_of(fake) == "0" * 40
    assert not checkout.matches_pin and "regenerate it" in checkout.warning()
    code, out, _ = lorac("backends", "list")
    assert code == 0 and "kohya" in out and "0000000000" in out
