"""Faults injected for real: hostile bars through the Redis feed, restarts, a killed coordinator.

Each run is compared with a clean run of the same good bars: the same signals, each minute
and algorithm exactly once, and every bad payload dead-lettered and counted.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import psutil
import pytest
import ray
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from simsignal.actors.coordinator import CoordinatorActor, CoordinatorConfig
from simsignal.actors.engine_handle import EngineHandle
from simsignal.actors.shard import ShardActor
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.derived import RebalanceRule, TimingRule
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.pipeline.ports import PipelineConfig
from simsignal.engine.core.signals import Signal
from simsignal.engine.core.templates import get_template
from tests.integration.test_actors import _history

CN = get_template("cn")
ALGOS = ["sq", "var", "sq_norm", "var_norm"]
TICKERS = ("000300", "600000")
PREV = {"000300": 100.0, "600000": 10.0}
DATE = "2024-04-26"


def _good(minutes: int, seed: int) -> list[list[dict[str, str]]]:
    """Per minute, one bar per ticker (open = high = low = close)."""
    rng = np.random.default_rng(seed)
    out = []
    walk = {t: PREV[t] * np.exp(np.cumsum(rng.normal(0, 1e-3, minutes))) for t in TICKERS}
    for m in range(minutes):
        row = []
        for t in TICKERS:
            c, v = f"{walk[t][m]:.4f}", str(int(rng.integers(1, 999)))
            row.append({"ticker": t, "ts": f"{DATE}T{CN.label(m)}:00", "open": c, "high": c,
                        "low": c, "close": c, "volume": v})  # fmt: skip
        out.append(row)
    return out


def _engine(
    refs: list[Any], url: str, prefix: str, run: str = "live", direct: bool = True
) -> tuple[list[Any], Any]:
    key = secrets.token_bytes(32) if direct else None
    shards = [ShardActor.remote(i, refs, CN.slots, ALGOS, 5, False, authkey=key)
              for i in range(2)]  # fmt: skip
    pipeline = PipelineConfig(
        algorithms=tuple(ALGOS), k=5, template="cn", date=DATE,
        last_close={t: ("2024-04-25", p) for t, p in PREV.items()},
        timing=TimingRule(0.0, 0.0), rebalance=RebalanceRule(0.5, 0.3),
    )  # fmt: skip
    config = CoordinatorConfig(pipeline, redis_url=url, prefix=prefix, run=run, authkey=key)
    co = CoordinatorActor.remote(shards, config)
    ray.get(co.connect.remote())
    return shards, co


def _signals(store: RedisStore, prefix: str) -> dict[tuple[str, str], Signal]:
    """Every signal of both tickers by (ticker, stream ID); asserts each ID is there once."""
    out = {}
    for t in TICKERS:
        entries = store.entries(Keys(prefix).signals(t))
        assert len({e.id for e in entries}) == len(entries)
        out.update({(t, e.id): Signal.from_fields(e.fields) for e in entries})
    return out


def _derived(store: RedisStore, prefix: str) -> dict[tuple[str, str], dict[str, str]]:
    """Timing and rebalance entries by (stream, ID), each ID once."""
    keys, out = Keys(prefix), {}
    for stream in [*(keys.timing(t) for t in TICKERS), keys.rebalance]:
        entries = store.entries(stream)
        assert len({e.id for e in entries}) == len(entries)
        out.update({(stream.split(":", 1)[1], e.id): e.fields for e in entries})
    return out


def _same(got: dict[tuple[str, str], Signal], want: dict[tuple[str, str], Signal]) -> None:
    """Whole signals equal, latency aside (the one field a fault may change)."""
    assert got.keys() == want.keys()
    for key, sig in want.items():
        assert replace(got[key], latency_ms=0.0) == replace(sig, latency_ms=0.0), key


def _clean_run(refs: list[Any], url: str, store: RedisStore, good: list[list[dict[str, str]]]
               ) -> dict[tuple[str, str], Signal]:  # fmt: skip
    _, co = _engine(refs, url, "clean")
    for minute in good:
        ray.get(co.on_bars.remote(minute))
    ray.get(co.close.remote())
    return _signals(store, "clean")


# The history and the day that the restart, kill, outage and error tests replay: one clean
# run of its 20 minutes per worker serves them all (signals are causal: a run of its first
# N minutes gives the first N minutes' signals of the whole one).
DAYS, DAY = (100, 41), _good(20, 42)
_CLEAN: dict[tuple[str, str], Signal] = {}
_CLEAN_DERIVED: dict[tuple[str, str], dict[str, str]] = {}


def _clean(refs: list[Any], url: str, store: RedisStore, minutes: int
           ) -> dict[tuple[str, str], Signal]:  # fmt: skip
    """The clean run's signals of DAY's first `minutes` minutes (refs: DAYS' history)."""
    if not _CLEAN:
        _CLEAN.update(_clean_run(refs, url, store, DAY))
        _CLEAN_DERIVED.update(_derived(store, "clean"))
    return {key: sig for key, sig in _CLEAN.items() if sig.minute <= minutes}


def _clean_derived(minutes: int) -> dict[tuple[str, str], dict[str, str]]:
    """The clean run's timing and rebalance entries of DAY's first `minutes` minutes."""
    assert _CLEAN_DERIVED, "_clean first"
    return {key: e for key, e in _CLEAN_DERIVED.items() if int(e["minute"]) <= minutes}


def _wait(done: Callable[[], bool], what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _settled(store: RedisStore, prefix: str) -> bool:
    keys = Keys(prefix)
    return all(store.settled(keys.bars(t), keys.group) for t in TICKERS)


# -- hostile payloads -------------------------------------------------------------------------
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_junk_text = st.text(max_size=40)
_junk = st.one_of(_junk_text, st.binary(max_size=40))
_not_decimal = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e999", "7_005", "\u0661\u0662", "\uff11\uff10",
                     "0x10", "", " 10", "10 ", "+-1", "1e", ".", "1,5"]),
    _junk_text.filter(lambda t: not _DECIMAL.fullmatch(t)),
    st.binary(min_size=1, max_size=20).filter(lambda b: not b.isascii()),  # not UTF-8 at all
)  # fmt: skip


