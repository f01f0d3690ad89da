"""`znorm`: Euclidean distance of the z-normalised prefixes (population σ, as STUMPY/MASS)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.core.algorithms.base import F64, RunningState, snap
from simsignal.engine.core.algorithms.moments import MomentAlgorithm, Moments, batch_pearson, prefix


def flat_lines(d2: F64, length: int, q_const: bool, t_const: NDArray[np.bool_]) -> F64:
    """STUMPY's rule for flat lines: both constant → 0, exactly one constant → length (squared)."""
    if q_const:
        return np.where(t_const, 0.0, float(length))
    return np.where(t_const, float(length), d2)


def _distance(m: int, rho: F64, x_const: bool, y_const: NDArray[np.bool_]) -> F64:
    """√(2m(1 − ρ)) with the flat-line rule."""
    return np.sqrt(flat_lines(np.maximum(2.0 * m * (1.0 - rho), 0.0), m, x_const, y_const))


class ZNormDistance(MomentAlgorithm):
    """Shape distance after removing each prefix's mean and scale."""

    name = "znorm"
    summary = "‖zx − zy‖ of the z-normalised prefixes (σ with ddof=0; flat lines as STUMPY)"
    cost = "O(1): as corr"

    def ranked(self, st: RunningState) -> F64:
        """Snap the squared distance (√ would magnify noise near a perfect match), then √."""
        return np.sqrt(snap(self.scores(st) ** 2, 1e-11 * st.m))

    def scores(self, st: RunningState) -> F64:
        """From the running Pearson ρ: ‖zx − zy‖² = 2m(1 − ρ)."""
        assert isinstance(st, Moments)
        rho, y_const = st.pearson()
        return _distance(st.m, rho, st.xmax == st.xmin, y_const)

    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Full recompute over the prefix."""
        xp, yp = prefix(x, history)
        rho, y_const = batch_pearson(xp, yp)
        return _distance(xp.shape[0], rho, bool(xp.max() == xp.min()), y_const)
