"""`corr`: 1 − Pearson correlation of the prefixes (0 correlation for a constant prefix)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.core.algorithms.base import F64, RunningState
from simsignal.engine.core.algorithms.moments import MomentAlgorithm, Moments, batch_pearson, prefix


class Correlation(MomentAlgorithm):
    """Matches the direction of moves, whatever their size and level; in [0, 2]."""

    name = "corr"
    summary = "1 − Pearson ρ of the prefixes (ρ = 0 when either is constant)"
    cost = "O(1): Welford co-moment of (x, y)"

    def tie_grid(self, m: int) -> float:
        """At m = 2 every ρ is ±1 or 0: snap the rounding noise away."""
        return 1e-11

    def scores(self, st: RunningState) -> F64:
        """1 − C / √(M2x·M2y)."""
        assert isinstance(st, Moments)
        return 1.0 - st.pearson()[0]

    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Full recompute over the prefix."""
        return 1.0 - batch_pearson(*prefix(x, history))[0]
