"""The pipeline's signal sink on Redis: ordered, idempotent publishing, and dead letters."""

from __future__ import annotations

from simsignal.engine.bars import BadBar
from simsignal.engine.keys import Keys
from simsignal.engine.pipeline.batcher import Arrival
from simsignal.engine.publish import SignalPublisher, dead_letter
from simsignal.engine.redis_store import RedisStore
from simsignal.engine.signals import Signal


class RedisSink:
    """Publishes each batch in one round trip; keeps it (in order) while Redis is away."""

    def __init__(self, store: RedisStore, keys: Keys, retention_days: float) -> None:
        self.store = store
        self.keys = keys
        self.publisher = SignalPublisher(store, keys, retention_days)

    def publish(self, signals: list[Signal]) -> None:
        """Queue behind anything pending and try to send it all."""
        self.publisher.publish(signals)

    def reject(self, arrival: Arrival, bad: BadBar) -> None:
        """Dead-letter a refused bar (never raises)."""
        dead_letter(self.store, self.keys, arrival.source, bad.field, bad.value, bad.reason,
                    arrival.fields)  # fmt: skip
