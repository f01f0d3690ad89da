"""An operator's worst day, with real processes: Redis SIGKILLed and back from its AOF with no
scripts, then the whole `simsignal run --feed redis` process tree SIGKILLed with a batch in
flight and started again. Redis must end with what a clean run writes: every signal and
derived entry once and equal (latency aside), one journal entry per batch, each dead letter
once, and counters that add up to what Redis holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import redis

from simsignal.engine.adapters.redis_server import RedisServer, free_port
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.adapters.synthetic import make_history
from simsignal.engine.core.commit import COMMIT_LUA
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.signals import Signal
from simsignal.engine.core.templates import get_template
from tests.integration.test_cli_faults import _Engine

CN = get_template("cn")
TICKERS = ("000300", "600000")
ALGOS = 4  # the default algorithms
MINUTES = 30


def _day(tmp_path: Path) -> tuple[str, Path, pd.DataFrame]:
    """40 days of two tickers before the session date, and that day's first MINUTES bars."""
    frames = [
        make_history(CN, years=40 / 243, ticker=t, seed=11 + i) for i, t in enumerate(TICKERS)
    ]
    bars = pd.concat(frames, ignore_index=True)
    day = bars["datetime"].str[:10].max()
    history = tmp_path / "h.parquet"
    bars[~bars["datetime"].str.startswith(day)].to_parquet(history)
    live = bars[bars["datetime"].str.startswith(day)]
    live = live[live["datetime"].isin(sorted(live["datetime"].unique())[:MINUTES])]
    return day, history, live.sort_values(["datetime", "ticker"]).reset_index(drop=True)


def _fields(row: Any) -> dict[str, str]:
    return {"ticker": row.ticker, "ts": row.datetime.replace(" ", "T"), "open": str(row.open),
            "high": str(row.high), "low": str(row.low), "close": str(row.close),
            "volume": str(row.volume)}  # fmt: skip


