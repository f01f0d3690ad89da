"""A calibrated up_prob: the neighbours' share of risers, shrunk toward the base rate.

p = b + λ·(raw − b), where b is the share of earlier days that rose from this minute to the
close and λ ∈ [0, 1] is learned on earlier days only: the least-squares slope of the outcome
on (raw − b), lowered by 2.326 of its day-clustered standard error. A forecast with no proven
skill gets λ = 0, the base rate itself; so the calibrated Brier score can only fall below the
base rate's where earlier days showed skill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from simsignal.engine.app.evaluation.metrics import outcome

MIN_DAYS = 20  # fewer earlier days than this: λ = 0
Z = 2.326  # one-sided 99 %: λ is a lower confidence bound


@dataclass
class _Sums:
    """Per-day sums of (raw − b)·(y − b) and (raw − b)², accumulated over days."""

    a: float = 0.0
    b: float = 0.0
    aa: float = 0.0
    ab: float = 0.0
    bb: float = 0.0
    days: int = 0

    def add(self, a: float, b: float) -> None:
        self.a, self.b = self.a + a, self.b + b
        self.aa, self.ab, self.bb = self.aa + a * a, self.ab + a * b, self.bb + b * b
        self.days += 1

    def weight(self) -> float:
        """λ from the days added so far."""
        if self.days < MIN_DAYS or self.b <= 0:
            return 0.0
        slope = self.a / self.b
        spread = self.aa - 2 * slope * self.ab + slope * slope * self.bb  # Σ_d (A_d − λ̂·B_d)²
        se = math.sqrt(max(spread, 0.0)) / self.b
        return float(min(1.0, max(0.0, slope - Z * se)))


def walk_forward_weights(frame: pd.DataFrame) -> pd.Series:
    """λ for every row, per algorithm, learned on the rows of earlier dates only."""
    lam = pd.Series(0.0, index=frame.index)
    for _, rows in frame.groupby("algo", sort=False):
        sums, by_date = _Sums(), {}
        for date, a, b in _daily(rows).itertuples():
            by_date[date] = sums.weight()
            sums.add(float(a), float(b))
        lam[rows.index] = rows["date"].map(by_date).to_numpy()
    return lam


def final_weights(frame: pd.DataFrame) -> dict[str, float]:
    """λ per algorithm from every row: what a live run after these days uses."""
    out = {}
    for algo, rows in frame.groupby("algo", sort=False):
        sums = _Sums()
        for _, a, b in _daily(rows).itertuples():
            sums.add(float(a), float(b))
        out[str(algo)] = sums.weight()
    return out


def _daily(rows: pd.DataFrame) -> pd.DataFrame:
    """Per date: A = Σ (raw − b)·(y − b) and B = Σ (raw − b)², in date order."""
    gap = rows["up_raw"] - rows["base_up"]
    hit = outcome(rows["move"]) - rows["base_up"]
    parts = pd.DataFrame({"a": gap * hit, "b": gap * gap, "date": rows["date"]})
    return parts.groupby("date", sort=True)[["a", "b"]].sum()


def calibrate(
    raw: NDArray[np.float64], base: NDArray[np.float64], lam: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The calibrated probability, b + λ·(raw − b), element-wise."""
    return np.asarray(base + lam * (raw - base), np.float64)
