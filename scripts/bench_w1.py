"""W1 benchmark (1 index, 10 years × 241): per-minute cost of each path, in one process.

Paths, all on the same synthetic history and the same replayed day:
  numpy_recompute   the seed's approach: score every day from scratch each minute (NumPy),
                    for the seed's four metrics
  incremental       the engine's running state for those four, in process (no Ray, no Redis)
  engine_round      CoordinatorActor.on_bar: validate, broadcast to the shard actors over
                    their direct links, merge, forecast, publish to Redis (bar received →
                    signal published); the seed's four metrics; _classic: classic actor
                    calls instead; _all: every algorithm plus the ensemble
  tick_to_signal    XADD of the bar to {prefix}:bars:{ticker} → the signals readable in Redis
  spark_rdd_map     the seed's own round: broadcast today's prefix, score every day in a
                    Spark RDD map (its four metrics), take the 40 best (every 24th minute)
  per_algorithm     each algorithm alone: running-state update + top-k per minute, and its
                    batch recompute + top-k (every 10th minute), in process
Writes out/bench/w1.json and out/bench/w1.png. Times are measured, never asserted.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import typer

from simsignal.actors import cluster
from simsignal.actors.coordinator import CoordinatorActor, CoordinatorConfig
from simsignal.actors.shard import ShardActor
from simsignal.engine.adapters.redis_server import RedisServer
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.adapters.synthetic import make_history
from simsignal.engine.core.algorithms import KNOWN, REGISTRY, Params, select
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.pipeline.ports import PipelineConfig
from simsignal.engine.core.shard_state import ShardState
from simsignal.engine.core.templates import get_template

SEED_FOUR = ["sq", "var", "sq_norm", "var_norm"]


def _curves(years: float) -> tuple[DayCurves, list[dict[str, str]], float]:
    cn = get_template("cn")
    bars = make_history(cn, years=years, ticker="000300")
    close = bars["close"].to_numpy().reshape(-1, cn.slots)
    ratio = (close[1:] / close[:-1, -1:] - 1).astype(np.float32)
    dates = bars["datetime"].str[:10].to_numpy().reshape(-1, cn.slots)[:, 0]
    held = ratio.shape[0] - 1
    curves = DayCurves(np.array(["000300"] * held, object), dates[1:-1].astype(object),
                       ratio[:held], np.ones(held))  # fmt: skip
    day = bars[bars["datetime"].str.startswith(dates[-1])]
    rows = [{"ticker": "000300", "ts": r.datetime.replace(" ", "T"), "open": str(r.open),
             "high": str(r.high), "low": str(r.low), "close": str(r.close),
             "volume": str(r.volume)} for r in day.itertuples()]  # fmt: skip
    return curves, rows, float(close[-2, -1])


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean()), "n": len(a)}  # fmt: skip


def _incremental(curves: DayCurves, xs: np.ndarray, algos: list[str], k: int) -> list[float]:
    state = ShardState(curves, algos, k, pooled=False)
    state.step([("000300", 1, (float(xs[0]),))])  # compile
    state.reset()
    times = []
    for m in range(1, len(xs) + 1):
        t = time.perf_counter()
        state.step([("000300", m, (float(xs[m - 1]),))])
        times.append((time.perf_counter() - t) * 1e3)
    return times


def per_algorithm(curves: DayCurves, xs: np.ndarray, k: int) -> dict[str, dict[str, float]]:
    """Each algorithm alone over the whole day: incremental vs batch recompute."""
    out = {}
    for name, cls in REGISTRY.items():
        times = _incremental(curves, xs, [name], k)
        algo = cls(Params())
        algo.recompute(xs[:2], curves.ratio)  # compile
        batch = []
        for m in range(10, len(xs) + 1, 10):
            t = time.perf_counter()
            np.argpartition(algo.recompute(xs[:m], curves.ratio), k)[:k]
            batch.append((time.perf_counter() - t) * 1e3)
        out[name] = {**_stats(times), "recompute_p50_ms": float(np.median(batch)),
                     "recompute_max_ms": float(np.max(batch))}  # fmt: skip
        print(name, json.dumps({k: round(v, 3) for k, v in out[name].items()}), file=sys.stderr)
    return out


def _seed_score(x: np.ndarray, y: list[float]) -> tuple[float, float, float, float]:
    """The seed's four metrics for one day, computed the way its RDD map did (per record)."""
    d = x - np.asarray(y[: len(x)])

    def scale(v: np.ndarray) -> np.ndarray:
        rng = v.max() - v.min()
        return (v - v.min()) / rng if rng > 0 else np.zeros_like(v)

    dn = scale(x) - scale(np.asarray(y[: len(x)]))
    var = float(d.var(ddof=1)) if len(x) > 1 else 0.0
    var_n = float(dn.var(ddof=1)) if len(x) > 1 else 0.0
    return float((d * d).sum()), var, float((dn * dn).sum()), var_n


