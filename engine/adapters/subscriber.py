"""Reading signals from Redis: the client a portfolio tool uses (blocking and asyncio).

```python
from simsignal.engine.adapters.subscriber import SignalReader

reader = SignalReader("redis://127.0.0.1:6379/0", ["000300"], group="rebalancer", consumer="a")
for signal in reader:                      # blocks; acknowledges each one when you ask for
    print(signal.ticker, signal.minute, signal.algo, signal.pred_close)   # the next
```

Without a group it reads from an ID onwards (plain `XREAD`: new signals, or every one with
`from_start`). With a group, the server remembers what each consumer was handed: a reader
started again with the same group and consumer first gets what it was handed but never
acknowledged, then new signals; entries another consumer left pending for `claim_idle_ms` are
claimed (`XAUTOCLAIM`) and finished here. `handle(fn)` acknowledges right after `fn` returns,
so a handler that succeeded is not handed the signal again (a crash in the one round trip
between the two is the only window). Entries that are not signals are skipped, counted and
acknowledged. When Redis goes away the reader waits and reconnects, backing off to 10 s.

Every kind of `engine/core/kinds.py` is read the same way, by the reader of its payload:
`SignalReader` hands out `Signal`s (kinds `signal`, the default, and `pair`: the pairs among
`tickers`), `DerivedReader` hands out `Derived` entries (`timing` of the tickers, and
`rebalance`: the portfolio's one stream whatever the tickers); `reader_for(kind)` picks it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

from simsignal.config.settings import DEFAULT_REDIS_URL
from simsignal.engine.adapters.redis_store import Entry, RedisError, RedisStore, Unavailable
from simsignal.engine.core.derived import Derived
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.kinds import KINDS, Kind, Payload, Subject
from simsignal.engine.core.pairs import is_pair
from simsignal.engine.core.signals import Signal

log = logging.getLogger(__name__)
T = TypeVar("T")
E = TypeVar("E", Signal, Derived)  # what a reader hands out: its kinds' payload


class _Stopped(Exception):
    """stop() was called while waiting for Redis."""


@dataclass(frozen=True, slots=True)
class Delivery(Generic[E]):
    """An entry as read, with the stream entry it came from (to acknowledge it)."""

    signal: E
    stream: str
    id: str


@dataclass
class StreamReader(Generic[E]):
    """Entries of some tickers (None: every ticker, found as their streams appear)."""

    payload: ClassVar[Payload]  # the kinds a reader takes: those carrying its entries

    url: str = DEFAULT_REDIS_URL
    tickers: Iterable[str] | None = None
    algos: Iterable[str] | None = None  # None: every algorithm
    group: str | None = None
    consumer: str = "reader"
    from_start: bool = False  # without a group: from the first entry; with one: a new group too
    prefix: str = "simsignal"
    block_ms: int = 1000
    count: int = 100
    claim_idle_ms: int = 30_000  # with a group: take over entries pending this long elsewhere
    rescan_s: float = 5.0  # every ticker: look for new signal streams this often
    say: Callable[[str], None] = log.warning  # how waiting for Redis is reported
    kinds: Iterable[str] = ()  # which kinds of `kinds.KINDS` to read (of its payload)
    skipped: int = 0  # entries that were not signals
    _store: RedisStore | None = field(default=None, repr=False)
    _positions: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.keys = Keys(self.prefix)
        self.wanted = None if self.algos is None else frozenset(self.algos)
        self.names = None if self.tickers is None else list(self.tickers)
        mine = [name for name, kind in KINDS.items() if kind.payload is self.payload]
        wrong = [k for k in self.kinds if k not in mine]
        if wrong or not self.kinds:
            name = type(self).__name__
            raise ValueError(f"kinds = {wrong or []!r}: {name} reads {', '.join(mine)}; "
                             "reader_for(kind) picks a kind's reader")  # fmt: skip
        self.wanted_kinds = [KINDS[k] for k in dict.fromkeys(self.kinds)]
        self._kind_of: dict[str, Kind] = {}  # stream → its kind
        self._scanned = 0.0
        self._claimed = 0.0
        self._stopping = threading.Event()

    @property
    def streams(self) -> list[str]:
        """The streams being read so far."""
        return list(self._positions)

    # -- the public ways to read ---------------------------------------------------------
    def __iter__(self) -> Iterator[E]:
        """Entries as they come; with a group, each is acknowledged when the next is asked for.

        That is after the loop body ran: a signal the body failed on is handed out again.
        """
        try:
            for delivery in self.deliveries():
                yield delivery.signal
                self.ack(delivery)
        except _Stopped:
            return

    def handle(self, handler: Callable[[E], object], limit: int | None = None) -> int:
        """Call `handler` on each signal and acknowledge it right after; returns how many.

        Stops after `limit` signals (None: never). An exception in the handler propagates,
        and that signal stays pending for this consumer (or another's claim).
        """
        done = 0
        try:
            for delivery in self.deliveries():
                handler(delivery.signal)
                self.ack(delivery)
                done += 1
                if limit is not None and done >= limit:
                    break
        except _Stopped:
            pass
        return done

    async def aiter(self) -> AsyncIterator[E]:
        """The asyncio form of iterating (`async for signal in reader.aiter()`).

        Each blocking read runs in a worker thread, so the event loop stays free; a read
        returns at least every `block_ms`.
        """
        it = iter(self)
        end = object()
        try:
            while True:
                got = await asyncio.to_thread(next, it, end)
                if got is end:
                    return
                yield got  # type: ignore[misc]  # not `end`: an entry
        finally:  # the consumer left (break, cancel): its worker thread must end too
            self.stop()

    def ack(self, delivery: Delivery[E]) -> None:
        """Acknowledge one delivery (a no-op without a group)."""
        if self.group:
            self._retrying(lambda s: s.ack(delivery.stream, self.group or "", [delivery.id]))

    def stop(self) -> None:
        """Make the reading loop return for good, from another thread (within `block_ms`)."""
        self._stopping.set()

    def close(self) -> None:
        """Release the connection (an unacknowledged signal stays pending)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- reading ---------------------------------------------------------------------------
    def deliveries(self) -> Iterator[Delivery[E]]:
        """Every delivery, not acknowledged: the building block of the forms above."""
        while not self._stopping.is_set():
            for entry in self._retrying(self._next_entries):
                delivery = self._parse(entry)
                if delivery is not None:
                    yield delivery

    def _next_entries(self, store: RedisStore) -> list[Entry]:
        self._discover(store)
        if not self._positions:
            time.sleep(self.block_ms / 1e3)
            return []
        claimed = self._claim(store)
        if claimed:
            return claimed
        if self.group is None:
            entries = store.read(self._positions, block_ms=self.block_ms, count=self.count)
            for e in entries:
                self._positions[e.stream] = e.id
            return entries
        backlog = [s for s, p in self._positions.items() if p != ">"]
        entries = store.read_group(self.group, self.consumer, self._positions,
                                   block_ms=self.block_ms, count=self.count)  # fmt: skip
        got = {e.stream for e in entries}
        for e in entries:
            if self._positions[e.stream] != ">":
                self._positions[e.stream] = e.id
        for stream in backlog:  # this consumer's own unacknowledged entries are done
            if stream not in got:
                self._positions[stream] = ">"
        return entries

    def _discover(self, store: RedisStore) -> None:
        """The streams to read: the tickers given, or (every `rescan_s`) all of the kinds'."""
        now = time.monotonic()
        if self._positions and (self.names is not None or now - self._scanned < self.rescan_s):
            return
        first = not self._scanned
        self._scanned = now
        for kind in self.wanted_kinds:
            for stream in self._streams_of(kind, store):
                self._kind_of.setdefault(stream, kind)
        new = [s for s in self._kind_of if s not in self._positions]
        if not new:
            return
        late = not first  # a stream that appeared after the start: every entry of it is new
        if self.group is None:
            for s in new:
                self._positions[s] = "0-0" if self.from_start or late else store.last_id(s)
            return
        store.ensure_group(new, self.group, "0" if self.from_start or late else "$")
        self._positions.update(dict.fromkeys(new, "0"))  # own pending entries first

    def _streams_of(self, kind: Kind, store: RedisStore) -> list[str]:
        """A kind's streams: of the named subjects it is about, or all that exist so far."""
        if kind.subject is Subject.PORTFOLIO:
            return [kind.stream(self.keys)]
        if self.names is None:
            return store.streams_matching(kind.stream(self.keys, "*"))
        pairs = kind.subject is Subject.PAIR
        return [kind.stream(self.keys, t) for t in self.names if is_pair(t) == pairs]

    def _claim(self, store: RedisStore) -> list[Entry]:
        """With a group: now and then, entries that a dead consumer left pending."""
        if self.group is None or time.monotonic() - self._claimed < self.claim_idle_ms / 2e3:
            return []
        self._claimed = time.monotonic()
        out: list[Entry] = []
        for stream in self._positions:
            out += store.claim_idle(stream, self.group, self.consumer, self.claim_idle_ms)
        return out

    def _entry(self, fields: dict[str, str]) -> E:
        raise NotImplementedError

    def _parse(self, entry: Entry) -> Delivery[E] | None:
        signal: E | None
        try:
            signal = self._entry(entry.fields)
        except (KeyError, ValueError, TypeError):
            self.skipped += 1
            log.warning("skipped %s %s: not a %s entry (%d so far)", entry.stream, entry.id,
                        self._kind_of[entry.stream].name, self.skipped)  # fmt: skip
            signal = None
        if signal is None or (self.wanted is not None and signal.algo not in self.wanted):
            if self.group:  # settled: never handed out again
                self._retrying(lambda s: s.ack(entry.stream, self.group or "", [entry.id]))
            return None
        return Delivery(signal, entry.stream, entry.id)

    def _retrying(self, call: Callable[[RedisStore], T]) -> T:
        """Run `call` on the store; while Redis is unreachable, wait and reconnect."""
        wait = 0.5
        while True:
            if self._store is None:
                self._store = RedisStore.connect(self.url)
            try:
                return call(self._store)
            except Unavailable as err:
                if self._stopping.is_set():
                    raise _Stopped from None
                self.say(f"Redis unreachable ({err}); retrying in {wait:.1f} s")
                self.close()
                self._stopping.wait(wait)
                wait = min(10.0, wait * 2)
            except RedisError as err:
                if "NOGROUP" not in str(err):
                    raise
                # A Redis without persistence came back empty: make the group again (every
                # entry there now is new to it) and go on.
                self.say(f"the consumer group is gone ({err}); making it again")
                self._positions.clear()


@dataclass
class SignalReader(StreamReader[Signal]):
    """Signals of some tickers (kind `signal`), or of pairs `A~B` (kind `pair`)."""

    payload: ClassVar[Payload] = Payload.SIGNAL
    kinds: Iterable[str] = ("signal",)

    def _entry(self, fields: dict[str, str]) -> Signal:
        return Signal.from_fields(fields)


@dataclass
class DerivedReader(StreamReader[Derived]):
    """Derived entries: the tickers' timing (kind `timing`) or the portfolio's `rebalance`."""

    payload: ClassVar[Payload] = Payload.DERIVED
    kinds: Iterable[str] = ("timing",)

    def _entry(self, fields: dict[str, str]) -> Derived:
        return Derived.from_fields(fields)


READERS: dict[Payload, type[SignalReader] | type[DerivedReader]] = {
    reader.payload: reader for reader in (SignalReader, DerivedReader)
}


def reader_for(kind: str) -> type[SignalReader] | type[DerivedReader]:
    """The reader of a kind's entries (`SignalReader` or `DerivedReader`)."""
    if kind not in KINDS:
        raise ValueError(f"kind = {kind!r}: choose from {', '.join(KINDS)}")
    return READERS[KINDS[kind].payload]
