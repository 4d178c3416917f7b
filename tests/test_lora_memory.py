"""First-principles memory of the families beyond kohya FLUX.1 (lorac/trainers/lora_memory.py)
and the trainers' placement of them."""

from __future__ import annotations

import json

import pytest

from lorac.trainers import lora_memory as lm
from lorac.trainers.estimates import Interval
from tests.conftest import lorac


def test_flux_counts_equal_the_synthetic_checkpoint() -> None:
    from lorac.trainers.kohya import vram

    sh = vram.shapes()
    a = lm.ARCHS["flux1"]
    assert a.denoiser == sh.dit_total and a.vec_fed == sh.dit_vec_fed
    assert dict(a.text_encoders) == {"CLIP-L": sh.clip_total, "T5-XXL": sh.t5_total}
    assert a.lora_per_rank == vram.lora_params(vram.RunConfig(rank=1, train_clip_l=False))


def test_wan_lora_modules_equal_musubis_choice() -> None:
    from lorac.trainers.musubi.synth import component_shapes, wan_lora_modules

    shapes = component_shapes("wan2.1-t2v-1.3b")["dit"]
    names = wan_lora_modules("wan2.1-t2v-1.3b")
    per_rank = sum(sum(shapes[f"{n}.weight"]) for n in names)
    assert lm.ARCHS["wan2.1-t2v-1.3b"].lora_per_rank == per_rank
    assert lm.ARCHS["wan2.1-t2v-1.3b"].denoiser == sum(
        __import__("math").prod(s) for s in shapes.values())


def test_sdxl_lora_size_matches_a_known_file() -> None:
    # a rank-32 UNet-only SDXL LoRA of networks.lora holds ~85 M parameters (~170 MB in fp16)
    assert 80e6 < lm.ARCHS["sdxl"].lora_per_rank * 32 < 90e6


@pytest.mark.parametrize("family", sorted(lm.ARCHS))
def test_every_family_grows_with_resolution_and_checkpointing_helps(family: str) -> None:
    run = lm.LoraRun("x", family, width=512, height=512)
    small, big = lm.estimate(run), lm.estimate(run.changed(width=1024, height=1024))
    assert big.phases["train"] > small.phases["train"]
    nogc = lm.estimate(run.changed(width=1024, height=1024, gradient_checkpointing=False))
    assert nogc.phases["train"] > big.phases["train"]
    assert big.interval.estimate_only and "first-principles" in big.notes[0]


def test_wan_video_needs_more_than_an_image() -> None:
    run = lm.LoraRun("musubi", "wan2.1-t2v-1.3b", width=832, height=480)
    assert lm.estimate(run.changed(frames=17)).phases["train"] > lm.estimate(run).phases["train"]
    assert lm.ARCHS["wan2.1-t2v-1.3b"].latent_frames(17) == 5


def test_musubi_wan_is_calibrated_and_says_so() -> None:
    from lorac.trainers.musubi import vram as mvram

    recs = mvram.load_measurements()
    assert {r["id"] for r in recs} >= {"wan13-image", "wan13-video17"}
    for rec in recs:
        est = mvram.estimate(mvram.run_from_record(rec))
        for phase, mib in rec["phases_mib"].items():
            assert abs(est.phases[phase] - mib) / mib < 0.03, (rec["id"], phase)
        fitted = [r for r in recs if r["family"] == rec["family"] and r["split"] == "fit"]
        assert est.interval.n == len(fitted) and not est.interval.estimate_only
    other = mvram.estimate(lm.LoraRun("musubi", "wan2.1-t2v-14b"))
    assert other.interval.estimate_only


def test_fix_plan_reaches_the_card() -> None:
    run = lm.LoraRun("kohya", "sdxl", gradient_checkpointing=False, optimizer="adamw",
                     batch_size=4, te_on_gpu_in_training=True)
    plan = lm.fixes(run, 12288, margin=1.4)
    assert plan and plan[-1].peak_mib * 1.4 <= 12288
    assert lm.fixes(run, 200_000) == []


@pytest.mark.parametrize("example", [
    "profiles/examples/musubi/wan2.1-t2v-1.3b.toml", "profiles/examples/musubi/qwen-image.toml",
    "profiles/examples/ai-toolkit/common.toml"])
