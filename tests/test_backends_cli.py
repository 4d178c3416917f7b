from __future__ import annotations

from pathlib import Path

import pytest

from lorac.core.diagnostics import LoracError
from lorac.trainers.checkout import commit_of, find_checkout
from tests.conftest import lorac


def test_install_dry_run_prints_the_pinned_commands(project: Path) -> None:
    from lorac.config.inventory import load_pin

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
    assert not checkout.matches_pin and "generates its inventory once" in checkout.warning()
    (fake / ".lorac-commit").write_text("6721028c79ee85a78b3a06dfd8954dae310a1cce\n")
    assert find_checkout("kohya").warning() is None  # a shipped version: nothing to say
    (fake / ".lorac-commit").write_text("0" * 40 + "\n")
    code, out, _ = lorac("backends", "list")
    assert code == 0 and "kohya" in out and "0000000000" in out


_AI_TOOLKIT_PROFILE = """[profile]
family = "flux1-dev"
[model]
pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"
[network]
network_dim = 16
network_alpha = 16
[[dataset.subsets]]
image_dir = "data/subject"
"""


def _ai_toolkit_train_sh(project: Path, extra: str = "") -> str:
    from lorac.config.profile import resolve
    from lorac.trainers.ai_toolkit.emitter import AiToolkitBackend

    (project / "profiles").mkdir(exist_ok=True)
    (project / "profiles" / "p.toml").write_text(_AI_TOOLKIT_PROFILE + extra)
    profile = resolve(project / "profiles" / "p.toml", env={}).profile
    assert profile is not None
    return AiToolkitBackend().emit(profile, "yaml").files["train.sh"]


def test_ai_toolkit_train_sh_exports_run_env_like_kohya(project: Path) -> None:
    """``lorac run`` passes [run.env] to either trainer; train.sh did so only for kohya."""
    plain = _ai_toolkit_train_sh(project)
    assert plain.endswith('\nexec python "$toolkit"/run.py "$here"/job.yaml\n')
    assert 'toolkit="${LORAC_AI_TOOLKIT:?set LORAC_AI_TOOLKIT to the ai-toolkit checkout}"' in plain
    assert "export" not in plain and "env" not in plain.splitlines()[-1]
    text = _ai_toolkit_train_sh(project, '[run.env]\nHF_HOME = "/cache/hf"\nHF_TOKEN = "x"\n')
    assert text.endswith('\nexec env \\\n  HF_HOME=/cache/hf \\\n  python "$toolkit"/run.py '
                         '"$here"/job.yaml\n')
    assert ': "${HF_TOKEN:?set HF_TOKEN in the environment}"\n' in text
    with pytest.raises(LoracError, match="not a valid environment variable name"):
        _ai_toolkit_train_sh(project, '[run.env]\n"BAD-NAME" = "1"\n')
