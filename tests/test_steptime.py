"""The time model (lorac/trainers/steptime.py) and its card table (backends/gpus.toml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorac.trainers import steptime as st
from lorac.trainers.lora_memory import LoraRun
from tests.conftest import lorac

RUN = LoraRun("kohya", "flux1", width=1024, height=1024, dit_bytes=1.0)


def test_every_card_names_its_spec_sheet() -> None:
    cards = st.load_cards()
    for name in ("RTX 3090", "RTX 4090", "RTX 5090", "A100 40GB", "A100 80GB", "L40S",
                 "RTX A6000", "H100 SXM", "H100 PCIe", "H200"):
        card = cards[name]
        assert card.source.count("http") == 1 and card.bf16_tflops > 0 and card.bandwidth_gbs > 0
    assert {c.basis for c in cards.values()} == {"measured", "estimate"}
    assert cards["H100 SXM"].basis == cards["H200"].basis == "measured"


def test_find_card_by_alias() -> None:
    assert st.find_card("NVIDIA H100 80GB HBM3").name == "H100 SXM"
    assert st.find_card("rtx 4090").name == "RTX 4090"
    assert st.find_card("24GB") is None


def test_step_time_scales_with_work_and_card() -> None:
    h100, r4090 = st.load_cards()["H100 SXM"], st.load_cards()["RTX 4090"]
    k = st.TimeConstants(overhead_s=0.5, mfu=0.3)
    base = st.step_seconds(RUN, h100, k)
    assert st.step_seconds(RUN, r4090, k) > 3 * base
    assert st.step_seconds(RUN.changed(width=512, height=512), h100, k) < base
    assert st.step_seconds(RUN.changed(gradient_checkpointing=False), h100, k) < base
    assert st.step_seconds(RUN, h100, k, accumulation=4) == pytest.approx(
        0.5 + 4 * (base - 0.5))


def test_fit_recovers_the_constants() -> None:
    truth = st.TimeConstants(overhead_s=0.8, mfu=0.25)
    h100 = st.load_cards()["H100 SXM"]
    pts = [(RUN.changed(width=w, height=w, batch_size=b), 1,
            st.step_seconds(RUN.changed(width=w, height=w, batch_size=b), h100, truth))
           for w in (512, 768, 1024) for b in (1, 2)]
    got = st.fit(pts, weight=1e-4)
    assert got.overhead_s == pytest.approx(0.8, rel=0.02)
    assert got.mfu == pytest.approx(0.25, rel=0.02)


def test_whole_run_adds_its_parts() -> None:
    t = st.run_seconds(RUN, st.load_cards()["H100 SXM"], steps=100, samples=4, saves=2)
    assert t.total_s == pytest.approx(t.startup_s + t.caching_s + t.training_s + t.sampling_s
                                      + t.saving_s)
    assert t.training_s == pytest.approx(100 * t.sec_per_step) and t.sampling_s > 0


def test_vram_prints_memory_and_time_for_a_named_card(monkeypatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    code, out, err = lorac("vram", "final", "--gpu", "RTX 4090")
    assert code in (0, 1), err
    assert "phase peaks" in out and "RTX 4090" in out
    assert "s/step" in out and "estimate: scaled from the card's bf16 throughput" in out
    code, out, _ = lorac("vram", "final", "--gpu", "RTX 4090", "--format", "json")
    doc = json.loads(out)
    assert [t["card"] for t in doc["time"]] == ["H100 SXM", "RTX 4090"]
    assert doc["time"][1]["sec_per_step"] > doc["time"][0]["sec_per_step"]