def _spark_rounds(curves: DayCurves, xs: np.ndarray, k: int) -> dict[str, float]:
    """The seed's approach on Spark (RayDP): one RDD map over all days per minute."""
    spark = cluster.start_spark(executor_memory="1g")
    days = list(zip(curves.dates.tolist(), curves.ratio.astype(float).tolist(), strict=True))
    rdd = spark.sparkContext.parallelize(days, 2).cache()
    rdd.count()
    times = []
    for m in range(1, len(xs) + 1, 24):
        t = time.perf_counter()
        today = spark.sparkContext.broadcast(xs[:m])
        scored = rdd.map(lambda kv, b=today: (_seed_score(b.value, kv[1]), kv[0]))
        scored.takeOrdered(k, key=lambda r: r[0][0])
        times.append((time.perf_counter() - t) * 1e3)
    cluster.release_spark()
    return _stats(times)


def _rounds(curves: DayCurves, rows: list[dict[str, str]], prev_close: float, shards: int,
            k: int, xs: np.ndarray, with_spark: bool) -> dict[str, dict[str, float]]:  # fmt: skip
    """The Ray paths: engine rounds and tick-to-signal through Redis."""
    results: dict[str, dict[str, float]] = {}
    server = RedisServer()
    cluster.start_ray(num_cpus=2)
    try:
        table = pa.table({"ticker": curves.tickers.tolist(), "date": curves.dates.tolist(),
                          "ratio": list(curves.ratio), "prev_close": curves.prev_close,
                          "shard": np.arange(len(curves)) % shards})  # fmt: skip
        refs = [ray.put(table)]
        date = rows[0]["ts"][:10]
        last = {"000300": (str(curves.dates[-1]), prev_close)}

        def engine(algos: list[str], prefix: str, direct: bool) -> tuple[list[Any], Any]:
            key = secrets.token_bytes(32) if direct else None
            sh = [ShardActor.remote(i, refs, 241, algos, k, False, authkey=key)
                  for i in range(shards)]  # fmt: skip
            pipeline = PipelineConfig(algorithms=tuple(algos), k=k, template="cn", date=date,
                                      last_close=last)  # fmt: skip
            config = CoordinatorConfig(pipeline, redis_url=server.url, prefix=prefix,
                                       authkey=key)  # fmt: skip
            co = CoordinatorActor.remote(sh, config)
            ray.get(co.connect.remote())
            return sh, co

        runs = (("engine_round_classic", SEED_FOUR, False), ("engine_round", SEED_FOUR, True),
                ("engine_round_all", list(KNOWN), True))  # fmt: skip
        for label, algos, direct in runs:
            sh, co = engine(algos, label, direct)
            for r in rows:
                ray.get(co.on_bar.remote(r))
            results[label] = _stats(ray.get(co.stats.remote()).latencies_ms)
            ray.get(co.close.remote())
            for s in [*sh, co]:
                ray.kill(s)

        _, co = engine(SEED_FOUR, "bench", True)
        store = RedisStore.connect(server.url)
        loop = co.run_redis_feed.remote(["000300"], 50)
        times = []
        position = "0-0"
        for r in rows:
            t = time.perf_counter()
            store.add("bench:bars:000300", r)
            seen = 0
            while seen < len(SEED_FOUR):  # block on the signal stream: no busy polling
                entries = store.read({"bench:signals:000300": position}, block_ms=2000)
                if entries:
                    seen += len(entries)
                    position = entries[-1].id
            times.append((time.perf_counter() - t) * 1e3)
        co.stop.remote()
        ray.get(loop)
        ray.get(co.close.remote())
        results["tick_to_signal"] = _stats(times)
        if with_spark:
            results["spark_rdd_map"] = _spark_rounds(curves, xs, k)
    finally:
        cluster.shutdown()
        server.stop()
    return results


