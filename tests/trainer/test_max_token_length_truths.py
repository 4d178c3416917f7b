"""What sd-scripts itself does with ``max_token_length = 75``, which ``lorac import`` notes
(LRC095) when a ``--config_file`` or a kohya_ss GUI config gives it and refuses (LRC091) on a
command line: argparse checks choices only for what the command line gives.

Needs ``LORAC_SD_SCRIPTS``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.conftest import checkout, run_worker

pytestmark = pytest.mark.trainer


def test_75_from_a_config_file_reaches_the_script(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS")
    config = tmp_path / "config_lora.toml"  # as the kohya_ss GUI writes it
    config.write_text('max_token_length = 75\nnetwork_module = "networks.lora"\n',
                      encoding="utf-8")
    args = run_worker(sd, "config", "train_network", str(config), tmp=tmp_path)
    assert args["max_token_length"] == 75


def test_75_on_the_command_line_is_an_argparse_error(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS")
    with pytest.raises(AssertionError, match="invalid choice: 75"):
        run_worker(sd, "cli", "train_network", "--max_token_length", "75", tmp=tmp_path)
