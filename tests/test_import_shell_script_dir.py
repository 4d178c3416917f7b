"""A launcher that finds its files from its own folder (``$(cd "$(dirname
"${BASH_SOURCE[0]}")" && pwd)``, ``$(dirname "$0")``), passes optional arguments as
``${EXTRA[@]+"${EXTRA[@]}"}`` and takes values as arguments of its own (``$2``): imported as
bash would run it, nothing reported that is not so."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.importers import Settings, read, read_source

TOML = 'network_module = "networks.lora"\nnetwork_dim = 4\nresolution = "512,512"\n' \
       'noise_offset_type = "Original"\n'


def _codes(draft) -> set[str]:
    return {f"{d.code}:{d.line}" for d in draft.diagnostics
            if d.severity.name in ("WARNING", "ERROR")}


@pytest.mark.parametrize("folder", [
    '"$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
    '"$(dirname "$0")"',
    '$(cd $(dirname $0); pwd -P)',
    '"$(realpath "$(dirname "${BASH_SOURCE[0]}")")"',
])
def test_the_scripts_own_folder_is_known(tmp_path: Path, folder: str) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "lora.toml").write_text(TOML, encoding="utf-8")
    script = tmp_path / "tests" / "run.sh"
    script.write_text(f'SCRIPT_DIR={folder}\nREPO_DIR="$(dirname "$SCRIPT_DIR")"\n'
                      'EXTRA=()\n'
                      'accelerate launch "$REPO_DIR/train_network.py" \\\n'
                      '  --config_file "$SCRIPT_DIR/lora.toml" \\\n'
                      '  --output_dir "$SCRIPT_DIR/out" \\\n'
                      '  ${EXTRA[@]+"${EXTRA[@]}"}\n', encoding="utf-8")
    draft = read(read_source(script), "shell", Settings())
    assert _codes(draft) == {"LRC093:4"}  # the TOML's noise_offset_type, nothing else
    [unknown] = [d for d in draft.diagnostics if d.code == "LRC093"]
    assert unknown.path.endswith("lora.toml")  # said of the TOML's line 4, not the script's
    assert draft.options["network_dim"].value == 4
    assert Path(draft.options["output_dir"].value) == (tmp_path / "tests" / "out").resolve()


def test_an_optional_array_expands_to_its_items_or_to_nothing(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    base = ('accelerate launch train_network.py --network_module networks.lora '
            '--resolution 512 ${EXTRA[@]+"${EXTRA[@]}"} ${SEED:+--seed "$SEED"}\n')
    script.write_text("EXTRA=()\nSEED=\n" + base, encoding="utf-8")
    draft = read(read_source(script), "shell", Settings())
    assert not _codes(draft) and "seed" not in draft.options
    script.write_text("EXTRA=(--max_train_steps 40)\nSEED=7\n" + base, encoding="utf-8")
    draft = read(read_source(script), "shell", Settings())
    assert not _codes(draft)
    assert draft.options["max_train_steps"].value == 40 and draft.options["seed"].value == 7


def test_a_value_from_an_argument_of_the_script_says_so(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text('MODEL="$2"\naccelerate launch train_network.py '
                      '--pretrained_model_name_or_path "$MODEL" --resolution 512\n',
                      encoding="utf-8")
    draft = read(read_source(script), "shell", Settings())
    [unknown] = [d for d in draft.diagnostics if d.code == "LRC092"]
    assert "comes from $2, an argument the script is given when it runs" in unknown.message
