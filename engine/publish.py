"""Publishing signals to Redis: stream + pub/sub + latest hash, idempotent, buffered when down."""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Iterable

import redis

from engine.keys import Keys
from engine.signals import Signal

# One round trip per signal batch and atomic per signal: add to the stream with the
# deterministic ID; only when Redis accepted it (not a repeat) announce it and update
# the latest hash. A repeat leaves exactly one entry, as the contract asks.
_PUBLISH_LUA = """
local ok = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[1], unpack(ARGV, 6))
if type(ok) == 'table' and ok.err then
  if string.find(ok.err, 'equal or smaller', 1, true) then return 0 end
  return redis.error_reply(ok.err)
end
redis.call('PUBLISH', ARGV[3], ARGV[5])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
return 1
"""


class SignalPublisher:
    """Publishes in order; while Redis is unreachable, keeps signals and flushes them later."""

    def __init__(self, client: redis.Redis, keys: Keys, maxlen: int) -> None:
        self.client = client
        self.keys = keys
        self.maxlen = maxlen
        self.pending: deque[Signal] = deque()
        self.published = 0
        self.repeats = 0
        self._script = client.register_script(_PUBLISH_LUA)

    def publish(self, signals: Iterable[Signal]) -> int:
        """Queue `signals` behind anything still pending and try to flush; returns new entries."""
        self.pending.extend(signals)
        return self.flush()

    def flush(self) -> int:
        """Send what is pending, oldest first; on a connection error keep the rest for later."""
        added = 0
        while self.pending:
            batch = list(self.pending)
            pipe = self.client.pipeline(transaction=False)
            for sig in batch:
                fields = [x for kv in sig.to_fields().items() for x in kv]
                self._script(
                    keys=[self.keys.signals(sig.ticker), self.keys.latest(sig.ticker)],
                    args=[
                        sig.stream_id,
                        self.maxlen,
                        self.keys.channel,
                        sig.algo,
                        sig.to_json(),
                        *fields,
                    ],
                    client=pipe,
                )
            try:
                results = pipe.execute()
            except (redis.ConnectionError, redis.TimeoutError):
                return added
            for _ in batch:
                self.pending.popleft()
            new = sum(int(r) for r in results)
            added += new
            self.repeats += len(batch) - new
        self.published += added
        return added


def dead_letter(
    client: redis.Redis,
    keys: Keys,
    source: str,
    field: str,
    value: object,
    reason: str,
    raw: dict[str, str] | str,
) -> None:
    """Park rejected input with the reason; never raises: a dead letter must not stop the engine."""
    entry = {
        "source": source,
        "field": field,
        "value": str(value)[:500],
        "reason": reason,
        "raw": raw if isinstance(raw, str) else json.dumps(raw, default=str)[:4000],
        "at": f"{time.time():.3f}",
    }
    with contextlib.suppress(redis.RedisError):
        client.xadd(keys.deadletter, entry, maxlen=100_000, approximate=True)
