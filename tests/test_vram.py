"""The VRAM model (lorac/trainers/kohya/vram.py), `lorac vram` and its calibration data."""

from __future__ import annotations

import json

import pytest

from lorac.trainers.kohya import vram
from tests.conftest import lorac

BASE = vram.RunConfig(rank=32, optimizer="adamw8bit", fp8_base=True, gradient_checkpointing=True,
                      cache_latents=True, cache_te=True)


def test_breakdown_sums_to_phase() -> None:
    est = vram.estimate(BASE)
    for phase, items in est.breakdown.items():
        assert sum(i.mib for i in items) == pytest.approx(est.phases[phase])
    assert est.peak_mib == max(est.phases.values())


def test_lora_module_counts_match_sd_scripts() -> None:
    assert len(vram.lora_modules(BASE.changed(train_clip_l=False))) == 304
    assert len(vram.lora_modules(BASE)) == 304 + 72
    assert len(vram.lora_modules(BASE.changed(train_blocks="single", train_clip_l=False))) == 114


@pytest.mark.parametrize(("field", "values"), [
    ("width", (512, 768, 1024)), ("batch_size", (1, 2, 4)), ("rank", (4, 32, 128))])
def test_training_peak_grows(field: str, values: tuple) -> None:
    peaks = [vram.estimate(BASE.changed(**{field: v, **({"height": v} if field == "width"
                                                         else {})})).phases["train"]
             for v in values]
    assert peaks == sorted(peaks) and peaks[0] < peaks[-1]


def test_block_swap_and_fp8_lower_the_training_peak() -> None:
    train = vram.estimate(BASE).phases["train"]
    assert vram.estimate(BASE.changed(blocks_to_swap=18)).phases["train"] < train - 4000
    assert vram.estimate(BASE.changed(fp8_base=False)).phases["train"] > train + 10000
    assert vram.estimate(BASE.changed(gradient_checkpointing=False)).phases["train"] > train


def test_optimizer_states_order() -> None:
    def states(opt: str) -> float:
        items = vram.estimate(BASE.changed(optimizer=opt)).breakdown["train"]
        return next(i.mib for i in items if i.name == "optimizer states")

    assert states("adafactor") < states("adamw8bit") < states("adamw") < states("prodigy")


def test_fitted_model_reproduces_the_measurements() -> None:
    """Fit records within 5 % per phase; held-back run peaks within the issue's 10 %, inside
    their interval, and every 24/48/80 GB verdict right, 'tight' counting as right within 5 % of
    the card (bench/vram_accuracy.py prints the same figures)."""
    from lorac.trainers.estimates import verdict_right

    records = vram.load_measurements()
    held = inside = 0
    for rec in records:
        if rec.get("weight") != "full" or rec.get("split") not in ("fit", "holdout") or \
                rec.get("family") not in vram.FLUX_FAMILIES:
            continue
        est = vram.estimate(vram.record_config(rec))
        if rec["split"] == "fit":
            for phase, mib in rec["phases_mib"].items():
                pred = vram.telemetry_phase(est, phase)
                assert abs(pred - mib) / mib < 0.05, (rec["id"], phase)
            continue
        held += 1
        peak = rec.get("peak_mib") or max(rec["phases_mib"].values())
        assert abs(est.peak_mib - peak) / peak < 0.10, rec["id"]
        lo, hi = est.bounds
        inside += lo <= peak <= hi
        for card in vram.STANDARD_CARDS:
            cap = vram.card_mib(card)
            assert verdict_right(est.verdict(cap), peak, cap), (rec["id"], card)
    assert held >= 10
    assert inside / held >= 0.9  # the coverage target


def test_shared_gpu_method_checks() -> None:
    """Re-runs alone on a GPU and on an H100 agree within 1 % with their twin that shared its
    GPU (the FLUX.1 matrix on H200s, the SDXL plan on one H100)."""
    by_id = {r["id"]: r for r in vram.load_measurements()}
    checks = [r for r in by_id.values() if r.get("split") == "check"
              and r["id"].endswith(("-solo", "-h100"))]
    assert {r["id"].rsplit("-", 1)[1] for r in checks} == {"solo", "h100"}
    for rec in checks:
        twin = by_id[rec["id"].rsplit("-", 1)[0]]
        assert twin["gpu_shared"] and ("H200" in twin["gpu"] or twin.get("family") == "sdxl")
        assert abs(twin["peak_mib"] - rec["peak_mib"]) / rec["peak_mib"] < 0.01, rec["id"]
        if not rec["gpu_shared"]:
            assert max(rec["device_phases_mib"].values()) == pytest.approx(rec["peak_mib"],
                                                                            abs=1.0)


