"""What watches the pipeline from outside its hot path: latency figures and the chart snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simsignal.engine.core.forecast import continued, similarity_weights
from simsignal.engine.core.pipeline.ports import MinuteResult


@dataclass
class LatencyStats:
    """Bar arrival → its signals handed over and answered (observers run after publishing)."""

    clock: Callable[[], float] = time.perf_counter
    latencies_ms: list[float] = field(default_factory=list)

    def __call__(self, result: MinuteResult) -> None:
        """Record one minute's latency."""
        self.latencies_ms.append((self.clock() - result.arrived_at) * 1e3)

    def summary(self) -> dict[str, float | int]:
        """Minutes, p50, p99 and max in ms."""
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {"minutes": len(self.latencies_ms), "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max())}  # fmt: skip


@dataclass
class ChartSnapshot:
    """The first algorithm: its neighbours at the chart minute, its forecast at every minute."""

    minute: int
    algo: str
    today: Callable[[str], list[float]]  # ticker → today's price ratios so far
    taken: dict[str, dict[str, Any]] = field(default_factory=dict)
    trace: dict[str, dict[int, tuple[float, float, float]]] = field(default_factory=dict)

    def __call__(self, result: MinuteResult) -> None:
        """Trace the forecast; keep the snapshot if this is the chart minute."""
        f = result.forecasts.get(self.algo)
        if f is not None:
            self.trace.setdefault(result.ticker, {})[result.minute] = (f.pred_close, f.q10, f.q90)
        if result.minute != self.minute or self.algo not in result.best:
            return
        best = result.best[self.algo]
        self.taken[result.ticker] = {
            "minute": result.minute, "algo": self.algo, "x": self.today(result.ticker),
            "neighbors": best.neighbors(), "where": list(zip(best.shards.tolist(),
                                                             best.rows.tolist(), strict=True)),
            "weights": similarity_weights(best.scores).tolist(),
            "forecast": result.forecasts[self.algo],
        }  # fmt: skip

    def fitting(self, ticker: str) -> dict[str, list[float]]:
        """The traced forecasts of a ticker as columns: minute, pred_close, q10, q90."""
        rows = sorted(self.trace.get(ticker, {}).items())
        return {"minute": [float(m) for m, _ in rows], "pred_close": [v[0] for _, v in rows],
                "q10": [v[1] for _, v in rows], "q90": [v[2] for _, v in rows]}  # fmt: skip


Where = list[tuple[int, int]]  # (shard, row) of each neighbour day


@dataclass
class LiveView:
    """For the tickers on display: each minute, what the dashboard draws, as plain JSON.

    Why the engine writes it: the page needs today's line and the neighbours' whole curves,
    which live only in the engine (its shards), never in the signal stream. Fetching the
    curves costs a call per shard, so only the tickers asked for get a view.
    """

    tickers: frozenset[str]
    algo: str
    labels: list[str]  # HH:MM of every slot
    today: Callable[[str], list[float]]  # ticker → today's price ratios so far
    curves: Callable[[Where], list[Any]]  # full price-ratio curves of neighbour days
    write: Callable[[str, dict[str, Any]], None]  # ticker, view → the documented Redis key

    def __call__(self, result: MinuteResult) -> None:
        """Write the view of a ticker on display."""
        if result.ticker not in self.tickers or self.algo not in result.best:
            return
        best = result.best[self.algo]
        where = list(zip(best.shards.tolist(), best.rows.tolist(), strict=True))
        curves = np.asarray(self.curves(where), np.float64)
        weights = similarity_weights(best.scores)
        now, x_now = result.minute - 1, result.x
        paths = continued(x_now, curves[:, [now]], curves[:, now:])
        lo, hi = np.quantile(paths, [0.1, 0.9], axis=0)
        f = result.forecasts[self.algo]
        self.write(result.ticker, {
            "ticker": result.ticker, "minute": result.minute, "slot": self.labels[now],
            "algo": self.algo, "labels": self.labels, "today": self.today(result.ticker),
            "neighbors": [[t, d, s] for t, d, s, *_ in best.neighbors()],
            "curves": curves.round(6).tolist(), "weights": weights.round(6).tolist(),
            "forecast": (weights @ paths).round(6).tolist(),
            "q10": lo.round(6).tolist(), "q90": hi.round(6).tolist(),
            "pred_close": f.pred_close, "up_prob": f.up_prob,
        })  # fmt: skip
