"""Running moments of (today, history day) pairs, shared by the moment-based metrics.

Per day, all updated by one numba loop over the minute's column:
- Σd² and Welford's mean/M2 of d = x − y (a numerically stable variance of the difference);
- Σy', Σy'², Σx'y', min y, max y, where ' means "minus the day's first value" (a shift that
  leaves min–max scaling unchanged and keeps the sums small, so that expanding Σ(xn − yn)²
  into moments loses no precision);
- Welford's mean/M2 of y and co-moment C of (x, y), for the correlation metrics.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from simsignal.engine.core.algorithms.base import F32, F64, Algorithm, RunningState


@njit(cache=True, nogil=True)
def _update(  # pragma: no cover - compiled
    col: F32,
    x: float,
    m_new: int,
    xs: float,
    dx: float,
    sdd: F64,
    mean_d: F64,
    m2_d: F64,
    y0: F64,
    sy: F64,
    syy: F64,
    sxy: F64,
    ymin: F64,
    ymax: F64,
    mean_y: F64,
    m2_y: F64,
    c_xy: F64,
) -> None:
    inv = 1.0 / m_new
    first = m_new == 1
    for i in range(col.shape[0]):
        y = np.float64(col[i])
        d = x - y
        sdd[i] += d * d
        delta = d - mean_d[i]
        mean_d[i] += delta * inv
        m2_d[i] += delta * (d - mean_d[i])
        if first:
            y0[i] = y
            ymin[i] = y
            ymax[i] = y
        elif y < ymin[i]:
            ymin[i] = y
        elif y > ymax[i]:
            ymax[i] = y
        ys = y - y0[i]
        sy[i] += ys
        syy[i] += ys * ys
        sxy[i] += xs * ys
        # Welford co-moment: dx is x minus the *old* mean of x; y's mean moves here.
        dy = ys - mean_y[i]
        mean_y[i] += dy * inv
        m2_y[i] += dy * (ys - mean_y[i])
        c_xy[i] += dx * (ys - mean_y[i])


SEED_FOUR = ("sq", "var", "sq_norm", "var_norm")  # scored together by `seed_four_ranked`


@njit(cache=True, nogil=True)
def seed_four_scores(  # pragma: no cover - compiled
    m: int, x0: float, sx: float, sxx: float, xmin: float, xmax: float, sdd: F64, m2_d: F64,
    y0: F64, sy: F64, syy: F64, sxy: F64, ymin: F64, ymax: F64, out: F64,
) -> None:  # fmt: skip
    """The ranked scores of sq, var, sq_norm and var_norm per day, in one pass.

    The algorithms' own formulas (`scores`, `tie_grid`, `minmax_diff_sums`), operation for
    operation, so the results are bit-identical; ~80 NumPy calls a query become one.
    """
    xr = xmax - xmin
    a = 1.0 / xr if xr > 0 else 0.0
    grid = 1e-11 * m
    for i in range(sdd.shape[0]):
        out[0, i] = sdd[i]
        out[1, i] = max(m2_d[i], 0.0) / (m - 1) if m >= 2 else 0.0
        yr = ymax[i] - ymin[i]
        b = 1.0 / yr if yr > 0 else 0.0
        c = a * (xmin - x0) - b * (ymin[i] - y0[i])
        s1 = a * sx - b * sy[i] - m * c
        s2 = (
            a * a * sxx + b * b * syy[i] + m * c * c
            - 2.0 * a * b * sxy[i] - 2.0 * a * c * sx + 2.0 * b * c * sy[i]
        )  # fmt: skip
        s2 = max(s2, 0.0)
        out[2, i] = np.rint(s2 / grid) * grid
        v = max(s2 - s1 * s1 / m, 0.0) / (m - 1) if m >= 2 else 0.0
        out[3, i] = np.rint(v / grid) * grid


class Moments(RunningState):
    """Running sums for one query against n history days (float64 accumulators)."""

    __slots__ = (
        "c_xy", "m", "m2_d", "m2_x", "m2_y", "mean_d", "mean_x", "mean_y", "sdd", "sx", "sxx",
        "sxy", "sy", "syy", "x0", "xmax", "xmin", "y0", "ymax", "ymin",
    )  # fmt: skip

    def __init__(self, n_days: int) -> None:
        self.m = 0
        self.x0 = self.sx = self.sxx = self.mean_x = self.m2_x = 0.0
        self.xmin, self.xmax = np.inf, -np.inf
        z = np.zeros
        self.sdd, self.mean_d, self.m2_d = z(n_days), z(n_days), z(n_days)
        self.y0, self.sy, self.syy, self.sxy = z(n_days), z(n_days), z(n_days), z(n_days)
        self.ymin, self.ymax = z(n_days), z(n_days)
        self.mean_y, self.m2_y, self.c_xy = z(n_days), z(n_days), z(n_days)

    def update(self, cols: NDArray[np.float32], x: float) -> None:
        """Add minute m+1 for every day in one pass."""
        self.m += 1
        if self.m == 1:
            self.x0 = x
        xs = x - self.x0
        self.sx += xs
        self.sxx += xs * xs
        self.xmin, self.xmax = min(self.xmin, x), max(self.xmax, x)
        dx = xs - self.mean_x
        self.mean_x += dx / self.m
        self.m2_x += dx * (xs - self.mean_x)
        _update(
            cols[self.m - 1], x, self.m, xs, dx, self.sdd, self.mean_d, self.m2_d, self.y0,
            self.sy, self.syy, self.sxy, self.ymin, self.ymax, self.mean_y, self.m2_y, self.c_xy,
        )  # fmt: skip

    def minmax_diff_sums(self) -> tuple[F64, F64]:
        """Σ(xn − yn) and Σ(xn − yn)² of the min–max scaled prefixes, from the moments.

        With xn = a·x' − a·ux and yn = b·y' − b·uy (a, b the inverse ranges, 0 for a constant
        prefix; ux, uy the minima minus the first values), xn − yn = a·x' − b·y' − c.
        """
        m = self.m
        xr = self.xmax - self.xmin
        a = 1.0 / xr if xr > 0 else 0.0
        yr = self.ymax - self.ymin
        b = np.divide(1.0, yr, out=np.zeros_like(yr), where=yr > 0)
        c = a * (self.xmin - self.x0) - b * (self.ymin - self.y0)
        s1 = a * self.sx - b * self.sy - m * c
        s2 = (
            a * a * self.sxx + b * b * self.syy + m * c * c
            - 2.0 * a * b * self.sxy - 2.0 * a * c * self.sx + 2.0 * b * c * self.sy
        )  # fmt: skip
        return s1, np.maximum(s2, 0.0)

    def pearson(self) -> tuple[F64, NDArray[np.bool_]]:
        """Pearson ρ of (x, y) per day (0 where either prefix is constant) and "y is constant"."""
        y_const = self.ymax == self.ymin
        if self.xmax == self.xmin:
            return np.zeros_like(self.c_xy), y_const
        denom = np.sqrt(self.m2_x * self.m2_y)
        rho = np.divide(self.c_xy, denom, out=np.zeros_like(denom), where=~y_const & (denom > 0))
        return np.clip(rho, -1.0, 1.0), y_const


def seed_four_ranked(states: list[RunningState], weights: list[float]) -> F64:
    """[4, days]: the ranked scores of `SEED_FOUR`, mixed over channels as `combine` does."""
    total: F64 | None = None
    for st, w in zip(states, weights, strict=True):
        assert isinstance(st, Moments)
        out = np.empty((4, st.sdd.shape[0]))
        seed_four_scores(st.m, st.x0, st.sx, st.sxx, st.xmin, st.xmax, st.sdd, st.m2_d, st.y0,
                   st.sy, st.syy, st.sxy, st.ymin, st.ymax, out)  # fmt: skip
        total = w * out if total is None else total + w * out
    assert total is not None
    return total


class MomentAlgorithm(Algorithm):
    """An algorithm computed from the shared running moments (one pass for all of them)."""

    def state_key(self) -> str:
        """All moment algorithms share one `Moments` state."""
        return "moments"

    def new_state(self, n_days: int, slots: int) -> Moments:
        """Running moments."""
        return Moments(n_days)


def prefix(x: F64, history: NDArray[np.floating]) -> tuple[F64, F64]:
    """Today's prefix and the history's first m minutes, as float64."""
    m = x.shape[0]
    return np.asarray(x, np.float64), np.asarray(history[:, :m], np.float64)


def minmax_scale(values: np.ndarray) -> F64:
    """Scale each row to [0, 1] by its min and max; a constant row scales to 0 (the seed's rule)."""
    v = np.asarray(values, dtype=np.float64)
    lo = v.min(axis=-1, keepdims=True)
    rng = v.max(axis=-1, keepdims=True) - lo
    return np.divide(v - lo, rng, out=np.zeros_like(v), where=rng > 0)


def sample_variance(diff: F64) -> F64:
    """Row-wise variance with ddof = 1 (pandas' default); one point has no spread: 0."""
    m = diff.shape[-1]
    if m < 2:
        return np.zeros(diff.shape[:-1])
    return np.asarray(diff.var(axis=-1, ddof=1), dtype=np.float64)


def batch_pearson(x: F64, y: F64) -> tuple[F64, NDArray[np.bool_]]:
    """Pearson ρ per row from scratch (0 where either is constant) and "row is constant"."""
    y_const = y.max(axis=1) == y.min(axis=1)
    if x.max() == x.min():
        return np.zeros(y.shape[0]), y_const
    xc = x - x.mean()
    yc = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((xc @ xc) * np.einsum("ij,ij->i", yc, yc))
    rho = np.divide(yc @ xc, denom, out=np.zeros_like(denom), where=~y_const & (denom > 0))
    return np.clip(rho, -1.0, 1.0), y_const
