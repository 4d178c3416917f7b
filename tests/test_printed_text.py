"""What lorac prints passes one scrubber (:func:`lorac.core.secrets.scrub_message`) and, as text,
one control-character escape (:func:`lorac.core.diagnostics.printable`): a credential that is a key,
sits in a key path, is quoted by a message or cut short by one never shows, and a path or
value holding a newline cannot start a line of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorac.core.diagnostics import Diagnostic, LoracError, render_text
from tests.conftest import lorac, write_files

HF = "hf_" + "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3x"
WANDB = "Zr4Kp8Wq2Xn6Vm0Bt3Yc7Ld1Hs5Gf9Jx"
LISTED = "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7"
ENV_TOKEN = "hf_" + "Pp9Oo8Ii7Uu6Yy5Tt4Rr3Ee2Ww1Qq0Zz9Xx"
SECRETS = (HF, WANDB, LISTED, ENV_TOKEN)

PROFILE = f"""[profile]
family = "flux1-dev"

[network]
network_module = "networks.lora_flux"
network_dim = 16
network_alpha = 16

[saving]
"{HF}" = 1
"WANDB_API_KEY={WANDB}" = 2

[logging]
wandb_api_key = ["{LISTED}"]

[run]
mixed_precision = "fp16 (copied from the notes: {HF[:20]}{HF[20:]})"

