"""The algorithm interface: running state per live query, cheap update per minute, scores.

Algorithms do not own their state: those whose `state_key` is equal share one `RunningState`,
so one minute is one pass over the shard's memory for all of them (the moment metrics share
one set of running sums). With several channels, each channel has its own state and the
algorithm mixes the channels' scores by their weights (`combine`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class Params:
    """Tunables of the algorithms that have any."""

    dtw_band: int = 10  # Sakoe–Chiba radius r: cells with |i − j| ≤ r
    motif_window: int = 30  # w: minutes of today matched against every w-window of history


class RunningState(ABC):
    """State carried from minute m to m+1 for one query against n history days."""

    m: int

    @abstractmethod
    def update(self, cols: NDArray[np.float32], x: float) -> None:
        """Take minute m+1: `cols` is the days' curves slot-major [slots, n], `x` today's value."""

    @property
    def nbytes(self) -> int:
        """Bytes of the state's arrays (the memory a live query costs)."""
        names = [n for c in type(self).__mro__ for n in getattr(c, "__slots__", ())]
        values = [*getattr(self, "__dict__", {}).values(), *(getattr(self, n, None) for n in names)]
        return sum(v.nbytes for v in values if isinstance(v, np.ndarray))


class Algorithm(ABC):
    """A way to score history days against today's prefix; lower is more similar."""

    name: ClassVar[str]
    summary: ClassVar[str]
    cost: ClassVar[str]  # per minute, per history day
    aligned: ClassVar[bool] = True  # False: matches windows at any offset (neighbours carry a slot)

    def __init__(self, params: Params = Params()) -> None:
        self.params = params

    def state_key(self) -> Hashable:
        """Algorithms with equal keys share one running state."""
        return type(self).__name__

    @abstractmethod
    def new_state(self, n_days: int, slots: int) -> RunningState:
        """Empty state (m = 0) for n history days of `slots` minutes."""

    @abstractmethod
    def scores(self, st: RunningState) -> F64:
        """Scores of every history day on today's first `st.m` minutes, from the running state."""

    def tie_grid(self, m: int) -> float:
        """Grid that ranked scores are snapped to (0: none).

        Metrics whose scores are often mathematically equal (scaled prefixes at small m are
        exactly 0 or 1 everywhere) would otherwise break those ties by rounding noise, which
        differs between the running sums and a recompute; on the grid they tie exactly and
        the (ticker, date) rule decides.
        """
        return 0.0

    def ranked(self, st: RunningState) -> F64:
        """Scores as ranked and published: `scores` snapped to `tie_grid`."""
        return snap(self.scores(st), self.tie_grid(st.m))

    def combine(self, states: list[RunningState], weights: list[float]) -> tuple[F64, I64 | None]:
        """Per-day score over channels (weighted sum), and each day's matched end slot.

        The end slot is None for aligned algorithms: their match always ends at minute m.
        """
        total = weights[0] * self.ranked(states[0])
        for st, w in zip(states[1:], weights[1:], strict=True):
            total = total + w * self.ranked(st)
        return total, None

    @abstractmethod
    def recompute(self, x: F64, history: NDArray[np.floating]) -> F64:
        """Batch scores from scratch: `x` is today's prefix [m], `history` the full days [n, slots].

        The full recompute every minute is the seed's approach: the baseline the running
        state beats, and the reference it is checked against.
        """


def snap(scores: F64, grid: float) -> F64:
    """Round scores to a grid so that equal values compare equal."""
    return np.rint(scores / grid) * grid if grid > 0 else scores
