"""`sq`: Σ(x − y)², the seed's ranking metric."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from engine.algorithms.base import F64, Algorithm, RunningState
from engine.algorithms.moments import Moments


class SquaredDistance(Algorithm):
    """Sum of squared differences of the raw ratio curves."""

    name = "sq"
    state = Moments
    summary = "Σ(x−y)² on the prefix (the seed's ranking metric)"

    def scores(self, st: RunningState) -> F64:
        """Σd² is kept as a running sum."""
        assert isinstance(st, Moments)
        return st.sdd.copy()

    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Full recompute over the prefix."""
        d = np.asarray(x, np.float64) - np.asarray(history, np.float64)
        return np.einsum("ij,ij->i", d, d)
