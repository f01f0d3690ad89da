"""The pipeline's ports in this process: shards as plain objects, signals into a list.

What `simsignal evaluate` and `simsignal chart` run the minute pipeline on (no Ray, no
Redis); the tests use them too. Real shard code, nothing stubbed.
"""

from __future__ import annotations

from simsignal.engine.core.bars import BadBar
from simsignal.engine.core.derived import Derived
from simsignal.engine.core.pipeline.batcher import Arrival
from simsignal.engine.core.pipeline.journal import BatchRecord
from simsignal.engine.core.pipeline.ports import ShardReply, TodaySoFar
from simsignal.engine.core.shard_state import ShardState, Update
from simsignal.engine.core.signals import Signal


class LocalShards:
    """The fan-out port over ShardStates held in this process."""

    def __init__(self, shards: list[ShardState]) -> None:
        self.shards = shards
        self.calls = 0

    def step(self, updates: list[Update]) -> list[ShardReply]:
        """Every shard answers the whole batch, in shard order."""
        self.calls += 1
        return [s.step(updates) for s in self.shards]

    def restore(self, today: TodaySoFar) -> None:
        """Every shard's queries rebuilt from today's values so far."""
        for shard in self.shards:
            shard.reset()
            for ticker, values in today.items():
                shard.restore(ticker, values)


class ListSink:
    """The signal-sink port as lists: batches of signals, journal records, rejected bars."""

    def __init__(self) -> None:
        self.batches: list[list[Signal]] = []
        self.derived: list[Derived] = []
        self.records: list[BatchRecord] = []
        self.rejected: list[tuple[Arrival, BadBar]] = []

    def publish(self, signals: list[Signal | Derived], record: BatchRecord) -> None:
        """Keep a batch's signals (empty batches are left out) and its record."""
        plain = [s for s in signals if isinstance(s, Signal)]
        if plain:
            self.batches.append(plain)
        self.derived += [d for d in signals if isinstance(d, Derived)]
        self.records.append(record)

    def reject(self, arrival: Arrival, bad: BadBar) -> None:
        """Keep a refused bar with its reason."""
        self.rejected.append((arrival, bad))

    @property
    def signals(self) -> list[Signal]:
        """Every signal, in publishing order."""
        return [s for b in self.batches for s in b]
