"""The walk-forward of a market, on the shard actors that hold its days.

Each shard holds every day of its tickers once, as live; a test day sees only the days before
it by a row bound (`ShardState.walk`), so nothing is copied per test day. The tickers go out in
small batches to every shard at once and come back as columns: the shards work in parallel,
on as many nodes as they run on, and the progress bar counts tickers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import ray

from simsignal.actors.replies import ShardHandle
from simsignal.engine.app.evaluation.walk_forward import Progress, WalkConfig, WalkResult
from simsignal.engine.core.algorithms import ENSEMBLE, select
from simsignal.engine.core.shard_state import WalkRows
from simsignal.engine.core.ticker_walk import WALK_COLUMNS, TickerWalk

BATCH = 4  # tickers per call: small enough for a smooth progress bar, big enough to be cheap


def walk_on_shards(
    shards: Sequence[ShardHandle],
    config: WalkConfig,
    start: str,
    end: str,
    tickers: Sequence[str] | None = None,
    progress: Progress = lambda done, total: None,
) -> tuple[WalkResult, pd.DataFrame]:
    """Every checkpoint of every test day in [start, end], and the risk rows, from the shards."""
    t0 = time.perf_counter()
    if config.pairs or config.pooled:
        raise ValueError("pairs and pooled runs are evaluated in one process (--on process)")
    if config.checkpoints is None:
        raise ValueError("--at all is evaluated in one process (--on process)")
    scorers = [a for a in config.algorithms if a != ENSEMBLE]
    how = TickerWalk(tuple(select(scorers, config.params)), ENSEMBLE in config.algorithms,
                     config.k, config.checkpoints, scorers[0])  # fmt: skip
    held = ray.get([s.held.remote() for s in shards])
    wanted = set(tickers) if tickers else None
    calls, total = [], 0
    for shard, names in zip(shards, held, strict=True):
        mine = [t for t in names if wanted is None or t in wanted]
        calls += [shard.walk.remote(mine[i : i + BATCH], start, end, how)
                  for i in range(0, len(mine), BATCH)]  # fmt: skip
        total += len(mine)
    walk: dict[str, list[Any]] = {c: [] for c in WALK_COLUMNS}
    risk: list[pd.DataFrame] = []
    done, pending = 0, list(calls)
    progress(0, total)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        got: WalkRows = ray.get(ready[0])
        for ticker, (rows, risk_rows) in got.items():
            for c in WALK_COLUMNS:
                walk[c].append(rows[c])
            if risk_rows:
                risk.append(pd.DataFrame(risk_rows).assign(ticker=ticker))
        done += len(got)
        progress(done, total)
    frame = pd.DataFrame({c: np.concatenate(v) if v else [] for c, v in walk.items()})
    days = frame["date"].nunique() if len(frame) else 0
    risk_frame = pd.concat(risk, ignore_index=True) if risk else pd.DataFrame()
    return WalkResult(frame, days, {}, time.perf_counter() - t0), risk_frame
