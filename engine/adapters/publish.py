"""Publishing a batch to Redis in one script call; buffered, then spilled to a file, when down.

A batch's commit holds its signals (stream + pub/sub + latest hash, idempotent by ID), its
journal entry (ID: the batch's number in the run), the acknowledgement of its bars and its dead
letters, in one script (`commit.py`): either all of it happened or none of it did, and sending
it again changes nothing, so a restart can resume exactly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from simsignal.engine.adapters.redis_store import RedisError, RedisStore
from simsignal.engine.core.commit import Call, Commit, Settlement, merged
from simsignal.engine.core.derived import Derived, derived_entry
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.kinds import KINDS, Kind
from simsignal.engine.core.pipeline.journal import BatchRecord
from simsignal.engine.core.signals import Signal, signal_entries

DAY_MS = 86_400_000
log = logging.getLogger(__name__)

# Dead-letter fields are cut to these lengths: one hostile bar cannot make a large entry.
_DEAD_LIMITS = {"source": 200, "field": 64, "value": 200, "reason": 400, "raw": 4000, "at": 32}


def dead_letter_entry(
    source: str, field: str, value: object, reason: str, raw: object, code: str = ""
) -> dict[str, str]:
    """A dead letter's fields as short, always-encodable text (never raises)."""
    raw_text = raw if isinstance(raw, str) else _json(raw)
    entry = {"source": source, "field": field, "value": str(value), "reason": reason,
             "raw": raw_text, "at": f"{time.time():.3f}"}  # fmt: skip
    if code:
        entry["code"] = code
    return {k: _safe(v, _DEAD_LIMITS.get(k, 64)) for k, v in entry.items()}


def _json(raw: object) -> str:
    try:
        return json.dumps(raw, default=str)  # ensure_ascii: surrogates come out escaped
    except (TypeError, ValueError, RecursionError):
        return repr(raw)[:4000]


def _safe(text: object, most: int) -> str:
    """Text cut to `most` characters with lone surrogates and the like escaped."""
    s = str(text)[:most]
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


class MissingPermissions(ConnectionError):
    """The Redis user may not run a command the engine needs (a one-line, exit-2 error)."""


def needed_commands(keys: Keys, ticker: str, journal: str, counts: str) -> list[list[str]]:
    """Every command the engine runs on Redis, with a key of each kind, for an ACL check.

    The commit script's own calls are here too: on Redis 6.2 a script cannot ask about them
    before it writes, so a permission missing there is found at start instead.
    """
    bars, signals = keys.bars(ticker), keys.signals(ticker)
    return [
        ["EVALSHA", "0" * 40, "1", signals], ["SCRIPT", "LOAD", "return 1"],
        ["XADD", signals, "MINID", "0", "1-1", "f", "v"], ["XRANGE", signals, "-", "+"],
        ["HSET", keys.latest(ticker), "f", "v"], ["PUBLISH", keys.channel, "m"],
        ["XADD", journal, "1-1", "f", "v"], ["EXPIRE", journal, "1"], ["TYPE", journal],
        ["XRANGE", journal, "-", "+"], ["HINCRBY", counts, "f", "1"], ["EXPIRE", counts, "1"],
        ["HGETALL", counts], ["XADD", keys.deadletter, "MAXLEN", "~", "1", "*", "f", "v"],
        ["XGROUP", "CREATE", bars, keys.group, "0", "MKSTREAM"],
        ["XREADGROUP", "GROUP", keys.group, "c", "STREAMS", bars, ">"],
        ["XACK", bars, keys.group, "0-1"], ["HSET", keys.engine, "f", "v"],
    ]  # fmt: skip


def check_permissions(store: RedisStore, keys: Keys, ticker: str, date: str, run: str) -> None:
    """Raise MissingPermissions naming every command the user may not run (nothing is run)."""
    missing = store.missing_permissions(
        needed_commands(keys, ticker, keys.journal(date, run), keys.counts(date, run))
    )
    if missing:
        names = sorted({m.split(" ")[0].lower() for m in missing})
        raise MissingPermissions(
            f"the Redis user may not run {', '.join(m.upper() for m in names)} (NOPERM) on the "
            f"engine's keys ({keys.prefix}:*): a batch is committed whole or not at all, so "
            f"nothing was read or written; grant them (ACL SETUSER <user> "
            f"{' '.join('+' + n for n in names)}) and start again"
        )


