"""Walk-forward: each test day is forecast by the live minute pipeline from earlier days only.

For test day D the shard holds every kept day strictly before D (the history grows by one day
per test day) and D's curve is fed minute by minute as bars, exactly as a live day would be.
Nothing is fitted on D. The outcome of each checkpoint is what D did afterwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from simsignal.engine.app.evaluation.metrics import outcome
from simsignal.engine.core import pairs
from simsignal.engine.core.algorithms import ENSEMBLE, Params
from simsignal.engine.core.bars import BadBar
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.derived import Derived
from simsignal.engine.core.forecast import move
from simsignal.engine.core.pairs import Pair
from simsignal.engine.core.pipeline.batcher import Arrival
from simsignal.engine.core.pipeline.journal import BatchRecord
from simsignal.engine.core.pipeline.local import LocalShards
from simsignal.engine.core.pipeline.minute import MinutePipeline
from simsignal.engine.core.pipeline.observers import ChartSnapshot
from simsignal.engine.core.pipeline.ports import MinuteResult, PipelineConfig
from simsignal.engine.core.risk_baselines import day_risk
from simsignal.engine.core.shard_state import ShardState
from simsignal.engine.core.signals import Signal
from simsignal.engine.core.templates import SessionTemplate
from simsignal.engine.core.ticker_walk import WALK_COLUMNS

Progress = Callable[[int, int], None]  # days done, days in all

COLUMNS = WALK_COLUMNS  # one row per (test day, checkpoint, algorithm)


@dataclass(frozen=True)
class WalkConfig:
    """The engine settings a walk-forward runs with (price channel only)."""

    algorithms: tuple[str, ...]
    k: int
    template: SessionTemplate
    pooled: bool = False
    params: Params = Params()
    checkpoints: tuple[int, ...] | None = None  # minutes (1-based) kept; None: every minute
    max_move: float | None = None
    pairs: tuple[Pair, ...] = ()  # also forecast these spreads (scored apart, additively)


@dataclass
class _Tally:
    """A sink that only counts: the walk-forward reads forecasts, not signal messages."""

    signals: int = 0
    rejected: list[tuple[Arrival, BadBar]] = field(default_factory=list)

    def publish(self, signals: list[Signal | Derived], record: BatchRecord) -> None:
        self.signals += len(signals)

    def reject(self, arrival: Arrival, bad: BadBar) -> None:
        self.rejected.append((arrival, bad))


def dates_to_test(
    curves: DayCurves, start: str, end: str, tickers: Sequence[str] | None = None
) -> list[str]:
    """Dates in [start, end] with a kept day of a wanted ticker and at least one earlier day."""
    dates = curves.dates.astype(str)
    wanted = np.ones(len(dates), bool) if not tickers else np.isin(curves.tickers, list(tickers))
    first = min(dates.tolist(), default="")
    pick = wanted & (dates >= start) & (dates <= end) & (dates > first)
    return sorted(set(dates[pick].tolist()))


def moves_to_close(ratio: NDArray[np.floating], additive: bool = False) -> NDArray[np.float64]:
    """Each day's move from every minute to its close, [days, slots] (spreads: differences)."""
    r = np.asarray(ratio, np.float64)
    return move(r, r[:, -1:], additive)


def up_share(moves: NDArray[np.float64]) -> NDArray[np.float64]:
    """Share of days that rose to the close from each minute (unchanged counts half)."""
    return np.asarray(np.mean(outcome(moves), axis=0))


def bar_fields(
    ticker: str, date: str, label: str, close: float, prev_close: float
) -> dict[str, str]:
    """One minute of a history day as the bar the live feed would send."""
    c = repr(close)
    return {"ticker": ticker, "ts": f"{date} {label}", "open": c, "high": c, "low": c,
            "close": c, "volume": "0", "prev_close": repr(prev_close)}  # fmt: skip


def run_day(
    curves: DayCurves,
    config: WalkConfig,
    date: str,
    tickers: Sequence[str] | None = None,
    observers: Sequence[Callable[[MinuteResult], None]] = (),
) -> tuple[MinutePipeline, DayCurves, DayCurves]:
    """Replay `date` through the pipeline over the days before it; (pipeline, history, today).

    `curves` may hold pair spread days (`with_spreads`): they are history for the pairs, never
    bars. Observers see every minute's result, pairs included.
    """
    dates = curves.dates.astype(str)
    spread = np.array([pairs.is_pair(str(t)) for t in curves.tickers], bool)
    today_rows = (dates == date) & ~spread
    if tickers:
        today_rows &= np.isin(curves.tickers, list(tickers))
    today = curves.select(today_rows)
    history = curves.select(dates < date)
    scorers = [a for a in config.algorithms if a != ENSEMBLE]
    shard = ShardState(history, scorers, config.k, config.pooled, config.params)
    names = [str(t) for t in today.tickers]
    known = {str(t) for t in history.tickers}
    pipeline = MinutePipeline(
        PipelineConfig(
            algorithms=config.algorithms,
            k=config.k,
            template=config.template.name,
            date=date,
            last_close={t: (date, float(p)) for t, p in zip(names, today.prev_close, strict=True)},
            tickers=frozenset(names),
            usable=None if config.pooled else frozenset(known),
            max_move=config.max_move,
            pairs=config.pairs,
        ),
        LocalShards([shard]),
        _Tally(),
    )
    closes = today.prev_close[:, None] * (1.0 + today.ratio.astype(np.float64))
    labels = [config.template.label(s) for s in range(config.template.slots)]
    for s, label in enumerate(labels):
        now = time.perf_counter()
        batch = [
            Arrival(bar_fields(t, date, label, float(closes[i, s]), float(today.prev_close[i])),
                    "evaluate", now)
            for i, t in enumerate(names)
        ]  # fmt: skip
        for r in pipeline.on_batch(batch):
            if isinstance(r, MinuteResult):
                for observe in observers:
                    observe(r)
    return pipeline, history, today