[run.env]
"HF_TOKEN={ENV_TOKEN}" = "1"
"""


def _clean(text: str, where: str) -> None:
    for secret in SECRETS:
        for fragment in (secret[4:16], secret[-12:]):
            assert fragment not in text, f"{where} shows {secret[:4]}…"


@pytest.fixture
def keyed(project: Path) -> Path:
    write_files(project, {"profiles/p.toml": PROFILE,
                          "profiles/q.toml": PROFILE.replace("network_dim = 16",
                                                             "network_dim = 8")})
    return project


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_lint_masks_credentials_in_keys_key_paths_and_quoted_values(keyed: Path,
                                                                    fmt: str) -> None:
    code, out, err = lorac("lint", "--no-dataset", "profiles", "--format", fmt)
    assert code == 1
    _clean(out + err, f"lint --format {fmt}")
    for code_ in ("LRC004", "LRC209", "LRC602", "LRC005"):
        assert code_ in out, code_


def test_lint_text_names_what_it_masks(keyed: Path) -> None:
    _, out, _ = lorac("lint", "--no-dataset", "profiles")
    assert "LRC004 unknown key 'hf_a…[redacted]' in saving (saving.hf_a…[redacted])" in out
    assert "LRC602 wandb_api_key must be a string, not a list (['Q1w2…[redacted]'])" in out
    assert "LRC209 [run.env] name 'HF_TOKEN=hf_P…[redacted]' is not a valid" in out


@pytest.mark.parametrize("args", [("show", "p"), ("show", "p", "--format", "json"),
                                  ("diff", "p", "q"), ("diff", "p", "q", "--format", "json"),
                                  ("build", "p"), ("run", "p", "--force", "--dry-run")])
def test_other_commands_mask_them_too(keyed: Path, args: tuple[str, ...]) -> None:
    code, out, err = lorac(*args)
    assert code in (0, 1, 2), err
    assert "Traceback" not in err and "internal error" not in err
    _clean(out + err, " ".join(args))


def test_show_masks_keys_and_keeps_their_positions(keyed: Path) -> None:
    _, out, _ = lorac("show", "p")
    assert "# profiles/p.toml:10:1" in out and "# profiles/p.toml:11:1" in out
    assert 'wandb_api_key = ["*** (Q1w2… (34 chars))"]' in out


def test_the_run_env_name_error_masks_the_name(keyed: Path) -> None:
    # (the [run] type check comes first, so this profile's only [run] fault is the name)
    profile = keyed / "profiles" / "p.toml"
    profile.write_text(profile.read_text().replace("mixed_precision", "# mixed_precision"))
    code, _, err = lorac("run", "p", "--force", "--dry-run")
    assert code == 2
    assert "lorac: error: profiles/p.toml: [run.env] name 'HF_TOKEN=hf_P…[redacted]'" in err


def test_a_message_is_masked_before_it_is_cut() -> None:
    """The schema's value description is cut at 60 characters; cut first, a token lost the
    length that makes it recognisable and a fragment was printed."""

    from lorac.config.validate import _describe

    shown = _describe("padding " * 5 + HF)
    assert HF[:12] not in shown and "hf_a…[redacted]" in shown


def test_file_name_with_newline_cannot_forge_a_finding(project: Path) -> None:
    name = "a\nok.toml:1:1: LRC999 forged finding [x]\nb.toml"
    write_files(project, {f"profiles/{name}": '[network]\nnetwork_dim = "x"\n'})
    code, out, _ = lorac("lint", "--no-dataset", "profiles")
    assert code == 1
    assert not any(line.startswith("ok.toml") for line in out.splitlines()), out
    assert "profiles/a\\nok.toml:1:1: LRC999 forged finding [x]\\nb.toml:2:1: LRC" in out
    code, out, _ = lorac("lint", "--no-dataset", "profiles", "--format", "json")
    assert code == 1 and json.loads(out)[0]["path"] == f"profiles/{name}"  # JSON escapes by itself


def test_error_lines_are_escaped_and_masked(capsys: pytest.CaptureFixture[str]) -> None:
    from lorac.core.console import guarded

    def fail() -> int:
        raise LoracError(f"cannot read a\nlorac: error: forged {HF}\x1b[2J")

    assert guarded(fail) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\\nlorac: error: forged hf_a…[redacted]\\x1b[2J" in err


def test_render_text_escapes_every_field() -> None:
    d = Diagnostic("LRC001", "bad\rvalue\u202e", "dir\nx.toml", 1, 1, key_path=("a\tb",),
                   hint="do\nthis")
    text = render_text([d])
    assert text.count("\n") == 2
    assert text == ("dir\\nx.toml:1:1: LRC001 bad\\rvalue\\u202e (a\\tb)\n"
                    "    hint: do\\nthis\n")


def test_escape_controls() -> None:
    from lorac.core.diagnostics import escape_controls, printable

    assert escape_controls("plain é ü 🙂") == "plain é ü 🙂"
    assert escape_controls("a\x00\x1b\x7f\x85\u2028\u2066\udcff") == \
        "a\\x00\\x1b\\x7f\\x85\\u2028\\u2066\\udcff"
    assert printable(Path("x\ny")) == "x\\ny"


def test_a_remembered_credential_is_masked_however_it_is_quoted(project: Path) -> None:
    """A value under a credential-like key is hidden in every later message, even one that
    quotes it where no ``NAME=value`` pattern shows it (LRC602's ``(['…'])``)."""

    from lorac.core.secrets import scrub_message

    write_files(project, {"profiles/p.toml": f'[logging]\nwandb_api_key = ["{WANDB}x"]\n'})
    lorac("lint", "--no-dataset", "profiles")
    assert WANDB not in scrub_message(f"it was (['{WANDB}x'])")


def test_entry_points_print_nothing_raw_for_a_hostile_run_folder(project: Path) -> None:
    run = project / "runs" / "p-1\nlorac: succeeded"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({
        "status": "failed\x1b[2J", "command": ["accelerate", f"--x={HF}"],
        "outputs": [{"path": "out\nforged", "bytes": 1, "sha256": "0" * 64}]}))
    code, out, _ = lorac("runs")
    assert code == 0 and out.count("\n") == 1 and "\\x1b" in out
    code, out, _ = lorac("runs", "show", "p-1")
    assert code == 0 and "out\\nforged" in out and "\\x1b[2J" in out
    _clean(out, "runs show")


def test_a_finding_made_before_a_credential_was_remembered_is_scrubbed_again() -> None:
    """render_text trusts the scrub a finding got when it was made only while no credential has
    been remembered since."""
    from lorac.core.secrets import remember

    value = "Kq7Wz3Rm9Tx2Vb5N"  # (no token format: masked only once remembered)
    d = Diagnostic("LRC999", f"quotes {value}", "p.toml", 1, 1)
    assert value in render_text([d])
    remember([value])
    assert value not in render_text([d])
