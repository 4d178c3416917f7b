"""``lorac vram PROFILE``: predicted GPU memory per phase, fit verdicts per card, and fixes.

:func:`vram_report` is the plain function (options in, exit code out); :data:`vram_cmd` is the
click command the CLI registers. The numbers come from the model of the profile's trainer and
family (:mod:`lorac.trainers.memory_models`, which LRC401/LRC402 share); ``--format json``
prints ``peak_mib``, ``phases``, ``fits`` and the rest, with ``interval`` (the range the
measured peak is expected in, from the model's measured error for that trainer and family) and
a verdict per card: ``fits``, ``tight`` (the interval straddles the card's memory) or ``does not
fit``. Exit code 0 when the profile fits every card asked about (24, 48 and 80 GB by default,
and the ``--gpu`` cards), 1 when one is tight or does not fit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import click

from lorac.core.diagnostics import ExitCode, LoracError


@dataclass(frozen=True)
class VramOptions:
    profile: str
    gpus: tuple[str, ...] = ()
    fmt: str = "text"


def cards_for(profile: Any, extra: tuple[str, ...]) -> list[tuple[str, float]]:
    """The standard cards, the profile's ``[profile] gpu`` targets and ``extra``, with MiB."""
    from lorac.trainers.kohya import vram

    names = list(vram.STANDARD_CARDS) + list(profile.gpus) + list(extra)
    out: list[tuple[str, float]] = []
    for n in names:
        mib = vram.card_mib(n)
        if mib is None:
            raise LoracError(f"unknown card {n!r} (use e.g. 24GB, 16 GiB or one of: "
                             f"{', '.join(k for k in vram.CARDS if not k[0].isdigit())})")
        if n not in [c for c, _ in out]:
            out.append((n, mib))
    return out


def predict(profile: Any) -> Any:
    """The memory model of the profile's trainer and family
    (:func:`lorac.trainers.memory_models.model_for`, the one LRC401/LRC402 use; a profile
    without a family is taken as FLUX.1-dev), or an input error where none applies."""
    from lorac.trainers import memory_models

    family = profile.family or "flux1-dev"
    model = memory_models.model_for(profile, family)
    if model is None:
        raise LoracError(memory_models.not_modelled(profile.backend, family))
    return model


