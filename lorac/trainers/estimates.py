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
    "Item",
    "PhasePeaks",
    "interval_from_errors",
    "option_int",
    "truthy",
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
            why = "no measured run" if self.basis == FIRST_PRINCIPLES_BASIS else self.basis
            return f"first-principles estimate, {why}: {pct}"
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
FIRST_PRINCIPLES_BASIS = "first-principles estimate"
FIRST_PRINCIPLES = Interval(0.8, 1.4, 0, FIRST_PRINCIPLES_BASIS)


def interval_from_errors(errors: Sequence[float], *, scope: str = "", pad: float = 0.005,
                         few: int = 8, floor: float = 0.05,
                         pooled: Sequence[float] = (), pool_below: int = 20) -> Interval:
    """The interval of a model whose held-out (leave-one-out) relative errors are ``errors``
    (``(predicted - measured) / measured``).

    A prediction ``p`` with error ``e`` means a measured ``p / (1 + e)``: the interval runs from
    the largest over-prediction to the largest under-prediction, widened by ``pad`` on each
    side. With fewer than ``few`` runs it is at least ``floor`` wide on each side and says so.
    With fewer than ``pool_below`` runs it is also at least as wide as the interval of
    ``pooled``, the leave-one-out errors of the same trainer's other families: the range of a
    few runs understates the error of the next one (measured: kohya SDXL's 9 runs gave
    -4.8 %/+3.4 %, and 2 of 6 held-back runs fell outside it).
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
    if len(errors) < pool_below and pooled:
        low = min(low, 1 / (1 + max(pooled)) - pad)
        high = max(high, 1 / (1 + min(pooled)) + pad)
        basis += f", widened to the trainer's other families ({len(pooled)} runs)"
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


@dataclass(frozen=True)
class Item:
    """One line of a breakdown: its MiB under the constants used, and how it was counted."""

    name: str
    mib: float
    detail: str = ""


class PhasePeaks:
    """What every trainer's prediction answers from its ``phases`` (peak MiB per phase),
    ``breakdown`` (:class:`Item` lists per phase), ``host_ram_mib``, ``interval`` and
    ``notes``: the peak, its phase and bounds, the verdict on a card, and the JSON form, where
    :meth:`config_json` gives the configuration the prediction was made for."""

    phases: dict[str, float]
    breakdown: dict[str, list[Item]]
    host_ram_mib: float
    interval: Interval
    notes: list[str]

    @property
    def peak_mib(self) -> float:
        return max(self.phases.values())

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=lambda p: self.phases[p])

    @property
    def bounds(self) -> tuple[float, float]:
        """The range the measured whole-run peak is expected in (MiB)."""
        return self.interval.bounds(self.peak_mib)

    def verdict(self, usable_mib: float) -> str:
        """``fits`` / ``tight`` / ``does not fit`` on a card with ``usable_mib``."""
        return verdict(self.peak_mib, self.interval, usable_mib)

    def config_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        lo, hi = self.bounds
        return {
            "peak_mib": round(self.peak_mib, 1), "peak_phase": self.peak_phase,
            "interval": {"low_mib": round(lo, 1), "high_mib": round(hi, 1),
                         **self.interval.to_json(), "label": self.interval.label()},
            "phases": {k: round(v, 1) for k, v in self.phases.items()},
            "breakdown": {ph: [{"name": i.name, "mib": round(i.mib, 1), "detail": i.detail}
                               for i in items] for ph, items in self.breakdown.items()},
            "host_ram_mib": round(self.host_ram_mib, 1),
            "config": self.config_json(), "notes": list(self.notes),
        }

# ---------------------------------------------------------------------------- options


def option_int(value: Any, default: int) -> int:
    """An option's integer value (an int, an integral float or digits), else ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return default


def truthy(value: Any) -> bool:
    """An option's truth as the trainers read a flag (``"true"``, ``"1"``, ``"on"``, ...)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