def test_lorac_vram_covers_the_other_trainers(example: str, monkeypatch) -> None:
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    code, out, err = lorac("vram", example, "--format", "json")
    assert code in (0, 1), err
    doc = json.loads(out)
    assert set(doc["verdicts"].values()) <= {"fits", "tight", "does not fit"}
    assert doc["interval"]["low_mib"] < doc["peak_mib"] < doc["interval"]["high_mib"]


def test_lorac_vram_says_which_kohya_family_is_measured(project) -> None:
    """SDXL and SD3 are calibrated on measured runs and say so (their interval is widened to
    kohya's other families while they have few runs); the variant SD3 is taken as is named."""
    (project / "profiles").mkdir(exist_ok=True)
    body = ('[network]\nnetwork_dim = 16\n[training]\n'
            'gradient_checkpointing = true\ncache_latents = true\n'
            'cache_text_encoder_outputs = true\nnetwork_train_unet_only = true\n'
            '[dataset]\nresolution = 1024\n')
    (project / "profiles" / "x.toml").write_text('[profile]\nfamily = "sdxl"\n' + body)
    (project / "profiles" / "y.toml").write_text('[profile]\nfamily = "sd3"\n' + body)
    code, out, err = lorac("vram", "x")
    assert code in (0, 1), err
    assert "sdxl (kohya)" in out and "first-principles" not in out
    assert "measured run(s), leave-one-out" in out
    code, out, err = lorac("vram", "y")
    assert code in (0, 1), err
    assert "sd3.5-large (kohya)" in out and "first-principles" not in out
    assert "widened to the trainer's other families" in out


def test_committed_musubi_model_is_the_fit_of_its_records() -> None:
    """backends/musubi/vram_model.json is generated (bench/vram_accuracy.py --write)."""
    from lorac.trainers.musubi import vram as mvram

    for arch, family in (("wan", "wan2.1-t2v-1.3b"), ("qwen-image", "qwen-image")):
        recs = [r for r in mvram.load_measurements() if r["split"] == "fit"
                and mvram.CALIBRATED_BY[r["family"]] == arch]
        obs = [(mvram.run_from_record(r), ph, float(v)) for r in recs
               for ph, v in r["phases_mib"].items()]
        assert recs and lm.fit(obs) == mvram.calibration(family)[0], arch


def test_kohya_sdxl_host_memory_is_float32_models_beside_the_checkpoint() -> None:
    """sd-scripts builds SDXL's UNet and text encoders in float32 on the host from the fp16
    checkpoint it keeps mapped (measured on an H100 host before the loader forks: 21.7-23.8
    GB); with full_bf16 it builds them in bf16."""
    from lorac.trainers.kohya import vram_families as vf

    opts = {"network_dim": 16, "mixed_precision": "bf16", "cache_latents": True,
            "cache_text_encoder_outputs": True, "network_train_unet_only": True}
    run = vf.run_from_options(opts, "sdxl", (1024, 1024, 1, 1))
    a = run.arch
    params = a.denoiser + sum(n for _, n in a.text_encoders) + a.vae
    host = lm.host_ram_mib(run)
    assert host == pytest.approx(params * 6 / 2**20 + 3072)
    assert 21_000 <= host <= 24_500
    half = lm.host_ram_mib(vf.run_from_options({**opts, "full_bf16": True}, "sdxl",
                                               (1024, 1024, 1, 1)))
    assert half == pytest.approx(params * 4 / 2**20 + 3072)


def test_ai_toolkit_fitted_constants_and_interval_are_used(monkeypatch) -> None:
    """A fitted ai-toolkit architecture (backends/ai-toolkit/vram_model.json, written by
    bench/vram_accuracy.py --write) gives its constants to every family of it, and its
    measured interval only to the families that were measured."""
    from lorac.trainers.ai_toolkit import vram as avram

    run = avram.run_from_options({"network_dim": 16, "fp8_base": True}, {}, {},
                                 (1024, 1024, 1, 1), family="flux1-dev")
    monkeypatch.setattr(avram, "_model", lambda: {})
    prior = avram.estimate(run, "flux1-dev")
    assert prior.interval.estimate_only
    fitted = {"constants": {"train_mib": 3000.0, "act_scale_gc": 2.0},
              "intervals": {"flux1-dev": {"low": 0.95, "high": 1.06, "n": 7,
                                          "basis": "leave-one-out", "scope": "ai-toolkit/flux1"}}}
    monkeypatch.setattr(avram, "_model", lambda: {"architectures": {"flux1": fitted}})
    dev = avram.estimate(run, "flux1-dev")
    assert not dev.interval.estimate_only and dev.interval.n == 7
    assert dev.phases["train"] > prior.phases["train"]
    schnell = avram.estimate(run, "flux1-schnell")
    assert schnell.interval.estimate_only and schnell.phases == dev.phases


