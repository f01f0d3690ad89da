"""The live rest-of-day risk forecast: realised volatility and range left, from a ticker's days.

`simsignal evaluate` showed the log-HAR-X regression best at forecasting what is left of the
day's volatility and range (docs/evaluation.md), and the neighbours' analogue well behind it,
so that is what the `risk` signal publishes. Per minute m (now is slot m − 1) and target
(rv, range), fitted on the ticker's history days by least squares:

    log target = b0 + b1·log rv(day before) + b2·log mean rv(5 days before) + b3·log rv so far

with rv the root of the summed squared 1-minute log returns, "so far" the returns into slots
1 … m − 1 and the target from now to the close, over the ticker's last `WINDOW` days. Back to
levels with Duan's smearing factor; q10 and q90 from the fit's residual quantiles. Where a
minute has too few usable days (or today's rv so far is zero) the historical mean and its
quantiles over the same days stand in (`model` says which). At the last minute nothing is
left: every number is 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MIN_FIT = 30  # usable days a minute's regression needs
WINDOW = 500  # the last days a fit uses (about two years): the market's recent behaviour
WEEK = 5
F64 = NDArray[np.float64]
NAMES = ("rv", "rv_q10", "rv_q90", "range", "range_q10", "range_q90")


@dataclass(frozen=True)
class RiskModel:
    """One ticker's fitted forecasters, per slot and target (rv, range)."""

    beta: F64  # [slots, 2, 4]; NaN where the minute has no fit
    smear: F64  # [slots, 2]
    resid_q: F64  # [slots, 2, 2]: the residuals' 10th and 90th percentiles
    mean: F64  # [slots, 2, 3]: the historical mean, q10 and q90 of the target
    day: tuple[float, float]  # log rv of the last day, log mean rv of the last 5 days

    @classmethod
    def fit(
        cls, ratio: NDArray[np.floating], minutes: Sequence[int] | None = None,
        window: int = WINDOW,
    ) -> RiskModel:  # fmt: skip
        """Fit on one ticker's days (rows in date order, columns the session's slots).

        The regression and the historical mean use the last `window` days; `minutes` (1-based)
        limits the fit to those minutes (the rest stay unfitted), as `evaluate` needs.
        """
        # only the window and the week before it count: the rest is never read
        p, _, done = day_paths(np.asarray(ratio)[max(0, len(ratio) - window - WEEK) :])
        return cls.fit_paths(p, done, range_left(p), minutes, window)

    @classmethod
    def fit_paths(
        cls, p: F64, done: F64, left: F64, minutes: Sequence[int] | None = None,
        window: int = WINDOW,
    ) -> RiskModel:  # fmt: skip
        """`fit` from the days' `day_paths` (p, done) and `range_left`, computed once.

        Every step before the regression works day by day, so rows [a, d) of paths computed
        over all days are those of the days [a, d) alone: a walk refitting for every test day
        slices them, with the same result as `fit(ratio[:d])` for a ≤ d − window − WEEK.
        """
        days, slots = p.shape
        total = done[:, -1]
        day_x, last = day_regressors(np.sqrt(total))
        wanted = range(slots - 1) if minutes is None else sorted({m - 1 for m in minutes})
        cols = np.array([c for c in wanted if 0 <= c < slots - 1], np.intp)
        out = cls.empty(slots, last)
        rows = slice(max(0, days - window), days)
        if not len(cols) or days == 0:
            return out
        so_far = done[rows][:, cols]
        rest = np.sqrt(np.maximum(total[rows, None] - so_far, 0.0))
        target = np.stack([rest, left[rows][:, cols]], axis=2).transpose(1, 0, 2)
        out.mean[cols, :, 0] = target.mean(axis=1)
        out.mean[cols, :, 1:] = np.moveaxis(np.quantile(target, [0.1, 0.9], axis=1), 0, -1)
        n = target.shape[1]
        x = np.empty((len(cols), n, 4))
        x[..., 0] = 1.0
        x[..., 1:3] = day_x[rows][None]
        with np.errstate(divide="ignore", invalid="ignore"):
            x[..., 3] = 0.5 * np.log(so_far.T)
            y = np.log(target)
        ok = np.asarray(np.isfinite(x).all(axis=2))[..., None] & np.isfinite(y)  # [cols, days, 2]
        xs = np.where(np.isfinite(x), x, 0.0)
        for j in range(2):
            w = ok[..., j]
            yj = np.where(w, y[..., j], 0.0)
            xtx = (xs * w[..., None]).transpose(0, 2, 1) @ xs
            xty = np.einsum("cn,cna->ca", yj, xs)
            enough = w.sum(axis=1) >= MIN_FIT
            if not enough.any():
                continue
            beta = _solve(xtx[enough], xty[enough])
            resid = yj[enough] - np.einsum("cna,ca->cn", xs[enough], beta)
            mask = w[enough]
            fitted = cols[enough]
            out.beta[fitted, j] = beta
            out.smear[fitted, j] = np.where(mask, np.exp(resid), 0.0).sum(axis=1) / mask.sum(axis=1)
            out.resid_q[fitted, j] = quantiles(resid, mask, (0.1, 0.9))
        return out

    @classmethod
    def empty(cls, slots: int, day: tuple[float, float]) -> RiskModel:
        """A model with nothing fitted yet (every forecast NaN until `fit` fills minutes)."""
        nan = math.nan
        return cls(np.full((slots, 2, 4), nan), np.full((slots, 2), nan),
                   np.full((slots, 2, 2), nan), np.full((slots, 2, 3), nan), day)  # fmt: skip

    def forecast(self, m: int, rv_so_far: float) -> dict[str, float | str]:
        """The `risk` entry's values for minute m given today's rv so far (and `model`)."""
        model, values = self._levels(m, rv_so_far)
        plain = [float(v) for v in values]  # Python floats: the entry is JSON
        return {
            "model": model,
            **dict(zip(NAMES, plain, strict=True)),
            "rv_so_far": float(rv_so_far),
        }

    def _levels(self, m: int, rv_so_far: float) -> tuple[str, tuple[float, ...]]:
        slots = self.beta.shape[0]
        if m >= slots:
            return "closed", (0.0,) * len(NAMES)
        now = m - 1
        x = np.array([1.0, *self.day, math.log(rv_so_far) if rv_so_far > 0 else math.nan])
        beta = self.beta[now]
        if np.isfinite(x).all() and np.isfinite(beta).all():
            level = beta @ x
            out: list[float] = []
            for j in range(2):
                out += [math.exp(level[j]) * self.smear[now, j],
                        math.exp(level[j] + self.resid_q[now, j, 0]),
                        math.exp(level[j] + self.resid_q[now, j, 1])]  # fmt: skip
            return "har_x", tuple(out)
        return "hist_mean", tuple(float(v) for v in self.mean[now].reshape(-1))