def _number(low: float, high: float) -> st.SearchStrategy[str]:
    return st.floats(min_value=low, max_value=high, allow_nan=False).map(repr)


_off = st.one_of(st.floats(1e-300, 0.9999), st.floats(1.0001, 1e300))  # a factor ≠ 1
_FIELDS = ["ticker", "ts", "open", "high", "low", "close", "volume", "amount", "drop"]
_BAD: dict[str, st.SearchStrategy[Any]] = {
    "ticker": st.one_of(st.sampled_from(["999999", "000 300", "0" * 33, "\x00"]), _junk),
    "ts": st.one_of(st.sampled_from(["EARLIER", "2024-04-25T09:31:00", f"{DATE}T12:00:00",
                                     "2024-W17-5T09:31:00", "20240426T093100",
                                     f"{DATE}T25:00:00", f"{DATE}T09:31:00+25:00"]),
                    _junk_text.filter(lambda t: not t.startswith(DATE)),
                    st.binary(max_size=30)),
    "open": st.one_of(_not_decimal, _off),  # a float is a factor on the good close
    "close": st.one_of(_not_decimal, _off),
    "high": st.one_of(_not_decimal, st.floats(1e-300, 0.9999)),  # below low
    "low": st.one_of(_not_decimal, st.floats(1.0001, 1e300)),  # above high
    "volume": st.one_of(_not_decimal, _number(-1e300, -1e-300), _number(1.1e18, 1e300)),
    "amount": st.one_of(_not_decimal, _number(-1e300, -1e-300)),
    "drop": st.sampled_from(["ticker", "ts", "open", "high", "low", "close", "volume"]),
}  # fmt: skip
# A mutation of the good bar, drawn without knowing the bar (hypothesis wants strategies that
# do not depend on outside state): which field, and what goes there.
_mutation = st.sampled_from(_FIELDS).flatmap(lambda f: st.tuples(st.just(f), _BAD[f]))


