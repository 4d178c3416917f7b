"""LRC2xx rules and the shell scanner they read scripts with (case files hold the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.scan.shell import definitions, evaluate, scan, scan_file
from tests.conftest import lorac, write_files


def test_scan_assignments_refs_and_heredocs() -> None:
    text = (
        "#!/bin/bash\n"
        "export A=\"${A:-1}\"  # comment $NOT_A_REF\n"
        "echo 'single $QUOTED' \"$B\"\n"
        "case $P in\n"
        "  fast) RANK=32; STEPS=1000 ;;\n"
        "esac\n"
        "cat > f.toml <<EOF\n"
        "dir = \"${DATA_DIR}\"\n"
        "X=1\n"
        "EOF\n"
        "cat <<'RAW'\n"
        "$LITERAL\n"
        "RAW\n"
    )
    sc = scan(text, "t.sh")
    assigned = [(a.name, a.value, a.line) for a in sc.assignments]
    assert assigned == [("A", "${A:-1}", 2), ("RANK", "32", 5), ("STEPS", "1000", 5)]
    assert sc.assignments[0].exported and sc.assignments[0].fallback == ("A", "1")
    names = {r.name for r in sc.refs}
    assert {"A", "B", "P", "DATA_DIR"} <= names
    assert not names & {"NOT_A_REF", "QUOTED", "LITERAL"}


def test_direct_invocation_with_continuations_and_spaced_values(tmp_path: Path) -> None:
    path = tmp_path / "train.sh"
    path.write_text(
        "accelerate launch --num_processes 1 \\\n"
        "  sd-scripts/flux_train_network.py \\\n"
        "  --network_dim 16 --network_alpha=\"${ALPHA:-8}\" \\\n"
        "  --cache_latents --learning_rate 1e-4\n")
    [invocation] = scan_file(path).invocations
    assert [(o.name, o.raw, o.line, o.col) for o in invocation.options] == [
        ("network_dim", "16", 3, 3), ("network_alpha", "${ALPHA:-8}", 3, 20),
        ("cache_latents", None, 4, 3), ("learning_rate", "1e-4", 4, 19)]


def test_evaluate_and_definitions() -> None:
    env = scan('export W="${W:-/w}"\nexport D="${D:-${W}/data}"\n')
    values = definitions([env])
    assert values == {"W": "/w", "D": "/w/data"}
    assert evaluate("${D}/x", values) == "/w/data/x"
    assert evaluate("${MISSING}", values) is None
    assert evaluate("${MISSING:-3}", values) == "3"
    assert evaluate("$(date)", values) is None


def test_env_var_defined_nowhere(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_TEST_MODELS", "/m")
    write_files(project, {"profiles/p.toml": '[profile]\nfamily = "flux1-dev"\n\n[model]\n'
                          'pretrained_model_name_or_path = "${env:AUDIT_TEST_MODELS}/f"\n'})
    _, out, _ = lorac("lint", ".", "--select", "LRC205")
    assert "profiles/p.toml:5:1: LRC205" in out
    write_files(project, {".env": "AUDIT_TEST_MODELS=/models\n"})
    _, out, _ = lorac("lint", ".", "--select", "LRC205")
    assert "LRC205" not in out


def test_bad_shell_input_never_crashes(project: Path) -> None:
    write_files(project, {
        "a.sh": b"\x00\x01binary",
        "b.sh": 'echo "unterminated ${X:-\nCMD="flux_train_network.py --x=\\\n',
        "c.env": "=broken\nexport\n",
    })
    code, _, err = lorac("lint", ".")
    assert "Traceback" not in err and code in (0, 1)
