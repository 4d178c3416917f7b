"""LRC401/LRC402 judge every trainer lorac has a memory model for with the model ``lorac vram``
uses (lorac/trainers/memory_models.py): the same peak, interval and verdict per card, for the
trainer the profile targets; nothing for a trainer and family without a model, which
``lorac vram`` names once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import lorac

AITK_FLUX = """[profile]
backend = "ai-toolkit"
family = "flux1-dev"
gpu = "{gpu}"
[network]
network_dim = 16
network_alpha = 16
[optimizer]
optimizer_type = "AdamW8bit"
[training]
gradient_checkpointing = true
cache_text_encoder_outputs = true
cache_latents = true
[trainers.ai-toolkit.model]
quantize = true
low_vram = true
[dataset]
resolution = 1024
"""
MUSUBI_WAN = """[profile]
backend = "musubi"
family = "wan2.1-t2v-1.3b"
gpu = "{gpu}"
[network]
network_module = "networks.lora_wan"
network_dim = 32
network_alpha = 16
[optimizer]
optimizer_type = "adamw8bit"
[training]
gradient_checkpointing = true
[dataset]
resolution = [832, 480]
"""
MUSUBI_QWEN = """[profile]
backend = "musubi"
family = "qwen-image"
gpu = "{gpu}"
[network]
network_dim = 16
network_alpha = 16
[optimizer]
optimizer_type = "adamw8bit"
[training]
gradient_checkpointing = true
[dataset]
resolution = 1024
"""
KOHYA_FLUX = """[profile]
family = "flux1-dev"
gpu = "{gpu}"
[network]
network_module = "networks.lora_flux"
network_dim = 32
network_alpha = 32
[training]
fp8_base = true
gradient_checkpointing = true
cache_latents = true
cache_text_encoder_outputs = true
[dataset]
resolution = 1024
"""


def _write(root: Path, text: str, name: str = "p") -> str:
    (root / "profiles").mkdir(exist_ok=True)
    (root / "profiles" / f"{name}.toml").write_text(text)
    return f"profiles/{name}.toml"


def _findings(path: str, code: str = "LRC401") -> list[dict]:
    _, out, err = lorac("lint", path, "--no-dataset", "--select", "LRC4", "--format", "json")
    assert "Traceback" not in err
    return [d for d in json.loads(out) if d["code"] == code]


def _vram(name: str, card: str) -> dict:
    code, out, err = lorac("vram", name, "--gpu", card, "--format", "json")
    assert code in (0, 1), err
    return json.loads(out)


# (profile, card, trainer, verdict, first-principles estimate): a fit, a tight and a misfit for
# each trainer
CASES = [
    (AITK_FLUX, "24GB", "ai-toolkit", "fits", False),
    (AITK_FLUX, "22GB", "ai-toolkit", "tight", False),
    (AITK_FLUX, "16GB", "ai-toolkit", "does not fit", False),
    (MUSUBI_WAN, "24GB", "musubi", "fits", False),
    (MUSUBI_WAN, "12GB", "musubi", "tight", False),
    (MUSUBI_WAN, "10GB", "musubi", "does not fit", False),
    (MUSUBI_QWEN, "48GB", "musubi", "fits", False),
    (MUSUBI_QWEN, "44GB", "musubi", "tight", False),
    (MUSUBI_QWEN, "24GB", "musubi", "does not fit", False),
    (KOHYA_FLUX, "24GB", "kohya", "fits", False),
    (KOHYA_FLUX, "18GB", "kohya", "tight", False),
    (KOHYA_FLUX, "16GB", "kohya", "does not fit", False),
]


@pytest.mark.parametrize(("text", "card", "trainer", "word", "estimate"), CASES,
                         ids=[f"{c[2]}-{c[1]}-{c[3]}" for c in CASES])
def test_lint_gives_lorac_vrams_verdict(project: Path, text: str, card: str, trainer: str,
                                        word: str, estimate: bool) -> None:
    path = _write(project, text.format(gpu=card))
    doc = _vram("p", card)
    assert doc["verdicts"][card] == word
    assert (doc["interval"]["n"] == 0) is estimate
    found = _findings(path)
    if word == "fits":
        assert found == []
        return
    (d,) = found
    assert d["data"]["verdict"] == word and d["data"]["trainer"] == trainer
    assert d["severity"] == ("warning" if word == "tight" else "error")
    assert d["data"]["peak_mib"] == doc["peak_mib"]
    assert (d["data"]["low_mib"], d["data"]["high_mib"]) == (
        doc["interval"]["low_mib"], doc["interval"]["high_mib"])
    assert d["data"]["estimate"] is estimate
    assert ("first-principles estimate" in d["message"]) is estimate
    assert f": {word} {card} (" in d["message"]


UNMODELLED = [
    ("ai-toolkit", "wan2.2-t2v-a14b"), ("ai-toolkit", "qwen-image"),
    ("musubi", "hunyuan-video"), ("musubi", "flux1-kontext"), ("kohya", "sd15"),
]


@pytest.mark.parametrize(("trainer", "family"), UNMODELLED)
def test_an_unmodelled_trainer_and_family_gets_no_finding_and_vram_says_so_once(
        project: Path, trainer: str, family: str) -> None:
    path = _write(project, f'[profile]\nbackend = "{trainer}"\nfamily = "{family}"\n'
                           f'gpu = ["4GB", "80GB"]\n[network]\nnetwork_dim = 128\n'
                           f'[dataset]\nresolution = 1024\n')
    assert _findings(path) == [] and _findings(path, "LRC402") == []
    code, out, err = lorac("vram", "p")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("not modelled") == 1 and len(err.strip().splitlines()) == 1
    assert f"does not cover {trainer} {family!r}" in err


def test_the_rule_judges_the_trainer_the_profile_targets(project: Path) -> None:
    # an ai-toolkit Wan profile: ai-toolkit's model judges it, and a musubi table changes nothing
    aitk = MUSUBI_WAN.format(gpu="8GB").replace('backend = "musubi"', 'backend = "ai-toolkit"')
    (own,) = _findings(_write(project, aitk))
    assert own["data"]["trainer"] == "ai-toolkit" and own["data"]["verdict"] == "does not fit"
    (other,) = _findings(_write(project, aitk + '[trainers.musubi]\nfp8_base = true\n'))
    assert other["data"]["peak_mib"] == own["data"]["peak_mib"]
    # the same profile built for musubi-tuner is judged by musubi's model
    (d,) = _findings(_write(project, MUSUBI_WAN.format(gpu="8GB")))
    assert d["data"]["trainer"] == "musubi" and d["data"]["verdict"] == "does not fit"
    # [profile] backend unset is kohya, whatever [trainers.<name>] tables say
    kohya = KOHYA_FLUX.format(gpu="16GB") + "[trainers.ai-toolkit.model]\nqtype = \"uint4\"\n"
    (d,) = _findings(_write(project, kohya))
    assert d["data"]["trainer"] == "kohya"


def test_the_targets_trainer_values_count_and_no_others(project: Path) -> None:
    base = AITK_FLUX.format(gpu="16GB")
    _write(project, base)
    plain = _vram("p", "16GB")
    # ai-toolkit's own rank replaces the shared one: a larger LoRA, a larger training step
    _write(project, base + "[trainers.ai-toolkit]\nnetwork_dim = 128\n")
    own = _vram("p", "16GB")
    assert own["phases"]["train"] > plain["phases"]["train"]
    (found,) = _findings("profiles/p.toml")
    assert found["data"]["peak_mib"] == own["peak_mib"]
    # kohya's rank is kohya's: the ai-toolkit profile does not see it
    _write(project, base + "[trainers.kohya]\nnetwork_dim = 128\n")
    assert _vram("p", "16GB")["phases"] == plain["phases"]
    # ai-toolkit's quantisation type: 4-bit weights lower the peak
    uint4 = base.replace("quantize = true", 'quantize = true\nqtype = "uint4"')
    _write(project, uint4)
    assert _vram("p", "16GB")["peak_mib"] < plain["peak_mib"]
    # ... into a 24GB verdict of "fits" (the caching phases hold the transformer too)
    assert _vram("p", "24GB")["verdicts"]["24GB"] == "fits"


def test_lorac_vram_times_the_run_its_trainer_gets(project: Path) -> None:
    base = AITK_FLUX.format(gpu="24GB").replace("[training]\n",
                                                "[training]\nmax_train_steps = 3000\n")
    _write(project, base + "[trainers.ai-toolkit]\nmax_train_steps = 100\n")
    assert [t["steps"] for t in _vram("p", "24GB")["time"]] == [100]
    _write(project, base + "[trainers.kohya]\nmax_train_steps = 100\n")
    assert [t["steps"] for t in _vram("p", "24GB")["time"]] == [3000]


def test_ai_toolkit_quantising_on_the_gpu_peaks_while_loading(project: Path) -> None:
    """Without low_vram ai-toolkit moves the bf16 transformer to the GPU and quantises it there
    (toolkit/stable_diffusion_model.py:681-683): the load is the peak (measured: 24,123 MiB
    while loading, 18,891 while training, on an H100), and low_vram is the first fix. With it
    the load still peaks, lower, when T5-XXL comes onto the GPU in bf16 beside the quantised
    transformer (:816-826)."""
    text = AITK_FLUX.format(gpu="24GB").replace("low_vram = true\n", "")
    _write(project, text)
    doc = _vram("p", "24GB")
    assert doc["peak_phase"] == "load" and doc["verdicts"]["24GB"] == "tight"
    assert "denoiser before quantisation" in [i["name"] for i in doc["breakdown"]["load"]]
    _write(project, AITK_FLUX.format(gpu="24GB"))
    low = _vram("p", "24GB")
    assert low["peak_phase"] == "load" and low["peak_mib"] < doc["peak_mib"] - 1500
    assert "T5-XXL while loading" in [i["name"] for i in low["breakdown"]["load"]]
    first = doc["fixes"]["24GB"][0]
    assert first["change"] == "[trainers.ai-toolkit.model] low_vram = true"
    assert round(first["peak_mib"], 1) == low["peak_mib"] and first["time_cost_pct"] == 0