def _apply(bar: dict[str, str], m: int, mutation: tuple[str, Any]) -> dict[str, Any]:
    """The good bar of minute m with one field made bad for sure."""
    field, value = mutation
    out: dict[str, Any] = dict(bar)
    if field == "drop":
        del out[value]
    elif value == "EARLIER":  # a minute already taken (or the lunch break at 09:30)
        out["ts"] = f"{DATE}T{CN.label(m - 1)}:00" if m else f"{DATE}T12:00:00"
    elif isinstance(value, float):
        out[field] = repr(float(bar["close"]) * value)
    else:
        out[field] = value
    return out


def _as_json(fields: dict[str, Any]) -> dict[str, str]:
    """A payload as one `json` field (text values only; bytes as escaped text)."""
    import json

    plain = {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in fields.items()}
    return {"json": json.dumps(plain)}


_nested = st.integers(1500, 3000).map(lambda n: {"json": "[" * n + "]" * n})
_surrogate = st.sampled_from([
    {"json": '{"ticker": "\\ud800", "ts": "2024-04-26T09:31:00", "close": "1"}'},
    {"ticker": b"\xed\xa0\x80", "ts": b"2024-04-26T09:31:00"},  # a surrogate's UTF-8 bytes
    {"json": '{"ticker": "000300", "close": "\\udfff"}'},
])  # fmt: skip
_garbage = st.dictionaries(st.one_of(st.sampled_from(["ticker", "ts", "close", "json", "x"]),
                                     st.binary(min_size=1, max_size=8)),
                           _junk, min_size=1, max_size=8)  # fmt: skip


_payload = st.one_of(
    _mutation.map(lambda x: ("mutated", x)),
    _mutation.map(lambda x: ("json", x)),
    _nested.map(lambda x: ("as is", x)),
    _surrogate.map(lambda x: ("as is", x)),
    _garbage.map(lambda x: ("as is", x)),
)


def _payload_for(bar: dict[str, str], m: int, drawn: tuple[str, Any]) -> dict[str, Any]:
    kind, value = drawn
    if kind == "mutated":
        return _apply(bar, m, value)
    if kind == "json":
        return _as_json(_apply(bar, m, value))
    return dict(value)


def test_fuzzed_bars_through_the_redis_feed_change_nothing(
    ray_cluster: None, redis_server: Any, store: RedisStore
) -> None:
    """≥ 10,000 hostile payloads, 100 before each good minute: 0 crashes, every one
    dead-lettered and counted, and the signals equal a clean run's, each exactly once."""
    refs, _, _ = _history(120, 31)
    good = _good(CN.slots, 32)
    prefix, keys = "fuzz", Keys("fuzz")
    _, co = _engine(refs, redis_server.url, prefix)
    loop = co.run_redis_feed.remote(list(TICKERS))
    sent = [0, 0]  # payloads, minutes (an example that hypothesis abandons sends nothing)

    @settings(max_examples=100, phases=[Phase.generate], database=None, deadline=None,
              derandomize=True, suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.data())
    def send(data: Any) -> None:
        m = sent[1]
        drawn = data.draw(st.lists(_payload, min_size=100, max_size=100))
        bad = [_payload_for(good[m][0], m, d) for d in drawn]
        rows = [(keys.bars(TICKERS[i % 2]), p) for i, p in enumerate(bad)]
        rows += [(keys.bars(b["ticker"]), b) for b in good[m]]
        store.add_to_streams(rows)
        sent[0], sent[1] = sent[0] + len(bad), m + 1

    send()
    used = sent[1]
    assert sent[0] == 100 * used >= 10_000
    _wait(lambda: _settled(store, prefix), "the feed to acknowledge every entry")
    ray.get(co.stop.remote())
    handled = ray.get(loop)
    stats = ray.get(co.stats.remote())
    assert handled == sent[0] + 2 * used
    assert stats.accepted == 2 * used and sum(stats.rejected.values()) == sent[0]
    assert len(stats.rejected) < 60  # counted by field and code, never by value
    assert stats.engine_errors == 0 and stats.not_finite == 0
    assert store.length(keys.deadletter) == sent[0]
    got = _signals(store, prefix)
    ray.get(co.close.remote())
    _same(got, _clean_run(refs, redis_server.url, store, good[:used]))


