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
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.exceptions import NoScriptError

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
# Returns {added, refused id, ...}: an ID Redis refuses is a repeat when that entry is there,
# and a back-fill (an earlier minute after a later one) when it is not; those are refused.
_PUBLISH_LUA = """
local i, out = 3, {0}
while i <= #ARGV do
  local ok = redis.pcall('XADD', KEYS[1], 'MINID', ARGV[1], ARGV[i],
                         unpack(cjson.decode(ARGV[i + 3])))
  if type(ok) == 'table' and ok.err then
    if not string.find(ok.err, 'equal or smaller', 1, true) then
      return redis.error_reply(ok.err)
    end
    if #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i]) == 0 then
      out[#out + 1] = ARGV[i]
    end
  else
    redis.call('PUBLISH', ARGV[2], ARGV[i + 2])
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    out[1] = out[1] + 1
  end
  i = i + 4
end
return out
"""


Call = tuple[str, str, list[str | int | float]]  # stream, latest hash, the script's ARGV


@dataclass(frozen=True, slots=True)
class Commit:
    """One transaction: publish-script calls, journal entries, bar acks and dead letters."""

    calls: list[Call]
    journal: list[tuple[str, dict[str, str], int]] = field(default_factory=list)  # key, f, ttl
    acks: list[tuple[str, str, list[str]]] = field(default_factory=list)  # stream, group, ids
    dead: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # stream, fields

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (the spill file's lines)."""
        return {"calls": self.calls, "journal": self.journal, "acks": self.acks,
                "dead": self.dead}  # fmt: skip

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Commit:
        """Back from `to_json`."""
        return cls(
            [(str(s), str(h), list(a)) for s, h, a in obj["calls"]],
            [(str(k), dict(f), int(t)) for k, f, t in obj.get("journal", [])],
            [(str(s), str(g), [str(i) for i in ids]) for s, g, ids in obj.get("acks", [])],
            [(str(k), dict(f)) for k, f in obj.get("dead", [])],
        )


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

    def put(
        self, key: str, value: str, ttl_s: int, announce: tuple[str, str] | None = None
    ) -> None:
        """SET a string that expires, then PUBLISH `announce` (channel, message) if given."""
        pipe = self._client.pipeline(transaction=False)
        pipe.set(key, value, ex=ttl_s)
        if announce is not None:
            pipe.publish(*announce)
        pipe.execute()

    def get(self, key: str) -> str | None:
        """GET as text (None: no such key)."""
        value: Any = self._client.get(key)
        return None if value is None else text(value)

    def hash(self, key: str) -> Fields:
        """HGETALL as text."""
        return _fields(self._client.hgetall(key))

    def delete(self, *keys: str) -> None:
        """DEL."""
        if keys:
            self._client.delete(*keys)

    @contextlib.contextmanager
    def subscription(self, *channels: str) -> Iterator[Any]:
        """A pub/sub connection subscribed to `channels`; `next_message(sub, timeout)` reads it."""
        sub: Any = self._client.pubsub()
        sub.subscribe(*channels)
        for _ in channels:  # the confirmations: subscribed for sure before returning
            sub.get_message(timeout=1.0)
        sub.ignore_subscribe_messages = True
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

    def commit(self, commit: Commit) -> tuple[dict[str, int], list[str]]:
        """Run one batch's commit as a MULTI/EXEC transaction, in one round trip.

        EVALSHA is sent straight away (no SCRIPT EXISTS check per call); if the server lost
        the script (a restart), it is loaded again and the whole commit re-sent, which is safe
        because stream IDs make every signal idempotent and acks are idempotent too. Returns
        the entries newly added per stream and the refused back-fills as `stream:id`.
        """
        if self._sha is None:
            self.load_publish_script()
        try:
            return self._run_commit(commit)
        except NoScriptError:
            self.load_publish_script()
            return self._run_commit(commit)

    def _run_commit(self, commit: Commit) -> tuple[dict[str, int], list[str]]:
        pipe = self._client.pipeline(transaction=True)
        for stream, latest, args in commit.calls:
            pipe.evalsha(self._sha, 2, stream, latest, *args)
        for key, fields, ttl in commit.journal:
            pipe.xadd(key, fields)
            pipe.expire(key, ttl)
        for stream, group, ids in commit.acks:
            pipe.xack(stream, group, *ids)
        for key, fields in commit.dead:
            pipe.xadd(key, _encoded(fields), maxlen=DEAD_LETTER_MAXLEN, approximate=True)
        results: list[Any] = pipe.execute()
        added: dict[str, int] = {}
        refused: list[str] = []
        for (stream, _, _), reply in zip(commit.calls, results, strict=False):
            added[stream] = added.get(stream, 0) + int(reply[0])
            refused += [f"{stream}:{text(i)}" for i in reply[1:]]
        return added, refused

    # -- the bar streams' consumer group --------------------------------------------------
    def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        """XACK: entries the group is done with; returns how many were pending."""
        return int(self._client.xack(stream, group, *ids)) if ids else 0

    def claim_idle(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int = 100
    ) -> list[Entry]:
        """XAUTOCLAIM: take over entries another consumer left pending for `min_idle_ms`."""
        reply: Any = self._client.xautoclaim(stream, group, consumer, min_idle_ms, "0-0",
                                             count=count)  # fmt: skip
        claimed = reply[1] if reply else []
        return [Entry(stream, text(i), _fields(f)) for i, f in claimed if f is not None]

    def streams_matching(self, pattern: str) -> list[str]:
        """Stream keys matching a glob pattern (SCAN, so the server is never blocked)."""
        keys: Any = self._client.scan_iter(match=pattern, count=1000, _type="stream")
        return sorted(text(k) for k in keys)

    def last_id(self, stream: str) -> str:
        """The newest entry's ID, `0-0` for an empty or missing stream."""
        last: Any = self._client.xrevrange(stream, count=1)
        return text(last[0][0]) if last else "0-0"

    def settled(self, stream: str, group: str) -> bool:
        """Every entry of `stream` delivered to `group` and acknowledged (tests, health)."""
        groups: Any = self._client.xinfo_groups(stream)
        info = next((g for g in groups if text(g["name"]) == group), None)
        if info is None:
            return False
        return int(info["pending"]) == 0 and text(info["last-delivered-id"]) == self.last_id(stream)

    def ensure_group(self, streams: Sequence[str], group: str, start: str = "0") -> None:
        """Create `group` on each stream unless it is there, at `start` (`0` or `$`)."""
        pipe = self._client.pipeline(transaction=False)
        for stream in streams:
            pipe.xgroup_create(stream, group, id=start, mkstream=True)
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise reply

    def read_group(
        self, group: str, consumer: str, positions: Mapping[str, str], *,
        block_ms: int | None = None, count: int | None = None,
    ) -> list[Entry]:  # fmt: skip
        """XREADGROUP: `>` for new entries, `0` for this consumer's unacknowledged ones."""
        reply: Any = self._client.xreadgroup(
            group, consumer, dict(positions), count=count, block=block_ms
        )
        return [
            Entry(text(stream), text(entry_id), _fields(fields))
            for stream, entries in reply or []
            for entry_id, fields in entries or []
            if fields is not None  # a pending entry trimmed away comes back without fields
        ]


DEAD_LETTER_MAXLEN = 100_000


def _encoded(fields: Mapping[str, str]) -> dict[str, bytes]:
    """Fields as UTF-8 bytes, with anything unencodable (a lone surrogate) escaped."""
    return {k: str(v).encode("utf-8", "backslashreplace") for k, v in fields.items()}


def probe(url: str, timeout: float = 0.5) -> str | None:
    """None when a Redis server answers PING at `url`; else why not, in a few words.

    A wrong password or a TLS certificate the client refuses is said as such: "nothing
    answers" would send an operator looking for a server that is there.
    """
    try:
        store = RedisStore.connect(url, timeout=timeout, connect_timeout=timeout)
    except ValueError as err:
        return f"not a Redis URL ({err})"
    try:
        store._client.ping()
    except (RedisError, OSError) as err:
        return _why(err)
    finally:
        store.close()
    return None


def _why(err: Exception) -> str:
    text = str(err)
    if isinstance(err, redis.AuthenticationError) or any(
        code in text for code in ("WRONGPASS", "NOAUTH", "NOPERM")
    ):
        return f"the server refused the user name or password ({text})"
    if isinstance(err, redis.ConnectionError) and ("certificate" in text.lower() or "SSL" in text):
        return f"TLS failed ({text})"
    if isinstance(err, redis.ConnectionError):
        return f"no Redis server answers ({text})"
    return f"{type(err).__name__}: {text}"


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at `url`."""
    return probe(url, timeout) is None