def test_records_carry_their_conditions() -> None:
    for rec in vram.load_measurements():
        for key in ("gpu", "driver", "trainer_commit", "date", "conditions", "split"):
            assert rec.get(key), (rec["id"], key)


def test_fit_recovers_constants() -> None:
    truth = vram.Constants(train_mib=800.0, act_scale_gc=1.5)
    recs = []
    for i, (reso, rank) in enumerate([(512, 8), (768, 16), (1024, 64), (1024, 128)]):
        cfg_cond = {"resolution": reso, "network_dim": rank, "fp8_base": True,
                    "gradient_checkpointing": True, "cache_latents": True,
                    "cache_text_encoder_outputs": True, "optimizer_type": "AdamW"}
        cfg = vram.config_from_options(cfg_cond, dataset=cfg_cond)
        recs.append({"id": str(i), "conditions": cfg_cond,
                     "phases_mib": {"train": vram.estimate(cfg, truth).phases["train"]}})
    got = vram.fit(recs)
    assert got.act_scale_gc == pytest.approx(1.5, rel=0.02)
    assert got.train_mib == pytest.approx(800.0, rel=0.05)


def test_fixes_reach_the_card() -> None:
    cfg = BASE.changed(fp8_base=False)
    plan = vram.fixes(cfg, vram.card_mib("24GB"))
    assert plan and plan[0].change.startswith("fp8_base") and plan[-1].peak_mib <= 24564
    assert vram.fixes(BASE, vram.card_mib("24GB")) == []
    swap = vram.fixes(BASE, vram.card_mib("16GB"))
    assert any(f.change.startswith("blocks_to_swap") for f in swap)


def test_card_names() -> None:
    assert vram.card_mib("24GB") == vram.card_mib("RTX 4090")
    assert vram.card_mib("20 GiB") == 20 * 1024
    assert vram.card_mib("no such card") is None