def day_paths(ratio: NDArray[np.floating]) -> tuple[F64, F64, F64]:
    """Per day: log prices p = log(1 + ratio), squared minute returns (slot 0: 0), their sums.

    The sum at slot t holds the returns into slots 1 … t: the rv so far of minute t + 1.
    """
    p = np.log1p(np.asarray(ratio, np.float64))
    squared = np.zeros_like(p)
    squared[:, 1:] = np.diff(p, axis=1) ** 2
    return p, squared, np.cumsum(squared, axis=1)


def day_regressors(daily_rv: F64) -> tuple[F64, tuple[float, float]]:
    """Per day: log rv of the day before and log mean rv of the 5 days before; and today's.

    The first 5 days have none (NaN); "today's" are the two for the day after the last.
    """
    days = len(daily_rv)
    out = np.full((days, 2), math.nan)
    last = (math.nan, math.nan)
    if days >= WEEK:
        with np.errstate(divide="ignore"):
            week = np.log(np.convolve(daily_rv, np.ones(WEEK) / WEEK, "valid"))
            out[WEEK:, 0] = np.log(daily_rv[WEEK - 1 : -1])
            out[WEEK:, 1] = week[:-1]
            last = (float(np.log(daily_rv[-1])), float(week[-1]))
    return out, last


def range_left(p: F64) -> F64:
    """Each day's high − low of its log prices from every slot to the close."""
    high = np.maximum.accumulate(p[:, ::-1], axis=1)[:, ::-1]
    low = np.minimum.accumulate(p[:, ::-1], axis=1)[:, ::-1]
    return np.asarray(high - low, np.float64)


def _solve(a: F64, b: F64) -> F64:
    """Batched normal equations; a singular one (a constant regressor) by pseudo-inverse."""
    try:
        return np.asarray(np.linalg.solve(a, b[..., None])[..., 0], np.float64)
    except np.linalg.LinAlgError:
        return np.einsum("cab,cb->ca", np.linalg.pinv(a), b)


def quantiles(values: F64, mask: NDArray[np.bool_], ps: Sequence[float]) -> F64:
    """Each row's quantiles of its masked-in values, as np.quantile's linear rule ([rows, ps])."""
    ranked = np.sort(np.where(mask, values, np.inf), axis=1)
    n = mask.sum(axis=1)
    out = np.full((len(values), len(ps)), math.nan)
    have = n > 0
    for i, q in enumerate(ps):
        pos = (n[have] - 1) * q
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, n[have] - 1)
        a = np.take_along_axis(ranked[have], lo[:, None], 1)[:, 0]
        b = np.take_along_axis(ranked[have], hi[:, None], 1)[:, 0]
        out[have, i] = a + (b - a) * (pos - lo)
    return out
