"""A shard's memory and per-query running state; pure NumPy, so testable without Ray.

Curves are held slot-major ([slots, days], one contiguous column per minute): the per-minute
update walks that column once, which measured 3.4× faster than a strided day-major walk.
Only the channels in use are kept.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.algorithms import Algorithm, Params, RunningState, select
from simsignal.engine.algorithms.moments import SEED_FOUR, seed_four_ranked
from simsignal.engine.history.curves import DayCurves
from simsignal.engine.topk import smallest_k, smallest_k_rows

F64 = NDArray[np.float64]

# ticker, minute m (1-based), today's value per channel (in the shard's channel order)
Update = tuple[str, int, tuple[float, ...]]


class StateGap(RuntimeError):
    """The shard is not at minute m − 1 for this query (e.g. it was restarted): restore first."""


@dataclass
class Candidates:
    """One algorithm's top-k from one shard, best first."""

    scores: NDArray[np.float64]
    rows: NDArray[np.intp]
    ends: NDArray[np.intp]  # slot where each match ends (m − 1 unless the algorithm is unaligned)
    tickers: NDArray[np.str_]
    dates: NDArray[np.str_]
    y_now: NDArray[np.float32]  # price ratio at the match's end
    y_end: NDArray[np.float32]  # price ratio as many minutes later as today has left (≤ close)


@dataclass
class _Query:
    lo: int
    hi: int
    states: dict[tuple[str, Hashable], RunningState] = field(default_factory=dict)
    m: int = 0


class ShardState:
    """Holds one shard's days and answers each minute for every live query and algorithm."""

    def __init__(
        self,
        curves: DayCurves,
        algorithms: list[str],
        k: int,
        pooled: bool,
        params: Params = Params(),
        channels: dict[str, float] | None = None,
    ) -> None:
        weights = channels or {"price": 1.0}
        self.channels = list(weights)
        self.weights = [weights[c] for c in self.channels]
        # fixed-width text: a top-k's names are one fancy-index, and merge as arrays
        self.tickers = np.asarray(curves.tickers, dtype=str)
        self.dates = np.asarray(curves.dates, dtype=str)
        # the only copies the shard keeps: slot-major, channels in use (price for forecasts)
        self.cols = {c: np.ascontiguousarray(curves.channel(c).T)
                     for c in dict.fromkeys(["price", *self.channels])}  # fmt: skip
        self.slots = int(curves.ratio.shape[1])
        self.algos: list[Algorithm] = select(algorithms, params)
        self.k = k
        self.pooled = pooled
        self.ranges = curves.ticker_ranges()
        self.queries: dict[str, _Query] = {}

    @property
    def days(self) -> int:
        """History days held."""
        return int(self.cols["price"].shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of curves held."""
        return sum(int(c.nbytes) for c in self.cols.values())

    @property
    def state_bytes(self) -> int:
        """Bytes of the live queries' running state (NumPy arrays)."""
        return sum(st.nbytes for q in self.queries.values() for st in q.states.values())

    def _query(self, ticker: str) -> _Query:
        q = self.queries.get(ticker)
        if q is None:
            lo, hi = (0, self.days) if self.pooled else self.ranges.get(ticker, (0, 0))
            q = _Query(lo, hi)
            for c in self.channels:
                for a in self.algos:
                    q.states.setdefault((c, a.state_key()), a.new_state(hi - lo, self.slots))
            self.queries[ticker] = q
        return q

    def _advance(self, q: _Query, values: tuple[float, ...]) -> None:
        for (channel, _), state in q.states.items():
            state.update(self.cols[channel][:, q.lo : q.hi], values[self.channels.index(channel)])
        q.m += 1

    def step(self, updates: list[Update]) -> list[dict[str, Candidates]]:
        """Advance each query by one minute; every algorithm's top-k, aligned with `updates`.

        A batch may hold several tickers and several minutes of one ticker (a gap filled):
        each update's answer is taken right after its own minute.
        """
        out: list[dict[str, Candidates]] = []
        for ticker, m, values in updates:
            q = self._query(ticker)
            if m != q.m + 1:
                raise StateGap(f"{ticker}: shard at minute {q.m}, asked for minute {m}")
            self._advance(q, values)
            out.append(self._tops(q))
        return out

    def _tops(self, q: _Query) -> dict[str, Candidates]:
        """Every algorithm's top-k; the seed's four metrics scored and selected together."""
        if q.hi == q.lo:
            e = np.zeros((len(self.algos), 0), np.intp)
            return self._candidates(q, [a.name for a in self.algos], np.zeros(e.shape), e, None)
        found: dict[str, Candidates] = {}
        fused = [a.name for a in self.algos if a.name in SEED_FOUR]
        if fused:
            states = [q.states[(c, "moments")] for c in self.channels]
            scores = seed_four_ranked(states, self.weights)[[SEED_FOUR.index(n) for n in fused]]
            idx = smallest_k_rows(scores, self.k)
            found |= self._candidates(q, fused, np.take_along_axis(scores, idx, 1), idx, None)
        for algo in self.algos:
            if algo.name not in found:
                states = [q.states[(c, algo.state_key())] for c in self.channels]
                scores, ends = algo.combine(states, self.weights)
                idx = smallest_k(scores, self.k)
                found |= self._candidates(q, [algo.name], scores[idx][None], idx[None],
                                          None if ends is None else ends[idx][None])  # fmt: skip
        return {a.name: found[a.name] for a in self.algos}

    def _candidates(
        self, q: _Query, names: list[str], scores: F64, idx: NDArray[np.intp], ends: Any
    ) -> dict[str, Candidates]:
        """Candidates of several algorithms at once from [algorithms, k] arrays."""
        m = q.m
        rows = idx + q.lo
        end = ends.astype(np.intp) if ends is not None else np.full(idx.shape, m - 1, np.intp)
        later = np.minimum(end + (self.slots - m), self.slots - 1)
        price = self.cols["price"]
        tickers, dates = self.tickers[rows], self.dates[rows]
        y_now, y_end = price[end, rows], price[later, rows]
        return {
            name: Candidates(scores[i], rows[i], end[i], tickers[i], dates[i], y_now[i], y_end[i])
            for i, name in enumerate(names)
        }

    def restore(self, ticker: str, values: list[tuple[float, ...]]) -> None:
        """Rebuild a query's state from today's minutes so far (after a restart)."""
        self.queries.pop(ticker, None)
        q = self._query(ticker)
        for v in values:
            self._advance(q, v)

    def reset(self) -> None:
        """Forget every live query (a new session day)."""
        self.queries.clear()

    def curves_of(self, rows: list[int]) -> NDArray[np.float32]:
        """Full price curves of the given rows (for charts), day-major."""
        return np.ascontiguousarray(self.cols["price"][:, rows].T)