def test_a_restarted_engine_resumes_after_the_last_handled_bar(
    ray_cluster: None, redis_server: Any, store: RedisStore
) -> None:
    """Stop the engine after 10 minutes, start a new one (new shards and coordinator): it
    rebuilds today from the journal, reads only new entries, and goes on as if never stopped."""
    refs, _, _ = _history(*DAYS)
    good = DAY[:20]
    want = _clean(refs, redis_server.url, store, 20)
    keys = Keys("rs")
    junk = [(keys.bars("000300"), {"close": "nan"}) for _ in range(5)]
    shards, co = _engine(refs, redis_server.url, "rs")
    loop = co.run_redis_feed.remote(list(TICKERS))
    for minute in good[:10]:
        store.add_to_streams([(keys.bars(b["ticker"]), b) for b in minute] + junk)
    _wait(lambda: _settled(store, "rs"), "the first engine")
    ray.get(co.stop.remote())
    assert ray.get(loop) == 10 * (2 + 5)
    ray.get(co.close.remote())
    for actor in [co, *shards]:
        ray.kill(actor, no_restart=True)

    _, co = _engine(refs, redis_server.url, "rs")  # new actors, same Redis
    loop = co.run_redis_feed.remote(list(TICKERS))
    for minute in good[10:]:
        store.add_to_streams([(keys.bars(b["ticker"]), b) for b in minute])
    _wait(lambda: _settled(store, "rs"), "the second engine")
    ray.get(co.stop.remote())
    assert ray.get(loop) == 20  # only the new bars: nothing re-read
    stats = ray.get(co.stats.remote())
    assert stats.resumed_batches > 0 and stats.accepted == 40
    assert store.length(keys.deadletter) == 50  # no old bar dead-lettered again
    _same(_signals(store, "rs"), want)
    derived, clean = _derived(store, "rs"), _clean_derived(len(good))
    timing = {k: v for k, v in derived.items() if k[0] != "rebalance"}
    assert timing == {k: v for k, v in clean.items() if k[0] != "rebalance"}
    assert len(timing) == 40
    # the feed batches bars as they come, so the portfolio's path may differ from the clean
    # run's; but after the restart it moves on from the weights before it, not from cash
    rebalance = {int(f["minute"]): f for (s, _), f in derived.items() if s == "rebalance"}
    assert sorted(rebalance) == list(range(1, 21))
    before, after = json.loads(rebalance[10]["weights"]), rebalance[11]
    moved = json.loads(after["weights"])
    assert before and float(after["turnover"]) == pytest.approx(
        sum(abs(moved.get(t, 0.0) - before.get(t, 0.0)) for t in {*moved, *before})
    )
    ray.get(co.close.remote())


@pytest.mark.parametrize("kill_at", [3, 12])
def test_a_coordinator_killed_mid_replay_recovers_exactly(
    ray_cluster: None, redis_server: Any, store: RedisStore, kill_at: int
) -> None:
    """SIGKILL to the coordinator's worker process (by pid) in the middle of a replay: Ray
    restarts it, it rebuilds today from the journal, the batch in flight is sent again, and
    Redis ends up with exactly the clean run's signals."""
    refs, _, _ = _history(*DAYS)
    good = DAY[:20]
    want = _clean(refs, redis_server.url, store, 20)
    _, co = _engine(refs, redis_server.url, "ck", run="replay-test")
    receipts = itertools.count()
    for m, minute in enumerate(good):
        if m == kill_at:
            pid = ray.get(co.health.remote()).pid
            os.kill(pid, signal.SIGKILL)
        names = [str(next(receipts)) for _ in minute]
        replies = EngineHandle(co, print).on_bars(minute, "replay", names)
        assert not any("rejected" in r for r in replies), replies
    stats = EngineHandle(co, print).stats()
    assert stats.coordinator_restarted and stats.resumed_batches == kill_at
    assert stats.accepted == 40 and not stats.rejected
    assert ray.get(co.health.remote()).pid != pid
    _same(_signals(store, "ck"), want)
    assert _derived(store, "ck") == _clean_derived(len(good))
    ray.get(co.close.remote())


