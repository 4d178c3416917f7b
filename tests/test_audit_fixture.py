"""The audited repository (tests/fixtures/audit_repo, rebuilt from a real audit of a FLUX.1
training repository) linted end to end.

Every P0/P1 row of the audit's risk register and every row of its documentation-mismatch
table must come out as a distinct finding at the right file and line:

=========================================  ======  =====================================
audit row                                   code    where
=========================================  ======  =====================================
P0 TOML configs exist but unused            LRC801  configs/flux_fast.toml:1, flux_final:1
P0 env.sh vars defined but not wired        LRC206  docker/env.sh:35,47,48,52,57,63,64,89
P0 network_alpha=1 hardcoded                LRC804  train_flux_fast.sh:139, final:144,
                                                    train_dashboard.sh:70
P1 Three parallel training scripts          LRC802  fast.sh:119, final.sh:124, dashboard:53
P1 Duplicate RANK definitions               LRC208  fast.sh:37, final.sh:37, dashboard:31,36
P1 Docs claim TOML usage                    LRC303  README.md:171,172; GUIDE:12,13
doc README.md:170-172 flux_fast.toml        LRC303  README.md:171 (and 172 for final)
doc GUIDE:96-101 Rank/Alpha 32/32           LRC302  docs/TRAINING_GUIDE.md:98
doc GUIDE:100 Noise Offset 0.05             LRC302  docs/TRAINING_GUIDE.md:100
doc GUIDE:118 Dropout 0.1                   LRC302  docs/TRAINING_GUIDE.md:118
doc GUIDE:123 SNR Gamma 5.0                 LRC302  docs/TRAINING_GUIDE.md:123
doc GUIDE:326-327 NOISE_OFFSET=0.05         LRC305  docs/TRAINING_GUIDE.md:326
(not in the audit) final Rank/Alpha 64/64   LRC302  docs/TRAINING_GUIDE.md:114
=========================================  ======  =====================================
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import lorac

FIXTURE = Path(__file__).parent / "fixtures" / "audit_repo"
FAMILIES = ("LRC2", "LRC3", "LRC8")
GUIDE = "docs/TRAINING_GUIDE.md"
FAST, FINAL, DASH = ("scripts/train_flux_fast.sh", "scripts/train_flux_final.sh",
                     "scripts/train_dashboard.sh")

ROWS: dict[str, set[tuple[str, int, str]]] = {
    "P0 TOML configs exist but unused": {
        ("configs/flux_fast.toml", 1, "LRC801"), ("configs/flux_final.toml", 1, "LRC801")},
    "P0 env.sh vars defined but not wired": {
        ("docker/env.sh", line, "LRC206") for line in (35, 47, 48, 52, 57, 63, 64, 89)},
    "P0 network_alpha=1 hardcoded": {
        (FAST, 139, "LRC804"), (FINAL, 144, "LRC804"), (DASH, 70, "LRC804")},
    "P1 Three parallel training scripts": {
        (FAST, 119, "LRC802"), (FINAL, 124, "LRC802"), (DASH, 53, "LRC802")},
    "P1 Duplicate RANK definitions": {
        (FAST, 37, "LRC208"), (FINAL, 37, "LRC208"), (DASH, 31, "LRC208"),
        (DASH, 36, "LRC208")},
    "P1 Docs claim TOML usage / README.md:170-172": {
        ("README.md", 171, "LRC303"), ("README.md", 172, "LRC303"),
        (GUIDE, 12, "LRC303"), (GUIDE, 13, "LRC303")},
    "doc TRAINING_GUIDE.md:96-101 Rank/Alpha 32/32": {(GUIDE, 98, "LRC302")},
    "doc TRAINING_GUIDE.md:100 Noise Offset 0.05": {(GUIDE, 100, "LRC302")},
    "doc TRAINING_GUIDE.md:118 Dropout 0.1": {(GUIDE, 118, "LRC302")},
    "doc TRAINING_GUIDE.md:123 SNR Gamma 5.0": {(GUIDE, 123, "LRC302")},
    "doc TRAINING_GUIDE.md:326-327 NOISE_OFFSET=0.05": {(GUIDE, 326, "LRC305")},
    "(extra) final Rank/Alpha 64/64 vs alpha 1": {(GUIDE, 114, "LRC302")},
}

ENV_VARS = {35: "FAST_NOISE_OFFSET", 47: "FINAL_DROPOUT", 48: "FINAL_NOISE_OFFSET",
            52: "FINAL_SNR_GAMMA", 57: "GRAD_ACCUM", 63: "ENABLE_TE", 64: "TE_LEARNING_RATE",
            89: "FP8_BASE"}


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "audit_repo"
    shutil.copytree(FIXTURE, target)
    monkeypatch.chdir(target)
    return target


def _findings(*paths: str) -> list[dict]:
    _, out, err = lorac("lint", *paths, "--no-dataset", "--format", "json")
    assert "Traceback" not in err
    return json.loads(out)


def test_every_audit_row_is_found_at_its_line(repo: Path) -> None:
    found = _findings(".")
    got = {(d["path"], d["line"], d["code"]) for d in found if d["code"].startswith(FAMILIES)}
    expected = set().union(*ROWS.values())
    assert got == expected, (sorted(got - expected), sorted(expected - got))
    for row, places in ROWS.items():
        assert places <= got, row


def test_messages_name_both_sides(repo: Path) -> None:
    by_place = {(d["path"], d["line"], d["code"]): d["message"] for d in _findings(".")}
    assert "scripts/train_flux_fast.sh has 1 (scripts/train_flux_fast.sh:139:13)" in \
        by_place[(GUIDE, 98, "LRC302")]
    assert "network_alpha = 32" in by_place[(GUIDE, 98, "LRC302")]
    assert "noise_offset = 0.05" in by_place[(GUIDE, 100, "LRC302")]
    assert "does not set it" in by_place[(GUIDE, 118, "LRC302")]
    for line, name in ENV_VARS.items():
        assert by_place[("docker/env.sh", line, "LRC206")].startswith(name + " ")
    assert "1/32" in by_place[(FAST, 139, "LRC804")]
    assert "1/64" in by_place[(FINAL, 144, "LRC804")]
    assert "FAST_RANK from docker/env.sh:31" in by_place[(FAST, 37, "LRC208")]


def test_variables_the_scripts_read_are_not_reported(repo: Path) -> None:
    reported = {d["message"].split()[0] for d in _findings(".") if d["code"] == "LRC206"}
    for used in ("WORKSPACE", "SDSCRIPTS", "MODEL_PATH", "DATA_DIR", "FAST_RANK",
                 "FINAL_RANK", "SAMPLE_PROMPTS", "HF_HOME", "PYTORCH_CUDA_ALLOC_CONF"):
        assert used not in reported


def test_fixing_the_repository_clears_the_findings(repo: Path) -> None:
    """Wire alpha to the rank in the scripts: LRC804 and the Rank/Alpha claim go away."""

    for script in (FAST, FINAL, DASH):
        path = repo / script
        path.write_text(path.read_text().replace("--network_alpha=1", "--network_alpha=${RANK}"))
    codes = {(d["path"], d["line"], d["code"]) for d in _findings(".")}
    assert not {c for c in codes if c[2] == "LRC804"}
    assert (GUIDE, 98, "LRC302") not in codes
    assert (GUIDE, 100, "LRC302") in codes


def test_imported_profiles_lint_clean_after_fix(repo: Path) -> None:
    for name in ("fast", "final"):
        code, _, err = lorac("import", f"scripts/train_flux_{name}.sh", "--env",
                             "docker/env.sh", "--name", name)
        assert code == 0, err
    lorac("lint", "profiles", "--fix")
    left = _findings("profiles")
    # what --fix leaves must be mendable by --unsafe-fixes (alpha 1 → alpha = dim)
    assert all(d["fixable"] and not d["fix_safe"] for d in left), left
    lorac("lint", "profiles", "--unsafe-fixes")
    code, out, err = lorac("lint", "profiles")
    assert (code, out) == (0, ""), out + err
    # the migrated profiles are the scripts' real values, alpha now follows the rank
    fast = (repo / "profiles" / "fast.toml").read_text()
    assert "network_dim = 32" in fast and "network_alpha = 32" in fast
