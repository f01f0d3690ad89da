"""The algorithm registry: filled here, in one place; its order fixes each algorithm's index.

The index is part of a signal's Redis stream ID (`<minute epoch ms>-<index>`), so new
algorithms are appended, never inserted. `ensemble` is not a scoring algorithm but a rule
over the others' forecasts; it has the last index so it is published last in each minute.
"""

from __future__ import annotations

from simsignal.engine.core.algorithms.base import Algorithm, Params, RunningState
from simsignal.engine.core.algorithms.corr import Correlation
from simsignal.engine.core.algorithms.dtw import DynamicTimeWarping
from simsignal.engine.core.algorithms.motif import Motif
from simsignal.engine.core.algorithms.sq import SquaredDistance
from simsignal.engine.core.algorithms.sq_norm import ScaledSquaredDistance
from simsignal.engine.core.algorithms.var import DiffVariance
from simsignal.engine.core.algorithms.var_norm import ScaledDiffVariance
from simsignal.engine.core.algorithms.znorm import ZNormDistance

REGISTRY: dict[str, type[Algorithm]] = {
    a.name: a
    for a in (
        SquaredDistance, DiffVariance, ScaledSquaredDistance, ScaledDiffVariance,
        Correlation, ZNormDistance, DynamicTimeWarping, Motif,
    )
}  # fmt: skip
ENSEMBLE = "ensemble"
ALGO_INDEX: dict[str, int] = {name: i for i, name in enumerate(REGISTRY)} | {ENSEMBLE: 63}
KNOWN = (*REGISTRY, ENSEMBLE)

__all__ = ["ALGO_INDEX", "ENSEMBLE", "KNOWN", "REGISTRY", "Algorithm", "Params", "RunningState",
           "select"]  # fmt: skip


def select(names: tuple[str, ...] | list[str], params: Params = Params()) -> list[Algorithm]:
    """Instances of the named scoring algorithms in registry order (`ensemble` is not one)."""
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {unknown}; known: {', '.join(KNOWN)}")
    return [REGISTRY[n](params) for n in REGISTRY if n in names]