def test_a_peak_on_an_untested_constant_gets_the_first_principles_interval() -> None:
    """Where no leave-one-out peak rested on a constant (``tested``), a prediction whose peak
    phase depends on it is a first-principles estimate and names the constant; the measured
    interval stays for a prediction whose peak rests on tested constants only."""
    measured = Interval(0.95, 1.05, 6, "leave-one-out", "musubi/wan")
    run = lm.LoraRun("musubi", "wan2.1-t2v-1.3b", width=832, height=480,
                     gradient_checkpointing=False, batch_size=8, frames=81)
    est = lm.estimate(run, None, measured, {"act_scale_gc": 4, "train_mib": 6})
    assert est.peak_phase == "train"
    assert est.interval.estimate_only and est.interval.scope == "musubi/wan"
    assert "act_scale_nogc" in est.notes[0]
    tested = lm.estimate(run, None, measured, {"act_scale_nogc": 2, "train_mib": 6})
    assert tested.interval == measured
    assert lm.estimate(run, None, measured).interval == measured  # no record of tests: as given


def test_committed_ai_toolkit_model_is_the_fit_of_its_records() -> None:
    """backends/ai-toolkit/vram_model.json is generated (bench/vram_accuracy.py --write) from
    the FLUX.1 plan's fit records, with the load phase of runs that shared the GPU."""
    from lorac.trainers.ai_toolkit import vram as avram

    recs = [r for r in avram.load_measurements()
            if r["split"] == "fit" and avram.FAMILIES.get(r["family"]) == "flux1"]
    assert len(recs) >= 6 and all("load" in r["phases_mib"] for r in recs)
    obs = [(avram.run_from_record(r), ph, float(v)) for r in recs
           for ph, v in r["phases_mib"].items()]
    k, iv = avram.calibration("flux1", "flux1-dev")
    assert lm.fit(obs) == k and iv is not None and iv.n >= 5


def test_ai_toolkit_host_memory_follows_where_it_quantises() -> None:
    """ai-toolkit's host peak (Pss of runs that shared an H100 host: lower bounds) was 12-18 GB
    quantised on the GPU, 34.2 GB with nothing quantised and 46.4 GB with low_vram; each
    prediction is at or above its measured lower bound."""
    from lorac.trainers.ai_toolkit import vram as avram

    by_id = {r["id"]: r for r in avram.load_measurements()}
    for rid in ("aitk-flux-bf16-r16-512", "aitk-flux-q8-lowvram-r64", "aitk-flux-q8-r64-1024"):
        rec = by_id[rid]
        assert lm.host_ram_mib(avram.run_from_record(rec)) >= rec["host_rss_peak_mib"], rid
    base = {"network_dim": 16}
    on_gpu = avram.run_from_options(base, {"quantize": True}, {}, (1024, 1024, 1, 1))
    bf16 = avram.run_from_options(base, {"quantize": False}, {}, (1024, 1024, 1, 1))
    host_q = avram.run_from_options(base, {"quantize": True, "low_vram": True}, {},
                                    (1024, 1024, 1, 1))
    assert lm.host_ram_mib(on_gpu) < lm.host_ram_mib(bf16) < lm.host_ram_mib(host_q)


def test_an_untested_peak_says_why_it_is_an_estimate() -> None:
    """The label of a peak resting on an untested constant names the phase, not 'no measured
    run' (there were measured runs of the family)."""
    measured = Interval(0.95, 1.05, 6, "leave-one-out", "musubi/wan")
    run = lm.LoraRun("musubi", "wan2.1-t2v-1.3b", width=832, height=480,
                     gradient_checkpointing=False, batch_size=8, frames=81)
    label = lm.estimate(run, None, measured, {"train_mib": 6}).interval.label()
    assert label.startswith("first-principles estimate, its train peak untested")
    assert "no measured run" in lm.estimate(run).interval.label()
