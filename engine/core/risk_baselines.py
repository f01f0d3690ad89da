"""Rest-of-day risk targets and the baselines that forecast them, per ticker, in NumPy.

Direction carries no skill on the data we have seen; the size of what is left of the day
does, for a simple forecaster. Targets, in log terms from checkpoint minute m (1-based; now is
slot m − 1) to the close, with p = log(1 + ratio) the log price relative to the previous close:
- `abs_move`: |p_close − p_now|;
- `rv`: √Σ r_t² over the minute log returns after now (r_t = p_t − p_{t−1});
- `range`: max − min of p from now to the close.

Forecasters, each from the same ticker's days before the test day only:
- `hist_mean`: the target's mean at m over the earlier days;
- `yesterday`: the target at m on the last earlier day;
- `scaled_rv`: today's realised vol so far (the returns into slots 1 … m − 1) scaled to the
  time left by an intraday profile, each slot's mean squared return on earlier days:
  rv_so_far · √(Σ_{t ≥ m} s_t / Σ_{1 ≤ t < m} s_t); |move| and range are that times their
  mean ratio to rv on earlier days;
- `har_x`: OLS of log(target) on log(the day before's whole-day rv), log(the mean whole-day rv
  of the 5 days before) and log(rv so far), fitted on the last `WINDOW` earlier days (at least
  `MIN_FIT`), back to levels with Duan's smearing factor;
- `analogue`: the mean of the neighbour days' own target at m (one algorithm's k neighbours);
- `published`: what the live `risk` signal would have published (`risk_model.py`, rv and
  range only): its model fitted on the same earlier days, by the same code as live.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.core.risk_model import (
    MIN_FIT,
    WEEK,
    WINDOW,
    RiskModel,
    day_paths,
    day_regressors,
    range_left,
)

TARGETS = ("abs_move", "rv", "range")
FORECASTERS = ("published", "hist_mean", "yesterday", "scaled_rv", "har_x", "analogue")
F64 = NDArray[np.float64]


@dataclass(frozen=True)
class DayRisk:
    """Per day: the targets and the rv so far at each minute, the whole-day rv, the profile."""

    targets: F64  # [days, slots, 3]: abs_move, rv, range from minute m = column + 1
    so_far: F64  # [days, slots]: rv of the returns into slots 1 … m − 1
    daily_rv: F64  # [days]
    squared: F64  # [days, slots]: squared minute returns (slot 0: none, 0)
    log_price: F64  # [days, slots]: p = log(1 + ratio), as `day_paths` gives it
    done: F64  # [days, slots]: the squared returns summed into each slot (`day_paths`)


def day_risk(ratio: NDArray[np.floating]) -> DayRisk:
    """Every day's rest-of-day targets at every minute, by cumulative sums (no loop over m)."""
    p, squared, done = day_paths(ratio)  # done[:, t] = Σ_{1 ≤ u ≤ t} r_u²
    total = done[:, -1:]
    targets = np.stack([np.abs(p[:, -1:] - p), np.sqrt(np.maximum(total - done, 0.0)),
                        range_left(p)], axis=2)  # fmt: skip
    return DayRisk(targets, np.sqrt(done), np.sqrt(total[:, 0]), squared, p, done)


