"""`motif`: today's last w minutes against every w-window of every history day (any offset).

Distance of z-normalised windows, ‖zq − zt‖² = 2L(1 − ρ) (STUMPY/MASS; flat windows: both → 0,
one → L). The dot products QT[o, d] of today's window with window o of day d slide along
with today as in STOMP: QT'[o] = QT[o−1] − x_old·y[o−1] + x_new·y[o+w−1], O(1) per window;
offset 0 is recomputed (O(w) per day). Until m reaches w the window is today's whole prefix
and every history window grows by one minute. A day is represented by its best window
(earliest on ties), so the k neighbours are k different days: (ticker, date, slot) where slot
is the window's last minute, and the forecast is what followed that window.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from simsignal.engine.core.algorithms.base import F64, I64, Algorithm, RunningState
from simsignal.engine.core.algorithms.znorm import flat_lines


@njit(cache=True, nogil=True)
def _slide(  # pragma: no cover - compiled
    cols: NDArray[np.float32], y0: F64, xq: F64, m: int, w: int, qt: F64, s1: F64, s2: F64
) -> None:
    """Advance the dot products (day-shifted values) and the window sums (window-shifted)."""
    n_off, n_days = qt.shape
    if m <= w:  # growing: window o takes its element o + m − 1
        xl = xq[m - 1]
        for o in range(n_off):
            s = o + m - 1
            for d in range(n_days):
                yv = np.float64(cols[s, d])
                qt[o, d] += xl * (yv - y0[d])
                ys = yv - np.float64(cols[o, d])
                s1[o, d] += ys
                s2[o, d] += ys * ys
        return
    a, b = xq[m - 1 - w], xq[m - 1]
    for o in range(n_off - 1, 0, -1):
        for d in range(n_days):
            qt[o, d] = (qt[o - 1, d] - a * (np.float64(cols[o - 1, d]) - y0[d])
                        + b * (np.float64(cols[o + w - 1, d]) - y0[d]))  # fmt: skip
    for d in range(n_days):
        acc = 0.0
        for i in range(w):
            acc += xq[m - w + i] * (np.float64(cols[i, d]) - y0[d])
        qt[0, d] = acc


@njit(cache=True, nogil=True)
def _window_d2(  # pragma: no cover - compiled
    cols: NDArray[np.float32], y0: F64, length: int, q_mu: float, q_sd: float, q_const: bool,
    qt: F64, s1: F64, s2: F64, out: F64,
) -> None:  # fmt: skip
    """Squared z-normalised distance of today's window to every history window."""
    n_off, n_days = qt.shape
    for o in range(n_off):
        for d in range(n_days):
            t_const = s2[o, d] == 0.0  # exact: every window-shifted value is 0
            if q_const or t_const:
                out[o, d] = 0.0 if (q_const and t_const) else float(length)
                continue
            mu_w = s1[o, d] / length
            var = max(s2[o, d] / length - mu_w * mu_w, 0.0)
            mean_t = mu_w + (np.float64(cols[o, d]) - y0[d])
            rho = (qt[o, d] - length * q_mu * mean_t) / (length * q_sd * np.sqrt(var))
            rho = min(max(rho, -1.0), 1.0)
            out[o, d] = max(2.0 * length * (1.0 - rho), 0.0)


@njit(cache=True, nogil=True)
def _accumulate(total: F64, d2: F64, weight: float, grid: float) -> None:  # pragma: no cover
    """Add weight · √(d2 on the grid) to `total` in place (one pass, no temporaries)."""
    n_off, n_days = d2.shape
    for o in range(n_off):
        for d in range(n_days):
            v = d2[o, d]
            if grid > 0:
                v = np.rint(v / grid) * grid
            total[o, d] += weight * np.sqrt(v)


@njit(cache=True, nogil=True)
def _best_per_day(total: F64) -> tuple[F64, I64]:  # pragma: no cover - compiled
    """Each day's smallest window value and its offset (the earliest on ties)."""
    n_off, n_days = total.shape
    best = np.full(n_days, np.inf)
    where = np.zeros(n_days, np.int64)
    for o in range(n_off):
        for d in range(n_days):
            if total[o, d] < best[d]:
                best[d] = total[o, d]
                where[d] = o
    return best, where


