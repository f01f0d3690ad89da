"""The per-minute path as a pure pipeline, with Ray and Redis behind two ports.

gate → today's curves → fan-out (port) → merge → forecast → signals → sink (port).

A batch is every bar that arrived for the current minute, across tickers: it goes to the
shards in ONE fan-out call, and its signals go to the sink in ONE publish call. A single bar
is a batch of one, and gives the same signals.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from simsignal.engine.algorithms import ALGO_INDEX, ENSEMBLE, Algorithm, Params, select
from simsignal.engine.bars import BadBar, BarGate, parse_bar
from simsignal.engine.forecast import Forecast, ensemble, forecast_many
from simsignal.engine.pipeline.batcher import Arrival
from simsignal.engine.pipeline.merge import Matches, merge_candidates
from simsignal.engine.shard_state import Answer, Update
from simsignal.engine.signals import Signal, epoch_ms
from simsignal.engine.templates import get_template
from simsignal.engine.today import TodayCurve

ShardReply = list[Answer | None]  # one shard: per update, every algorithm's top-k


class FanOut(Protocol):
    """Sends a batch of updates to every shard once; returns each shard's reply."""

    def step(self, updates: list[Update]) -> list[ShardReply]:
        """One reply per shard, each aligned with `updates`."""
        ...


class SignalSink(Protocol):
    """Where signals and rejected input go (Redis in production, a list in tests)."""

    def publish(self, signals: list[Signal]) -> None:
        """Hand over one batch's signals, in order."""
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
    channels: tuple[str, ...] = ("price",)
    params: Params = Params()


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


@dataclass
class _Pending:
    arrival: Arrival
    ticker: str
    close: float
    minute: int
    x: float
    index: int  # position in the batch's updates


