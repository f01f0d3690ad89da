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

    @abstractmethod
    def scores(self, st: RunningState) -> F64:
        """Scores of every history day on the first `st.m` minutes, from the running state."""

    @abstractmethod
    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Batch scores from scratch: `x` is today's prefix [m], `history` is [days, m].

        The full recompute every minute is the seed's approach: the baseline the running
        state beats, and the reference it is checked against.
        """