def test_a_coordinator_killed_inside_the_shard_step_recovers_exactly(
    ray_cluster: None, redis_server: Any, store: RedisStore
) -> None:
    """SIGKILL to the coordinator while its batch waits inside the fan-out (a shard is held
    busy, so the step cannot return): Ray restarts it, the shards are reset and rebuilt from
    the journal (the dead coordinator's step still reaches the busy shard first, and is
    undone), the batch is sent again, and Redis ends with exactly the clean run's signals.
    Classic calls here; the direct links' kill is the test above."""
    refs, _, _ = _history(*DAYS)
    good = DAY[:12]
    want = _clean(refs, redis_server.url, store, 12)
    shards, co = _engine(refs, redis_server.url, "cs", run="replay-step", direct=False)
    receipts = itertools.count()
    for m, minute in enumerate(good):
        names = [str(next(receipts)) for _ in minute]
        if m == 6:
            pid = ray.get(co.health.remote()).pid
            ray.get(shards[0].__ray_call__.remote(_hold_lock, 4.0))  # held from now on
            doomed = co.on_bars.remote(minute, "replay", names)
            time.sleep(1.0)  # gate and gather done; the step waits on the busy shard
            assert ray.wait([doomed], timeout=0)[0] == []  # still inside the step
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(ray.exceptions.RayActorError):
                ray.get(doomed)
        replies = EngineHandle(co, print).on_bars(minute, "replay", names)
        assert not any("rejected" in r for r in replies), replies
    stats = EngineHandle(co, print).stats()
    assert stats.coordinator_restarted and stats.resumed_batches == 6
    assert stats.accepted == 24 and not stats.rejected
    assert stats.published_before_restart == 6 * 2 * len(ALGOS)
    assert stats.published == 6 * 2 * len(ALGOS) == stats.counts["published"] // 2
    _same(_signals(store, "cs"), want)
    assert _derived(store, "cs") == _clean_derived(len(good))
    ray.get(co.close.remote())


def _hold_lock(shard: Any, seconds: float) -> None:
    """Inside a shard: a thread holds its lock for a while, as a long step would."""
    import threading

    def hold() -> None:
        with shard._lock:
            time.sleep(seconds)

    threading.Thread(target=hold, daemon=True).start()
    while not shard._lock.locked():
        time.sleep(0.001)


def test_a_redis_outage_while_following_touches_no_shard(
    ray_cluster: None, redis_server: Any, store: RedisStore, tmp_path: Any
) -> None:
    """Redis stops for 12 s (longer than a Ray call's usual wait) while the engine follows
    the bar streams, then comes back with its data (AOF): no shard recovery, no engine error,
    and the signals equal a clean run's."""
    from simsignal.engine.adapters.redis_server import RedisServer, free_port

    port = free_port()
    server = RedisServer(port=port, data_dir=str(tmp_path))
    refs, _, _ = _history(*DAYS)
    good = DAY[:10]
    want = _clean(refs, redis_server.url, store, 10)
    keys, there = Keys("out"), RedisStore.connect(server.url)
    try:
        _, co = _engine(refs, server.url, "out")
        loop = co.run_redis_feed.remote(list(TICKERS))
        for minute in good[:5]:
            there.add_to_streams([(keys.bars(b["ticker"]), b) for b in minute])
        _wait(lambda: _settled(there, "out"), "the first minutes")
        server.stop()
        time.sleep(12.0)
        assert ray.get(co.health.remote()).failing_s > 5
        server = RedisServer(port=port, data_dir=str(tmp_path))
        for minute in good[5:]:
            _wait(there.ping, "Redis back")
            there.add_to_streams([(keys.bars(b["ticker"]), b) for b in minute])
        _wait(lambda: _settled(there, "out"), "the minutes after the outage")
        ray.get(co.stop.remote())
        assert ray.get(loop) == 20
        stats = ray.get(co.stats.remote())
        assert stats.restarts == 0 and stats.engine_errors == 0, stats
        got = _signals(there, "out")
        ray.get(co.close.remote())
    finally:
        server.stop()
    _same(got, want)


