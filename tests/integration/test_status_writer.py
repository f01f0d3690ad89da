"""The engine's figures and views in a real Redis: throttled, stamped, announced."""

from __future__ import annotations

import json

from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.adapters.status_writer import StatusWriter
from simsignal.engine.core.keys import Keys

KEYS = Keys()


def test_figures_are_written_at_most_once_a_period_unless_forced(store: RedisStore) -> None:
    now = [100.0]
    made: list[int] = []
    writer = StatusWriter(store, KEYS, keep_s=60, every_s=1.0, clock=lambda: now[0])

    def figures() -> dict[str, int]:
        made.append(1)
        return {"minutes": len(made)}

    writer.health(figures)
    now[0] += 0.5
    writer.health(figures)  # too soon: not even made
    assert len(made) == 1 and store.hash(KEYS.engine)["minutes"] == "1"
    writer.health(figures, force=True)
    now[0] += 1.0
    writer.health(figures)
    assert len(made) == 3 and store.hash(KEYS.engine)["minutes"] == "3"
    assert float(store.hash(KEYS.engine)["health_at"]) > 0


def test_a_view_is_stored_with_its_expiry_and_announced(store: RedisStore) -> None:
    writer = StatusWriter(store, KEYS, keep_s=60)
    with store.subscription(KEYS.views) as sub:
        writer.view("000300", {"minute": 7, "today": [0.1]})
        note = store.next_message(sub, timeout=2)
    assert note is not None and json.loads(note) == {"ticker": "000300", "minute": 7}
    assert json.loads(store.get(KEYS.view("000300")) or "{}")["today"] == [0.1]
    ttl = store._client.ttl(KEYS.view("000300"))
    assert 0 < ttl <= 60