class WindowState(RunningState):
    """Dot products and window sums for every (offset, day), and today's values so far."""

    def __init__(self, n_days: int, slots: int, w: int) -> None:
        if not 1 <= w <= slots:
            raise ValueError(f"motif window {w} must be within 1..{slots}")
        self.m = 0
        self.w = w
        n_off = slots - w + 1
        self.xq = np.zeros(slots)  # today minus today's first value
        self.x0 = 0.0
        self.y0 = np.zeros(n_days)
        self.qt = np.zeros((n_off, n_days))
        self.s1 = np.zeros((n_off, n_days))
        self.s2 = np.zeros((n_off, n_days))
        self.d2 = np.zeros((n_off, n_days))

    @property
    def length(self) -> int:
        """Today's window length: the prefix until it reaches w."""
        return min(self.m, self.w)

    def update(self, cols: NDArray[np.float32], x: float) -> None:
        """Add minute m+1: O(1) per window (O(w) for each day's first window)."""
        if self.m == 0:
            self.x0 = x
            self.y0 = np.asarray(cols[0], np.float64).copy()
        self.xq[self.m] = x - self.x0
        self.m += 1
        _slide(cols, self.y0, self.xq, self.m, self.w, self.qt, self.s1, self.s2)
        q = self.xq[self.m - self.length : self.m]
        q_const = bool(q.max() == q.min())
        _window_d2(cols, self.y0, self.length, float(q.mean()), float(q.std()), q_const,
                   self.qt, self.s1, self.s2, self.d2)  # fmt: skip


class Motif(Algorithm):
    """Finds where in any history day today's recent shape happened, at any time of day."""

    name = "motif"
    summary = "best z-normalised distance of today's last w minutes to any w-window of a day"
    cost = "O(slots − w) per day: sliding dot products (STOMP)"
    aligned = False

    def state_key(self) -> tuple[str, int]:
        """One window state per w."""
        return ("motif", self.params.motif_window)

    def new_state(self, n_days: int, slots: int) -> WindowState:
        """Empty windows."""
        return WindowState(n_days, slots, self.params.motif_window)

    def scores(self, st: RunningState) -> F64:
        """Each day's best window distance (unsnapped)."""
        return self._best([st], [1.0], snapped=False)[0]

    def combine(self, states: list[RunningState], weights: list[float]) -> tuple[F64, I64]:
        """Mix the channels per window, then take each day's best window and its end slot."""
        return self._best(states, weights, snapped=True)

    def _best(
        self, states: list[RunningState], weights: list[float], snapped: bool
    ) -> tuple[F64, I64]:
        first = states[0]
        assert isinstance(first, WindowState)
        total = np.zeros_like(first.d2)
        for st, w in zip(states, weights, strict=True):
            assert isinstance(st, WindowState)
            _accumulate(total, st.d2, float(w), 1e-11 * st.length if snapped else 0.0)
        best, where = _best_per_day(total)
        return best, where + first.length - 1

    def ranked(self, st: RunningState) -> F64:
        """Best window per day, on the grid of the squared distance."""
        return self.combine([st], [1.0])[0]

    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """From scratch: every window of every day, z-normalised directly."""
        return window_distances(x, history, self.params.motif_window).min(axis=0)


def window_distances(x: F64, history: NDArray[np.floating], w: int) -> F64:
    """‖zq − zt‖ for today's last min(m, w) minutes against windows at offsets 0..slots−w."""
    m = x.shape[0]
    length = min(m, w)
    slots = history.shape[1]
    q = np.asarray(x[m - length :], np.float64)
    y = np.asarray(history, np.float64)
    win = np.lib.stride_tricks.sliding_window_view(y, length, axis=1)[:, : slots - w + 1]
    t_sd = win.std(axis=2)
    t_const = win.max(axis=2) == win.min(axis=2)
    q_const = bool(q.max() == q.min())
    zq = (q - q.mean()) / (q.std() if not q_const else 1.0)
    zt = (win - win.mean(axis=2, keepdims=True)) / np.where(t_const, 1.0, t_sd)[..., None]
    d2 = flat_lines(((zt - zq) ** 2).sum(axis=2), length, q_const, t_const)
    return np.asarray(np.sqrt(d2).T, np.float64)  # [offsets, days]
