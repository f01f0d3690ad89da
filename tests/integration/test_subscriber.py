"""The signal client on a real Redis: groups share work, dead consumers' entries are claimed,
restarts resume exactly, reconnects after Redis comes back, and the asyncio form."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from simsignal.engine.adapters.publish import SignalPublisher
from simsignal.engine.adapters.redis_server import RedisServer, free_port
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.adapters.subscriber import SignalReader
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.signals import Signal
from tests.unit.test_messages import _signal

KEYS = Keys()
BASE = 1714095000000


def _signals(n: int, ticker: str = "000300") -> list[Signal]:
    """n signals of one ticker: minute m, algorithms sq and var."""
    return [_signal(ticker=ticker, minute=1 + i // 2, bar_epoch_ms=BASE + 60000 * (1 + i // 2),
                    algo=("sq", "var")[i % 2], algo_index=i % 2) for i in range(n)]  # fmt: skip


def _key(sig: Signal) -> tuple[str, int, str]:
    return sig.ticker, sig.minute, sig.algo


def _reader(url: str, **kw: Any) -> SignalReader:
    return SignalReader(url, kw.pop("tickers", ["000300"]), block_ms=100, **kw)


def test_without_a_group_it_reads_from_the_start_or_new_only(
    redis_server: RedisServer, store: RedisStore
) -> None:
    sigs = _signals(40)
    pub = SignalPublisher(store, KEYS, 1000)
    pub.publish(sigs[:20])
    old: list[Signal] = []
    _reader(redis_server.url, from_start=True).handle(old.append, limit=20)
    assert [_key(s) for s in old] == [_key(s) for s in sigs[:20]]
    new_only = _reader(redis_server.url)
    got: list[Signal] = []
    worker = threading.Thread(target=new_only.handle, args=(got.append, 20))
    worker.start()
    time.sleep(0.5)  # the reader has taken the stream's last ID as its start
    pub.publish(sigs[20:])
    worker.join(timeout=30)
    assert [_key(s) for s in got] == [_key(s) for s in sigs[20:]]
    only_var: list[Signal] = []
    _reader(redis_server.url, from_start=True, algos=["var"]).handle(only_var.append, limit=20)
    assert [_key(s) for s in only_var] == [_key(s) for s in sigs if s.algo == "var"]


def test_two_consumers_of_one_group_share_a_stream_without_overlap(
    redis_server: RedisServer, store: RedisStore
) -> None:
    sigs = _signals(300)
    SignalPublisher(store, KEYS, 1000).publish(sigs)
    seen: dict[str, list[tuple[str, int, str]]] = {"a": [], "b": []}
    readers = {n: _reader(redis_server.url, group="g", consumer=n, from_start=True, count=10)
               for n in seen}  # fmt: skip

    def consume(name: str) -> None:
        def take(sig: Signal) -> None:
            seen[name].append(_key(sig))
            time.sleep(0.001)  # a handler that takes a moment: both get work

        readers[name].handle(take)

    threads = [threading.Thread(target=consume, args=(n,), daemon=True) for n in seen]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while sum(len(v) for v in seen.values()) < 300:
        assert time.monotonic() < deadline, {n: len(v) for n, v in seen.items()}
        time.sleep(0.05)
    for reader in readers.values():
        reader.stop()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()
    both = seen["a"] + seen["b"]
    assert len(both) == len(set(both)) == 300 and set(both) == {_key(s) for s in sigs}
    assert seen["a"] and seen["b"]
    assert store.settled(KEYS.signals("000300"), "g")


class _Stop(Exception):
    pass


def test_a_dead_consumers_pending_entries_are_claimed_and_finished(
    redis_server: RedisServer, store: RedisStore
) -> None:
    """Consumer a is handed 50 signals and dies before acknowledging any (its handler never
    returns); consumer b claims them after claim_idle_ms and finishes the stream."""
    sigs = _signals(120)
    SignalPublisher(store, KEYS, 1000).publish(sigs)
    dying = _reader(redis_server.url, group="g", consumer="a", from_start=True, count=50)
    handed = next(dying.deliveries())  # one read: 50 entries handed to a, none acknowledged
    assert handed.signal.minute == 1
    dying.close()  # a is gone; its 50 entries stay pending on the server
    got: list[Signal] = []
    survivor = _reader(redis_server.url, group="g", consumer="b", claim_idle_ms=200)
    time.sleep(0.3)
    survivor.handle(got.append, limit=120)
    assert sorted(_key(s) for s in got) == sorted(_key(s) for s in sigs)
    assert store.settled(KEYS.signals("000300"), "g")


def test_a_restarted_consumer_resumes_exactly(redis_server: RedisServer, store: RedisStore) -> None:
    """50 handled, then the process 'restarts' (a new reader, same group and consumer); the
    iterator form: the signal whose loop body raised is handed out again, none twice."""
    sigs = _signals(100)
    SignalPublisher(store, KEYS, 1000).publish(sigs)
    got: list[Signal] = []
    first = _reader(redis_server.url, group="g", consumer="a", from_start=True)
    try:
        for sig in first:
            if len(got) == 50:
                raise _Stop  # the handler fails on the 51st: it is not acknowledged
            got.append(sig)
    except _Stop:
        pass
    first.close()
    again = _reader(redis_server.url, group="g", consumer="a", from_start=True)
    again.handle(got.append, limit=50)
    assert [_key(s) for s in got] == [_key(s) for s in sigs]
    assert store.settled(KEYS.signals("000300"), "g")


def test_every_ticker_including_streams_that_appear_later(
    redis_server: RedisServer, store: RedisStore
) -> None:
    pub = SignalPublisher(store, KEYS, 1000)
    pub.publish(_signals(10, "000300"))
    reader = SignalReader(redis_server.url, None, group="all", from_start=True, block_ms=100,
                          rescan_s=0.2)  # fmt: skip
    got: list[Signal] = []
    worker = threading.Thread(target=reader.handle, args=(got.append, 30), daemon=True)
    worker.start()
    time.sleep(0.5)
    pub.publish(_signals(20, "600000"))  # a ticker whose stream did not exist at the start
    worker.join(timeout=30)
    assert sorted({s.ticker for s in got}) == ["000300", "600000"] and len(got) == 30


def test_it_reconnects_when_redis_comes_back(store: RedisStore) -> None:
    port = free_port()
    server = RedisServer(port=port)
    said: list[str] = []
    reader = SignalReader(server.url, ["000300"], group="g", from_start=True, block_ms=100,
                          say=said.append)  # fmt: skip
    got: list[Signal] = []
    try:
        SignalPublisher(RedisStore.connect(server.url), KEYS, 1000).publish(_signals(10))
        reader.handle(got.append, limit=10)
        server.stop()
        worker = threading.Thread(target=reader.handle, args=(got.append, 10), daemon=True)
        worker.start()
        deadline = time.monotonic() + 30
        while not any("retrying" in s for s in said):  # it said so, and did not crash
            assert time.monotonic() < deadline and worker.is_alive(), said
            time.sleep(0.05)
        server = RedisServer(port=port)  # back, empty: the group is made again
        sigs = _signals(20)
        SignalPublisher(RedisStore.connect(server.url), KEYS, 1000).publish(sigs[10:])
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert [_key(s) for s in got] == [_key(s) for s in sigs]
    finally:
        server.stop()


def test_the_asyncio_form_keeps_the_event_loop_free(
    redis_server: RedisServer, store: RedisStore
) -> None:
    """The reader waits on an empty stream (its read blocks up to `block_ms`, 1 s) before the
    signals come: other tasks must run all along. A read on the loop itself would stop them
    for a whole second; the longest gap between heartbeats while reading tells."""
    sigs = _signals(400)
    pub = SignalPublisher(store, KEYS, 1000)

    async def main() -> tuple[list[Signal], list[float]]:
        reader = SignalReader(redis_server.url, ["000300"], block_ms=1000, group="aio",
                              from_start=True)  # fmt: skip
        beats: list[float] = []

        async def heartbeat() -> None:
            while True:
                beats.append(time.perf_counter())
                await asyncio.sleep(0.01)

        async def publish_later() -> None:
            await asyncio.sleep(1.5)  # the reader is blocked in XREADGROUP meanwhile
            await asyncio.to_thread(pub.publish, sigs)

        beat = asyncio.create_task(heartbeat())
        await asyncio.sleep(0.05)
        later = asyncio.create_task(publish_later())
        got = []
        async with asyncio.timeout(60):
            async for sig in reader.aiter():
                got.append(sig)
                if len(got) == len(sigs):
                    break
        await later
        beat.cancel()
        return got, beats

    got, beats = asyncio.run(main())
    assert [_key(s) for s in got] == [_key(s) for s in sigs]
    gaps = np.diff(beats)
    assert len(beats) > 50 and gaps.max() < 0.5, f"the loop stalled {gaps.max():.3f} s"


def _readme_example() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("## Consuming signals") :]
    return section[section.index("```python") + len("```python") : section.index("```\n", 10)]


def test_the_readme_example_reads_signals_in_five_lines(
    redis_server: RedisServer, store: RedisStore, tmp_path: Path
) -> None:
    code = _readme_example()
    assert len(code.strip().splitlines()) <= 5
    script = tmp_path / "tool.py"
    script.write_text(code.replace("redis://127.0.0.1:6379/0", redis_server.url))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        admin = redis.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + 60  # a new group reads new signals only: wait for it
        while not (
            admin.exists(KEYS.signals("000300"))
            and any(g["name"] == b"my-tool" for g in admin.xinfo_groups(KEYS.signals("000300")))
        ):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)  # fmt: skip
        sigs = _signals(10)
        SignalPublisher(store, KEYS, 1000).publish(sigs)
        assert proc.stdout is not None
        lines = [proc.stdout.readline().split() for _ in sigs]
    finally:
        proc.kill()
    assert [(t, a) for t, _, a, *_ in lines] == [(s.ticker, s.algo) for s in sigs]
    assert [float(line[3]) for line in lines] == [s.pred_close for s in sigs]


def test_the_rebalance_example_prints_weights_from_the_latest_signals(
    redis_server: RedisServer, store: RedisStore
) -> None:
    pub = SignalPublisher(store, KEYS, 1000)
    moves = {"000300": 0.02, "600000": -0.01, "000001": 0.005}
    sigs = [replace(_signal(ticker=t), algo="sq", algo_index=0, pred_move=m, up_prob=0.6)
            for t, m in moves.items()]  # fmt: skip
    pub.publish(sigs)
    script = Path(__file__).resolve().parents[2] / "scripts" / "rebalance_example.py"
    done = subprocess.run([sys.executable, str(script), "--redis-url", redis_server.url,
                           "--from-start", "--count", "3", "--cap", "0.7"],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout.strip().splitlines()[-1])
    rising = {t: m * 0.6 for t, m in moves.items() if m > 0}
    want = {t: min(0.7, v / sum(rising.values())) for t, v in rising.items()}
    assert last["weights"] == pytest.approx(want)
    assert last["cash"] == pytest.approx(1 - sum(want.values()), abs=1e-6)