def schedule(profile: Any) -> dict[str, int]:
    """Steps, micro-steps per step, images, sample images and saves of the profile's run
    (what is unset or unknowable is taken at a stated default)."""
    from lorac.trainers.lora_memory import _int, profile_options

    o = profile_options(profile)
    steps = _int(o.get("max_train_steps"), 0)
    images = 0
    ds = profile.get("dataset", default={}) or {}
    subsets = list(ds.get("subsets") or []) if isinstance(ds, dict) else []
    for d in (ds.get("datasets") or []) if isinstance(ds, dict) else []:
        subsets += list(d.get("subsets") or []) + [d]
    from pathlib import Path

    for sub in subsets:
        folder = sub.get("image_dir") or sub.get("image_directory") if isinstance(sub, dict) \
            else None
        if folder and Path(str(folder)).is_dir():
            found = [f for f in Path(str(folder)).iterdir()
                     if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")]
            images += len(found) * max(1, _int(sub.get("num_repeats"), 1))
    batch = max(1, _int(ds.get("batch_size", 1) if isinstance(ds, dict) else 1, 1))
    if not steps:
        epochs = _int(o.get("max_train_epochs"), 0)
        steps = epochs * max(1, images // batch) if epochs and images else 1600
    every = _int(o.get("sample_every_n_steps"), 0)
    prompts = 1
    sp = o.get("sample_prompts")
    if sp and Path(str(sp)).is_file():
        prompts = max(1, sum(1 for line in Path(str(sp)).read_text(errors="replace")
                             .splitlines() if line.strip() and not line.startswith("#")))
    save_every = _int(o.get("save_every_n_steps"), 0)
    return {"steps": steps, "accumulation": max(1, _int(o.get("gradient_accumulation_steps"), 1)),
            "images": images or 20, "samples": (steps // every) * prompts if every else 0,
            "saves": (steps // save_every if save_every else 0) + 1}


def time_lines(profile: Any, model: Any, names: tuple[str, ...]) -> list[Any]:
    """The run's time on the reference card (measured basis) and each named card the time
    table knows."""
    from lorac.trainers import steptime
    from lorac.trainers.kohya import vram

    if model.run is None:
        return []
    k = vram.load_time_constants()
    sch = schedule(profile)
    cards = [steptime.load_cards()[steptime.REFERENCE]]
    for n in (*profile.gpus, *names):
        c = steptime.find_card(n)
        if c and c not in cards:
            cards.append(c)
    return [steptime.run_seconds(model.run, c, steps=sch["steps"], images=sch["images"],
                                 samples=sch["samples"], saves=sch["saves"],
                                 accumulation=sch["accumulation"], k=k,
                                 hash_checkpoint=model.hash_checkpoint) for c in cards]


def vram_report(opts: VramOptions, io: Any) -> int:
    """Print the memory breakdown, the verdict per card and the fixes for misfits."""
    from lorac.config.trainer_values import for_trainer
    from lorac.lint.driver import load_profile

    loaded = load_profile(opts.profile)
    profile = for_trainer(loaded, loaded.backend)  # the steps and saves its trainer gets
    model = predict(profile)
    est = model.est
    cards = cards_for(profile, opts.gpus)
    verdicts = {name: est.verdict(mib) for name, mib in cards}
    fits = {name: v == "fits" for name, v in verdicts.items()}
    lo, hi = est.bounds
    plans = {name: model.plan(mib, est.interval.high) for name, mib in cards if not fits[name]}
    times = time_lines(profile, model, opts.gpus)
    if opts.fmt == "json":
        doc = est.to_json()
        doc.update({
            "profile": profile.name,
            "fits": fits,
            "verdicts": verdicts,
            "cards": {name: {"mib": mib, "headroom_mib": round(mib - est.peak_mib, 1),
                             "verdict": verdicts[name]}
                      for name, mib in cards},
            "fixes": {name: [asdict(f) for f in plan] for name, plan in plans.items()},
            "constants": model.constants,
            "time": [t.to_json() for t in times],
        })
        io.out.write(json.dumps(doc, indent=2) + "\n")
        return int(ExitCode.OK if all(fits.values()) else ExitCode.FINDINGS)
    w = io.out.write
    w(f"{profile.name}: {model.header}\n\n")
    w("phase peaks (MiB, as nvidia-smi reports them):\n")
    for phase, mib in est.phases.items():
        mark = "  <- peak" if phase == est.peak_phase else ""
        w(f"  {phase:<20}{mib:>10.0f}{mark}\n")
    w("\ntraining step:\n")
    for item in est.breakdown["train"]:
        detail = f"  ({item.detail})" if item.detail else ""
        w(f"  {item.name:<44}{item.mib:>10.0f}{detail}\n")
    w(f"\npeak {est.peak_mib:,.0f} MiB, expected within {lo:,.0f} .. {hi:,.0f} MiB "
      f"({est.interval.label()})\n")
    w(f"host RAM: about {est.host_ram_mib / 1024:.0f} GiB\n")
    for note in est.notes:
        w(f"note: {note}\n")
    w("\n")
    for name, mib in cards:
        head = mib - est.peak_mib
        if fits[name]:
            w(f"{name:<10} fits     (headroom {head:,.0f} MiB of {mib:,.0f}, "
              f"{mib - hi:,.0f} at the top of the interval)\n")
            continue
        if verdicts[name] == "tight":
            w(f"{name:<10} TIGHT: {est.peak_phase} needs {est.peak_mib:,.0f} MiB of {mib:,.0f}, "
              f"and the model's error spans {lo:,.0f} .. {hi:,.0f}\n")
        else:
            w(f"{name:<10} DOES NOT FIT: {est.peak_phase} needs {est.peak_mib:,.0f} MiB of "
              f"{mib:,.0f} (at least {lo:,.0f} with the model's error)\n")
        for f in plans[name]:
            ok = "fits" if est.interval.high * f.peak_mib <= mib else "still too large"
            tc = "" if f.time_cost_pct is None else f", step time {f.time_cost_pct:+.0f} %"
            w(f"    + {f.change:<44} peak {f.peak_mib:,.0f} MiB ({f.phase}; {ok}{tc})\n")
    if times:
        from lorac.trainers.steptime import format_duration as fd

        t0 = times[0]
        w(f"\ntime ({t0.steps} steps; start-up, caching, steps, sampling, saves):\n")
        for t in times:
            label = ("measured basis: H100/H200 step times" if t.basis == "measured" else
                     "estimate: scaled from the card's bf16 throughput and bandwidth")
            w(f"  {t.card:<12}{t.sec_per_step:>7.2f} s/step  whole run {fd(t.total_s):>12}  "
              f"({fd(t.startup_s)} + {fd(t.caching_s)} + {fd(t.training_s)} + "
              f"{fd(t.sampling_s)} + {fd(t.saving_s)}; {label})\n")
    return int(ExitCode.OK if all(fits.values()) else ExitCode.FINDINGS)


@click.command("vram")
@click.argument("profile")
@click.option("--gpu", "gpus", multiple=True,
              help="Also judge this card: 24GB, 16 GiB, RTX 4090, ... (repeatable).")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def vram_cmd(profile: str, gpus: tuple[str, ...], fmt: str) -> None:
    """Predict the GPU memory PROFILE needs, per phase, and which cards it fits."""
    import sys

    from lorac.core.console import Io

    sys.exit(vram_report(VramOptions(profile, gpus, fmt), Io()))
