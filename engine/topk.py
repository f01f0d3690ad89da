"""Top-k selection that stays exact under ties, so shards and brute force agree to the day."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


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