@dataclass
class MinutePipeline:
    """Turns batches of raw bars into signals; keeps today's curves and the counts."""

    config: PipelineConfig
    fanout: FanOut
    sink: SignalSink
    observers: list[Observer] = field(default_factory=list)
    clock: Callable[[], float] = time.perf_counter
    today: dict[str, TodayCurve] = field(default_factory=dict)
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        c = self.config
        self.template = get_template(c.template)
        self.algos: list[Algorithm] = select(c.algorithms, c.params)
        self.with_ensemble = ENSEMBLE in c.algorithms
        known = set(c.tickers) if c.tickers else set(c.last_close)
        self.gate = BarGate(self.template, c.date, known)
        self._day = datetime.fromisoformat(c.date)
        self._stamps: dict[int, int] = {}  # minute → epoch ms (one session day)

    # -- the path ---------------------------------------------------------------------
    def on_batch(self, batch: Sequence[Arrival]) -> list[MinuteResult | Rejection]:
        """Gate every bar, one fan-out for all accepted minutes, one publish for all signals."""
        out: list[MinuteResult | Rejection] = []
        updates: list[Update] = []
        pending: list[_Pending] = []
        for arrival in batch:
            try:
                minutes = self._admit(arrival)
            except BadBar as bad:
                self.rejected[bad.reason] += 1
                self.sink.reject(arrival, bad)
                out.append(Rejection(arrival, bad))
                continue
            self.accepted += 1
            ticker, close = minutes[0][0], minutes[0][1]
            for _, _, m, x, values in minutes:
                pending.append(_Pending(arrival, ticker, close, m, x, len(updates)))
                updates.append((ticker, m, values))
        if not updates:
            return out
        replies = self.fanout.step(updates)
        best = [self._merged([r[p.index] for r in replies]) for p in pending]
        made = self._forecasts(pending, best)
        results = [self._minute(p, b, f) for p, b, f in zip(pending, best, made, strict=True)]
        signals = [s for r in results for s in r.signals]
        self.sink.publish(signals)
        for r in results:
            for observe in self.observers:
                observe(r)
        return out + results

    def _admit(self, arrival: Arrival) -> list[tuple[str, float, int, float, tuple[float, ...]]]:
        """Validate one bar and advance its ticker's curves; the minutes it makes (gaps filled)."""
        c = self.config
        bar = parse_bar(arrival.fields, self.template.zone)
        if c.usable is not None and bar.ticker in c.last_close.keys() - c.usable:
            raise BadBar("ticker", bar.ticker, "has no usable history day (see the load report)")
        slot = self.gate.admit(bar)
        today = self._today_of(bar.ticker, bar.prev_close)
        made = today.advance(slot, bar.close, bar.volume, bar.amount)
        return [(bar.ticker, bar.close, m, x, values) for m, x, values in made]

    def _today_of(self, ticker: str, prev_close: float | None) -> TodayCurve:
        today = self.today.get(ticker)
        if today is None:
            c = self.config
            last_date, prev = c.last_close.get(ticker, ("", 0.0))
            if prev_close is None and last_date:
                skipped = int(np.busday_count(last_date, c.date)) - 1
                if skipped > c.max_gap_days:
                    raise BadBar(
                        "prev_close", None,
                        f"none sent, and {ticker}'s last history close is from {last_date}, "
                        f"{skipped} business days missing before {c.date} "
                        f"(> max_gap_days {c.max_gap_days})",
                    )  # fmt: skip
            prev = prev_close or prev
            if not prev:
                raise BadBar("prev_close", prev_close, f"no previous close for {ticker} in history")
            today = self.today[ticker] = TodayCurve(ticker, prev, c.channels)
        return today

    def _merged(self, answers: list[Answer | None]) -> dict[str, Matches]:
        """Each algorithm's global top-k of one update (algorithms with no days left out)."""
        out = {}
        for algo in self.algos:
            parts = [None if a is None else a.of(algo.name) for a in answers]
            matches = merge_candidates(parts, self.config.k)
            if len(matches):
                out[algo.name] = matches
        return out

    def _forecasts(
        self, pending: list[_Pending], best: list[dict[str, Matches]]
    ) -> list[dict[str, Forecast]]:
        """All (update, algorithm) forecasts of the batch, vectorised per neighbour count."""
        groups: dict[int, list[tuple[int, str]]] = {}
        for i, matches in enumerate(best):
            for name, m in matches.items():
                groups.setdefault(len(m), []).append((i, name))
        out: list[dict[str, Forecast]] = [{} for _ in best]
        for keys in groups.values():
            rows = [best[i][name] for i, name in keys]
            made = forecast_many(
                np.array([pending[i].x for i, _ in keys]),
                np.stack([m.scores for m in rows]),
                np.stack([m.y_now for m in rows]),
                np.stack([m.y_end for m in rows]),
            )
            for (i, name), f in zip(keys, made, strict=True):
                out[i][name] = f
        return out

    def _minute(
        self, p: _Pending, best: dict[str, Matches], made: dict[str, Forecast]
    ) -> MinuteResult:
        signals: list[Signal] = []
        for algo in self.algos:
            if algo.name not in best:
                continue
            matches, f = best[algo.name], made[algo.name]
            labels = None if algo.aligned else [self.template.label(e) for e in matches.ends]
            signals.append(self._signal(p, algo.name, f, matches.neighbors(labels)))
        if self.with_ensemble and made:
            f, _ = ensemble(list(made.values()), p.x)
            made = {**made, ENSEMBLE: f}
            signals.append(self._signal(p, ENSEMBLE, f, _votes(list(best.values()), self.config.k)))
        return MinuteResult(p.ticker, p.minute, p.x, p.close, best, made, signals, p.arrival)

    def _signal(
        self, p: _Pending, algo: str, f: Forecast, neighbors: tuple[tuple[str | float, ...], ...]
    ) -> Signal:
        return Signal(
            ticker=p.ticker, date=self.config.date, minute=p.minute,
            slot=self.template.label(p.minute - 1), algo=algo, algo_index=ALGO_INDEX[algo],
            bar_epoch_ms=self.stamp(p.minute), k=len(neighbors), pred_close=f.pred_close,
            pred_close_mean=f.pred_close_mean, pred_move=f.pred_move, up_prob=f.up_prob,
            q10=f.q10, q50=f.q50, q90=f.q90, dispersion=f.dispersion, neighbors=neighbors,
            latency_ms=round((self.clock() - p.arrival.at) * 1e3, 3),
        )  # fmt: skip

    def stamp(self, m: int) -> int:
        """Epoch ms of minute m's slot today: with the algo index, the signal's stream ID."""
        known = self._stamps.get(m)
        if known is None:
            minute = self.template.minutes[m - 1]
            local = self._day.replace(hour=minute // 60, minute=minute % 60)
            known = self._stamps[m] = epoch_ms(local, self.template.zone)
        return known

    def values_before(self, ticker: str, m: int) -> list[tuple[float, ...]]:
        """Today's channel values of minutes 1..m−1 (to restore a restarted shard)."""
        return self.today[ticker].values[: m - 1]


def _votes(best: list[Matches], k: int) -> tuple[tuple[str | float, ...], ...]:
    """Ensemble neighbours: days most algorithms chose; score = 1 − share of algorithms."""
    votes: Counter[tuple[str, str]] = Counter()
    ranks: dict[tuple[str, str], list[int]] = {}
    for matches in best:
        for rank, key in enumerate(zip(matches.tickers, matches.dates, strict=True)):
            votes[key] += 1
            ranks.setdefault(key, []).append(rank)
    n = len(best)
    order = sorted(votes, key=lambda key: (-votes[key], float(np.mean(ranks[key])), key))
    return tuple((t, d, 1.0 - votes[(t, d)] / n) for t, d in order[:k])