@dataclass
class _Unit:
    """One batch's commit, not yet in Redis (JSON-ready: it may go to the spill file)."""

    commit: Commit
    signals: int


@dataclass
class SignalPublisher:
    """Commits batches in order; keeps them while Redis fails, and spills past `max_pending`.

    The spill file (JSON lines, one commit each) is published before anything newer, by the
    next successful flush, by the next run, or by `simsignal flush`: every commit is
    idempotent, so publishing a line twice changes nothing.
    """

    store: RedisStore
    keys: Keys
    retention_days: float
    journal_key: str | None = None
    group: str | None = None
    counts_key: str = ""  # the run's counters hash, written by each commit ("" for none)
    journal_seq: int = 0  # the last batch number given out: the next journal ID is seq + 1
    max_pending: int = 100_000  # signals kept in memory while Redis fails, then spilled
    spill: Path | None = None
    pending: deque[_Unit] = field(default_factory=deque)
    published: int = 0
    derived: int = 0  # timing, rebalance, risk and pair entries (not counted as signals)
    repeats: int = 0
    resent: int = 0  # batches whose commit Redis already held (a reply lost, sent again)
    refused: list[str] = field(default_factory=list)  # back-fills refused (stream:id)
    spilled: int = 0
    last_error: str = ""
    failing_since: float | None = None  # monotonic time of the first failure in a row
    _next_try: float = 0.0
    _backoff: float = 0.25

    @property
    def keep_ms(self) -> int:
        """Signal retention in milliseconds."""
        return int(self.retention_days * DAY_MS)

    @property
    def keep_s(self) -> int:
        """Retention in whole seconds (at least 1): journal entries and views expire after it."""
        return max(1, int(self.retention_days * 86_400))

    @property
    def pending_signals(self) -> int:
        """Signals held in memory, not yet in Redis."""
        return sum(u.signals for u in self.pending)

    def preload(self) -> None:
        """Load the script into Redis now, so the first minute pays no NOSCRIPT round trip."""
        self.store.load_publish_script()

    def publish(
        self,
        signals: Iterable[Signal | Derived],
        record: BatchRecord | None = None,
        dead: list[dict[str, str]] | None = None,
    ) -> int:
        """Queue one batch behind anything pending and try to flush; returns new entries."""
        unit = self._unit(list(signals), record, dead or [])
        if unit.commit:
            self.pending.append(unit)
        return self.flush()

    def flush(self, force: bool = False) -> int:
        """Send the spill file, then what is pending, oldest first; keep it all on failure.

        While Redis fails, a batch does not wait on it: attempts back off from 0.5 s to 5 s
        (a dead host costs a connect timeout each time), unless `force`d.
        """
        if not force and self.failing_since is not None and time.monotonic() < self._next_try:
            if self.pending_signals > self.max_pending:
                self.spill_pending()
            return 0
        added = 0
        try:
            added += self._flush_spill()
            if self.pending:
                units = list(self.pending)
                added += self._commit(merged([u.commit for u in units]), units)
                self.pending.clear()
        except RedisError as err:
            self.last_error = f"{type(err).__name__}: {err}"[:300]
            now = time.monotonic()
            if self.failing_since is None:
                self.failing_since, self._backoff = now, 0.25
                log.warning("Redis commit failed (%s): keeping signals", self.last_error)
            self._backoff = min(5.0, self._backoff * 2)
            self._next_try = now + self._backoff
            if self.pending_signals > self.max_pending:
                self.spill_pending()
            return added
        self.failing_since = None
        return added

    def spill_pending(self) -> int:
        """Append everything pending to the spill file (in order); returns signals spilled."""
        if self.spill is None or not self.pending:
            return 0
        self.spill.parent.mkdir(parents=True, exist_ok=True)
        n = self.pending_signals
        with self.spill.open("ab") as out:
            for unit in self.pending:
                out.write(orjson.dumps(unit.commit.to_json()) + b"\n")
        self.pending.clear()
        self.spilled += n
        log.warning("%d signal(s) spilled to %s", n, self.spill)
        return n

    # -- internals ---------------------------------------------------------------------
    def _unit(
        self,
        signals: list[Signal | Derived],
        record: BatchRecord | None,
        dead: list[dict[str, str]],
    ) -> _Unit:
        calls: dict[str, Call] = {}
        counted: dict[str, None] = {}  # the streams of kinds counted as signals, in order
        plain = [s for s in signals if isinstance(s, Signal)]
        rows = iter(signal_entries(plain))
        for sig in signals:  # dicts keep insertion order: each stream's entries stay in order
            stream = sig.stream(self.keys)
            if kind_of(sig).counted:
                counted[stream] = None
            call = calls.get(stream)
            if call is None:
                call = calls[stream] = Call(stream, sig.latest(self.keys), sig.channel(self.keys),
                                            sig.bar_epoch_ms - self.keep_ms, [])  # fmt: skip
            call.min_id = min(call.min_id, sig.bar_epoch_ms - self.keep_ms)
            call.entries.append(next(rows) if isinstance(sig, Signal) else derived_entry(sig))
        journal, acks = None, []
        if record is not None and self.journal_key and (record.bars or record.receipts):
            self.journal_seq += 1
            journal = (self.journal_key, f"{self.journal_seq}-1", record.to_fields(), self.keep_s)
        if record is not None and self.group:
            streams: dict[str, list[str]] = {}
            for source, receipt in record.receipts:
                if source.startswith(self.keys.bars("")):
                    streams.setdefault(source, []).append(receipt)
            acks = [(s, self.group, ids) for s, ids in streams.items()]
        settlement = Settlement(journal, acks, [(self.keys.deadletter, d) for d in dead])
        commit = Commit(list(calls.values()), [settlement] if settlement else [],
                        tuple(counted), self.counts_key, self.keep_s)  # fmt: skip
        return _Unit(commit, _signal_count(commit))

    def _commit(self, commit: Commit, units: list[_Unit] | None = None) -> int:
        """Run a commit; count new signals (and, apart, new derived entries) as Redis says."""
        done, counted = self.store.commit(commit), set(commit.counted)
        added = sum(n for s, n in done.added.items() if s in counted)
        self.derived += sum(n for s, n in done.added.items() if s not in counted)
        n = sum(u.signals for u in units) if units is not None else _signal_count(commit)
        self.published += added
        refused = sum(1 for r in done.refused if r.rsplit(":", 1)[0] in counted)
        self.repeats += n - added - refused
        self.resent += done.skipped
        if done.refused:
            self.refused += done.refused
            log.error("%d signal(s) refused: back-fill below a stream's newest entry (%s)",
                      len(done.refused), ", ".join(done.refused[:3]))  # fmt: skip
        return added

    def _flush_spill(self) -> int:
        if self.spill is None or not self.spill.is_file():
            return 0
        added = 0
        for chunk in _chunks(self.spill, 200):
            added += self._commit(merged(chunk))
        self.spill.unlink()
        return added


def kind_of(entry: Signal | Derived) -> Kind:
    """An entry's kind (`kinds.py`): what it is about, and whether it counts as a signal."""
    return entry.kind if isinstance(entry, Signal) else KINDS[entry.kind]


def _signal_count(commit: Commit) -> int:
    """Signals in a commit's calls, derived entries not."""
    counted = set(commit.counted)
    return sum(len(c.entries) for c in commit.calls if c.stream in counted)


def _chunks(path: Path, size: int) -> Iterator[list[Commit]]:
    """The spill file's commits, `size` at a time (a torn last line is skipped)."""
    chunk: list[Commit] = []
    with path.open("rb") as lines:
        for line in lines:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                chunk.append(Commit.from_json(orjson.loads(line)))
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk
