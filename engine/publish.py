"""Publishing signals to Redis: stream + pub/sub + latest hash, idempotent, buffered when down."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable

import orjson

from simsignal.engine.keys import Keys
from simsignal.engine.redis_store import PublishCall, RedisStore, Unavailable
from simsignal.engine.signals import Signal

DAY_MS = 86_400_000


class SignalPublisher:
    """Publishes in order; while Redis is unreachable, keeps signals and flushes them later."""

    def __init__(self, store: RedisStore, keys: Keys, retention_days: float) -> None:
        self.store = store
        self.keys = keys
        self.keep_ms = int(retention_days * DAY_MS)
        self.pending: deque[Signal] = deque()
        self.published = 0
        self.repeats = 0

    def preload(self) -> None:
        """Load the script into Redis now, so the first minute pays no NOSCRIPT round trip."""
        self.store.load_publish_script()

    def publish(self, signals: Iterable[Signal]) -> int:
        """Queue `signals` behind anything still pending and try to flush; returns new entries."""
        self.pending.extend(signals)
        return self.flush()

    def flush(self) -> int:
        """Send what is pending, oldest first; on a connection error keep the rest for later."""
        if not self.pending:
            return 0
        batch = list(self.pending)
        by_ticker: dict[str, list[str | int | float]] = {}
        for sig in batch:  # dicts keep insertion order: each ticker's signals stay in order
            fields = orjson.dumps(sig.field_list()).decode()
            args = by_ticker.setdefault(
                sig.ticker, [sig.bar_epoch_ms - self.keep_ms, self.keys.channel]
            )
            args[0] = min(int(args[0]), sig.bar_epoch_ms - self.keep_ms)
            args += [sig.stream_id, sig.algo, sig.to_json(), fields]
        calls = [
            PublishCall(self.keys.signals(t), self.keys.latest(t), args)
            for t, args in by_ticker.items()
        ]
        try:
            added = self.store.publish(calls)
        except Unavailable:
            return 0
        self.pending.clear()
        self.repeats += len(batch) - added
        self.published += added
        return added


def dead_letter(
    store: RedisStore,
    keys: Keys,
    source: str,
    field: str,
    value: object,
    reason: str,
    raw: dict[str, str] | str,
) -> bool:
    """Park rejected input with the reason; never raises: a dead letter must not stop the engine."""
    entry = {
        "source": source,
        "field": field,
        "value": str(value)[:500],
        "reason": reason,
        "raw": raw[:4000] if isinstance(raw, str) else json.dumps(raw, default=str)[:4000],
        "at": f"{time.time():.3f}",
    }
    return store.dead_letter(keys, entry)