def _wait(done: Any, what: str, engine: _Engine | None = None, seconds: float = 180.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if engine is not None:
            assert engine.proc.poll() is None, engine.out[-3000:]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _signals(store: RedisStore, keys: Keys) -> dict[tuple[str, str], Signal]:
    """Every signal by (ticker, stream ID), latency aside; each ID once."""
    out = {}
    for t in TICKERS:
        entries = store.entries(keys.signals(t))
        assert len({e.id for e in entries}) == len(entries)
        for e in entries:
            out[t, e.id] = dataclasses.replace(Signal.from_fields(e.fields), latency_ms=0.0)
    return out


def _derived(store: RedisStore, keys: Keys) -> dict[tuple[str, str], dict[str, str]]:
    """Timing, risk and rebalance entries, whole, by (stream without prefix, ID)."""
    out = {}
    for stream in [*(keys.timing(t) for t in TICKERS), *(keys.risk(t) for t in TICKERS),
                   keys.rebalance]:  # fmt: skip
        for e in store.entries(stream):
            out[stream.split(":", 1)[1], e.id] = e.fields
    return out


def _kill_tree(pid: int) -> int:
    """SIGKILL a process and every process below it at once (the CLI, Ray, the JVM)."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=30)
    return len(procs)


@pytest.mark.slow(seconds=90)
def test_redis_killed_then_the_engine_killed_mid_batch_leave_what_a_clean_run_leaves(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The clean run replays the same day into the session's Redis while the faults happen
    to another server (whose kill it must not see)."""
    day, history, live = _day(tmp_path)
    minutes = [live[live["datetime"] == ts] for ts in sorted(live["datetime"].unique())]
    port, data_dir = free_port(), tmp_path / "redis"
    data_dir.mkdir()
    server = RedisServer(port=port, data_dir=str(data_dir))
    store, keys = RedisStore.connect(server.url), Keys()
    args = ["run", "--history", str(history), "--feed", "redis", "--date", day, "--k", "5",
            "--ticker", TICKERS[0], "--ticker", TICKERS[1], "--redis-url", server.url]  # fmt: skip
    env = {"SIMSIGNAL_ENGINE__BATCH_DEADLINE_MS": "30000",  # a minute waits for both tickers
           "SIMSIGNAL_HISTORY__CACHE_DIR": str(tmp_path / "cache"),
           "SIMSIGNAL_REDIS__DRAIN_SECONDS": "5"}  # fmt: skip

    def feed(ms: range, junk: bool = False) -> None:
        for m in ms:
            rows = [(keys.bars(r.ticker), _fields(r)) for r in minutes[m].itertuples()]
            if junk:  # no ticker: refused, and it neither opens nor closes a ticker's minute
                rows.insert(0, (keys.bars(TICKERS[0]), {"close": f"bad-{m}"}))
            store.add_to_streams(rows)
            _wait(lambda m=m: all(store.length(keys.signals(t)) >= (m + 1) * ALGOS
                                  for t in TICKERS), f"minute {m}", engine)  # fmt: skip

    engine = _Engine([*args, "--out", str(tmp_path / "out1")], tmp_path, **env)
    killed, clean = 0, None
    try:
        engine.wait_for("Ctrl-C to stop")
        clean = _clean_run(tmp_path, history, day, live, redis_server.url)  # the cache is there
        feed(range(10))
        feed(range(10, 11), junk=True)
        time.sleep(1.5)  # the AOF is written once a second: the last commit is on disk
        server.kill()  # a crash: no shutdown, no last save
        time.sleep(3.0)
        server = RedisServer(port=port, data_dir=str(data_dir))  # from the AOF
        commit_sha = hashlib.sha1(COMMIT_LUA.encode()).hexdigest()
        assert redis.Redis.from_url(server.url).script_exists(commit_sha) == [False]
        feed(range(11, 20))
        feed(range(20, 21), junk=True)
        # minute 21: only the first ticker's bar; its batch waits for the second one, so the
        # bar is delivered to the engine (pending in the group) but not committed
        a = next(r for r in minutes[21].itertuples() if r.ticker == TICKERS[0])
        store.add(keys.bars(TICKERS[0]), _fields(a))
        pending = lambda: store.pending_count(keys.bars(TICKERS[0]), keys.group)  # noqa: E731
        _wait(lambda: pending() == 1, "the engine to take minute 21's first bar", engine)
        killed = _kill_tree(engine.proc.pid)
    finally:
        if engine.proc.poll() is None:
            engine.proc.kill()
        engine.finish(seconds=30)
        if clean is not None and killed == 0:  # failed before the kill: do not leave it behind
            clean.proc.kill()
    assert killed >= 5, "the CLI, Ray's processes and the JVM"
    assert pending() == 1 and store.length(keys.signals(TICKERS[0])) == 21 * ALGOS

    engine = _Engine([*args, "--out", str(tmp_path / "out2")], tmp_path, **env)
    try:
        engine.wait_for("Ctrl-C to stop")
        b = next(r for r in minutes[21].itertuples() if r.ticker == TICKERS[1])
        store.add(keys.bars(TICKERS[1]), _fields(b))
        _wait(lambda: all(store.length(keys.signals(t)) == 22 * ALGOS for t in TICKERS),
              "minute 21, from the bar handed over again and the new one", engine)  # fmt: skip
        feed(range(22, MINUTES))
        _wait(lambda: all(store.settled(keys.bars(t), keys.group) for t in TICKERS), "acks")
        engine.proc.send_signal(signal.SIGINT)
        assert engine.finish(seconds=120) == 0, engine.out[-3000:]
    finally:
        if engine.proc.poll() is None:
            engine.proc.kill()
    summary = json.loads((tmp_path / "out2" / "summary.json").read_text())

    # one journal entry per batch (one batch a minute, plus none for the junk), each bar once
    journal = store.entries(keys.journal(day, "live"))
    assert [e.id for e in journal] == [f"{n}-1" for n in range(1, MINUTES + 1)]
    receipts = [tuple(r) for e in journal for r in json.loads(e.fields["receipts"])]
    assert len(receipts) == len(set(receipts)) == 2 * MINUTES + 2
    dead = [json.loads(e.fields["raw"])["close"] for e in store.entries(keys.deadletter)]
    assert sorted(dead) == ["bad-10", "bad-20"]
    # the counters are what Redis holds
    total = sum(store.length(keys.signals(t)) for t in TICKERS)
    assert total == 2 * MINUTES * ALGOS
    assert summary["published_before_restart"] == 2 * 21 * ALGOS
    assert summary["published_before_restart"] + summary["published"] == total
    assert summary["counts"] == {"published": total, "derived": len(_derived(store, keys)),
                                 "dead": 2, "batches": MINUTES}  # fmt: skip
    assert summary["resumed_batches"] == 21

    got, got_derived = _signals(store, keys), _derived(store, keys)
    server.stop()
    assert clean is not None and clean.finish(seconds=300) == 0, clean.out[-3000:]
    assert "Spark not needed" in clean.out  # the faulted engine's cache: one Spark load
    there = RedisStore.connect(redis_server.url)
    want, want_derived = (
        _signals(there, Keys("faults-clean")),
        _derived(there, Keys("faults-clean")),
    )
    assert got == want
    assert got_derived == want_derived and len(want_derived) == (2 + 2 + 1) * MINUTES


def _clean_run(tmp_path: Path, history: Path, day: str, live: pd.DataFrame, url: str
               ) -> _Engine:  # fmt: skip
    """The same day replayed, undisturbed, under another prefix (started, not waited for).

    The same history settings (`--ticker` too) as the faulted engine: the curves cache's key,
    so that this run reads the day curves that one's Spark load wrote.
    """
    replay = tmp_path / "live.parquet"
    live.to_parquet(replay)
    engine = _Engine(
        ["run", "--history", str(history), "--feed", "replay", "--replay", str(replay),
         "--date", day, "--k", "5", "--ticker", TICKERS[0], "--ticker", TICKERS[1],
         "--redis-url", url, "--out", str(tmp_path / "clean")],
        tmp_path, SIMSIGNAL_REDIS__PREFIX="faults-clean",
        SIMSIGNAL_HISTORY__CACHE_DIR=str(tmp_path / "cache"),
    )  # fmt: skip
    return engine


def test_pending_count_reads_the_group(redis_server: RedisServer) -> None:
    """The helper the fault test waits on: entries delivered to the group, not acknowledged."""
    store = RedisStore.connect(redis_server.url)
    store.flushdb()
    store.ensure_group(["s"], "g")
    assert store.pending_count("s", "g") == 0
    store.add("s", {"a": "1"})
    store.add("s", {"a": "2"})
    [first, _] = store.read_group("g", "c", {"s": ">"})
    assert store.pending_count("s", "g") == 2
    store.ack("s", "g", [first.id])
    assert store.pending_count("s", "g") == 1
