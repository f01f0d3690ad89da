"""The algorithm interface: running state per live query, O(1) update per history day, scores.

An algorithm does not own its state: algorithms that need the same running sums share one
`RunningState`, so one minute costs one pass over the shard's curves for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Self

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


class RunningState(ABC):
    """State carried from minute m to m+1 for one query against n history days."""

    m: int

    @classmethod
    @abstractmethod
    def new(cls, n_days: int) -> Self:
        """Empty state (m = 0) for n history days."""

    @abstractmethod
    def update(self, column: F32, x: float) -> None:
        """Take minute m+1: `column` holds every day's value at that slot, `x` today's."""


class Algorithm(ABC):
    """A way to score history prefixes against today's prefix; lower is more similar."""

    name: ClassVar[str]
    state: ClassVar[type[RunningState]]
    summary: ClassVar[str]

    def tie_grid(self, m: int) -> float:
        """Grid that published scores are snapped to (0: none).

        Metrics whose scores are often mathematically equal (scaled prefixes at small m are
        exactly 0 or 1 everywhere) would otherwise break those ties by rounding noise, which
        differs between the running sums and a recompute; on the grid they tie exactly and
        the (ticker, date) rule decides.
        """
        return 0.0

    def ranked(self, st: RunningState) -> F64:
        """Scores as ranked and published: `scores` snapped to `tie_grid`."""
        s = self.scores(st)
        q = self.tie_grid(st.m)
        return np.round(s / q) * q if q > 0 else s

    @abstractmethod
    def scores(self, st: RunningState) -> F64:
        """Scores of every history day on the first `st.m` minutes, from the running state."""

    @abstractmethod
    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Batch scores from scratch: `x` is today's prefix [m], `history` is [days, m].

        The full recompute every minute is the seed's approach: the baseline the running
        state beats, and the reference it is checked against.
        """
