"""Running moments of (today, history day) pairs, shared by the moment-based metrics.

Per day: Σd² and Welford's mean/M2 of d = x − y (numerically stable variance), and for the
min–max metrics Σy', Σy'², Σx'y', min y, max y where ' means "minus the day's first value"
(a shift that leaves min–max scaling unchanged and keeps the sums small, so that expanding
Σ(xn − yn)² into moments loses no precision). One numba loop updates all of them.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from numba import njit

from engine.algorithms.base import F32, F64, RunningState


@njit(cache=True, nogil=True)
def _update(
    col: F32,
    x: float,
    m_new: int,
    xs: float,
    sdd: F64,
    mean_d: F64,
    m2_d: F64,
    y0: F64,
    sy: F64,
    syy: F64,
    sxy: F64,
    ymin: F64,
    ymax: F64,
) -> None:  # pragma: no cover - compiled
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


class Moments(RunningState):
    """Running sums for one query against n history days (float64 accumulators)."""

    __slots__ = (
        "m",
        "m2_d",
        "mean_d",
        "sdd",
        "sx",
        "sxx",
        "sxy",
        "sy",
        "syy",
        "x0",
        "xmax",
        "xmin",
        "y0",
        "ymax",
        "ymin",
    )

    def __init__(self, n_days: int) -> None:
        self.m = 0
        self.x0 = self.sx = self.sxx = 0.0
        self.xmin, self.xmax = np.inf, -np.inf
        z = np.zeros
        self.sdd, self.mean_d, self.m2_d = z(n_days), z(n_days), z(n_days)
        self.y0, self.sy, self.syy, self.sxy = z(n_days), z(n_days), z(n_days), z(n_days)
        self.ymin, self.ymax = z(n_days), z(n_days)

    @classmethod
    def new(cls, n_days: int) -> Self:
        """Empty state for n days."""
        return cls(n_days)

    def update(self, column: F32, x: float) -> None:
        """Add minute m+1 for every day in one pass."""
        self.m += 1
        if self.m == 1:
            self.x0 = x
        xs = x - self.x0
        self.sx += xs
        self.sxx += xs * xs
        self.xmin, self.xmax = min(self.xmin, x), max(self.xmax, x)
        _update(
            column,
            x,
            self.m,
            xs,
            self.sdd,
            self.mean_d,
            self.m2_d,
            self.y0,
            self.sy,
            self.syy,
            self.sxy,
            self.ymin,
            self.ymax,
        )

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
            a * a * self.sxx
            + b * b * self.syy
            + m * c * c
            - 2.0 * a * b * self.sxy
            - 2.0 * a * c * self.sx
            + 2.0 * b * c * self.sy
        )
        return s1, np.maximum(s2, 0.0)


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
