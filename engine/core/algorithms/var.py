"""`var`: sample variance (ddof = 1) of x − y, the seed's second metric."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.core.algorithms.base import F64, RunningState
from simsignal.engine.core.algorithms.moments import (
    MomentAlgorithm,
    Moments,
    prefix,
    sample_variance,
)


class DiffVariance(MomentAlgorithm):
    """Spread of the difference: ranks days whose shape matches, whatever their level.

    Needs m ≥ 2; at m = 1 every day scores 0 (one point has no spread), so ties decide.
    """

    name = "var"
    summary = "sample variance (ddof=1) of (x−y); 0 at m = 1"
    cost = "O(1): Welford mean/M2 of x−y"

    def scores(self, st: RunningState) -> F64:
        """Welford's M2 / (m − 1)."""
        assert isinstance(st, Moments)
        if st.m < 2:
            return np.zeros_like(st.m2_d)
        return np.maximum(st.m2_d, 0.0) / (st.m - 1)

    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Full recompute over the prefix."""
        xp, yp = prefix(x, history)
        return sample_variance(xp - yp)