class Baselines:
    """One ticker's days with running sums over days: a test day's forecasts cost O(1) each.

    The HAR-X fit of day d uses the normal equations summed over days before d (its design
    for one minute at a time is kept: ask minute by minute to reuse it).
    """

    def __init__(self, risk: DayRisk) -> None:
        self.risk = risk
        zero = np.zeros((1, *risk.targets.shape[1:]))
        self.sum_targets = np.concatenate([zero, np.cumsum(risk.targets, axis=0)])
        self.sum_squared = np.concatenate([zero[..., 0], np.cumsum(risk.squared, axis=0)])
        self._now = -1
        self._har: tuple[F64, F64, F64, F64, NDArray[np.int64], NDArray[np.bool_]] | None = None

    def forecasts(self, d: int, m: int, analogue: Sequence[float]) -> dict[str, F64]:
        """Each forecaster's three targets for day `d` at minute m, from days 0 … d − 1 only."""
        now, r = m - 1, self.risk
        nan = np.full(3, math.nan)
        if d == 0:
            return {name: nan for name in FORECASTERS} | {"analogue": np.asarray(analogue, float)}
        mean = self.sum_targets[d, now] / d
        profile = self.sum_squared[d] / d  # each slot's mean squared return on earlier days
        before, after = profile[1 : now + 1].sum(), profile[now + 1 :].sum()
        scaled = nan
        if before > 0 and mean[1] > 0:
            scaled = r.so_far[d, now] * math.sqrt(after / before) * mean / mean[1]
        return {
            "published": nan,  # the walk's own column (`risk_frame`)
            "hist_mean": mean,
            "yesterday": r.targets[d - 1, now],
            "scaled_rv": scaled,
            "har_x": self._har_x(d, now),
            "analogue": np.asarray(analogue, np.float64),
        }

    def _har_x(self, d: int, now: int) -> F64:
        """HAR-X fitted on days [d − WINDOW, d) (the live model's window), from running sums."""
        if self._now != now or self._har is None:
            x = har_design(self.risk, now)
            with np.errstate(divide="ignore"):
                y = np.log(self.risk.targets[:, now])  # [days, 3]
            ok = np.asarray(np.isfinite(x).all(axis=1))[:, None] & np.isfinite(y)
            xs = np.where(np.isfinite(x), x, 0.0)
            ys = np.where(ok, y, 0.0)
            outer = np.einsum("di,dj->dij", xs, xs)
            zero = np.zeros((1, 3))
            xtx = np.concatenate(
                [
                    zero[..., None, None] * np.zeros((4, 4)),
                    np.cumsum(ok[:, :, None, None] * outer[:, None], axis=0),
                ]
            )
            xty = np.concatenate([zero[..., None] * np.zeros(4),
                                  np.cumsum(ok[:, :, None] * (ys[:, :, None] * xs[:, None]),
                                            axis=0)])  # fmt: skip
            count = np.concatenate([np.zeros((1, 3), np.int64), np.cumsum(ok, axis=0)])
            self._har = (x, y, xtx, xty, count, ok)
            self._now = now
        x, y, xtx, xty, count, ok = self._har
        out = np.full(3, math.nan)
        if d < 1 or not np.isfinite(x[d]).all():
            return out
        a = max(0, d - WINDOW)
        for i in range(3):
            if count[d, i] - count[a, i] < MIN_FIT:
                continue
            beta = np.linalg.solve(xtx[d, i] - xtx[a, i], xty[d, i] - xty[a, i])
            fit = ok[a:d, i]
            smear = float(np.mean(np.exp(y[a:d, i][fit] - x[a:d][fit] @ beta)))
            out[i] = math.exp(float(x[d] @ beta)) * smear
        return out


def forecasts(risk: DayRisk, d: int, m: int, analogue: Sequence[float]) -> dict[str, F64]:
    """Each forecaster's three targets for day `d` at minute m, from days 0 … d − 1 only."""
    return Baselines(risk).forecasts(d, m, analogue)


def har_design(risk: DayRisk, now: int) -> F64:
    """Per day: 1, log rv of the day before, log mean rv of the 5 days before, log rv so far.

    NaN where a regressor is undefined (the first 5 days, or a zero).
    """
    out = np.full((len(risk.daily_rv), 4), math.nan)
    out[:, 0] = 1.0
    out[:, 1:3] = day_regressors(risk.daily_rv)[0]
    with np.errstate(divide="ignore"):
        out[:, 3] = np.log(risk.so_far[:, now])
    out[~np.isfinite(out).all(axis=1)] = math.nan
    return out


def ticker_risk_rows(
    ratio: NDArray[np.floating],
    days: Sequence[int],
    minutes: Sequence[int],
    analogue: F64,
    risk: DayRisk | None = None,
) -> dict[str, NDArray[Any]]:
    """One ticker's targets and every forecaster at each (test day, minute), as columns.

    `days` are the test days' rows in `ratio` (the ticker's days in date order), each forecast
    from the rows before it only; `analogue` is [days, minutes, 3], the neighbours' mean
    targets. Rows come minute-major (the HAR-X fit of a minute is reused), then by day.
    `published` is the live model fitted on the same earlier days by the same code as live.
    `risk` is `day_risk(ratio)` when the caller has it.
    """
    risk = day_risk(ratio) if risk is None else risk
    baselines = Baselines(risk)
    p, done, left = risk.log_price, risk.done, risk.targets[:, :, 2]  # range_left(p)
    live = {}  # the live model of each test day, on the same rows as fit(ratio[:d])
    for d in days:
        a = max(0, d - WINDOW - WEEK)
        live[d] = RiskModel.fit_paths(p[a:d], done[a:d], left[a:d], minutes)
    cols: dict[str, list[float]] = {"day": [], "minute": []}
    for name in (*TARGETS, *(f"{t}:{f}" for t in TARGETS for f in FORECASTERS)):
        cols[name] = []
    for j, m in enumerate(minutes):
        for i, d in enumerate(days):
            made = baselines.forecasts(d, m, analogue[i, j])
            sent = live[d].forecast(m, float(risk.so_far[d, m - 1]))
            made["published"] = np.array([math.nan, float(sent["rv"]), float(sent["range"])])
            cols["day"].append(d)
            cols["minute"].append(m)
            for k, target in enumerate(TARGETS):
                cols[target].append(float(risk.targets[d, m - 1, k]))
                for name in FORECASTERS:
                    cols[f"{target}:{name}"].append(float(made[name][k]))
    return {name: np.asarray(v, np.int64 if name in ("day", "minute") else np.float64)
            for name, v in cols.items()}  # fmt: skip
