"""Planted credentials never come out of lorac: not on the terminal, in logs, or in manifests.

One project holds a Hugging Face token, an AWS key id and high-entropy values under credential
names, in a profile ([vars], trainer options, [run.env]), an env file, a script, a caption and
the process environment; every command that reads a project runs on it and none may print a
planted value (``explain`` and ``rules`` print static rule docs, so they are not run). Files
that the trainer itself reads (``config.toml``, a ``--format cli`` ``train.sh``) may hold an
option's value, which is why LRC703 makes such an option a lint error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, fake_trainer, lorac, write_files

HF = "hf_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3x"
HF2 = "hf_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7"
AKIA = "AKIA" + "Z7Q2M4X9B3N5K8W1"
HIGH = "q8Vt3Lz9Xw2Rk7Nd4Hs6Jb1Gf5Yc0Pm8Ue3Ta"
R2 = "7f3a9c1e5b2d8f4a6c0e9b3d7f1a5c2e8b4d6f0a"
WANDB = "Zr4Kp8Wq2Xn6Vm0Bt3Yc7Ld1Hs5Gf9Jx"  # only in the process environment
PROC_HF = "hf_" + "Pp9Oo8Ii7Uu6Yy5Tt4Rr3Ee2Ww1Qq0Zz9Xx"  # HF_TOKEN of the process
SECRETS = (HF, HF2, AKIA, HIGH, R2, WANDB, PROC_HF)

BASE = f"""[profile]
family = "flux1-dev"

[vars]
hub = "{HF}"

[model]
pretrained_model_name_or_path = "models/flux1-dev.safetensors"
clip_l = "models/clip_l.safetensors"
t5xxl = "models/t5xxl.safetensors"
ae = "models/ae.safetensors"

[network]
network_module = "networks.lora_flux"
network_dim = 4
network_alpha = 4

[optimizer]
optimizer_type = "AdamW"
learning_rate = 1e-4

[training]
max_train_steps = 3
mixed_precision = "bf16"
cache_text_encoder_outputs = true

[saving]
output_dir = "output"
output_name = "t"
huggingface_token = "${{hub}}"

[logging]
wandb_api_key = "${{env:WANDB_API_KEY}}"
log_tracker_name = "{AKIA}"

[run.env]
HF_TOKEN = "${{env:HF_TOKEN}}"
R2_SECRET_ACCESS_KEY = "{R2}"
api_key = "{HIGH}"

[dataset]
resolution = 512

[[dataset.subsets]]
image_dir = "data"
class_tokens = "ohwx"
num_repeats = 1
"""

OTHER = f"""[profile]
extends = "base"

[network]
network_dim = 8

