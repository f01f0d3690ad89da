"""Top-k selection that stays exact under ties, so shards and brute force agree to the day."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


def smallest_k(scores: NDArray[np.float64], k: int) -> NDArray[np.intp]:
    """Indices of the k smallest scores, best first; ties go to the lower index.

    Rows are stored sorted by (ticker, date), so "lower index" is the global tie rule
    (score, ticker, date) that the coordinator's merge applies across shards.
    """
    n = scores.shape[0]
    if k >= n:
        return np.argsort(scores, kind="stable")
    kth = np.partition(scores, k - 1)[k - 1]
    candidates = np.flatnonzero(scores <= kth)  # all ties at the boundary, in index order
    order = np.argsort(scores[candidates], kind="stable")
    return candidates[order[:k]]


@njit(cache=True, inline="always")
def _after(ka: float, ia: int, kb: float, ib: int) -> bool:  # pragma: no cover - compiled
    """(ka, ia) ranks after (kb, ib): a higher score, or an equal one at a higher index."""
    return ka > kb or (ka == kb and ia > ib)


@njit(cache=True, inline="always")
def _sift_down(keys: F64, idx: I64, size: int, i: int) -> None:  # pragma: no cover - compiled
    """Restore the max-heap on (key, index) below entry i."""
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        top = left
        if left + 1 < size and _after(keys[left + 1], idx[left + 1], keys[left], idx[left]):
            top = left + 1
        if not _after(keys[top], idx[top], keys[i], idx[i]):
            return
        keys[i], keys[top] = keys[top], keys[i]
        idx[i], idx[top] = idx[top], idx[i]
        i = top


@njit(cache=True, nogil=True)
def _rows_k(scores: F64, k: int, out: I64) -> None:  # pragma: no cover - compiled
    """Each row's k best by (score, index), best first.

    A max-heap of the k best so far costs one compare per day once full (a NaN never enters
    then; among the first k a NaN counts as +inf); a heapsort in place orders it.
    """
    keys = np.empty(k, np.float64)
    idx = np.empty(k, np.int64)
    for r in range(scores.shape[0]):
        for i in range(k):
            v = scores[r, i]
            keys[i] = math.inf if math.isnan(v) else v
            idx[i] = i
        for i in range(k // 2 - 1, -1, -1):
            _sift_down(keys, idx, k, i)
        for i in range(k, scores.shape[1]):
            v = scores[r, i]
            if v < keys[0]:  # a tie with the worst kept loses: its index is higher
                keys[0], idx[0] = v, i
                _sift_down(keys, idx, k, 0)
        for size in range(k - 1, 0, -1):
            keys[0], keys[size] = keys[size], keys[0]
            idx[0], idx[size] = idx[size], idx[0]
            _sift_down(keys, idx, size, 0)
        out[r, :] = idx


def smallest_k_rows(scores: F64, k: int) -> NDArray[np.intp]:
    """`smallest_k` of every row of a [rows, n] score matrix in one compiled pass (NaN last)."""
    n = scores.shape[1]
    out = np.empty((scores.shape[0], min(k, n)), np.int64)
    if out.size:
        _rows_k(np.ascontiguousarray(scores, np.float64), min(k, n), out)
    return out.astype(np.intp, copy=False)
