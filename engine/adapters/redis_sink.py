"""The pipeline's signal sink on Redis: one transaction per batch, with its dead letters."""

from __future__ import annotations

from simsignal.engine.adapters.publish import SignalPublisher, dead_letter_entry
from simsignal.engine.core.bars import BadBar
from simsignal.engine.core.derived import Derived
from simsignal.engine.core.pipeline.batcher import Arrival
from simsignal.engine.core.pipeline.journal import BatchRecord
from simsignal.engine.core.signals import Signal


class RedisSink:
    """Dead letters wait for their batch's commit, so they are kept (or spilled) like signals."""

    def __init__(self, publisher: SignalPublisher) -> None:
        self.publisher = publisher
        self._dead: list[dict[str, str]] = []

    def publish(self, signals: list[Signal | Derived], record: BatchRecord) -> None:
        """Commit the batch: signals, journal entry, bar acks and dead letters together."""
        dead, self._dead = self._dead, []
        self.publisher.publish(signals, record, dead)

    def forget(self) -> None:
        """Drop dead letters of a batch that failed (it is handled again from the start)."""
        self._dead = []

    def reject(self, arrival: Arrival, bad: BadBar) -> None:
        """Hold a refused bar's dead letter for the batch's commit."""
        self._dead.append(
            dead_letter_entry(
                arrival.source, bad.field, bad.value, bad.reason, arrival.fields, bad.code
            )
        )
