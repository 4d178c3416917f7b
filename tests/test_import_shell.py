"""The shell importer: the audit-style script, the lexer's corners, hostile input."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.config.profile import resolve
from lorac.config.validate import validate
from lorac.core.diagnostics import LoracError, Severity
from lorac.importers import Settings, read, read_source, render

FIXTURES = Path(__file__).parent / "fixtures" / "import"
AUDIT = FIXTURES / "audit"


def _import(path: Path, **settings) -> tuple:
    draft = read(read_source(path), "shell", Settings(**settings))
    return draft, render(draft, schema_header=False)


def _script(tmp_path: Path, text: str, name: str = "train.sh") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _codes(draft) -> list[str]:
    return [d.code for d in draft.diagnostics]


def test_audit_script_resolves_to_the_scripts_values(tmp_path: Path) -> None:
    draft, text = _import(AUDIT / "scripts" / "train_flux_fast.sh",
                          env_files=(AUDIT / "docker" / "env.sh",))
    out = tmp_path / "profiles" / "fast.toml"
    out.parent.mkdir()
    out.write_text(text, encoding="utf-8")
    res = resolve(out, env={})
    assert res.profile is not None and not res.diagnostics
    assert validate(res.profile) == []
    opts = {k: v for k, (v, _) in res.profile.options().items()}
    assert res.profile.family == "flux1-dev"
    assert opts["network_module"] == "networks.lora_flux"
    assert opts["network_dim"] == 32 and isinstance(opts["network_dim"], int)
    assert opts["network_alpha"] == 1.0  # the hardcoded alpha the audit found
    assert opts["learning_rate"] == 1e-4
    assert opts["max_train_steps"] == 1000
    assert opts["lr_warmup_steps"] == 100
    assert opts["gradient_checkpointing"] is True and opts["sdpa"] is True
    assert opts["optimizer_args"] == ["weight_decay=0.01", "betas=0.9,0.999"]
    assert opts["pretrained_model_name_or_path"] == (
        "/workspace/models/flux1-dev/flux1-dev.safetensors")
    assert opts["output_name"] == "flux_fast"
    assert "noise_offset" not in opts  # never wired in the script
    assert res.profile.get("run", "mixed_precision") == "bf16"
    # the wiring stays visible
    assert '"${env:MODEL_DIR:-/workspace/models/flux1-dev}/ae.safetensors"' in text
    assert "network_dim = 32 # from $FAST_RANK" in text
    # and the environment still steers it
    res2 = resolve(out, env={"MODEL_DIR": "/m"})
    assert res2.profile.option("ae") == "/m/ae.safetensors"
    unused = [d.message for d in draft.diagnostics if "never reads it" in d.message]
    assert any("FAST_NOISE_OFFSET" in m for m in unused)
    assert not any("FAST_RANK" in m for m in unused)


def test_no_keep_env_writes_literals() -> None:
    _, text = _import(AUDIT / "scripts" / "train_flux_fast.sh",
                      env_files=(AUDIT / "docker" / "env.sh",), keep_env=False)
    assert "${env:" not in text
    assert 'ae = "/workspace/models/flux1-dev/ae.safetensors"' in text


def test_the_sourced_env_file_is_followed() -> None:
    # source "${SCRIPT_DIR}/../docker/env.sh" names a file that exists: it is read as --env
    # would read it, so the script's values are known without --env
    draft, text = _import(AUDIT / "scripts" / "train_flux_fast.sh")
    assert draft.options["network_dim"].value == 32
    assert "network_dim = 32 # from $FAST_RANK" in text
    assert '"${env:MODEL_DIR:-/workspace/models/flux1-dev}/ae.safetensors"' in text
    assert not [d for d in draft.diagnostics if "source" in d.message]


def test_a_missing_sourced_file_is_reported_once(tmp_path: Path) -> None:
    # the same script without its env.sh: one warning at the source line names what stays
    # unresolved; the options that read those variables are unknown or kept as ${env:…}
    script = _script(tmp_path, (AUDIT / "scripts" / "train_flux_fast.sh").read_text())
    draft, text = _import(script)
    assert "network_dim" not in draft.options
    assert "# not imported (LRC092 import-unknown-value): network_dim = ${FAST_RANK}" in text
    sourced = [d for d in draft.diagnostics if "source" in d.message]
    assert len(sourced) == 1 and sourced[0].line == 6 and sourced[0].code == "LRC095"
    assert sourced[0].severity == Severity.WARNING
    assert "no such file" in sourced[0].message
    assert "FAST_RANK" in sourced[0].message and "DATA_DIR" in sourced[0].message
    assert "SCRIPT_DIR" not in sourced[0].message  # set by the script itself
    # the per-option notes of the variables it names are not repeated as warnings
    per_option = [d for d in draft.diagnostics if "which has no default; the profile" in
                  d.message]
    assert per_option and all(d.severity == Severity.INFO for d in per_option)


def test_hostile_script(tmp_path: Path) -> None:
    draft, text = _import(FIXTURES / "hostile_heredoc.sh")
    opts = draft.options
    assert opts["network_dim"].value == 8  # the heredoc's 999 is never read
    assert opts["optimizer_args"].value == ["weight_decay=0.1", "betas=0.9,0.99"]
    assert opts["save_every_n_steps"].value == 100
    assert "output_name" not in opts and "output_dir" not in opts
    messages = "\n".join(d.message for d in draft.diagnostics)
    assert "$(date +%s)" in messages and "`pwd`" in messages
    assert "--network_dim: 'oops' is not an integer" in messages
    assert "--unknown_opt is not an option" in messages
    assert "--lr is not an option" in messages
    assert "unterminated double quote" in messages
    assert "heredoc <<EOF2 is skipped" in messages
    assert "# not imported (LRC093 import-unknown-option): unknown_opt = x y" in text


def test_cmd_variable_without_eval_and_arrays(tmp_path: Path) -> None:
    script = _script(tmp_path, """
