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

from simsignal.engine.core.commit import COMMIT_LUA, Commit, Outcome, outcome, script_arguments

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

    def field(self, key: str, name: str) -> str | None:
        """HGET as text (None: no such field)."""
        value: Any = self._client.hget(key, name)
        return None if value is None else text(value)

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
        """Load the commit script now, so the first minute pays no NOSCRIPT round trip."""
        self._sha = text(self._client.script_load(COMMIT_LUA))

    def commit(self, commit: Commit) -> Outcome:
        """Run one commit as one script call: all of it is written, or none (`commit.py`).

        A server that lost the script (a restart, a failover, SCRIPT FLUSH) refuses the
        call whole with NOSCRIPT; it is loaded again and the same call sent. Sending a
        commit twice is harmless: signals are idempotent by ID, settlements by journal ID.
        """
        keys, argv = script_arguments(commit)
        if self._sha is None:
            self.load_publish_script()
        try:
            reply: Any = self._client.evalsha(self._sha, len(keys), *keys, *argv)
        except NoScriptError:
            self.load_publish_script()
            reply = self._client.evalsha(self._sha, len(keys), *keys, *argv)
        return outcome(commit, reply, text)

    def command_calls(self, since: Mapping[str, int] | None = None) -> dict[str, int]:
        """Calls per command (`INFO commandstats`): since the server started, or `since`.

        With `since`, an earlier reading: the commands that ran in between, those with any.
        The script's own calls are counted too. An INFO is counted once it has run: the
        first reading is among the calls since it, the second is not.
        """
        stats: Any = self._client.info("commandstats")
        now = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        if since is None:
            return now
        return {k: n - since.get(k, 0) for k, n in sorted(now.items()) if n > since.get(k, 0)}

    def counts(self, key: str) -> dict[str, int]:
        """A run's counters hash (`commit.py`) as integers; {} when there is none."""
        return {k: int(v) for k, v in self.hash(key).items()}

    def missing_permissions(self, commands: Sequence[Sequence[str]]) -> list[str]:
        """The commands (with their keys) this user may not run, found without running any.

        Each is queued inside MULTI and the transaction DISCARDed: Redis checks a queued
        command's ACL at once (NOPERM) and runs nothing, on 6.2 and 7.x alike.
        """
        conn: Any = self._client.connection_pool.get_connection()
        refused: list[str] = []
        try:
            conn.send_command("MULTI")
            conn.read_response()
            for command in commands:
                conn.send_command(*command)
                try:
                    conn.read_response()
                except redis.ResponseError as err:
                    if "NOPERM" in str(err) or "no permissions" in str(err):
                        refused.append(" ".join(command[:2]))
            conn.send_command("DISCARD")
            conn.read_response()
        except BaseException:
            conn.disconnect()  # a half-read reply must not go back to the pool
            raise
        finally:
            self._client.connection_pool.release(conn)
        return refused

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

    def pending_count(self, stream: str, group: str) -> int:
        """Entries delivered to `group` and not acknowledged yet (XPENDING's summary)."""
        reply: Any = self._client.xpending(stream, group)
        return int(reply["pending"])

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
