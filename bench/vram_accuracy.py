"""Accuracy of the VRAM model (lorac/vram.py) against the calibration records.

    python bench/vram_accuracy.py            # fit on the 'fit' records, judge the 'holdout' ones
    python bench/vram_accuracy.py --write    # also write the fitted constants to
                                             # backends/kohya/vram_model.json
    python bench/vram_accuracy.py --loo      # add leave-one-record-out errors on the fit records

Prints per record and phase the predicted and measured MiB, the error distribution, the fit
verdicts for 24 / 48 / 80 GB cards (measured run peak vs predicted run peak), and whether the
issue's target holds: predicted peak within ±10 % on at least 90 % of the held-back records and
every verdict right. Weak records (too few steps) are judged but never fitted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lorac import vram


def _peak(rec: dict, est: vram.Estimate) -> tuple[float, float]:
    """(measured run peak, predicted peak over the same phases)."""
    measured = rec["phases_mib"]
    return max(measured.values()), max(est.phases[p] for p in measured if p in est.phases)


def report(fit_recs: list[dict], test_recs: list[dict], k: vram.Constants, title: str) -> dict:
    print(f"\n== {title}: {len(test_recs)} record(s)")
    print(f"{'record':<18}{'phase':<20}{'measured':>10}{'predicted':>11}{'error':>9}")
    errs: list[float] = []
    peak_errs: list[float] = []
    verdicts_ok = 0
    verdicts = 0
    for rec in test_recs:
        est = vram.estimate(vram.record_config(rec), k)
        for phase, mib in rec["phases_mib"].items():
            if phase not in est.phases:
                continue
            pred = est.phases[phase]
            err = (pred - mib) / mib * 100
            errs.append(err)
            print(f"{rec['id']:<18}{phase:<20}{mib:>10.1f}{pred:>11.1f}{err:>+8.1f}%")
        m, p = _peak(rec, est)
        peak_errs.append((p - m) / m * 100)
        for card in vram.STANDARD_CARDS:
            cap = vram.card_mib(card) or 0
            verdicts += 1
            verdicts_ok += (m <= cap) == (p <= cap)
    out = {"records": len(test_recs), "phase_errors": errs, "peak_errors": peak_errs,
           "verdicts": verdicts, "verdicts_right": verdicts_ok}
    if errs:
        a = sorted(abs(e) for e in errs)
        print(f"phase |error| %: median {statistics.median(a):.1f}, max {a[-1]:.1f}, "
              f"within 10 %: {sum(x <= 10 for x in a)}/{len(a)}")
    if peak_errs:
        within = sum(abs(e) <= 10 for e in peak_errs)
        print(f"run peak: within ±10 % on {within}/{len(peak_errs)}; verdicts right "
              f"{verdicts_ok}/{verdicts} (cards {', '.join(vram.STANDARD_CARDS)})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--measurements", type=Path, default=vram.measurements_path())
    ap.add_argument("--write", action="store_true", help="write backends/kohya/vram_model.json")
    ap.add_argument("--loo", action="store_true", help="leave-one-record-out on the fit records")
    args = ap.parse_args(argv)

    records = vram.load_measurements(args.measurements)
    fit_recs = [r for r in records if r.get("split") == "fit" and r.get("weight") != "weak"]
    hold = [r for r in records if r not in fit_recs]
    k = vram.fit(fit_recs)
    status = vram.fitted_terms(k, fit_recs)
    print(f"{len(records)} record(s): {len(fit_recs)} fit, {len(hold)} held back "
          f"({sum(r.get('weight') == 'weak' for r in records)} weak)")
    print("constants:")
    for name, value in k.as_dict().items():
        print(f"  {name:<22}{value:>12.4g}  {status[name]}")
    report(fit_recs, fit_recs, k, "in-sample (the records the constants were fitted on)")
    if args.loo and len(fit_recs) > 1:
        loo_errs = []
        for rec in fit_recs:
            kk = vram.fit([r for r in fit_recs if r is not rec])
            m, p = _peak(rec, vram.estimate(vram.record_config(rec), kk))
            loo_errs.append((p - m) / m * 100)
            print(f"  leave out {rec['id']:<18} peak error {loo_errs[-1]:+.1f}%")
    res = report(fit_recs, hold, k, "held back")
    n = res["records"]
    within = sum(abs(e) <= 10 for e in res["peak_errors"])
    ok = n >= 10 and within >= 0.9 * n and res["verdicts_right"] == res["verdicts"]
    print("\ntarget (±10 % on ≥ 90 % of held-back peaks, every 24/48/80 GB verdict right, "
          "judged on ≥ 10 held-back records): "
          + ("MET" if ok else f"NOT MET ({n} held-back record(s), {within} within ±10 %, "
                               f"{res['verdicts_right']}/{res['verdicts']} verdicts right)"))
    if args.write:
        out = {"schema_version": 1,
               "description": "Fitted constants of lorac/vram.py (bench/vram_accuracy.py "
                              "--write); 'status' says which the data determined.",
               "fitted_at": dt.date.today().isoformat(),
               "fitted_on": [r["id"] for r in fit_recs],
               "constants": k.as_dict(), "status": status}
        vram.model_path().write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {vram.model_path()}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
