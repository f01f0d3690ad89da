"""`sq`: Σ(x − y)², the seed's ranking metric."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.core.algorithms.base import F64, RunningState
from simsignal.engine.core.algorithms.moments import MomentAlgorithm, Moments, prefix


class SquaredDistance(MomentAlgorithm):
    """Sum of squared differences of the raw curves."""

    name = "sq"
    summary = "Σ(x−y)² on the prefix (the seed's ranking metric)"
    cost = "O(1): one running sum"

    def scores(self, st: RunningState) -> F64:
        """Σd² is kept as a running sum."""
        assert isinstance(st, Moments)
        return st.sdd.copy()

    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Full recompute over the prefix."""
        xp, yp = prefix(x, history)
        d = xp - yp
        return np.einsum("ij,ij->i", d, d)
