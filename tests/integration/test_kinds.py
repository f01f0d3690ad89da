"""Every signal kind of the registry, published for real: its own stream, latest hash and
channel under the prefix, counted where its kind says, idempotent by ID, read back whole by
its reader, and shown by the dashboard's state of its subject.

A kind added to `kinds.KINDS` without an example here fails the first test: the example is
what makes the others check it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from simsignal.engine.adapters.publish import SignalPublisher
from simsignal.engine.adapters.redis_server import RedisServer
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.adapters.subscriber import reader_for
from simsignal.engine.app.dashboard.app import state_of, subjects
from simsignal.engine.core.announce import announced
from simsignal.engine.core.derived import Derived
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.kinds import KINDS, Payload, Subject
from simsignal.engine.core.signals import Signal
from tests.unit.test_messages import _signal

KEYS = Keys("kinds")
T = 1714095060000  # 09:31 of 2024-04-26, epoch ms


def _example(kind: str) -> Signal | Derived:
    """One entry of each kind, as the engine makes it."""
    if kind == "signal":
        return _signal(bar_epoch_ms=T, minute=1, slot="09:31")
    if kind == "pair":
        return replace(_signal(bar_epoch_ms=T, minute=1, slot="09:31"), ticker="000300~600000")
    if kind == "timing":
        return Derived("timing", "000300", "2024-04-26", 1, "09:31", "sq", T, {"position": 1})
    if kind == "risk":
        return Derived("risk", "000300", "2024-04-26", 1, "09:31", "har_x", T,
                       {"rv": 0.004, "rv_q10": 0.002, "rv_q90": 0.007, "range": 0.009,
                        "range_q10": 0.005, "range_q90": 0.015, "rv_so_far": 0.0})  # fmt: skip
    if kind == "rebalance":
        return Derived("rebalance", "", "2024-04-26", 1, "09:31", "sq", T,
                       {"weights": {"000300": 0.1}})  # fmt: skip
    raise KeyError(kind)


def test_every_kind_has_an_example_and_its_payload_type() -> None:
    for name, kind in KINDS.items():
        entry = _example(name)  # a new kind needs its example above
        assert isinstance(entry, Signal if kind.payload is Payload.SIGNAL else Derived), name


def test_the_kinds_name_distinct_keys_under_the_prefix() -> None:
    seen: set[str] = set()
    for name, kind in KINDS.items():
        subject = {"ticker": "000300", "pair": "000300~600000", "portfolio": ""}[kind.subject]
        names = {kind.stream(KEYS, subject), kind.latest(KEYS, subject), kind.channel(KEYS)}
        assert all(n.startswith("kinds:") for n in names), (name, names)
        assert not names & seen, (name, names & seen)  # no two kinds share a key or channel
        seen |= names
    assert {k.subject for k in KINDS.values()} == set(Subject)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_is_published_once_where_its_kind_says_and_counted_so(
    store: RedisStore, name: str
) -> None:
    kind, entry = KINDS[name], _example(name)
    pub = SignalPublisher(store, KEYS, 5, counts_key=KEYS.counts("2024-04-26", "kinds"))
    subject = entry.ticker
    with store.subscription(kind.channel(KEYS, subject)) as sub:
        assert pub.publish([entry]) == (1 if kind.counted else 0)
        heard = store.next_message(sub, timeout=2)
    assert heard is not None and [e["minute"] for e in announced(heard)] == [1]
    [stored] = store.entries(kind.stream(KEYS, subject))
    assert stored.id == entry.stream_id
    assert set(store.hash(kind.latest(KEYS, subject))) == {entry.hash_field}
    counts = store.counts(KEYS.counts("2024-04-26", "kinds"))
    assert counts == ({"published": 1} if kind.counted else {"derived": 1})
    assert (pub.published, pub.derived) == ((1, 0) if kind.counted else (0, 1))
    assert pub.publish([entry]) == 0 and len(store.entries(kind.stream(KEYS, subject))) == 1
    assert pub.repeats == (1 if kind.counted else 0)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_is_read_back_whole_by_its_reader_and_shown_by_the_dashboard(
    redis_server: RedisServer, store: RedisStore, name: str
) -> None:
    kind, entry = KINDS[name], _example(name)
    SignalPublisher(store, KEYS, 5, counts_key=KEYS.counts("2024-04-26", "kinds")).publish([entry])
    subject = entry.ticker or "000300"  # the portfolio's entries are read whatever the tickers
    reader = reader_for(name)(redis_server.url, [subject], kinds=[name], from_start=True,
                              prefix=KEYS.prefix, block_ms=100)  # fmt: skip
    got: list[object] = []
    assert reader.handle(got.append, limit=1) == 1
    reader.close()
    assert got == [entry], name  # every field, as published
    state = state_of(store, KEYS, subject)
    if kind.payload is Payload.SIGNAL:
        assert state["kind"] == name and set(state["latest"]) == {entry.algo}
        assert state["latest"][entry.algo]["minute"] == 1
        assert subject in subjects(store, KEYS)  # offered on the page
    else:
        assert state["derived"][name]["minute"] == 1, state
        assert state["derived"][name]["id"] == entry.stream_id


def test_a_reader_refuses_a_kind_it_does_not_carry(redis_server: RedisServer) -> None:
    with pytest.raises(ValueError, match=r"kinds = \['timing'\]: SignalReader reads signal, pair"):
        reader_for("signal")(redis_server.url, ["000300"], kinds=["timing"])
    with pytest.raises(ValueError, match="kind = 'news': choose from signal, pair"):
        reader_for("news")
