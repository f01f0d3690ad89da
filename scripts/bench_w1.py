"""W1 benchmark (1 index, 10 years × 241): per-minute cost of each path, in one process.

Paths, all on the same synthetic history and the same replayed day:
  numpy_recompute   the seed's approach: score every day from scratch each minute (NumPy)
  incremental       the engine's running state, in process (no Ray, no Redis)
  engine_round      CoordinatorActor.on_bar: validate, one ray.put broadcast to the shard
                    actors, merge, forecast, publish to Redis (bar received → signal published)
  tick_to_signal    XADD of the bar to simsignal:bars:{ticker} → the signal readable in Redis
Writes out/bench/w1.json and out/bench/w1.png. Times are measured, never asserted.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray
import redis
import typer

from actors.coordinator import CoordinatorActor
from actors.shard import ShardActor
from engine import cluster
from engine.algorithms import select
from engine.history.curves import DayCurves
from engine.redis_server import RedisServer
from engine.shard_state import ShardState
from engine.synthetic import make_history
from engine.templates import get_template

ALGOS = ["sq", "var", "sq_norm", "var_norm"]


def _curves(years: float) -> tuple[DayCurves, list[dict[str, str]], float]:
    cn = get_template("cn")
    bars = make_history(cn, years=years, ticker="000300")
    close = bars["close"].to_numpy().reshape(-1, cn.slots)
    ratio = (close[1:] / close[:-1, -1:] - 1).astype(np.float32)
    dates = bars["datetime"].str[:10].to_numpy().reshape(-1, cn.slots)[:, 0]
    held = ratio.shape[0] - 1
    curves = DayCurves(
        np.array(["000300"] * held, object), dates[1:-1].astype(object), ratio[:held], np.ones(held)
    )
    day = bars[bars["datetime"].str.startswith(dates[-1])]
    rows = [
        {
            "ticker": "000300",
            "ts": r.datetime.replace(" ", "T"),
            "open": str(r.open),
            "high": str(r.high),
            "low": str(r.low),
            "close": str(r.close),
            "volume": str(r.volume),
        }
        for r in day.itertuples()
    ]
    return curves, rows, float(close[-2, -1])


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "n": len(a),
    }


def main(years: float = 10.0, shards: int = 2, k: int = 40, out: Path = Path("out/bench")) -> None:
    """Run every path over one replayed day and report medians, p99 and ratios."""
    curves, rows, prev_close = _curves(years)
    xs = np.array([float(r["close"]) for r in rows]) / prev_close - 1
    algos = select(ALGOS)
    results: dict[str, dict[str, float]] = {}
    print(f"history: {len(curves)} days × {curves.ratio.shape[1]} slots", file=sys.stderr)

    times = []
    for m in range(1, len(xs) + 1):
        t = time.perf_counter()
        for a in algos:
            s = a.recompute(xs[:m], curves.ratio[:, :m])
            np.argpartition(s, k)[:k]
        times.append((time.perf_counter() - t) * 1e3)
    results["numpy_recompute"] = _stats(times)
    results["numpy_recompute_m120"] = {"ms": times[119]}

    state = ShardState(curves, ALGOS, k, pooled=False)
    state.step([("000300", 1, float(xs[0]))])
    state.reset()
    times = []
    for m in range(1, len(xs) + 1):
        t = time.perf_counter()
        state.step([("000300", m, float(xs[m - 1]))])
        times.append((time.perf_counter() - t) * 1e3)
    results["incremental"] = _stats(times)

    server = RedisServer()
    cluster.start_ray(num_cpus=2)
    try:
        table = pa.table(
            {
                "ticker": curves.tickers.tolist(),
                "date": curves.dates.tolist(),
                "ratio": list(curves.ratio),
                "prev_close": curves.prev_close,
                "shard": np.arange(len(curves)) % shards,
            }
        )
        refs = [ray.put(table)]
        sh = [ShardActor.remote(i, refs, 241, ALGOS, k, False) for i in range(shards)]  # type: ignore[attr-defined]
        last = {"000300": ("x", prev_close)}

        def coordinator(date: str) -> object:
            return CoordinatorActor.remote(
                sh,
                algorithms=ALGOS,
                k=k,
                template="cn",
                date=date,
                tickers=None,
                last_close=last,
                redis_url=server.url,
                prefix="bench",
                maxlen=100_000,
            )

        date = rows[0]["ts"][:10]
        co = coordinator(date)
        for r in rows:
            ray.get(co.on_bar.remote(r))  # type: ignore[attr-defined]
        results["engine_round"] = _stats(ray.get(co.stats.remote())["latencies_ms"])  # type: ignore[attr-defined]

        client = redis.Redis.from_url(server.url)
        client.flushdb()
        for s in sh:
            ray.get(s.reset.remote())
        co = coordinator(date)
        loop = co.run_redis_feed.remote(["000300"], 50)  # type: ignore[attr-defined]
        times = []
        for r in rows:
            before = client.xlen("bench:signals:000300")
            t = time.perf_counter()
            client.xadd("bench:bars:000300", r)  # type: ignore[arg-type]
            while client.xlen("bench:signals:000300") < before + len(ALGOS):
                pass
            times.append((time.perf_counter() - t) * 1e3)
        co.stop.remote()  # type: ignore[attr-defined]
        ray.get(loop)
        results["tick_to_signal"] = _stats(times)
    finally:
        cluster.shutdown()
        server.stop()

    base = results["numpy_recompute"]["p50_ms"]
    for name in ("incremental", "engine_round", "tick_to_signal"):
        results[name]["speedup_vs_numpy_p50"] = base / results[name]["p50_ms"]
    out.mkdir(parents=True, exist_ok=True)
    meta = {"days": len(curves), "slots": 241, "shards": shards, "k": k, "algorithms": ALGOS}
    (out / "w1.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    _plot(results, out / "w1.png")
    for name, r in results.items():
        print(name, json.dumps({k: round(v, 3) for k, v in r.items()}))


def _plot(results: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in results if "p50_ms" in results[n]]
    p50 = [results[n]["p50_ms"] for n in names]
    p99 = [results[n]["p99_ms"] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, p50, 0.4, label="p50")
    ax.bar(x + 0.2, p99, 0.4, label="p99")
    ax.set_xticks(x, names)
    ax.set_yscale("log")
    ax.set_ylabel("ms per minute (log)")
    ax.set_title("W1: one index, 10 years, 4 metrics, per-minute cost")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    typer.run(main)
