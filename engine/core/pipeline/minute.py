"""The per-minute path as a pure pipeline, with Ray and Redis behind two ports.

gate → today's curves → fan-out (port) → merge → forecast → signals → sink (port).

A batch is every bar that arrived for the current minute, across tickers: it goes to the
shards in ONE fan-out call, and its signals go to the sink in ONE publish call. A single bar
is a batch of one, and gives the same signals.
"""

from __future__ import annotations

import math
import operator
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from simsignal.engine.core import pairs
from simsignal.engine.core.algorithms import ALGO_INDEX, ENSEMBLE, Algorithm, select
from simsignal.engine.core.bars import BadBar, BarGate, check_move, parse_bar
from simsignal.engine.core.derived import Derived, Deriver
from simsignal.engine.core.forecast import Forecast, ensemble, forecast_many
from simsignal.engine.core.kinds import RISK
from simsignal.engine.core.pipeline.batcher import Arrival
from simsignal.engine.core.pipeline.journal import BatchRecord
from simsignal.engine.core.pipeline.merge import Matches, merge_candidates
from simsignal.engine.core.pipeline.ports import (
    FanOut,
    MinuteResult,
    Observer,
    PipelineConfig,
    Rejection,
    SignalSink,
    TodaySoFar,
)
from simsignal.engine.core.shard_state import Answer, Update
from simsignal.engine.core.signals import Signal, epoch_ms
from simsignal.engine.core.templates import get_template
from simsignal.engine.core.today import TodayCurve


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
    rejected: Counter[str] = field(default_factory=Counter)  # by BadBar.key (field:code)
    not_finite: int = 0  # signals withheld because a field was not finite (never expected)
    handled: set[str] = field(default_factory=set)  # receipts settled before a restart
    journal: list[BatchRecord] = field(default_factory=list)  # today's committed batches
    pair_values: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)  # spreads

    def __post_init__(self) -> None:
        c = self.config
        self.template = get_template(c.template)
        self.algos: list[Algorithm] = select(c.algorithms, c.params)
        self.with_ensemble = ENSEMBLE in c.algorithms
        known = set(c.tickers) if c.tickers else set(c.last_close)
        self.gate = BarGate(self.template, c.date, known)
        self._day = datetime.fromisoformat(c.date)
        self.move_limit = c.max_move or self.template.move_limit
        self._stamps: dict[int, int] = {}  # minute → epoch ms (one session day)
        source = c.derived_algo or (ENSEMBLE if self.with_ensemble else self.algos[0].name)
        self.deriver = Deriver(source, c.timing, c.rebalance) if c.timing or c.rebalance else None

    # -- the path ---------------------------------------------------------------------
    def on_batch(self, batch: Sequence[Arrival]) -> list[MinuteResult | Rejection]:
        """Gate every bar, one fan-out for all accepted minutes, one publish for all signals.

        Whatever a bar holds, it is either accepted or refused here: an unexpected error while
        reading it is a refusal too (code `unreadable`), so no input can stop the engine.
        """
        out: list[MinuteResult | Rejection] = []
        updates: list[Update] = []
        pending: list[_Pending] = []
        record = BatchRecord()
        for arrival in batch:
            if arrival.receipt:
                record.receipts.append((arrival.source, arrival.receipt))  # acked again: harmless
                if arrival.receipt in self.handled:  # settled before a restart: skip it
                    continue
            try:
                minutes = self._admit(arrival)
            except Exception as err:  # any failure of one bar is that bar's refusal
                bad = err if isinstance(err, BadBar) else _unreadable(err)
                self.rejected[bad.key] += 1
                record.rejected.append(bad.key)
                self.sink.reject(arrival, bad)
                out.append(Rejection(arrival, bad))
                continue
            self.accepted += 1
            ticker, close = minutes[0][0], minutes[0][1]
            today = self.today[ticker]
            record.bars.append((ticker, minutes[-1][2] - 1, close, today.volumes[-1],
                                today.amounts[-1], today.prev_close))  # fmt: skip
            for _, _, m, x, values in minutes:
                pending.append(_Pending(arrival, ticker, close, m, x, len(updates)))
                updates.append((ticker, m, values))
        came = {p.ticker: p.arrival for p in pending}
        for pair, m, spread in self._new_pair_minutes():
            a, b = (came.get(t) for t in self.config.pairs[pair])
            arrival = max((x for x in (a, b) if x), key=lambda x: x.at, default=batch[-1])
            name = pairs.name(self.config.pairs[pair])
            pending.append(_Pending(arrival, name, 0.0, m, spread, len(updates)))
            updates.append((name, m, (spread,)))
        if not updates:
            self.sink.publish([], record)
            self.journal.append(record)
            return out
        replies = self.fanout.step(updates)
        best = [self._merged([r[p.index] for r in replies]) for p in pending]
        made = self._forecasts(pending, best)
        results = [self._minute(p, b, f, _risk(replies, p.index))
                   for p, b, f in zip(pending, best, made, strict=True)]  # fmt: skip
        signals = [s for r in results for s in r.signals]
        record.signals = len(signals)
        derived = self._derived(results) + self._risks(results)
        self.sink.publish([*signals, *derived], record)
        self.journal.append(record)
        for r in results:
            if not pairs.is_pair(r.ticker):  # observers draw tickers
                for observe in self.observers:
                    observe(r)
        return out + results

    def _new_pair_minutes(self) -> list[tuple[int, int, float]]:
        """(pair index, minute, spread) for every pair minute both tickers have now reached."""
        out = []
        for i, (a, b) in enumerate(self.config.pairs):
            ta, tb = self.today.get(a), self.today.get(b)
            if ta is None or tb is None:
                continue
            done = self.pair_values.setdefault(pairs.name((a, b)), [])
            for m in range(len(done) + 1, min(len(ta.values), len(tb.values)) + 1):
                spread = ta.values[m - 1][0] - tb.values[m - 1][0]  # price: the only channel
                done.append((spread,))
                out.append((i, m, spread))
        return out

    def restore(self, records: Sequence[BatchRecord]) -> TodaySoFar:
        """Rebuild today from journal records, and the shards' queries with it (no publishing).

        Returns each ticker's channel values so far, as the shards were given them.
        Receipts in the records are remembered, so a batch that is sent again after a crash
        is not handled twice. A bar seen twice (a record written twice) is taken once.
        """
        for record in records:
            self.handled.update(r for _, r in record.receipts)
            for key in record.rejected:
                self.rejected[key] += 1
            for ticker, slot, close, volume, amount, prev in record.bars:
                if slot <= self.gate.last_slot.get(ticker, -1):
                    continue
                today = self.today.get(ticker)
                if today is None:
                    today = self.today[ticker] = TodayCurve(ticker, prev, self.config.channels)
                self.gate.take(ticker, slot)
                today.advance(slot, close, volume, amount)
                self.accepted += 1
        self.pair_values.clear()
        self._new_pair_minutes()
        values = {t: list(today.values) for t, today in self.today.items()}
        values |= {name: list(v) for name, v in self.pair_values.items()}
        self.fanout.restore(values)
        return values

    def _admit(self, arrival: Arrival) -> list[tuple[str, float, int, float, tuple[float, ...]]]:
        """Validate one bar and advance its ticker's curves; the minutes it makes (gaps filled).

        Every check runs before any state changes: a refused bar leaves no trace.
        """
        c = self.config
        bar = parse_bar(arrival.fields, self.template.zone)
        if c.usable is not None and bar.ticker in c.last_close.keys() - c.usable:
            raise BadBar("ticker", bar.ticker, "has no usable history day (see the load report)",
                         "no_history")  # fmt: skip
        slot = self.gate.check(bar)
        today = self.today.get(bar.ticker)
        prev = today.prev_close if today else self._prev_close(bar.ticker, bar.prev_close)
        check_move(bar, prev, self.move_limit)
        if today is None:
            today = self.today[bar.ticker] = TodayCurve(bar.ticker, prev, c.channels)
        self.gate.take(bar.ticker, slot)
        made = today.advance(slot, bar.close, bar.volume, bar.amount)
        return [(bar.ticker, bar.close, m, x, values) for m, x, values in made]

    def _prev_close(self, ticker: str, sent: float | None) -> float:
        """The previous close for a ticker's first bar: history's, or the one sent with it."""
        c = self.config
        last_date, known = c.last_close.get(ticker, ("", 0.0))
        if sent is not None and known:
            gap = sent / known - 1.0
            if abs(gap) > c.max_prev_close_gap:
                raise BadBar("prev_close", sent, f"{gap:+.1%} from {ticker}'s last history close "
                             f"{known!r} ({last_date}), beyond max_prev_close_gap "
                             f"{c.max_prev_close_gap:.0%}", "disagrees")  # fmt: skip
            return sent
        if sent is not None:
            return sent
        if last_date:
            skipped = int(np.busday_count(last_date, c.date)) - 1
            if skipped > c.max_gap_days:
                raise BadBar(
                    "prev_close", None,
                    f"none sent, and {ticker}'s last history close is from {last_date}, "
                    f"{skipped} business days missing before {c.date} "
                    f"(> max_gap_days {c.max_gap_days})", "stale_history",
                )  # fmt: skip
        if not known:
            raise BadBar("prev_close", sent, f"no previous close for {ticker} in history",
                         "missing")  # fmt: skip
        return known

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
        groups: dict[tuple[int, bool], list[tuple[int, str]]] = {}
        for i, matches in enumerate(best):
            spread = pairs.is_pair(pending[i].ticker)
            for name, m in matches.items():
                groups.setdefault((len(m), spread), []).append((i, name))
        out: list[dict[str, Forecast]] = [{} for _ in best]
        for (_, spread), keys in groups.items():
            rows = [best[i][name] for i, name in keys]
            made = forecast_many(
                np.array([pending[i].x for i, _ in keys]),
                np.stack([m.scores for m in rows]),
                np.stack([m.y_now for m in rows]),
                np.stack([m.y_end for m in rows]),
                additive=spread,
            )
            for (i, name), f in zip(keys, made, strict=True):
                out[i][name] = f
        return out

    def _minute(
        self,
        p: _Pending,
        best: dict[str, Matches],
        made: dict[str, Forecast],
        risk: dict[str, float | str] | None = None,
    ) -> MinuteResult:
        signals: list[Signal] = []
        made = {name: self._calibrated(name, p, f) for name, f in made.items()}
        for algo in self.algos:
            if algo.name not in best:
                continue
            matches, f = best[algo.name], made[algo.name]
            if not _finite(f):
                self.not_finite += 1
                continue
            labels = None if algo.aligned else [self.template.label(e) for e in matches.ends]
            signals.append(self._signal(p, algo.name, f, matches.neighbors(labels)))
        if self.with_ensemble and made:
            f, _ = ensemble(list(made.values()), p.x, additive=pairs.is_pair(p.ticker))
            f = self._calibrated(ENSEMBLE, p, f)
            if not _finite(f):
                self.not_finite += 1
                return MinuteResult(p.ticker, p.minute, p.x, p.close, best, made, signals,
                                    p.arrival, risk)  # fmt: skip
            made = {**made, ENSEMBLE: f}
            signals.append(self._signal(p, ENSEMBLE, f, _votes(list(best.values()), self.config.k)))
        return MinuteResult(p.ticker, p.minute, p.x, p.close, best, made, signals, p.arrival, risk)

    def _derived(self, results: list[MinuteResult]) -> list[Derived]:
        """The batch's timing entries and its rebalance (none when both are off)."""
        if self.deriver is None:
            return []
        label = self.template.label
        return self.deriver.entries(results, self.config.date, self.stamp, lambda m: label(m - 1))

    def _risks(self, results: list[MinuteResult]) -> list[Derived]:
        """The batch's risk entries, one per ticker minute the shards forecast (when on)."""
        if not self.config.risk:
            return []
        out = []
        for r in results:
            if r.risk is None or pairs.is_pair(r.ticker):
                continue
            values = {k: v for k, v in r.risk.items() if k != "model"}
            if not all(math.isfinite(float(v)) for v in values.values()):
                self.not_finite += 1
                continue
            out.append(Derived(RISK.name, r.ticker, self.config.date, r.minute,
                               self.template.label(r.minute - 1), str(r.risk["model"]),
                               self.stamp(r.minute), values))  # fmt: skip
        return out

    def _calibrated(self, algo: str, p: _Pending, f: Forecast) -> Forecast:
        """up_prob through the calibration, when it has a weight for this algorithm."""
        cal = self.config.calibration
        if cal is None or algo not in cal.weights or pairs.is_pair(p.ticker):
            return f
        return replace(f, up_prob=cal.up_prob(algo, p.ticker, p.minute, f.up_prob_raw))

    def _signal(
        self, p: _Pending, algo: str, f: Forecast, neighbors: tuple[tuple[str | float, ...], ...]
    ) -> Signal:
        cal = self.config.calibration
        q10, q90 = (f.q10, f.q90) if cal is None or pairs.is_pair(p.ticker) else cal.q10_q90(
            algo, f.q10, f.q90)  # fmt: skip
        return Signal(
            ticker=p.ticker, date=self.config.date, minute=p.minute,
            slot=self.template.label(p.minute - 1), algo=algo, algo_index=ALGO_INDEX[algo],
            bar_epoch_ms=self.stamp(p.minute), k=len(neighbors), pred_close=f.pred_close,
            pred_close_mean=f.pred_close_mean, pred_move=f.pred_move, up_prob=f.up_prob,
            up_prob_raw=f.up_prob_raw, q10=q10, q50=f.q50, q90=q90, dispersion=f.dispersion,
            neighbors=neighbors,
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
        if pairs.is_pair(ticker):
            return self.pair_values[ticker][: m - 1]
        return self.today[ticker].values[: m - 1]


def _risk(replies: Sequence[Sequence[Answer | None]], index: int) -> dict[str, float | str] | None:
    """The rest-of-day forecast of one update: from the shard holding the ticker's days."""
    for reply in replies:
        answer = reply[index]
        if answer is not None and answer.risk is not None:
            return answer.risk
    return None


def _votes(best: list[Matches], k: int) -> tuple[tuple[str | float, ...], ...]:
    """Ensemble neighbours: days most algorithms chose; score = 1 − share of algorithms.

    Ties go to the better mean rank, then to (ticker, date). Plain dicts and ints: this runs
    for every ticker every minute.
    """
    count: dict[tuple[str, str], int] = {}
    rank_sum: dict[tuple[str, str], int] = {}
    for matches in best:
        keys = zip(matches.tickers.tolist(), matches.dates.tolist(), strict=True)
        for rank, key in enumerate(keys):
            count[key] = count.get(key, 0) + 1
            rank_sum[key] = rank_sum.get(key, 0) + rank
    n = len(best)
    order = sorted(count, key=lambda key: (-count[key], rank_sum[key] / count[key], key))
    return tuple((t, d, 1.0 - count[(t, d)] / n) for t, d in order[:k])


def _finite(f: Forecast) -> bool:
    """Every number of a forecast is finite (strict JSON and every consumer need that)."""
    return all(map(math.isfinite, _FORECAST_NUMBERS(f)))


_FORECAST_NUMBERS = operator.attrgetter(*Forecast.__slots__)


def _unreadable(err: Exception) -> BadBar:
    """An unexpected error while reading a bar, as that bar's refusal."""
    return BadBar("bar", type(err).__name__, f"unreadable ({type(err).__name__}: "
                  f"{str(err)[:120]})", "unreadable")  # fmt: skip
