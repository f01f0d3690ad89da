"""Top-k selection that stays exact under ties, so shards and brute force agree to the day."""

from __future__ import annotations

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


@njit(cache=True, nogil=True)
def _after(keys: F64, idx: I64, a: int, b: int) -> bool:  # pragma: no cover - compiled
    """Entry a ranks after entry b: a higher score, or an equal score and a higher index."""
    return keys[a] > keys[b] or (keys[a] == keys[b] and idx[a] > idx[b])


@njit(cache=True, nogil=True)
def _heap_down(keys: F64, idx: I64, size: int) -> None:  # pragma: no cover - compiled
    """Restore the max-heap on (key, index) from the root."""
    i = 0
    while True:
        left, right, top = 2 * i + 1, 2 * i + 2, i
        if left < size and _after(keys, idx, left, top):
            top = left
        if right < size and _after(keys, idx, right, top):
            top = right
        if top == i:
            return
        keys[i], keys[top] = keys[top], keys[i]
        idx[i], idx[top] = idx[top], idx[i]
        i = top


@njit(cache=True, nogil=True)
def _rows_k(scores: F64, k: int, out: I64) -> None:  # pragma: no cover - compiled
    keys = np.empty(k, np.float64)
    idx = np.empty(k, np.int64)
    for r in range(scores.shape[0]):
        size = 0
        for i in range(scores.shape[1]):
            s = scores[r, i]
            if np.isnan(s):  # NaN ranks last
                s = np.inf
            if size < k:  # sift up
                j = size
                keys[j], idx[j] = s, i
                size += 1
                while j > 0:
                    parent = (j - 1) // 2
                    if _after(keys, idx, parent, j):
                        break
                    keys[j], keys[parent] = keys[parent], keys[j]
                    idx[j], idx[parent] = idx[parent], idx[j]
                    j = parent
            elif s < keys[0]:  # a tie with the worst kept loses: its index is higher
                keys[0], idx[0] = s, i
                _heap_down(keys, idx, size)
        by_index = np.argsort(idx[:size], kind="mergesort")
        order = by_index[np.argsort(keys[:size][by_index], kind="mergesort")]
        out[r, :] = idx[:size][order]


def smallest_k_rows(scores: F64, k: int) -> NDArray[np.intp]:
    """`smallest_k` of every row of a [rows, n] score matrix in one compiled pass (NaN last)."""
    n = scores.shape[1]
    out = np.empty((scores.shape[0], min(k, n)), np.int64)
    if out.size:
        _rows_k(np.ascontiguousarray(scores, np.float64), min(k, n), out)
    return out.astype(np.intp, copy=False)
