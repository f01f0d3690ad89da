"""`sq_norm`: Σ(xn − yn)² after min–max scaling each prefix to [0, 1] (the seed's)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.core.algorithms.base import F64, RunningState
from simsignal.engine.core.algorithms.moments import MomentAlgorithm, Moments, minmax_scale, prefix


class ScaledSquaredDistance(MomentAlgorithm):
    """Compares shapes on a common [0, 1] scale, so quiet and wild days can match."""

    name = "sq_norm"
    summary = "Σ(xn−yn)² of min–max scaled prefixes (constant prefix → 0)"
    cost = "O(1): Σy′, Σy′², Σx′y′, running min/max"

    def tie_grid(self, m: int) -> float:
        """Scaled terms are ≤ 1, so rounding noise is ≪ 1e-11·m: snap to that grid."""
        return 1e-11 * m

    def scores(self, st: RunningState) -> F64:
        """From the moment expansion of the scaled difference."""
        assert isinstance(st, Moments)
        return st.minmax_diff_sums()[1]

    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Full recompute over the prefix."""
        xp, yp = prefix(x, history)
        d = minmax_scale(xp) - minmax_scale(yp)
        return np.einsum("ij,ij->i", d, d)
