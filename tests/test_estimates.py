"""Error intervals and the three verdicts (lorac/trainers/estimates.py)."""

from __future__ import annotations

import pytest

from lorac.trainers import estimates as e


def test_verdict_words() -> None:
    iv = e.Interval(0.95, 1.05, 20, "leave-one-out")
    assert e.verdict(20_000, iv, 24_564) == "fits"
    assert e.verdict(24_000, iv, 24_564) == "tight"  # 22,800 .. 25,200 straddles the card
    assert e.verdict(26_000, iv, 24_564) == "does not fit"


def test_interval_from_errors_covers_every_residual() -> None:
    errs = [-0.10, -0.02, 0.0, 0.03, 0.04, 0.01, -0.01, 0.02, 0.0]
    iv = e.interval_from_errors(errs, scope="x")
    for err in errs:
        measured = 1 / (1 + err)  # a prediction of 1.0 with that error
        assert iv.low <= measured <= iv.high
    assert iv.n == len(errs) and iv.basis == "leave-one-out"


def test_few_runs_get_a_floor_and_none_a_first_principles_interval() -> None:
    iv = e.interval_from_errors([0.001, -0.002], scope="musubi/wan")
    assert iv.low <= 0.95 and iv.high >= 1.05 and "few" in iv.basis
    none = e.interval_from_errors([], scope="kohya/sdxl")
    assert none.estimate_only and "first-principles" in none.label()
    assert none.high - none.low >= 0.5


@pytest.mark.parametrize(("word", "measured", "right"), [
    ("tight", 24_000, True), ("tight", 20_000, False), ("fits", 24_000, True),
    ("fits", 25_000, False), ("does not fit", 25_000, True), ("does not fit", 23_000, False)])
def test_verdict_right(word: str, measured: float, right: bool) -> None:
    assert e.verdict_right(word, measured, 24_564) is right


def test_a_family_with_few_runs_is_at_least_as_wide_as_its_trainers_others() -> None:
    """Nine runs' range understates the next run's error (kohya SDXL: 2 of 6 held-back runs
    fell outside it); below 20 runs the interval takes the trainer's other families' errors
    in, and says so."""
    from lorac.trainers.estimates import interval_from_errors

    own = [0.01, -0.02, 0.03, -0.01, 0.02, 0.0, -0.03, 0.01, 0.02]
    alone = interval_from_errors(own, scope="kohya/sdxl")
    assert alone.high < 1.04 and "widened" not in alone.basis
    wide = interval_from_errors(own, scope="kohya/sdxl", pooled=[0.05, -0.085])
    assert wide.high == pytest.approx(1 / (1 - 0.085) + 0.005, abs=1e-4)
    assert wide.low == pytest.approx(1 / 1.05 - 0.005, abs=1e-4)
    assert "widened" in wide.basis and wide.n == len(own)
    many = interval_from_errors(own * 3, scope="kohya/flux1", pooled=[0.05, -0.085])
    assert many.high < 1.04  # 27 runs speak for themselves