RANK=16
CMD="accelerate launch --num_processes=2 train_network.py"
CMD="$CMD --network_dim $RANK"   # built piece by piece
EXTRA="--network_alpha 8 --xformers"
$CMD $EXTRA \\
  --text_encoder_lr 1e-5 2e-5 --seed 7
""")
    draft, _ = _import(script)
    assert draft.family == "sd15"
    assert draft.options["network_dim"].value == 16
    assert draft.options["network_alpha"].value == 8.0
    assert draft.options["xformers"].value is True
    assert draft.options["text_encoder_lr"].value == [1e-5, 2e-5]
    assert draft.options["seed"].value == 7
    assert draft.run == {"gpus": 2}


def test_eval_with_quotes_and_defaults(tmp_path: Path) -> None:
    script = _script(tmp_path, """
export OUT_DIR="${OUT_DIR:-/out dir}"
CMD="accelerate launch sdxl_train_network.py"
CMD="${CMD} --output_dir=\\"${OUT_DIR}\\" --output_name='my run'"
CMD="${CMD} --network_dim=${DIM:-4}"
eval "$CMD"
""")
    draft, text = _import(script)
    assert draft.family == "sdxl"
    assert draft.options["output_dir"].value == "/out dir"
    assert draft.options["output_dir"].text == "${env:OUT_DIR:-/out dir}"
    assert draft.options["output_name"].value == "my run"
    assert draft.options["network_dim"].value == 4
    assert "from $DIM" in text


def test_unset_variable_without_default(tmp_path: Path) -> None:
    script = _script(tmp_path, "python flux_train_network.py --ae=$AE --network_dim=$DIM\n")
    draft, _ = _import(script)
    assert draft.options["ae"].value == "${env:AE}"
    assert "network_dim" not in draft.options
    assert "LRC092" in _codes(draft)


@pytest.mark.parametrize("text", [
    "", "echo hi\n", "accelerate launch 'unterminated\n", "eval $(curl x) | sh\n",
    "cat <<EOF\nflux_train_network.py\n", "A=(a b\n", "${\n", "$((1+\n", "`\n",
    "f() { python flux_train_network.py --seed 1; }\n" + "x" * 10,
])
def test_odd_scripts_never_traceback(tmp_path: Path, text: str) -> None:
    script = _script(tmp_path, text)
    try:
        _import(script)
    except LoracError as exc:
        assert "\n" not in exc.message


def test_self_referencing_growth_is_bounded(tmp_path: Path) -> None:
    lines = ["A=x"] + ['A="$A $A"'] * 40 + ["python flux_train_network.py --output_name $A"]
    script = _script(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(LoracError):
        _import(script)


def test_dataset_config_option_yields_to_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text("[[datasets]]\n[[datasets.subsets]]\n"
                                         "image_dir = 'other'\n", encoding="utf-8")
    given = _script(tmp_path, "[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'given'\n",
                    "given.toml")
    path = _script(tmp_path, "accelerate launch train_network.py --network_dim 8 "
                   "--dataset_config other.toml\n")
    draft, _ = _import(path, dataset_config=given)
    assert "dataset_config" not in draft.options  # the kohya backend refuses both
    assert draft.dataset["subsets"] == [{"image_dir": "given"}]
    # without --dataset-config the script's file is read; a missing one is said so
    draft, _ = _import(path)
    assert draft.dataset["subsets"] == [{"image_dir": "other"}]
    (tmp_path / "other.toml").unlink()
    draft, _ = _import(path)
    assert draft.options["dataset_config"].value == "other.toml"
    assert [d.message for d in draft.diagnostics if d.code == "LRC095"
            and "not found" in d.message] == [
        "dataset config other.toml not found; kept as the dataset_config option (pass "
        "--dataset-config FILE to import it)"]


def test_findings_take_the_import_rules_names_and_severities(tmp_path: Path) -> None:
    from lorac.core.diagnostics import Severity
    from lorac.lint.rules.importing import ImportBadValue

    path = _script(tmp_path, "python train_network.py --network_dim=abc\n")
    draft, text = _import(path)
    [bad] = [d for d in draft.diagnostics if d.code == "LRC091"]
    assert (bad.rule, bad.severity) == (ImportBadValue.name, Severity.ERROR)
    assert f"not imported (LRC091 {ImportBadValue.name}): network_dim = abc" in text


WANDB_HEX = "9f3a1c7e5b2d8f4a6c0e9b3d7f1a5c2e8b4d6f0a"  # a W&B key: 40 hex, no token format
HF_VALUE = "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7"
SECRET_SCRIPTS = {
    # the --env file's value became the ${env:WANDB_API_KEY:-…} default
    "env-file default": ("accelerate launch flux_train_network.py --network_module "
                         "networks.lora_flux --wandb_api_key $WANDB_API_KEY "
                         '--huggingface_token "$HF_TOKEN" --output_dir out\n'),
    # a variable named like a credential feeding another option
    "export into another option": (f"export WANDB_API_KEY={WANDB_HEX}\n"
                                   "accelerate launch flux_train_network.py --network_module "
                                   'networks.lora_flux --log_tracker_config "x$WANDB_API_KEY" '
                                   "--output_dir out\n"),
    # a plain variable feeding a credential option and another option
    "one value, two options": (f"KEY={WANDB_HEX}\n"
                               "accelerate launch flux_train_network.py --network_module "
                               "networks.lora_flux --wandb_api_key $KEY "
                               '--wandb_run_name "run-$KEY" --output_dir out\n'),
}


@pytest.mark.parametrize("name", list(SECRET_SCRIPTS))
def test_import_never_copies_a_credential(tmp_path: Path, name: str) -> None:
    env = _script(tmp_path, f"WANDB_API_KEY={WANDB_HEX}\nHF_TOKEN={HF_VALUE}\n", "env.sh")
    draft, text = _import(_script(tmp_path, SECRET_SCRIPTS[name]), env_files=(env,))
    for secret in (WANDB_HEX, HF_VALUE):
        assert secret not in text
        assert all(secret not in d.message and secret not in (d.hint or "")
                   for d in draft.diagnostics)
    assert any(d.code == "LRC095" and "held a credential" in d.message
               for d in draft.diagnostics)


def test_a_withheld_credential_keeps_the_variable_it_came_from(tmp_path: Path) -> None:
    env = _script(tmp_path, f"WANDB_API_KEY={WANDB_HEX}\n", "env.sh")
    draft, text = _import(_script(tmp_path, SECRET_SCRIPTS["env-file default"]),
                          env_files=(env,))
    assert draft.options["wandb_api_key"].text == "${env:WANDB_API_KEY}"
    assert 'wandb_api_key = "${env:WANDB_API_KEY}"' in text


def test_the_last_word_of_a_file_without_a_final_newline(tmp_path: Path) -> None:
    # the end of the text is no redirection: a number there is an argument, not the 2 of 2>&1
    script = _script(tmp_path, "accelerate launch flux_train_network.py --max_train_steps 875")
    draft, _ = _import(script)
    assert draft.options["max_train_steps"].value == 875
    assert "LRC091" not in _codes(draft)


def test_a_redirection_at_the_end_of_the_file_ends(tmp_path: Path) -> None:
    import threading

    script = _script(tmp_path, "accelerate launch flux_train_network.py --max_train_steps 5 >")
    done: list = []
    reader = threading.Thread(target=lambda: done.append(_import(script)), daemon=True)
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), "the lexer does not stop at a '>' that ends the file"
    assert done[0][0].options["max_train_steps"].value == 5
