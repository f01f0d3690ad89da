"""`var_norm`: sample variance (ddof = 1) of xn − yn, min–max scaled prefixes (the seed's)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.core.algorithms.base import F64, RunningState
from simsignal.engine.core.algorithms.moments import (
    MomentAlgorithm,
    Moments,
    minmax_scale,
    prefix,
    sample_variance,
)


class ScaledDiffVariance(MomentAlgorithm):
    """Variance of the scaled difference; 0 at m = 1 like `var`."""

    name = "var_norm"
    summary = "sample variance (ddof=1) of (xn−yn), min–max scaled; 0 at m = 1"
    cost = "O(1): as sq_norm"

    def tie_grid(self, m: int) -> float:
        """Scaled terms are ≤ 1, so rounding noise is ≪ 1e-11·m: snap to that grid."""
        return 1e-11 * m

    def scores(self, st: RunningState) -> F64:
        """(Σe² − (Σe)²/m) / (m − 1) with e = xn − yn."""
        assert isinstance(st, Moments)
        if st.m < 2:
            return np.zeros_like(st.sdd)
        s1, s2 = st.minmax_diff_sums()
        return np.maximum(s2 - s1 * s1 / st.m, 0.0) / (st.m - 1)

    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Full recompute over the prefix."""
        xp, yp = prefix(x, history)
        return sample_variance(minmax_scale(xp) - minmax_scale(yp))
