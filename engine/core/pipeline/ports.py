"""The minute pipeline's edges: its two ports, its config, and what it hands out.

The fan-out (Ray's shards in production, in-process shards in tests and `evaluate`) and the
signal sink (Redis, or a list) are Protocols: the pipeline knows nothing else of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from simsignal.engine.core.algorithms import Params
from simsignal.engine.core.bars import BadBar
from simsignal.engine.core.calibration import Calibration
from simsignal.engine.core.derived import Derived, RebalanceRule, TimingRule
from simsignal.engine.core.forecast import Forecast
from simsignal.engine.core.pipeline.batcher import Arrival
from simsignal.engine.core.pipeline.journal import BatchRecord
from simsignal.engine.core.pipeline.merge import Matches
from simsignal.engine.core.shard_state import Answer, Update
from simsignal.engine.core.signals import Signal

ShardReply = list[Answer | None]  # one shard: per update, every algorithm's top-k
TodaySoFar = dict[str, list[tuple[float, ...]]]  # per ticker (or pair), today's values by minute


class FanOut(Protocol):
    """Sends a batch of updates to every shard once; returns each shard's reply."""

    def step(self, updates: list[Update]) -> list[ShardReply]:
        """One reply per shard, each aligned with `updates`."""
        ...

    def restore(self, today: TodaySoFar) -> None:
        """Every shard forgets its live queries and replays today's minutes so far."""
        ...


class SignalSink(Protocol):
    """Where signals and rejected input go (Redis in production, a list in tests)."""

    def publish(self, signals: list[Signal | Derived], record: BatchRecord) -> None:
        """Hand over one batch's signals, then its derived entries, and its journal record."""
        ...

    def reject(self, arrival: Arrival, bad: BadBar) -> None:
        """Park a rejected bar with its reason."""
        ...


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the per-minute path needs to know, fixed for a session."""

    algorithms: tuple[str, ...]
    k: int
    template: str
    date: str
    last_close: Mapping[str, tuple[str, float]]  # ticker → (date, close) of its last history day
    tickers: frozenset[str] | None = None  # live tickers (None: every ticker with history)
    usable: frozenset[str] | None = None  # tickers with kept days (None: pooled, any will do)
    max_gap_days: int = 4
    max_move: float | None = None  # None: the template's move limit
    max_prev_close_gap: float = 0.25
    channels: tuple[str, ...] = ("price",)
    params: Params = Params()
    calibration: Calibration | None = None  # None: up_prob is the neighbours' raw share
    timing: TimingRule | None = None  # derived ticker timing (None: not published)
    rebalance: RebalanceRule | None = None  # derived portfolio weights (None: not published)
    derived_algo: str = ""  # whose forecasts they use ("": the ensemble, else the first)
    pairs: tuple[tuple[str, str], ...] = ()  # (A, B): the spread A − B, searched as `A~B`
    risk: bool = False  # publish the shards' rest-of-day risk forecasts (`risk_model.py`)


@dataclass(frozen=True)
class MinuteResult:
    """One ticker's minute: what observers (chart, stats, live view) see."""

    ticker: str
    minute: int
    x: float
    close: float
    best: dict[str, Matches]
    forecasts: dict[str, Forecast]
    signals: list[Signal]
    arrival: Arrival
    risk: dict[str, float | str] | None = None  # the shards' rest-of-day forecast, if any

    @property
    def arrived_at(self) -> float:
        """When the bar behind this minute arrived (the clock of the pipeline)."""
        return self.arrival.at


@dataclass(frozen=True)
class Rejection:
    """A refused bar."""

    arrival: Arrival
    bad: BadBar


Observer = Callable[[MinuteResult], None]
