"""The one module that talks to redis-py: streams, the Lua publish, dead letters, probes.

Why one module: redis-py's type hints change between releases (bytes vs str replies, optional
returns), so every reply is taken as untyped here and converted to this module's own plain
types at once. The client always runs with `decode_responses=False`: bytes come back, and are
decoded here with invalid UTF-8 replaced, so a producer's garbage bytes become a rejected bar
instead of an exception inside redis-py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import NoScriptError

from simsignal.engine.keys import Keys

RedisError = redis.RedisError
Unavailable = (redis.ConnectionError, redis.TimeoutError)  # worth retrying later
Fields = dict[str, str]


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as plain text."""

    stream: str
    id: str
    fields: Fields


def text(value: object) -> str:
    """A reply item as str (bytes decoded as UTF-8, undecodable bytes replaced)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _fields(raw: Any) -> Fields:
    return {text(k): text(v) for k, v in dict(raw or {}).items()}


# One script call per ticker and batch (one round trip for all of them): each signal is
# added to the stream with its deterministic ID; only when Redis accepted it (not a repeat)
# is it announced and written to the latest hash. A repeat leaves exactly one entry.
# Retention is by time: entries older than ARGV[1] (an epoch-ms stream ID) are trimmed (MINID).
# ARGV: min id, channel, then per signal: id, algo, payload JSON, the entry's fields as one
# JSON array [name, value, ...]. Four arguments a signal instead of ~40: packing each argument
# costs the client more than cjson.decode costs Redis.
_PUBLISH_LUA = """
local i, added = 3, 0
while i <= #ARGV do
  local ok = redis.pcall('XADD', KEYS[1], 'MINID', ARGV[1], ARGV[i],
                         unpack(cjson.decode(ARGV[i + 3])))
  if type(ok) == 'table' and ok.err then
    if not string.find(ok.err, 'equal or smaller', 1, true) then
      return redis.error_reply(ok.err)
    end
  else
    redis.call('PUBLISH', ARGV[2], ARGV[i + 2])
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    added = added + 1
  end
  i = i + 4
end
return added
"""


@dataclass(frozen=True, slots=True)
class PublishCall:
    """One script call: a ticker's stream and latest hash, and the flat ARGV of its signals."""

    stream: str
    latest: str
    args: Sequence[str | int | float]


class RedisStore:
    """A redis-py client behind plain-typed methods; all of the engine's Redis I/O."""

    def __init__(self, client: redis.Redis) -> None:
        # Untyped on purpose: replies are converted below, whatever redis-py's hints say.
        self._client: Any = client
        self._sha: str | None = None

    @classmethod
    def connect(cls, url: str, *, timeout: float = 5.0, connect_timeout: float = 2.0) -> RedisStore:
        """A store for `url` (redis:// or rediss://, ACL user and password allowed)."""
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=connect_timeout,
            decode_responses=False,
        )  # fmt: skip
        return cls(client)

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    # -- probes ----------------------------------------------------------------------
    def ping(self) -> bool:
        """True when the server answers (any Redis error counts as no)."""
        try:
            return bool(self._client.ping())
        except (RedisError, OSError):
            return False

    def server_version(self) -> str:
        """The server's `redis_version`."""
        info: Any = self._client.info("server")
        return text(info["redis_version"])

    def flushdb(self) -> None:
        """Empty the current database (tests and benchmarks only)."""
        self._client.flushdb()

    # -- streams ---------------------------------------------------------------------
    def read(
        self, positions: Mapping[str, str], *, block_ms: int | None = None, count: int | None = None
    ) -> list[Entry]:
        """Entries after each stream's position (XREAD), oldest first per stream."""
        reply: Any = self._client.xread(dict(positions), count=count, block=block_ms)
        return [
            Entry(text(stream), text(entry_id), _fields(fields))
            for stream, entries in reply or []
            for entry_id, fields in entries
        ]

    def entries(self, stream: str, start: str = "-", end: str = "+") -> list[Entry]:
        """Every entry of a stream between two IDs (XRANGE)."""
        reply: Any = self._client.xrange(stream, min=start, max=end)
        return [Entry(stream, text(i), _fields(f)) for i, f in reply or []]

    def length(self, stream: str) -> int:
        """Entries in a stream (0 when it does not exist)."""
        return int(self._client.xlen(stream))

    def add(self, stream: str, fields: Mapping[str, str], *, maxlen: int | None = None) -> str:
        """XADD with an automatic ID; returns it."""
        return text(
            self._client.xadd(stream, dict(fields), maxlen=maxlen, approximate=maxlen is not None)
        )

    def set_hash(self, key: str, fields: Mapping[str, str | int | float]) -> None:
        """HSET several fields."""
        self._client.hset(key, mapping=dict(fields))

    def add_to_streams(self, rows: Sequence[tuple[str, Mapping[str, str]]]) -> None:
        """XADD an entry to each of several streams, in one round trip (producers, benches)."""
        pipe = self._client.pipeline(transaction=False)
        for stream, fields in rows:
            pipe.xadd(stream, dict(fields))
        pipe.execute()

    def hash(self, key: str) -> Fields:
        """HGETALL as text."""
        return _fields(self._client.hgetall(key))

    def delete(self, *keys: str) -> None:
        """DEL."""
        if keys:
            self._client.delete(*keys)

    @contextlib.contextmanager
    def subscription(self, channel: str) -> Iterator[Any]:
        """A pub/sub connection subscribed to `channel`; `next_message(sub, timeout)` reads it."""
        sub: Any = self._client.pubsub()
        sub.subscribe(channel)
        sub.get_message(timeout=1.0)  # the subscribe confirmation
        try:
            yield sub
        finally:
            sub.close()

    @staticmethod
    def next_message(sub: Any, timeout: float) -> str | None:
        """The next pub/sub payload as text, or None."""
        msg: Any = sub.get_message(timeout=timeout)
        return None if msg is None else text(msg["data"])

    # -- publishing ------------------------------------------------------------------
    def load_publish_script(self) -> None:
        """Load the publish script now, so the first minute pays no NOSCRIPT round trip."""
        self._sha = text(self._client.script_load(_PUBLISH_LUA))

    def publish(self, calls: Sequence[PublishCall]) -> int:
        """Run the publish script once per call, all in one pipelined round trip.

        EVALSHA is sent straight away (no SCRIPT EXISTS check per call); if the server lost
        the script (a restart), it is loaded again and the whole batch re-sent, which is safe
        because the stream IDs make every signal idempotent. Returns entries newly added.
        """
        if self._sha is None:
            self.load_publish_script()
        try:
            return self._run_publish(calls)
        except NoScriptError:
            self.load_publish_script()
            return self._run_publish(calls)

    def _run_publish(self, calls: Sequence[PublishCall]) -> int:
        pipe = self._client.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(self._sha, 2, call.stream, call.latest, *call.args)
        results: list[Any] = pipe.execute()
        return sum(int(r) for r in results)

    def dead_letter(self, keys: Keys, entry: Mapping[str, str], maxlen: int = 100_000) -> bool:
        """Park a rejected input; never raises (returns whether Redis took it)."""
        try:
            safe = {k: v.encode("utf-8", "replace") for k, v in entry.items()}
            self._client.xadd(keys.deadletter, safe, maxlen=maxlen, approximate=True)
        except Exception:
            return False
        return True


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at `url`."""
    try:
        store = RedisStore.connect(url, timeout=timeout, connect_timeout=timeout)
    except (ValueError, RedisError):
        return False
    try:
        return store.ping()
    finally:
        store.close()
