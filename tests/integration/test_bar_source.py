"""The Redis feed's bar source on a real redis-server, without Ray: what a restart reads."""

from __future__ import annotations

from simsignal.engine.adapters.bar_source import RedisBarSource
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.keys import Keys

KEYS = Keys()


def _bar(m: int) -> dict[str, str]:
    return {"ticker": "000300", "ts": f"2024-04-26T09:{30 + m:02d}:00", "close": str(100 + m)}


def test_a_restarted_consumer_reads_its_unacknowledged_bars_first_then_new_ones(
    store: RedisStore,
) -> None:
    stream = KEYS.bars("000300")
    first = RedisBarSource(store, KEYS, ["000300"], "coordinator")
    assert first.read(10) == []  # the group is made at the stream's start
    ids = [store.add(stream, _bar(m)) for m in range(3)]
    got = first.read(10)
    assert [a.receipt for a in got] == ids and [a.source for a in got] == [stream] * 3
    store.ack(stream, KEYS.group, ids[:1])  # only the first bar's batch was committed
    store.add(stream, _bar(3))

    again = RedisBarSource(store, KEYS, ["000300"], "coordinator")  # the engine restarted
    assert again.catching_up
    handed = again.read(10)
    assert [a.receipt for a in handed] == ids[1:]  # handed before, never acknowledged
    assert [a.fields["close"] for a in handed] == ["101", "102"]
    assert again.read(10) == [] and not again.catching_up  # that backlog is done
    assert [a.fields["close"] for a in again.read(10)] == ["103"]  # then what is new
    assert store.pending_count(stream, KEYS.group) == 3  # nothing acknowledged here


def test_another_consumer_does_not_take_over_this_ones_bars(store: RedisStore) -> None:
    stream = KEYS.bars("000300")
    mine = RedisBarSource(store, KEYS, ["000300"], "coordinator")
    mine.read(10)
    store.add(stream, _bar(0))
    assert len(mine.read(10)) == 1
    other = RedisBarSource(store, KEYS, ["000300"], "elsewhere")
    assert other.read(10) == [] and other.read(10) == []
