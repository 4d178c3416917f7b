"""The shell importer on launchers as people write them: Windows ``.bat`` files, a script
name built from a variable, a file test before the real launch line, a trailing ``\\`` and
CRLF line ends (``tests/fixtures/shapes/``, README.md there)."""

from __future__ import annotations

from pathlib import Path

from lorac.importers import Settings, read, read_source
from lorac.scan.shell import scan

SHAPES = Path(__file__).parent / "fixtures" / "shapes"


def _import(path: Path):
    return read(read_source(path), "shell", Settings())


def _crlf(tmp_path: Path, source: Path) -> Path:
    out = tmp_path / source.name
    out.write_bytes(source.read_text(encoding="utf-8").replace("\n", "\r\n").encode())
    return out


def _values(draft) -> dict:
    return {k: v.value for k, v in draft.options.items()}


def test_bat_launcher_carets_set_and_percent_variables(tmp_path: Path) -> None:
    for path in (SHAPES / "train_flux_lora.bat", _crlf(tmp_path, SHAPES / "train_flux_lora.bat")):
        draft = _import(path)
        opts = _values(draft)
        assert draft.family == "flux1-dev"
        # every line after a ^ is read, %VAR% and !VAR! take the values set above
        assert opts["pretrained_model_name_or_path"] == r"C:\models\flux1-dev.safetensors"
        assert opts["ae"] == r"C:\models\ae.safetensors"
        assert opts["max_train_steps"] == 1600
        assert opts["learning_rate"] == 1e-4
        assert opts["output_name"] == "my lora"
        assert opts["save_model_as"] == "safetensors"
        assert draft.run["num_cpu_threads_per_process"] == 2
        assert not [d for d in draft.diagnostics if d.code in ("LRC091", "LRC092", "LRC093")]


def test_bat_caret_followed_by_a_space_is_reported(tmp_path: Path) -> None:
    text = (SHAPES / "train_flux_lora.bat").read_text(encoding="utf-8")
    bad = tmp_path / "train.bat"
    bad.write_text(text.replace("--network_alpha 16 ^\n", "--network_alpha 16 ^ \n"),
                   encoding="utf-8")
    draft = _import(bad)
    notes = [d for d in draft.diagnostics if d.code == "LRC096" and "'^' and a space" in
             d.message]
    assert len(notes) == 1 and notes[0].line == 17
    # cmd.exe runs the rest as a command of its own: the learning rate never reaches the script
    assert "learning_rate" not in draft.options and draft.options["network_alpha"].value == 16


def test_file_test_is_not_the_launch_line_and_trailing_backslash_is_no_argument(
        tmp_path: Path) -> None:
    for path in (SHAPES / "train_flux_guarded.sh",
                 _crlf(tmp_path, SHAPES / "train_flux_guarded.sh")):
        draft = _import(path)
        opts = _values(draft)
        assert draft.family == "flux1-dev"
        assert opts["max_train_steps"] == 1500 and opts["output_name"] == "flux_guarded"
        assert opts["ae"] == "/workspace/models/ae.safetensors"
        assert draft.run["mixed_precision"] == "bf16"
        codes = [d.code for d in draft.diagnostics]
        assert "LRC093" not in codes  # neither ']' nor '' taken for an argument
        assert not [d for d in draft.diagnostics if "training commands found" in d.message]


def test_lint_scan_finds_the_launch_line_not_the_file_test(tmp_path: Path) -> None:
    for path in (SHAPES / "train_flux_guarded.sh",
                 _crlf(tmp_path, SHAPES / "train_flux_guarded.sh")):
        found = scan(path.read_bytes().decode(), "train.sh").invocations
        assert [(i.trainer, i.line) for i in found] == [("flux_train_network.py", 18)]
        assert found[0].option("output_name").raw == "flux_guarded"


def test_script_name_from_an_argument_default(tmp_path: Path) -> None:
    script = tmp_path / "train.sh"
    script.write_text('train_script="${1:-flux_train_network}"\n'
                      'accelerate launch "./sd-scripts/$train_script.py" \\\n'
                      '  --network_module networks.lora_flux --network_dim 4\n',
                      encoding="utf-8")
    draft = _import(script)
    assert draft.family == "flux1-dev" and draft.options["network_dim"].value == 4
    assert any("read as its default 'flux_train_network'" in d.message
               for d in draft.diagnostics)
