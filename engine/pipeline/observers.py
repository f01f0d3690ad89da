"""What watches the pipeline from outside its hot path: latency figures and the chart snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simsignal.engine.forecast import similarity_weights
from simsignal.engine.pipeline.minute import MinuteResult


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
    """Keeps, per ticker, the first algorithm's neighbours at the chart minute."""

    minute: int
    algo: str
    today: Callable[[str], list[float]]  # ticker → today's price ratios so far
    taken: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __call__(self, result: MinuteResult) -> None:
        """Keep the snapshot if this is the chart minute."""
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
