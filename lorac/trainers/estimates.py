"""What every trainer's memory (and time) model shares: error intervals and the three verdicts.

A prediction is a point (MiB) and an :class:`Interval`: the range the measured peak falls in,
given the model's own measured error for that kind of configuration (leave-one-out residuals of
the calibration runs of one trainer and family, written by ``bench/vram_accuracy.py --write``),
or, where no run of that trainer and family was measured, a wide interval labelled as a
first-principles estimate. :func:`verdict` turns a point, its interval and a card's usable memory
into one of three words: ``fits`` (even the top of the interval fits), ``does not fit`` (even its
bottom does not), or ``tight`` (the interval straddles the usable memory).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "FIRST_PRINCIPLES",
    "FITS",
    "NO_FIT",
    "TIGHT",
    "VERDICTS",
    "Interval",
    "interval_from_errors",
    "verdict",
    "verdict_right",
]

FITS, TIGHT, NO_FIT = "fits", "tight", "does not fit"
VERDICTS = (FITS, TIGHT, NO_FIT)
#: ``tight`` is the right verdict when the measured peak is within this share of usable memory.
TIGHT_BAND = 0.05


@dataclass(frozen=True)
class Interval:
    """Where the measured value falls, as factors on the prediction: ``low * p .. high * p``.

    ``basis`` says where it comes from (``leave-one-out``, ``few measured runs``,
    ``first-principles estimate``), ``n`` how many measured runs informed it, ``scope`` the
    trainer and family it was measured for.
    """

    low: float
    high: float
    n: int
    basis: str
    scope: str = ""

    def bounds(self, value: float) -> tuple[float, float]:
        return value * self.low, value * self.high

    @property
    def estimate_only(self) -> bool:
        return self.n == 0

    def label(self) -> str:
        pct = f"{(self.low - 1) * 100:+.0f} %/{(self.high - 1) * 100:+.0f} %"
        if self.estimate_only:
            return f"first-principles estimate, no measured run: {pct}"
        return f"{pct} from {self.n} measured run(s), {self.basis}" + (
            f" ({self.scope})" if self.scope else "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Interval:
        return cls(float(data["low"]), float(data["high"]), int(data.get("n", 0)),
                   str(data.get("basis", "")), str(data.get("scope", "")))


#: The interval of a trainer/family with no measured run: the first-principles terms miss
#: allocator slack, workspaces and placement details that measured families show to be worth
#: -20 % .. +40 % of the total before any constant is fitted.
FIRST_PRINCIPLES = Interval(0.8, 1.4, 0, "first-principles estimate")


def interval_from_errors(errors: Sequence[float], *, scope: str = "", pad: float = 0.005,
                         few: int = 8, floor: float = 0.05) -> Interval:
    """The interval of a model whose held-out (leave-one-out) relative errors are ``errors``
    (``(predicted - measured) / measured``).

    A prediction ``p`` with error ``e`` means a measured ``p / (1 + e)``: the interval runs from
    the largest over-prediction to the largest under-prediction, widened by ``pad`` on each
    side. With fewer than ``few`` runs it is at least ``floor`` wide on each side and says so.
    """
    if not errors:
        return Interval(FIRST_PRINCIPLES.low, FIRST_PRINCIPLES.high, 0,
                        FIRST_PRINCIPLES.basis, scope)
    low = 1 / (1 + max(errors)) - pad
    high = 1 / (1 + min(errors)) + pad
    basis = "leave-one-out"
    if len(errors) < few:
        low, high = min(low, 1 - floor), max(high, 1 + floor)
        basis = "leave-one-out, few measured runs"
    return Interval(round(min(low, 1.0), 4), round(max(high, 1.0), 4), len(errors), basis,
                    scope)


def verdict(value: float, interval: Interval, usable: float) -> str:
    """``fits`` / ``tight`` / ``does not fit`` for a predicted peak ``value`` on a card with
    ``usable`` MiB."""
    lo, hi = interval.bounds(value)
    if hi <= usable:
        return FITS
    if lo > usable:
        return NO_FIT
    return TIGHT


def verdict_right(word: str, measured: float, usable: float, band: float = TIGHT_BAND) -> bool:
    """Whether ``word`` was right for a run that measured ``measured`` MiB: ``tight`` is right
    when the measured peak is within ``band`` of the usable memory."""
    if word == TIGHT:
        return abs(measured - usable) <= band * usable
    if word == FITS:
        return measured <= usable
    return measured > usable
