"""The module count ``lorac run``'s check expects of a saved LoRA: computed per backend from
what lorac knows of the trainer, or "unknown count" with the reason, never a guess."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorac.run.check import check_run_outputs, expected_modules
from lorac.trainers.ai_toolkit.emitter import AiToolkitBackend
from lorac.trainers.kohya.emitter import KohyaBackend
from lorac.trainers.musubi.emitter import MusubiBackend
from tests.conftest import resolved
from tests.make_lora import write

FLUX = """[profile]
family = "flux1-dev"
[network]
network_module = "networks.lora_flux"
network_dim = 4
"""

WAN = """[profile]
family = "wan2.1-t2v-1.3b"
backend = "musubi"
[network]
network_module = "networks.lora_wan"
network_dim = 4
"""


def _count(tmp_path: Path, text: str, backend: object) -> tuple[int | None, str | None]:
    profile = resolved(tmp_path, text).profile
    assert profile is not None
    return expected_modules(profile, backend)


@pytest.mark.parametrize(("extra", "count"), [
    ("", 19 * 2 * 5 + 38 * 3 + 12 * 6),             # double, single blocks and CLIP-L layers
    ("network_train_unet_only = true", 19 * 2 * 5 + 38 * 3),
    ('network_args = ["train_blocks=single"]', 38 * 3 + 12 * 6),
    ('network_args = ["loraplus_lr_ratio=4", "rank_dropout=0.1"]', 376),
])
def test_flux_lora_flux_is_counted(tmp_path: Path, extra: str, count: int) -> None:
    assert _count(tmp_path, FLUX + extra + "\n", KohyaBackend()) == (count, None)


@pytest.mark.parametrize(("text", "why"), [
    (FLUX + 'network_args = ["split_qkv=True", "train_t5xxl=True"]\n',
     "network_args split_qkv, train_t5xxl change which layers"),
    ('[profile]\nfamily = "sdxl"\n[network]\nnetwork_module = "networks.lora"\n',
     "lorac does not know the layers networks.lora wraps in sdxl"),
    ('[profile]\nfamily = "sd3"\n[network]\nnetwork_module = "networks.lora_sd3"\n',
     "lorac does not know the layers networks.lora_sd3 wraps in sd3"),
    ('[profile]\nfamily = "flux1-dev"\n[network]\nnetwork_module = "lycoris.kohya"\n',
     "lycoris.kohya wraps in flux1-dev"),
])
def test_kohya_says_why_it_cannot_count(tmp_path: Path, text: str, why: str) -> None:
    count, reason = _count(tmp_path, text, KohyaBackend())
    assert count is None and reason is not None and why in reason


def test_musubi_lora_wan_is_counted_from_the_generated_layout(tmp_path: Path) -> None:
    assert _count(tmp_path, WAN, MusubiBackend()) == (300, None)
    # a profile written for ai-toolkit: the emitter writes lora_wan, so it is counted too
    written = WAN.replace('backend = "musubi"', 'backend = "ai-toolkit"').replace(
        "networks.lora_wan", "networks.lora")
    assert _count(tmp_path / "a", written, MusubiBackend()) == (300, None)


@pytest.mark.parametrize(("text", "why"), [
    (WAN + 'network_args = ["exclude_patterns=[\'.*ffn.*\']"]\n', "network_args exclude_patterns"),
    (WAN.replace("wan2.1-t2v-1.3b", "wan2.1-t2v-14b"), "not networks.lora_wan on wan2.1-t2v-14b"),
    (WAN.replace("wan2.1-t2v-1.3b", "qwen-image").replace("lora_wan", "lora_qwen_image"),
     "not networks.lora_qwen_image on qwen-image"),
])
def test_musubi_says_why_it_cannot_count(tmp_path: Path, text: str, why: str) -> None:
    count, reason = _count(tmp_path, text, MusubiBackend())
    assert count is None and reason is not None and why in reason


def test_ai_toolkit_counts_the_families_it_models_and_says_why_elsewhere(tmp_path: Path
                                                                         ) -> None:
    # FLUX.1: 19 double blocks x 16 Linear layers + 38 single blocks x 5 (diffusers' layout)
    assert _count(tmp_path, FLUX, AiToolkitBackend()) == (494, None)
    wan = WAN.replace('backend = "musubi"', 'backend = "ai-toolkit"').replace(
        "networks.lora_wan", "networks.lora") + (
        '[trainers.ai-toolkit]\npretrained_model_name_or_path = "Wan-AI/Wan2.1-T2V-1.3B"\n')
    assert _count(tmp_path / "w", wan, AiToolkitBackend()) == (300, None)
    count, reason = _count(tmp_path / "q", FLUX.replace("flux1-dev", "qwen-image").replace(
        "networks.lora_flux", "networks.lora"), AiToolkitBackend())
    assert count is None and "target_lora_modules" in str(reason)
    count, reason = _count(tmp_path / "b", FLUX, object())
    assert count is None and "does not say how many modules" in str(reason)


def test_check_fails_a_file_with_another_count_and_never_guesses(tmp_path: Path) -> None:
    profile = resolved(tmp_path, WAN).profile
    assert profile is not None
    run = tmp_path / "run"
    write(run / "output" / "w.safetensors", rank=4, alpha=1.0, module="networks.lora_wan",
          names=[f"lora_unet_blocks_{i}_self_attn_q" for i in range(2)])
    check = check_run_outputs(profile, run, MusubiBackend())
    assert check["expected_modules"] == 300 and check["expected_modules_unknown"] is None
    assert any("has 2 modules; the profile makes 300" in p for p in check["problems"])
    check = check_run_outputs(profile, run, object())  # a backend that cannot count
    assert check["expected_modules"] is None and check["expected_modules_unknown"]
    assert not any("modules; the profile makes" in p for p in check["problems"])