[saving]
huggingface_token = "{HF2}"
"""

FAKE_ACCELERATE = f"""#!{sys.executable}
import os, sys
print("argv", sys.argv[1:], flush=True)
print("token in env", os.environ.get("HF_TOKEN"), os.environ.get("api_key"), flush=True)
print("Traceback (most recent call last):", flush=True)
print("RuntimeError: could not log in with {AKIA} / {R2}", flush=True)
sys.exit(3)
"""


@pytest.fixture
def planted(project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> Path:
    """The project (cwd), with every kind of planted secret and a stand-in trainer on PATH."""

    write_files(project, {
        "profiles/base.toml": BASE, "profiles/other.toml": OTHER,
        ".env": f"HF_TOKEN={HF}\nR2_SECRET_ACCESS_KEY={R2}\n",
        "scripts/train.sh": (f"export AWS_ACCESS_KEY_ID={AKIA}\nexport api_key={HIGH}\n"
                             "accelerate launch flux_train_network.py --network_dim 4 "
                             f"--huggingface_token {HF} --wandb_api_key {HIGH}\n"),
        "models/flux1-dev.safetensors": "x", "models/clip_l.safetensors": "x",
        "models/t5xxl.safetensors": "x", "models/ae.safetensors": "x",
        "data/a.png": b"\x89PNG\r\n\x1a\n", "data/a.caption": f"ohwx {HF} {AKIA}\n",
        "lorac.toml": 'ignore = ["LRC5"]\n',
    })
    bin_dir, sd = fake_trainer(tmp_path_factory.mktemp("tools"), FAKE_ACCELERATE)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LORAC_SD_SCRIPTS", str(sd))
    monkeypatch.setenv("WANDB_API_KEY", WANDB)
    monkeypatch.setenv("HF_TOKEN", PROC_HF)
    return project


def clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows {secret[:4]}…"


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(errors="replace")
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_lint_every_format(planted: Path, fmt: str) -> None:
    code, out, err = lorac("lint", "--format", fmt, ".")
    assert code == 1
    clean(out + err, f"lint --format {fmt}")
    for expected in ("LRC701", "LRC702", "LRC703"):
        assert expected in out


def test_lint_reports_credentials_in_trainer_options(planted: Path) -> None:
    _, out, _ = lorac("lint", "profiles")
    lines = [line for line in out.splitlines() if "LRC703" in line]
    assert any("huggingface_token" in line and "from [vars] hub" in line for line in lines)
    assert any("wandb_api_key" in line and "${env:WANDB_API_KEY}" in line and "Zr4K…" in line
               for line in lines)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_show_masks_credentials(planted: Path, fmt: str) -> None:
    code, out, err = lorac("show", "base", "--format", fmt)
    assert code == 0, err
    clean(out + err, f"show --format {fmt}")
    assert "*** (hf_a… (37 chars))" in out  # huggingface_token, from [vars]
    assert "*** (Zr4K… (32 chars))" in out  # wandb_api_key, from the environment
    assert "AKIA…[redacted]" in out  # a token under a harmless name
    if fmt == "json":
        data = json.loads(out)["data"]
        assert data["run"]["env"]["R2_SECRET_ACCESS_KEY"] == "*** (7f3a… (40 chars))"
        assert data["network"]["network_dim"] == 4  # nothing else is touched


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_diff_masks_credentials(planted: Path, fmt: str) -> None:
    code, out, err = lorac("diff", "base", "other", "--format", fmt)
    assert code == 0
    clean(out + err, f"diff --format {fmt}")
    assert "saving.huggingface_token" in out and "*** (hf_Q… (37 chars))" in out
    assert "network.network_dim" in out


@pytest.mark.parametrize("fmt", ["toml", "cli"])
def test_build_never_echoes_and_train_sh_reads_env(planted: Path, fmt: str) -> None:
    code, out, err = lorac("build", "base", "--format", fmt)
    assert code == 0, err
    clean(out + err, f"build --format {fmt}")
    assert "LRC703" in err and "keep build" in err
    files = _files(planted / "build" / "base")
    clean(files["lorac-build.json"], "lorac-build.json")
    script = files["train.sh"]
    # [run.env] credentials are required from the environment, never written down
    for value in (R2, HIGH, PROC_HF):
        assert value not in script
    assert ': "${HF_TOKEN:?' in script
    assert ': "${R2_SECRET_ACCESS_KEY:?' in script
    # the option values the trainer reads are in its input (hence LRC703)
    carrier = files["config.toml"] if fmt == "toml" else script
    assert HF in carrier and WANDB in carrier


def test_dry_run_masks_the_command(planted: Path) -> None:
    code, out, err = lorac("run", "base", "--dry-run", "--force", "--format", "cli")
    assert code == 0, err
    clean(out + err, "run --dry-run")
    assert "accelerate launch" in out and "--huggingface_token=hf_a…[redacted]" in out


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LORAC_NO_CACHE": "1"}
    return subprocess.run([sys.executable, "-m", "lorac", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_run_with_stand_in_trainer(planted: Path) -> None:
    result = _run("run", "base", "--force", "--format", "cli", "--display", "plain")
    assert result.returncode == 3, result.stderr
    clean(result.stdout + result.stderr, "run (terminal)")
    assert "token in env hf_P…[redacted]" in result.stderr  # the failure's echoed log lines
    (run_dir,) = (planted / "runs").iterdir()
    log = (run_dir / "train.log").read_text()
    clean(log, "train.log")
    assert "RuntimeError: could not log in with AKIA…[redacted]" in log
    manifest = json.loads((run_dir / "manifest.json").read_text())
    clean(json.dumps(manifest), "manifest.json")
    assert manifest["env"]["HF_TOKEN"] is None and manifest["env"]["api_key"] is None
    assert manifest["env"]["R2_SECRET_ACCESS_KEY"] is None
    data = manifest["profile"]["data"]
    assert data["saving"]["huggingface_token"] == "*** (hf_a… (37 chars))"
    assert data["logging"]["log_tracker_name"] == "AKIA…[redacted]"
    assert any(a.startswith("--wandb_api_key=Zr4K…") for a in manifest["command"])
    for args in (("runs",), ("runs", "show", run_dir.name), ("runs", "show", run_dir.name,
                                                             "-f", "json")):
        code, out, err = lorac(*args)
        assert code == 0, err
        clean(out + err, " ".join(args))


def test_runs_show_masks_an_old_manifest(planted: Path) -> None:
    run_dir = planted / "runs" / "base-20250101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({
        "status": "failed", "command": ["accelerate", f"--huggingface_token={HF}"],
        "profile": {"data": {"saving": {"huggingface_token": HF}}},
        "env": {"WANDB_API_KEY": WANDB}}))
    for fmt in ("text", "json"):
        code, out, err = lorac("runs", "show", "base", "-f", fmt)
        assert code == 0, err
        clean(out + err, f"runs show -f {fmt}")


@pytest.mark.parametrize("fmt", [("--json",), ("-f", "json"), ()])
def test_dataset_check(planted: Path, fmt: tuple[str, ...]) -> None:
    code, out, err = lorac("dataset", "check", "data", *fmt)
    assert code in (0, 1) and "Traceback" not in err
    clean(out + err, "dataset check " + " ".join(fmt))


def test_import_shell_script_with_env_file(planted: Path) -> None:
    code, out, err = lorac("import", "scripts/train.sh", "--env", ".env", "-o",
                           "profiles/imported.toml")
    assert code == 0, err
    clean(out + err, "import (stderr)")
    text = (planted / "profiles" / "imported.toml").read_text()
    clean(text, "the imported profile")
    assert 'huggingface_token = "${env:HF_TOKEN}"' in text
    assert 'wandb_api_key = "${env:WANDB_API_KEY}"' in text
    assert "huggingface_token held a credential (hf_a… (37 chars))" in err


def test_import_kohya_toml_and_gui_json(planted: Path) -> None:
    write_files(planted, {
        "configs/kohya.toml": (f'pretrained_model_name_or_path = "/m/flux.safetensors"\n'
                               f'network_module = "networks.lora_flux"\n'
                               f'huggingface_token = "{HF}"\nnot_an_option = "{AKIA}"\n'
                               f'aws_secret_access_key = "{R2}"\n'),
        "configs/gui.json": json.dumps({
            "pretrained_model_name_or_path": "/m/flux.safetensors", "flux1_checkbox": True,
            "LoRA_type": "Flux1", "huggingface_token": HF, "wandb_api_key": HIGH,
            "huggingface_repo_id": AKIA}),
    })
    for source, kind in (("configs/kohya.toml", "kohya-toml"), ("configs/gui.json",
                                                                 "kohya-gui")):
        target = f"profiles/{kind}.toml"
        code, out, err = lorac("import", source, "--from", kind, "-o", target)
        assert code == 0, err
        clean(out + err, f"import {kind} (stderr)")
        text = (planted / target).read_text()
        clean(text, f"import {kind} (profile, comments included)")
        assert "${env:HF_TOKEN}" in text


def test_messages_that_quote_a_value_mask_it(planted: Path) -> None:
    write_files(planted, {"profiles/typo.toml": BASE.replace(
        "network_dim = 4", 'network_dim = "${env:HF_TOKEN}"').replace(
        'mixed_precision = "bf16"', 'mixed_precision = "${env:WANDB_API_KEY}"')})
    for args in (("lint", "--no-dataset", "profiles/typo.toml"),
                 ("lint", "--format", "json", "profiles/typo.toml"),
                 ("build", "typo"), ("show", "typo"), ("run", "typo", "--dry-run")):
        code, out, err = lorac(*args)
        assert code in (1, 2), (args, err)
        clean(out + err, " ".join(args))
    _, out, _ = lorac("lint", "--no-dataset", "profiles/typo.toml")
    assert "not a string ('hf_P…[redacted]')" in out


def test_scrub_message_is_cheap_for_ordinary_text() -> None:
    from lorac.core.secrets import scrub_message

    text = "network_alpha is greater than network_dim: gradient_checkpointing 64/32"
    assert scrub_message(text) is text
    assert scrub_message(f"value {AKIA}") == "value AKIA…[redacted]"