def main(
    years: float = 10.0,
    shards: int = 2,
    k: int = 40,
    spark: bool = True,
    out: Path = Path("out/bench"),
) -> None:
    """Run every path over one replayed day and report medians, p99 and ratios."""
    curves, rows, prev_close = _curves(years)
    xs = np.array([float(r["close"]) for r in rows]) / prev_close - 1
    print(f"history: {len(curves)} days × {curves.ratio.shape[1]} slots", file=sys.stderr)
    results: dict[str, dict[str, float]] = {}

    algos = select(SEED_FOUR)
    times = []
    for m in range(1, len(xs) + 1):
        t = time.perf_counter()
        for a in algos:
            np.argpartition(a.recompute(xs[:m], curves.ratio), k)[:k]
        times.append((time.perf_counter() - t) * 1e3)
    results["numpy_recompute"] = _stats(times)
    results["numpy_recompute_m120"] = {"ms": times[119]}
    results["incremental"] = _stats(_incremental(curves, xs, SEED_FOUR, k))
    results.update(_rounds(curves, rows, prev_close, shards, k, xs, spark))

    base = results["numpy_recompute"]["p50_ms"]
    for name in ("incremental", "engine_round_classic", "engine_round", "tick_to_signal"):
        results[name]["speedup_vs_numpy_p50"] = base / results[name]["p50_ms"]
        if "spark_rdd_map" in results:
            seed = results["spark_rdd_map"]["p50_ms"]
            results[name]["speedup_vs_spark_rdd_p50"] = seed / results[name]["p50_ms"]
    per_algo = per_algorithm(curves, xs, k)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"days": len(curves), "slots": 241, "shards": shards, "k": k,
            "params": Params().__dict__}  # fmt: skip
    doc = {"meta": meta, "results": results, "per_algorithm": per_algo}
    (out / "w1.json").write_text(json.dumps(doc, indent=2))
    _plot(results, per_algo, out / "w1.png")
    for name, r in results.items():
        print(name, json.dumps({k: round(v, 3) for k, v in r.items()}))


def _plot(results: dict[str, dict[str, float]], per_algo: dict[str, dict[str, float]],
          path: Path) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.5))
    names = [n for n in results if "p50_ms" in results[n]]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [results[n]["p50_ms"] for n in names], 0.4, label="p50")
    ax.bar(x + 0.2, [results[n]["p99_ms"] for n in names], 0.4, label="p99")
    ax.set_xticks(x, names, rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("ms per minute (log)")
    ax.set_title("W1 paths (seed's four metrics unless _all)")
    ax.legend()
    names = list(per_algo)
    x = np.arange(len(names))
    bx.bar(x - 0.2, [per_algo[n]["p50_ms"] for n in names], 0.4, label="incremental p50")
    bx.bar(x + 0.2, [per_algo[n]["recompute_p50_ms"] for n in names], 0.4, label="recompute p50")
    bx.set_xticks(x, names)
    bx.set_yscale("log")
    bx.set_title("each algorithm alone, 2,428 days, per minute")
    bx.legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    typer.run(main)
