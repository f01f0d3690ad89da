"""`dtw`: dynamic time warping of the prefixes inside a Sakoe–Chiba band of radius r.

D(i, j) = (x_i − y_j)² + min(D(i−1, j), D(i, j−1), D(i−1, j−1)) over cells with |i − j| ≤ r;
the score is √D(m−1, m−1) (as tslearn and dtaidistance report it). Minute n adds row n and
column n of the band; each needs only the previous row and column, so a day keeps 2(r+1)
numbers and a minute costs O(r) per day. LB_Keogh does not pay on that path (a pruned day
would need its band rebuilt later); it prunes the batch recompute (`topk_lb_keogh`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from simsignal.engine.core.algorithms.base import F64, I64, Algorithm, RunningState


@njit(cache=True, nogil=True)
def _band_step(  # pragma: no cover - compiled
    cols: NDArray[np.float32], xs: F64, n: int, r: int, row: F64, col: F64
) -> None:
    """Add row n and column n; row[d, k] = D(n, n−r+k), col[d, k] = D(n−r+k, n)."""
    inf = np.inf
    new_row = np.empty(r + 1)
    new_col = np.empty(r + 1)
    for d in range(row.shape[0]):
        xn = xs[n]
        yn = np.float64(cols[n, d])
        for k in range(r):  # column n, cells above the corner: i = n − r + k
            i = n - r + k
            if i < 0:
                new_col[k] = inf
                continue
            best = min(col[d, k + 1], col[d, k])  # D(i, n−1), D(i−1, n−1)
            if k > 0:
                best = min(best, new_col[k - 1])  # D(i−1, n)
            c = xs[i] - yn
            new_col[k] = c * c + best
        for k in range(r):  # row n, cells left of the corner: j = n − r + k
            j = n - r + k
            if j < 0:
                new_row[k] = inf
                continue
            best = min(row[d, k + 1], row[d, k])  # D(n−1, j), D(n−1, j−1)
            if k > 0:
                best = min(best, new_row[k - 1])  # D(n, j−1)
            c = xn - np.float64(cols[j, d])
            new_row[k] = c * c + best
        c = xn - yn
        if n == 0:
            corner = c * c
        else:
            corner = c * c + min(row[d, r], min(new_col[r - 1], new_row[r - 1]) if r > 0 else inf)
        new_row[r] = corner
        new_col[r] = corner
        for k in range(r + 1):
            row[d, k] = new_row[k]
            col[d, k] = new_col[k]


@njit(cache=True, parallel=False)
def _dtw_batch(x: F64, y: NDArray[np.float64], r: int) -> F64:  # pragma: no cover - compiled
    """Banded DTW of x against every row of y (same length), from scratch: O(m·r) per row."""
    m = x.shape[0]
    out = np.empty(y.shape[0])
    for d in prange(y.shape[0]):
        prev = np.full(m, np.inf)
        cur = np.full(m, np.inf)
        for i in range(m):
            cur[:] = np.inf
            for j in range(max(0, i - r), min(m, i + r + 1)):
                c = (x[i] - y[d, j]) ** 2
                if i == 0 and j == 0:
                    cur[j] = c
                    continue
                best = np.inf
                if i > 0:
                    best = min(best, prev[j])
                    if j > 0:
                        best = min(best, prev[j - 1])
                if j > 0:
                    best = min(best, cur[j - 1])
                cur[j] = c + best
            prev, cur = cur, prev
        out[d] = np.sqrt(prev[m - 1])
    return out


class BandState(RunningState):
    """The band's last row and column per day, and today's values so far."""

    def __init__(self, n_days: int, slots: int, r: int) -> None:
        self.m = 0
        self.r = r
        self.xs = np.zeros(slots)
        self.row = np.full((n_days, r + 1), np.inf)
        self.col = np.full((n_days, r + 1), np.inf)

    def update(self, cols: NDArray[np.float32], x: float) -> None:
        """Add minute m+1: O(r) per day."""
        self.xs[self.m] = x
        _band_step(cols, self.xs, self.m, self.r, self.row, self.col)
        self.m += 1


class DynamicTimeWarping(Algorithm):
    """Lets today's moves match a history day's moves up to r minutes earlier or later."""

    name = "dtw"
    summary = "√DTW of the prefixes, squared cost, Sakoe–Chiba band |i−j| ≤ r (default 10)"
    cost = "O(r): the band's new row and column"

    def state_key(self) -> tuple[str, int]:
        """One band state per radius."""
        return ("dtw", self.params.dtw_band)

    def new_state(self, n_days: int, slots: int) -> BandState:
        """Empty band."""
        return BandState(n_days, slots, self.params.dtw_band)

    def scores(self, st: RunningState) -> F64:
        """√D(m−1, m−1), the band's corner."""
        assert isinstance(st, BandState)
        return np.sqrt(st.row[:, st.r])

    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Full banded DTW over the prefix, every day."""
        m = x.shape[0]
        y = np.ascontiguousarray(history[:, :m], dtype=np.float64)
        return _dtw_batch(np.asarray(x, np.float64), y, self.params.dtw_band)


def lb_keogh(x: F64, history: NDArray[np.floating], r: int) -> F64:
    """LB_Keogh² of every day against today's envelope (a lower bound of DTW²)."""
    m = x.shape[0]
    y = np.asarray(history[:, :m], np.float64)
    pad = np.pad(x, r, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(pad, 2 * r + 1)[:m]
    upper, lower = windows.max(axis=1), windows.min(axis=1)
    above = np.maximum(y - upper, 0.0)
    below = np.maximum(lower - y, 0.0)
    return np.einsum("ij,ij->i", above, above) + np.einsum("ij,ij->i", below, below)


def topk_lb_keogh(x: F64, history: NDArray[np.floating], r: int, k: int) -> tuple[I64, F64]:
    """Exact top-k DTW from scratch, visiting days by LB_Keogh and stopping when it can."""
    lb = lb_keogh(x, history, r)
    order = np.argsort(lb, kind="stable")
    m = x.shape[0]
    best_idx: list[int] = []
    best: list[float] = []
    kth = np.inf
    for start in range(0, len(order), 64):
        chunk = order[start : start + 64]
        chunk = chunk[lb[chunk] <= kth * kth]
        if chunk.size == 0:
            break
        y = np.ascontiguousarray(history[chunk, :m], dtype=np.float64)
        d = _dtw_batch(np.asarray(x, np.float64), y, r)
        best_idx += chunk.tolist()
        best += d.tolist()
        keep = np.lexsort((np.array(best_idx), np.array(best)))[:k]
        best_idx = [best_idx[i] for i in keep]
        best = [best[i] for i in keep]
        if len(best) == k:
            kth = best[-1]
    return np.array(best_idx, np.int64), np.array(best)
