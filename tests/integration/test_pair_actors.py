"""Pair mode on real actors: the session's spread block, shard actors, Redis streams.

The spreads the shards hold, and the pair signals in `simsignal:pair:A~B`, are checked against
a brute force over spreads computed here from the two tickers' curves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import ray
from rich.console import Console

from simsignal.actors.coordinator import CoordinatorActor, CoordinatorConfig
from simsignal.actors.session import Session
from simsignal.actors.shard import ShardActor
from simsignal.config.settings import load_settings
from simsignal.engine.adapters.history.loaded import LoadedHistory, LoadReport
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.pipeline.ports import PipelineConfig
from simsignal.engine.core.signals import Signal
from simsignal.engine.core.templates import get_template
from tests.helpers import brute_topk

CN = get_template("cn")
ALGOS = ["sq", "var", "sq_norm", "var_norm"]
A, B = "600000", "601398"


def _loaded(days: int, seed: int) -> tuple[LoadedHistory, dict[str, np.ndarray], list[str]]:
    """Two tickers on the same days (one block per ticker and shard), as the loader leaves them."""
    rng = np.random.default_rng(seed)
    dates = [f"2023-{1 + d // 28:02d}-{1 + d % 28:02d}" for d in range(days)]
    ratio = {t: np.cumsum(rng.normal(0, 1e-3, (days, CN.slots)), axis=1).astype(np.float32)
             for t in (A, B)}  # fmt: skip
    refs = [ray.put(pa.table({"ticker": [t] * days, "date": dates, "ratio": list(ratio[t]),
                              "prev_close": np.full(days, 10.0), "shard": np.full(days, i)}))
            for i, t in enumerate((A, B))]  # fmt: skip
    report = LoadReport(days_kept=2 * days, tickers=2, rows_per_shard={0: days, 1: days})
    history = LoadedHistory(refs, report, {t: ("2024-04-25", 10.0) for t in (A, B)}, CN,
                            by_shard={0: [refs[0]], 1: [refs[1]]})  # fmt: skip
    return history, ratio, dates


def test_pair_signals_reach_their_stream_equal_to_a_brute_force(
    ray_cluster: None, redis_server: Any, store: RedisStore
) -> None:
    history, ratio, dates = _loaded(80, 77)
    settings = load_settings(signals={"pairs": f"{A}~{B}"}, engine={"k": 5, "shards": 2})
    Session(settings, Console(quiet=True))._add_spreads(history)
    assert [len(history.extra.get(i, [])) for i in (0, 1)] in ([1, 0], [0, 1])  # to one shard
    shards = [ShardActor.remote(i, history.refs_for(i), CN.slots, ALGOS, 5, False)
              for i in range(2)]  # fmt: skip
    pipeline = PipelineConfig(
        algorithms=tuple(ALGOS), k=5, template="cn", date="2024-04-26",
        last_close=history.last_close, pairs=settings.signals.pairs,
    )  # fmt: skip
    co = CoordinatorActor.remote(shards, CoordinatorConfig(pipeline, redis_url=redis_server.url))
    ray.get(co.connect.remote())
    rng = np.random.default_rng(78)
    close = {t: 10.0 * (1 + np.cumsum(rng.normal(0, 1e-3, 12))) for t in (A, B)}
    for m in range(12):
        c = {t: f"{close[t][m]:.4f}" for t in (A, B)}
        ray.get(co.on_bars.remote([{"ticker": t, "ts": f"2024-04-26T{CN.label(m)}:00",
                                    "open": c[t], "high": c[t], "low": c[t], "close": c[t],
                                    "volume": "5"} for t in (A, B)]))  # fmt: skip
    assert store.length(Keys().deadletter) == 0
    entries = store.entries(Keys().pair(f"{A}~{B}"))
    got = {(s.minute, s.algo): s for s in (Signal.from_fields(e.fields) for e in entries)}
    assert len(got) == len(entries) == 12 * len(ALGOS)
    spread = ratio[A].astype(np.float64) - ratio[B].astype(np.float64)
    x = np.array([float(f"{close[A][m]:.4f}") - float(f"{close[B][m]:.4f}") for m in range(12)])
    x /= 10.0
    keys = [(f"{A}~{B}", d) for d in dates]
    for m in range(1, 13):
        for algo in ALGOS:
            want = brute_topk(algo, x[:m], spread[:, :m].astype(np.float32), keys, 5)
            sig = got[(m, algo)]
            assert [tuple(n[:2]) for n in sig.neighbors] == [w[:2] for w in want], (m, algo)
    assert not store.entries(Keys().signals(f"{A}~{B}"))  # not among the ticker signals
    stats = ray.get(co.stats.remote())
    assert stats.published == 2 * 12 * len(ALGOS)  # the tickers' own signals
    ray.get(co.close.remote())
