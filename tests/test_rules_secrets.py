"""lorac.core.secrets and LRC701/LRC702: detection, redaction, and messages that never leak."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.core.secrets import find_secrets, fingerprint, looks_secret_name, redact
from tests.conftest import lorac, write_files

HF = "hf_" + "Zq8XvB3nK0pLm7Rt2Yw9Cd4Fg6Hj1Ks5Ae0Ub"
R2 = "9c1f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f"


@pytest.mark.parametrize(("name", "secret"), [
    ("HF_TOKEN", True), ("huggingface_token", True), ("wandb_api_key", True),
    ("R2_SECRET_ACCESS_KEY", True), ("AWS_ACCESS_KEY_ID", True), ("apiKey", True),
    ("db_password", True), ("max_token_length", False), ("token_warmup_step", False),
    ("class_tokens", False), ("cache_key", False), ("tokenizer_cache_dir", False),
    ("keep_tokens", False), ("", False),
])
def test_looks_secret_name(name: str, secret: bool) -> None:
    assert looks_secret_name(name) is secret


def test_find_secrets_positions_and_kinds() -> None:
    text = (f"export HF_TOKEN={HF}\n"
            f'R2_SECRET_ACCESS_KEY="{R2}"\n'
            'export HF_TOKEN="${HF_TOKEN:-}"\n'
            "password = 'your_password_here_123'\n"
            "max_token_length = 2250000000000000000000\n"
            "model = '/workspace/models/a1b2c3d4e5f6a7b8c9d0.safetensors'\n")
    assert find_secrets(text) == [(1, 17, "Hugging Face token"),
                                  (2, 23, "secret-like value of R2_SECRET_ACCESS_KEY")]


def test_redact_and_fingerprint_never_show_more_than_four_characters() -> None:
    sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    text = f"a={HF} sha256: {sha}\nR2_SECRET_ACCESS_KEY={R2}"
    out = redact(text)
    assert HF[4:] not in out and R2[4:] not in out
    assert out == f"a=hf_Z…[redacted] sha256: {sha}\nR2_SECRET_ACCESS_KEY=9c1f…[redacted]"
    assert fingerprint(R2) == "9c1f… (64 chars)"
    assert redact("nothing here") == "nothing here"


def test_lint_reports_secrets_without_printing_them(project: Path) -> None:
    write_files(project, {
        "scripts/sync.sh": f'#!/bin/sh\nR2_SECRET_ACCESS_KEY="{R2}"\n# {HF}\n',
        "profiles/p.toml": f'[profile]\nfamily = "flux1-dev"\n[training]\n'
                           f'huggingface_token = "{HF}"\n',
        "config.yaml": f"wandb:\n  api_key: {R2[:40]}\n",
        "docs/README.md": f"token: {HF}\n",  # Markdown is not scanned
    })
    code, out, _ = lorac("lint", ".", "--format", "json")
    assert code == 1
    assert HF not in out and R2 not in out and R2[:40] not in out
    _, text, _ = lorac("lint", ".")
    found = sorted(line.split(" ")[0] + line.split(" ")[1] for line in text.splitlines()
                   if " LRC70" in line)
    assert found == ["config.yaml:2:12:LRC702", "profiles/p.toml:4:22:LRC701",
                     "scripts/sync.sh:2:23:LRC702", "scripts/sync.sh:3:3:LRC701"]
