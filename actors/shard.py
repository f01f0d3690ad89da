"""ShardActor: one shard's day curves in memory, scored incrementally every minute."""

from __future__ import annotations

from typing import Any

import numpy as np
import ray

from engine.history.curves import DayCurves
from engine.shard_state import Candidates, ShardState, Update


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class ShardActor:
    """Loads its rows from the object store at start (and again after a restart)."""

    def __init__(
        self,
        shard_id: int,
        refs: list[Any],
        slots: int,
        algorithms: list[str],
        k: int,
        pooled: bool,
    ) -> None:
        tables = ray.get(refs) if refs else []
        curves = DayCurves.from_arrow(tables, slots, shard_id)
        self.state = ShardState(curves, algorithms, k, pooled)
        self.shard_id = shard_id
        self._warm_up(slots)

    def _warm_up(self, slots: int) -> None:
        """Compile the numba kernels now, not on the first live minute."""
        one_day = DayCurves(
            np.array(["w"], object),
            np.array(["d"], object),
            np.zeros((1, slots), np.float32),
            np.ones(1),
        )
        ShardState(one_day, [a.name for a in self.state.algos], 1, False).step([("w", 1, 0.0)])

    def info(self) -> dict[str, Any]:
        """Size and identity, for the summary."""
        return {
            "shard": self.shard_id,
            "days": self.state.days,
            "bytes": int(self.state.cols.nbytes),
            "tickers": len(self.state.ranges),
        }

    def step(self, updates: list[Update]) -> dict[str, dict[str, Candidates]]:
        """One minute for every query in `updates` (the broadcast message)."""
        return self.state.step(updates)

    def restore(self, ticker: str, xs: list[float]) -> int:
        """Replay today's minutes to rebuild a query's state; returns the minute reached."""
        self.state.restore(ticker, xs)
        return len(xs)

    def curves_of(self, rows: list[int]) -> np.ndarray:
        """Day curves of the given rows."""
        return self.state.curves_of(rows)

    def reset(self) -> None:
        """Forget live queries."""
        self.state.reset()
