"""The algorithm registry, filled here in one place, and each algorithm's wire index.

The wire index is part of a signal's Redis stream ID (`<minute epoch ms>-<index>`): it is
written out below, never taken from the registry's order, and a test pins the table, so that
the IDs of a run never depend on how the registry is filled. A new algorithm takes a new
number; a number is never reused. `ensemble` is not a scoring algorithm but a rule over the
others' forecasts; its index, 63, is the highest, so it is published last in each minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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
ALGO_INDEX: Mapping[str, int] = MappingProxyType({
    "sq": 0, "var": 1, "sq_norm": 2, "var_norm": 3, "corr": 4, "znorm": 5, "dtw": 6,
    "motif": 7, ENSEMBLE: 63,
})  # fmt: skip
KNOWN = (*REGISTRY, ENSEMBLE)
if set(ALGO_INDEX) != set(KNOWN) or len(set(ALGO_INDEX.values())) != len(ALGO_INDEX):
    raise RuntimeError("every algorithm needs its own wire index (ALGO_INDEX)")

__all__ = ["ALGO_INDEX", "ENSEMBLE", "KNOWN", "REGISTRY", "Algorithm", "Params", "RunningState",
           "select"]  # fmt: skip


def select(names: tuple[str, ...] | list[str], params: Params = Params()) -> list[Algorithm]:
    """Instances of the named scoring algorithms in registry order (`ensemble` is not one)."""
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {unknown}; known: {', '.join(KNOWN)}")
    return [REGISTRY[n](params) for n in REGISTRY if n in names]