def with_spreads(curves: DayCurves, wanted: Sequence[Pair]) -> DayCurves:
    """The curves plus the pairs' spread days, sorted by (ticker, date) as a shard needs."""
    if not wanted:
        return curves
    extra = pairs.spread_curves(curves, wanted)
    both = DayCurves(
        np.concatenate([curves.tickers, extra.tickers]),
        np.concatenate([curves.dates, extra.dates]),
        np.concatenate([curves.ratio, extra.ratio]),
        np.concatenate([curves.prev_close, extra.prev_close]),
    )
    return both.select(np.lexsort((both.dates.astype(str), both.tickers.astype(str))))


@dataclass
class _Rows:
    """Collects checkpoint outcomes as columns."""

    keep: frozenset[int] | None
    end: dict[str, float] = field(default_factory=dict)  # ticker → close ratio today
    base: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = field(default_factory=dict)
    date: str = ""
    cols: dict[str, list[object]] = field(default_factory=lambda: {c: [] for c in COLUMNS})
    risk: NDArray[np.float64] | None = (
        None  # the history rows' rest-of-day targets [rows, slots, 3]
    )

    def __call__(self, r: MinuteResult) -> None:
        if self.keep is not None and r.minute not in self.keep:
            return
        x_end = self.end[r.ticker]
        mean_move, base_up = self.base[r.ticker]
        additive = pairs.is_pair(r.ticker)
        moved = float(move(r.x, x_end, additive))
        for algo, f in r.forecasts.items():
            best = r.best.get(algo)
            analogue = (math.nan,) * 3
            if best is not None and self.risk is not None:
                analogue = tuple(self.risk[best.rows, r.minute - 1].mean(axis=0).tolist())
            row = (self.date, r.ticker, r.minute, algo, r.x, x_end, f.pred_close, f.pred_move,
                   f.up_prob, f.q10, f.q90, f.dispersion, moved, mean_move[r.minute - 1],
                   base_up[r.minute - 1], additive, *analogue)  # fmt: skip
            for c, v in zip(COLUMNS, row, strict=True):
                self.cols[c].append(v)


@dataclass
class WalkResult:
    """Every checkpoint forecast with its outcome, and what the replay refused."""

    frame: pd.DataFrame
    days: int
    rejected: dict[str, int]
    seconds: float


def walk_forward(
    curves: DayCurves,
    config: WalkConfig,
    dates: Sequence[str],
    tickers: Sequence[str] | None = None,
    progress: Progress = lambda done, total: None,
) -> WalkResult:
    """Forecast every checkpoint of every test day from the days before it only."""
    t0 = time.perf_counter()
    rows = _Rows(frozenset(config.checkpoints) if config.checkpoints else None)
    rejected: dict[str, int] = {}
    curves = with_spreads(curves, config.pairs)
    all_dates = curves.dates.astype(str)
    names = [pairs.name(p) for p in config.pairs]
    risk = day_risk(curves.ratio).targets  # the neighbours' own rest of day (the analogue)
    for i, date in enumerate(dates):
        rows.date = date
        rows.risk = risk[all_dates < date]  # the shard's rows: the days before, in order
        wanted = _wanted(curves, [*tickers, *names] if tickers else None)
        today = curves.select((all_dates == date) & wanted)
        earlier = all_dates < date
        for t, ratio in zip(today.tickers, today.ratio, strict=True):
            rows.end[str(t)] = float(ratio[-1])
            spread = pairs.is_pair(str(t))
            own = earlier if config.pooled and not spread else earlier & (curves.tickers == t)
            moves = moves_to_close(curves.ratio[own], additive=spread)
            rows.base[str(t)] = (moves.mean(axis=0), up_share(moves))
        pipeline, _, _ = run_day(curves, config, date, tickers, [rows])
        for key, n in pipeline.rejected.items():
            rejected[key] = rejected.get(key, 0) + n
        progress(i + 1, len(dates))
    frame = pd.DataFrame(rows.cols)
    return WalkResult(frame, len(dates), rejected, time.perf_counter() - t0)


def _wanted(curves: DayCurves, tickers: Sequence[str] | None) -> NDArray[np.bool_]:
    if not tickers:
        return np.ones(len(curves), bool)
    return np.isin(curves.tickers, list(tickers))


def day_chart(
    curves: DayCurves, config: WalkConfig, date: str, ticker: str, minute: int
) -> dict[str, Any]:
    """A past day replayed from the days before it: what similarity.png and fitting.png draw."""
    algo = next(a for a in config.algorithms if a != ENSEMBLE)
    have = (curves.dates.astype(str) == date) & (curves.tickers == ticker)
    if not have.any():
        raise ValueError(f"--date {date}: no kept day of {ticker} in the history (see the load "
                         "report); chart draws a past day that the history holds")  # fmt: skip
    chart = ChartSnapshot(minute, algo, lambda t: [])
    _, history, today = run_day(curves, config, date, [ticker], [chart])
    snap = chart.taken.get(ticker)
    if snap is None:
        raise ValueError(f"{ticker} {date}: no forecast at minute {minute} (no earlier day)")
    rows = [row for _, row in snap["where"]]
    full = today.ratio[0].astype(np.float64)
    return {**snap, "x": full[:minute].tolist(), "curves": history.ratio[rows],
            "today": full.tolist(), "fitting": chart.fitting(ticker)}  # fmt: skip