def test_redis_error_replies_keep_the_signals_until_redis_takes_them(
    ray_cluster: None, redis_server: Any, store: RedisStore
) -> None:
    """OOM (maxmemory reached) and READONLY (a replica) replies are not connection errors:
    the batches are kept, in order, and committed once Redis accepts writes again."""
    import redis

    refs, _, _ = _history(*DAYS)
    good = DAY[:12]
    want = _clean(refs, redis_server.url, store, 12)
    admin = redis.Redis.from_url(redis_server.url)
    _, co = _engine(refs, redis_server.url, "oom")
    try:
        for m, minute in enumerate(good):
            if m == 4:
                admin.config_set("maxmemory-policy", "noeviction")
                admin.config_set("maxmemory", "1")
            if m == 8:  # a replica (of a master that is not there) answers writes READONLY
                admin.config_set("maxmemory", "0")
                admin.replicaof("127.0.0.1", "1")
            if m == 10:
                assert ray.get(co.flush.remote()) > 0  # a forced attempt, past the back-off
                assert "ReadOnlyError" in ray.get(co.health.remote()).last_error
                admin.replicaof("NO", "ONE")
            assert not any("rejected" in r for r in ray.get(co.on_bars.remote(minute)))
            if m == 6:
                health = ray.get(co.health.remote())
                assert health.pending > 0 and "OutOfMemoryError" in health.last_error, health
        assert ray.get(co.flush.remote()) == 0
    finally:
        admin.config_set("maxmemory", "0")
        admin.replicaof("NO", "ONE")
    _same(_signals(store, "oom"), want)
    ray.get(co.close.remote())