def test_shipped_profiles_fit_24gb(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    for name in ("fast", "final"):
        code, out, err = lorac("vram", name, "--format", "json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["fits"]["24GB"] is True
        assert set(doc["phases"]) >= {"cache_latents", "cache_text_encoder", "prepare", "train"}
        assert doc["peak_mib"] == max(doc["phases"].values())
    code, out, _ = lorac("vram", "fast", "--gpu", "12GB")
    assert code == 1 and "DOES NOT FIT" in out and "blocks_to_swap" in out


def test_vram_bad_input(project) -> None:
    code, _, err = lorac("vram", "nope")
    assert code == 2 and "Traceback" not in err
    (project / "profiles").mkdir(exist_ok=True)
    (project / "profiles" / "s.toml").write_text('[profile]\nfamily = "sd15"\n')
    code, _, err = lorac("vram", "s")
    assert code == 2 and "does not cover kohya 'sd15'" in err and "Traceback" not in err


def test_datasets_tables_set_resolution_and_batch(tmp_path) -> None:
    """A ``[[dataset.datasets]]`` profile: the dataset with the largest resolution x batch."""
    from tests.conftest import resolved

    text = ('[profile]\nfamily = "flux1-dev"\n[dataset]\nbatch_size = 1\n'
            '[[dataset.datasets]]\nresolution = 512\nbatch_size = 4\n'
            '[[dataset.datasets.subsets]]\nimage_dir = "a"\n'
            '[[dataset.datasets]]\nresolution = 1024\nbatch_size = 2\n'
            '[[dataset.datasets.subsets]]\nimage_dir = "b"\n')
    cfg = vram.config_from_profile(resolved(tmp_path, text).profile)
    assert (cfg.width, cfg.height, cfg.batch_size) == (1024, 1024, 2)


def test_estimate_carries_the_measured_interval() -> None:
    est = vram.estimate(BASE)
    assert est.interval.n >= 20 and est.interval.low < 1 < est.interval.high
    lo, hi = est.bounds
    assert lo < est.peak_mib < hi
    doc = est.to_json()["interval"]
    assert doc["low_mib"] == pytest.approx(lo, abs=0.1) and doc["n"] == est.interval.n


def test_a_peak_near_the_card_is_tight(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case: a prediction 0.8 GB under 24 GB must not say 'fits'."""
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    est = vram.estimate(BASE)
    assert est.verdict(est.peak_mib + 800) == "tight"
    assert est.verdict(est.peak_mib * 1.3) == "fits"
    assert est.verdict(est.peak_mib * 0.7) == "does not fit"


def test_unet_only_without_checkpointing_keeps_no_modulation_upcast() -> None:
    """Without checkpointing an fp8 transformer keeps the bf16 up-cast of a Linear's weight
    only where the Linear's input needs a gradient: the modulations read the conditioning
    vector, which needs one only when CLIP-L is trained (issue: 44,083 MiB measured UNet-only
    against 50,191 with CLIP-L trained)."""
    nogc = BASE.changed(width=512, height=512, rank=16, gradient_checkpointing=False)

    def upcast(cfg: vram.RunConfig) -> float:
        items = vram.estimate(cfg).breakdown["train"]
        return next(i.mib for i in items if i.name.startswith("fp8 weights up-cast"))

    saved = upcast(nogc) - upcast(nogc.changed(train_clip_l=False))
    assert 6000 < saved < 6300  # 3.26 B modulation parameters x 2 B
    assert vram.shapes().dit_vec_fed > 3.2e9
    by_id = {r["id"]: r for r in vram.load_measurements()}
    for rid in ("nogc-r512-unet-adamw-h100", "nogc-r512-h100"):
        rec = by_id[rid]
        est = vram.estimate(vram.record_config(rec))
        assert abs(est.peak_mib - rec["peak_mib"]) / rec["peak_mib"] < 0.03, rid


def test_fix_plan_is_ranked_by_time_cost() -> None:
    """With a time model the cheapest change in seconds per step comes first: caching the
    text-encoder outputs (no cost) before checkpointing (a recomputed forward)."""
    from lorac.trainers import steptime

    card = steptime.load_cards()[steptime.REFERENCE]
    k = vram.load_time_constants()

    def cost(c: vram.RunConfig) -> float:
        return steptime.step_seconds(vram.time_run(c), card, k)

    cfg = BASE.changed(width=512, height=512, optimizer="adamw", fp8_base=False,
                       gradient_checkpointing=False, cache_te=False)
    plan = vram.fixes(cfg, vram.card_mib("24GB"), margin=1.1, cost=cost)
    names = [f.change.split(" ")[0] for f in plan]
    assert names.index("cache_text_encoder_outputs") < names.index("gradient_checkpointing")
    assert plan[-1].peak_mib * 1.1 <= vram.card_mib("24GB")
    gc = next(f for f in plan if f.change.startswith("gradient_checkpointing"))
    assert gc.time_cost_pct is not None and gc.time_cost_pct > 5
    costs = [f.sec_per_step for f in plan]
    assert all(c is not None for c in costs)


def test_committed_model_file_is_the_fit_of_the_committed_records() -> None:
    """backends/kohya/vram_model.json is generated (bench/vram_accuracy.py --write): its
    constants, interval and step-time constants must be what the records give today."""
    import importlib.util
    from pathlib import Path

    from lorac.trainers import estimates, steptime

    path = Path(__file__).resolve().parent.parent / "bench" / "vram_accuracy.py"
    spec = importlib.util.spec_from_file_location("bench_vram_fresh", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    records = [r for r in vram.load_measurements()
               if r.get("family", "flux1-dev") in vram.FLUX_FAMILIES]
    fit_recs = [r for r in records if r.get("split") == "fit" and r.get("weight") == "full"]
    assert vram.fit(fit_recs) == vram.load_constants()
    loo = bench.loo_errors(fit_recs, verbose=False)
    iv = estimates.interval_from_errors([e / 100 for e in loo], scope="kohya/flux1")
    assert iv == vram.load_interval("flux1-dev")
    pts = [p for p in bench.time_points(vram.load_measurements())
           if p[0].get("split") in ("fit", "check")]
    assert steptime.fit([(run, acc, sec) for _, run, acc, sec in pts]) == \
        vram.load_time_constants()
