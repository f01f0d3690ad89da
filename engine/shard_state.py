"""A shard's memory and per-query running state; pure NumPy, so testable without Ray.

Curves are held slot-major ([slots, days], one contiguous column per minute): the per-minute
update walks that column once, which measured 3.4× faster than a strided day-major walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from engine.algorithms import Algorithm, RunningState, select
from engine.history.curves import DayCurves
from engine.topk import smallest_k

Update = tuple[str, int, float]  # ticker, minute m (1-based), today's ratio at that minute


class StateGap(RuntimeError):
    """The shard is not at minute m − 1 for this query (e.g. it was restarted): restore first."""


@dataclass
class Candidates:
    """One algorithm's top-k from one shard, best first."""

    scores: NDArray[np.float64]
    rows: NDArray[np.intp]
    tickers: list[str]
    dates: list[str]
    y_now: NDArray[np.float32]
    y_end: NDArray[np.float32]


@dataclass
class _Query:
    lo: int
    hi: int
    states: dict[type[RunningState], RunningState] = field(default_factory=dict)
    m: int = 0


class ShardState:
    """Holds one shard's days and answers each minute for every live query and algorithm."""

    def __init__(self, curves: DayCurves, algorithms: list[str], k: int, pooled: bool) -> None:
        self.tickers = curves.tickers
        self.dates = curves.dates
        self.cols = np.ascontiguousarray(curves.ratio.T)  # the only copy the shard keeps
        self.algos: list[Algorithm] = select(algorithms)
        self.kinds = list(dict.fromkeys(a.state for a in self.algos))
        self.k = k
        self.pooled = pooled
        self.ranges = curves.ticker_ranges()
        self.queries: dict[str, _Query] = {}

    @property
    def days(self) -> int:
        """History days held."""
        return int(self.cols.shape[1])

    def _query(self, ticker: str) -> _Query:
        q = self.queries.get(ticker)
        if q is None:
            lo, hi = (0, self.days) if self.pooled else self.ranges.get(ticker, (0, 0))
            q = _Query(lo, hi, {kind: kind.new(hi - lo) for kind in self.kinds})
            self.queries[ticker] = q
        return q

    def step(self, updates: list[Update]) -> dict[str, dict[str, Candidates]]:
        """Advance each query by one minute and return every algorithm's top-k."""
        out: dict[str, dict[str, Candidates]] = {}
        for ticker, m, x in updates:
            q = self._query(ticker)
            if m != q.m + 1:
                raise StateGap(f"{ticker}: shard at minute {q.m}, asked for minute {m}")
            column = self.cols[m - 1, q.lo : q.hi]
            for state in q.states.values():
                state.update(column, x)
            q.m = m
            out[ticker] = {a.name: self._top(q, a, m) for a in self.algos}
        return out

    def _top(self, q: _Query, algo: Algorithm, m: int) -> Candidates:
        if q.hi == q.lo:
            e = np.zeros(0)
            return Candidates(
                e, np.zeros(0, np.intp), [], [], e.astype(np.float32), e.astype(np.float32)
            )
        scores = algo.ranked(q.states[algo.state])
        idx = smallest_k(scores, self.k)
        rows = idx + q.lo
        return Candidates(
            scores=scores[idx],
            rows=rows,
            tickers=self.tickers[rows].tolist(),
            dates=self.dates[rows].tolist(),
            y_now=self.cols[m - 1, rows],
            y_end=self.cols[-1, rows],
        )

    def restore(self, ticker: str, xs: list[float]) -> None:
        """Rebuild a query's state from today's minutes so far (after a restart)."""
        self.queries.pop(ticker, None)
        for m, x in enumerate(xs, start=1):
            q = self._query(ticker)
            for state in q.states.values():
                state.update(self.cols[m - 1, q.lo : q.hi], x)
            q.m = m

    def reset(self) -> None:
        """Forget every live query (a new session day)."""
        self.queries.clear()

    def curves_of(self, rows: list[int]) -> NDArray[np.float32]:
        """Full day curves of the given rows (for charts), day-major."""
        return np.ascontiguousarray(self.cols[:, rows].T)
