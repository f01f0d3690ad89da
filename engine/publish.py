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

# One script call per ticker and batch (one round trip for all of them): each signal is
# added to the stream with its deterministic ID; only when Redis accepted it (not a repeat)
# is it announced and written to the latest hash. A repeat leaves exactly one entry.
# ARGV: maxlen, channel, then per signal: id, algo, json, n, n field/value strings.
_PUBLISH_LUA = """
local i, added = 3, 0
while i <= #ARGV do
  local n = tonumber(ARGV[i + 3])
  local ok = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ARGV[i],
                         unpack(ARGV, i + 4, i + 3 + n))
  if type(ok) == 'table' and ok.err then
    if not string.find(ok.err, 'equal or smaller', 1, true) then
      return redis.error_reply(ok.err)
    end
  else
    redis.call('PUBLISH', ARGV[2], ARGV[i + 2])
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    added = added + 1
  end
  i = i + 4 + n
end
return added
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

    def preload(self) -> None:
        """Load the script into Redis now, so the first minute pays no NOSCRIPT round trip."""
        self.client.script_load(_PUBLISH_LUA)

    def publish(self, signals: Iterable[Signal]) -> int:
        """Queue `signals` behind anything still pending and try to flush; returns new entries."""
        self.pending.extend(signals)
        return self.flush()

    def flush(self) -> int:
        """Send what is pending, oldest first; on a connection error keep the rest for later."""
        added = 0
        while self.pending:
            batch = list(self.pending)
            by_ticker: dict[str, list[str | int]] = {}
            for sig in batch:  # dicts keep insertion order: each ticker's signals stay in order
                fields = [x for kv in sig.to_fields().items() for x in kv]
                args = by_ticker.setdefault(sig.ticker, [self.maxlen, self.keys.channel])
                args += [sig.stream_id, sig.algo, sig.to_json(), len(fields), *fields]
            pipe = self.client.pipeline(transaction=False)
            for ticker, args in by_ticker.items():
                keys = [self.keys.signals(ticker), self.keys.latest(ticker)]
                self._script(keys=keys, args=args, client=pipe)
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
