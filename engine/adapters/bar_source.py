"""The Redis feed's bars: each ticker's stream read through the engine's consumer group.

Rules, so that a restart neither re-reads nor loses a bar:
- first, what this consumer was handed before and never acknowledged (ID `0`), stream by
  stream, until a read brings none of a stream's; then only new entries (`>`);
- the group is made on every stream at the first read (at its start, `0`), and an existing
  one is kept;
- a bar is acknowledged by the commit that settles its batch (`commit.py`), never here.
Redis errors are raised as they come: the caller decides to wait, say so and read again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.pipeline.batcher import Arrival


class RedisBarSource:
    """Reads the bar streams of `tickers` as `consumer`; `read` returns the next arrivals."""

    def __init__(
        self, store: RedisStore, keys: Keys, tickers: list[str], consumer: str, count: int = 1000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:  # fmt: skip
        self.store, self.group, self.consumer, self.count = store, keys.group, consumer, count
        self.streams = [keys.bars(t) for t in tickers]
        self.positions = dict.fromkeys(self.streams, "0")  # "0": this consumer's unacked ones
        self.clock = clock
        self._ready = False

    @property
    def catching_up(self) -> bool:
        """Still reading entries handed over before (a restart's unacknowledged bars)."""
        return any(p != ">" for p in self.positions.values())

    def read(self, block_ms: int) -> list[Arrival]:
        """The next entries (waiting up to `block_ms` when there are none), as arrivals."""
        if not self._ready:
            self.store.ensure_group(self.streams, self.group)
            self._ready = True
        entries = self.store.read_group(self.group, self.consumer, self.positions,
                                        block_ms=block_ms, count=self.count)  # fmt: skip
        now = self.clock()
        pending = [s for s, p in self.positions.items() if p != ">"]
        for e in entries:
            if self.positions[e.stream] != ">":
                self.positions[e.stream] = e.id
        got = {e.stream for e in entries}
        for stream in pending:  # a read that brought none of a stream's: its backlog is done
            if stream not in got:
                self.positions[stream] = ">"
        return [Arrival(e.fields, e.stream, now, e.id) for e in entries]
