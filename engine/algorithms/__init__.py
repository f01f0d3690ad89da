"""The algorithm registry: filled here, in one place; its order fixes each algorithm's index.

The index is part of a signal's Redis stream ID (`<bar epoch ms>-<index>`), so new
algorithms are appended, never inserted.
"""

from __future__ import annotations

from engine.algorithms.base import Algorithm, RunningState
from engine.algorithms.sq import SquaredDistance
from engine.algorithms.sq_norm import ScaledSquaredDistance
from engine.algorithms.var import DiffVariance
from engine.algorithms.var_norm import ScaledDiffVariance

REGISTRY: dict[str, Algorithm] = {
    a.name: a
    for a in (SquaredDistance(), DiffVariance(), ScaledSquaredDistance(), ScaledDiffVariance())
}
ALGO_INDEX: dict[str, int] = {name: i for i, name in enumerate(REGISTRY)}

__all__ = ["ALGO_INDEX", "REGISTRY", "Algorithm", "RunningState", "select"]


def select(names: tuple[str, ...] | list[str]) -> list[Algorithm]:
    """The named algorithms in registry order (the order signals are published in)."""
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {unknown}; known: {', '.join(REGISTRY)}")
    return [REGISTRY[n] for n in REGISTRY if n in names]
