"""One `simsignal bench` run: workload → engine runs → baselines in the same run → outputs."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simsignal.engine.adapters.redis_server import RedisServer
from simsignal.engine.app.benchmark.client import run_engine, status_fields
from simsignal.engine.app.benchmark.report import (
    machine,
    percentiles,
    update_doc,
    write_json,
    write_plot,
)
from simsignal.engine.app.benchmark.workloads import Prepared, Workload, prepare
from simsignal.engine.core.algorithms import KNOWN, REGISTRY
from simsignal.engine.core.templates import get_template
from simsignal.engine.core.topk import smallest_k

SEED_FOUR = ["sq", "var", "sq_norm", "var_norm"]


def _own_curves(p: Prepared, template: str) -> dict[str, np.ndarray]:
    """Each ticker's history ratio curves [days, slots] (for the in-process baseline)."""
    slots = get_template(template).slots
    out = {}
    for path in sorted(p.history.glob("*.parquet")):
        close = pd.read_parquet(path, columns=["close"])["close"].to_numpy().reshape(-1, slots)
        out[path.stem] = (close[1:] / close[:-1, -1:] - 1.0).astype(np.float32)
    return out


def numpy_recompute(
    p: Prepared, template: str, k: int, at: list[int], pooled: bool = False
) -> list[float]:
    """The seed's approach for a whole minute batch: every live query scored from scratch."""
    curves = _own_curves(p, template)
    if pooled:  # every ticker's days are candidates for each query
        curves = dict.fromkeys(curves, np.concatenate(list(curves.values())))
    algos = [REGISTRY[n]() for n in SEED_FOUR]
    live = {t: g["close"].to_numpy() for t, g in p.live.groupby("ticker")}
    prev = {
        t: float(pd.read_parquet(p.history / f"{t}.parquet", columns=["close"])["close"].iloc[-1])
        for t in live
    }
    times = []
    for m in at:
        start = time.perf_counter()
        for t in live:
            x = live[t][:m] / prev[t] - 1.0
            for a in algos:
                smallest_k(a.recompute(x, curves[t]), k)
        times.append((time.perf_counter() - start) * 1e3)
    return times


@contextlib.contextmanager
def ray_nodes(n: int, say: Callable[[str], None]) -> Iterator[str | None]:
    """A Ray cluster of `n` nodes on this machine (None for 0: the engine's own local Ray).

    The head keeps one CPU when there are workers, each worker has one; one node gets every
    core. The nodes share this machine's cores: this measures the cost of spreading, not
    extra capacity.
    """
    if n <= 0:
        yield None
        return
    from ray.cluster_utils import Cluster  # noqa: PLC0415

    cores = os.cpu_count() or 2
    store = 1536 * 2**20
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 1 if n > 1 else cores, "object_store_memory": store})  # fmt: skip
    try:
        for _ in range(n - 1):
            cluster.add_node(num_cpus=1, object_store_memory=store)
        cluster.wait_for_nodes()
        say(f"  a {n}-node Ray cluster at {cluster.address}")
        yield cluster.address
    finally:
        cluster.shutdown()