def test_an_engine_error_mid_batch_is_undone_and_the_batch_redone(
    ray_cluster: None, redis_server: Any, store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault injected into our own forecast step (after the shards have moved on): the
    coordinator rebuilds today and the shards from its batch log and does the batch again. A
    batch that fails twice is refused bar by bar (`engine_error`), and the day goes on."""
    from simsignal.actors.coordinator import Coordinator
    from simsignal.engine.core.pipeline.minute import MinutePipeline

    refs, _, _ = _history(*DAYS)
    good = DAY[:10]
    want = _clean(refs, redis_server.url, store, 10)
    shards = [ShardActor.remote(i, refs, CN.slots, ALGOS, 5, False) for i in range(2)]
    pipeline = PipelineConfig(
        algorithms=tuple(ALGOS), k=5, template="cn", date=DATE,
        last_close={t: ("2024-04-25", p) for t, p in PREV.items()},
    )  # fmt: skip
    co = Coordinator(shards, CoordinatorConfig(pipeline, redis_url=redis_server.url,
                                               prefix="err"))  # fmt: skip
    real = MinutePipeline._forecasts
    faults = {"left": 0}

    def faulty(self: MinutePipeline, *args: Any) -> Any:
        if faults["left"]:
            faults["left"] -= 1
            raise ZeroDivisionError("injected")
        return real(self, *args)

    monkeypatch.setattr(MinutePipeline, "_forecasts", faulty)
    for m, minute in enumerate(good):
        faults["left"] = {3: 1, 6: 2}.get(m, 0)  # minute 4 fails once, minute 7 twice
        rows = co.on_bars(minute)
        assert any("rejected" in r for r in rows) == (m == 6), (m, rows)
    stats = co.stats()
    assert stats.engine_errors == 3 and stats.rejected == {"batch:engine_error": 2}
    letters = store.entries(Keys("err").deadletter)
    assert [e.fields["code"] for e in letters] == ["engine_error"] * 2  # once each, not twice
    got = _signals(store, "err")
    assert got.keys() == want.keys()  # minute 7 too: filled from 6 when minute 8 came
    before = {k for k, sig in want.items() if sig.minute < 7}
    _same({k: got[k] for k in before}, {k: want[k] for k in before})
    co.close()


def test_a_shard_whose_blocks_died_reads_the_curves_cache_or_stops_the_run(
    ray_cluster: None, tmp_path: Any
) -> None:
    """A shard restarted after its node died finds its object-store blocks gone (here their
    owner dies, as the blocks' node would): it reads its rows from the curves cache and answers
    as before; with no cache the fan-out stops the run with ShardLost, not a retry loop."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simsignal.actors.fanout import RayFanOut, ShardLost

    @ray.remote(num_cpus=0)
    class Owner:
        def put(self, tables: list[Any]) -> list[Any]:
            return [ray.put(t) for t in tables]

    refs, _, _ = _history(120, 91)
    tables = ray.get(refs)
    cache = tmp_path / "cache"
    (cache / "curves").mkdir(parents=True)
    pq.write_table(pa.concat_tables(tables), cache / "curves" / "part-0.parquet")
    owner = Owner.remote()  # type: ignore[attr-defined]
    doomed = ray.get(owner.put.remote(tables))
    backed = ShardActor.remote(0, doomed, CN.slots, ALGOS, 5, False,
                               backup=(str(cache), ["ratio"]))  # fmt: skip
    bare = ShardActor.remote(1, doomed, CN.slots, ALGOS, 5, False)
    first = ray.get([backed.info.remote(), bare.info.remote()])
    assert [i.source for i in first] == ["object store"] * 2
    reference = ShardActor.remote(0, refs, CN.slots, ALGOS, 5, False)
    minutes: list[tuple[float, ...]] = [(0.001,), (0.002,), (-0.001,)]
    for shard in (backed, bare, reference):
        for m, x in enumerate(minutes[:2], start=1):
            ray.get(shard.step.remote([("000300", m, x)]))

    ray.kill(owner)  # the blocks are gone, as with their node (once the kill has landed)
    _wait(partial(_lost, doomed[0]), "the blocks' owner to die")
    for shard in (backed, bare):  # and the shards' processes (Ray restarts them)
        pid = ray.get(shard.__ray_call__.remote(lambda _: os.getpid()))
        os.kill(pid, signal.SIGKILL)
        _wait(partial(_gone, pid), "the shard's process to end")
    today = {"000300": minutes}
    fanout = RayFanOut([backed], lambda t, m: today[t][: m - 1])
    got = fanout.step([("000300", 3, minutes[2])])[0][0]
    want = ray.get(reference.step.remote([("000300", 3, minutes[2])]))[0]
    assert got is not None and want is not None
    np.testing.assert_array_equal(got.scores, want.scores)
    assert got.dates.tolist() == want.dates.tolist()
    again = ray.get(backed.info.remote())
    assert again.source == "curves cache" and again.days == first[0].days > 0
    assert fanout.restarts == 1

    lost = RayFanOut([bare], lambda t, m: today[t][: m - 1])
    t0 = time.monotonic()
    with pytest.raises(ShardLost, match=r"lost with their node.*curves cache is off"):
        lost.step([("000300", 3, minutes[2])])
    assert time.monotonic() - t0 < 60  # at once, not after the restart timeout


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid)


def _lost(ref: Any) -> bool:
    try:
        ray.get(ref, timeout=5)
    except ray.exceptions.ObjectLostError:
        return True
    return False