def bench(
    w: Workload,
    *,
    data: Path,
    out: Path,
    doc: Path | None,
    minutes: int,
    shards: int,
    all_algorithms: bool,
    say: Callable[[str], None],
    command: str,
    nodes: list[int] | None = None,
    address: str | None = None,
    cadence_s: float = 0.0,
) -> dict[str, Any]:
    """Run the workload and write JSON, plot and (optionally) the docs section.

    `nodes`: instead of the usual runs, one seed-four run per node count, each on a
    `ray.cluster_utils.Cluster` of that many nodes on this machine, joined with --address.
    `address`: every run (and the warm start) on that existing cluster.
    `cadence_s`: a minute every this many seconds, as a live feed (0: back to back).
    """
    say(f"workload {w.key}: preparing (cached under {data})")
    p = prepare(w, data, say)
    if w.live_tickers:
        p = dataclasses.replace(p, live=p.live[p.live["ticker"].isin(w.live_tickers)])
    say(f"  {p.bars:,} history bars, live day {p.date}, {p.live['ticker'].nunique()} live")
    server = RedisServer()
    runs: dict[str, Any] = {}
    cache = out / "curves-cache"  # emptied first: the first run is a cold start
    shutil.rmtree(cache, ignore_errors=True)
    engine = partial(run_engine, p.history, p.live, p.date, server.url, out=out / "engine",
                     shards=shards, pooled=w.pooled, say=say, cache=cache,
                     tickers=w.live_tickers, own_cluster=address is None,
                     cadence_s=cadence_s)  # fmt: skip
    variants: list[tuple[str, list[str], int]] = [("seed four", SEED_FOUR, 0)] + (
        [("all algorithms", list(KNOWN), 0)] if all_algorithms else []
    )
    if nodes:
        variants = [(f"seed four, {n} node{'s' * (n > 1)}", SEED_FOUR, n) for n in nodes]
    try:
        for label, algos, n in variants:
            say(f"run: {label} ({', '.join(algos)}), {shards} shards")
            scoring = [a for a in algos if a in REGISTRY]
            expected = len(scoring) + (1 if "ensemble" in algos else 0)
            with ray_nodes(n, say) as joined:
                r = engine(algorithms=algos, minutes=minutes, expected=expected,
                           address=joined or address)  # fmt: skip
            st = status_fields(r.status)
            runs[label] = {
                **percentiles(r.minute_ms),
                "minute_ms": r.minute_ms,
                "written_s": r.written_s,
                "signals": r.signals,
                "idle_cores": r.idle_cores,
                "redis_calls": r.redis_calls,
                "entries": r.entries,
                "calls_per_entry": r.calls_per_entry,
                "cold_start_s": st.get("cold_start_s", 0.0),
                "load_s": st.get("load_s", 0.0),
                "rows_read": st.get("rows_read", 0.0),
                "bars_per_s": st.get("rows_read", 0.0) / max(st.get("load_s", 1.0), 1e-9),
                "curves_mib": st.get("curves_bytes", 0.0) / 2**20,
                "days": st.get("days", 0.0),
                "shard_rss_mib": r.shard_rss_bytes / 2**20,
                "shard_memory": r.shard_memory,
                "cache_hit": bool(st.get("cache_hit", 0.0)),
            }
        say("warm start: the same engine again, history from the day-curves cache")
        warm = engine(algorithms=SEED_FOUR, minutes=0, expected=4, idle_s=0.0, address=address)
        warm_start = status_fields(warm.status)
    finally:
        server.stop()
    engine_p50 = runs[variants[0][0]]["p50_ms"]
    at = sorted({min(m, minutes) for m in (30, 60, 120, minutes)})
    say(f"baseline: NumPy recompute of whole minute batches at minutes {at}")
    base = percentiles(numpy_recompute(p, w.template, 40, at, w.pooled))
    baselines = {"numpy_recompute": {**base, "ratio_p50": base["p50_ms"] / engine_p50}}
    key = f"{w.key}-nodes" if nodes else w.key
    key += f"-every{cadence_s:g}s" if cadence_s else ""
    result = {
        "workload": {
            "name": w.name,
            "tickers": w.tickers,
            "years": w.years,
            "key": key,
            "pooled": w.pooled,
        },
        "machine": machine(),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "history_bars": p.bars,
        "minutes": minutes,
        "cadence_s": cadence_s,
        "shards": shards,
        "runs": runs,
        "baselines": baselines,
        "plot_name": f"bench-{key}.png",
        "nodes": nodes or [],
        "address": address,
        "warm_start_s": warm_start.get("cold_start_s", 0.0),
        "warm_start_cache_hit": bool(warm_start.get("cache_hit", 0.0)),
    }
    write_json(result, out / f"bench-{key}.json")
    write_plot(result, out / f"bench-{key}.png")
    if doc is not None:
        write_plot(result, doc.parent / f"bench-{key}.png")
        update_doc(doc, result)
    return result
