"""One batch's commit: what it writes to Redis, and the one script that writes it all or nothing.

A commit is sent as ONE `EVALSHA` of `COMMIT_LUA`. Redis runs a script without letting any
other command in, and a server that has forgotten the script (a restart, a failover, `SCRIPT
FLUSH`) refuses the whole call with NOSCRIPT before any of it runs: the client loads the
script and sends the same call again. (The earlier MULTI of one EVALSHA per stream plus the
journal and the acks was not all-or-nothing: inside MULTI a NOSCRIPT fails only its own
command, and Redis ran the journal entry and the acks without the signals.)

The rules the script keeps, so that sending a commit twice, or after half of it, is harmless:
- every check comes before the first write: the user's permission for each command on each
  key (Redis ≥ 7: `redis.acl_check_cmd`; on 6.2 the engine checks at start), the types of
  the bookkeeping keys, and which batches the journal already holds;
- signals first: they are idempotent by stream ID, so a repeat leaves one entry; then, for the
  entries that were new, one HSET per latest hash (each field's newest value) and one PUBLISH
  per channel announcing them (`announce.py`, contract v4; schema 3 ran both for each entry);
  a stream's entries travel as ONE MessagePack argument (`cmsgpack`, built into Redis's Lua):
  strings with a length in front, which the script reads without the escaping JSON needs, and
  one argument instead of four per entry for the client to frame;
- then each batch's *settlement* (journal entry, dead letters, acks), skipped whole when the
  journal already holds the batch's entry: its ID is the batch's sequence number in the run,
  so a commit whose reply was lost and that is sent again settles nothing twice;
- last the run's counters (`{prefix}:counts:{date}:{run}`): what this commit really added,
  repeated and dead-lettered, so that counts read after a restart are what Redis holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import orjson

from simsignal.engine.core.announce import ANNOUNCE_CHUNK, ANNOUNCE_VERSION
from simsignal.engine.core.signals import Entry

DEAD_LETTER_MAXLEN = 100_000
ACK_CHUNK = 1000  # ids per XACK inside the script (Lua's unpack has a limit of ~8000)

Ack = tuple[str, str, list[str]]  # bar stream, consumer group, entry ids
Dead = tuple[str, dict[str, str]]  # dead-letter stream, fields
Journal = tuple[str, str, dict[str, str], int]  # key, entry ID, fields, time to live (s)


@dataclass(slots=True)
class Call:
    """One stream's entries, in order, with where they are kept and announced."""

    stream: str
    latest: str  # the latest hash
    channel: str
    min_id: int  # retention: the stream is trimmed below this ID (epoch ms)
    entries: list[Entry]

    def to_json(self) -> list[Any]:
        """A JSON-ready form (in the spill file's lines)."""
        return [self.stream, self.latest, self.channel, self.min_id, self.entries]

    @classmethod
    def from_json(cls, raw: list[Any]) -> Call:
        """Back from `to_json`, or from a spill line of schema 4's first layout.

        That layout was `[stream, latest, [min id, channel, then per entry: id, field,
        payload, the fields as one JSON array]]`.
        """
        if len(raw) == 5:
            stream, latest, channel, min_id, entries = raw
            return cls(str(stream), str(latest), str(channel), int(min_id),
                       [[str(x) for x in e] for e in entries])  # fmt: skip
        stream, latest, args = raw
        flat = [str(a) for a in args[2:]]
        entries = [[*flat[i : i + 3], *map(str, orjson.loads(flat[i + 3]))]
                   for i in range(0, len(flat), 4)]  # fmt: skip
        return cls(str(stream), str(latest), str(args[1]), int(args[0]), entries)


@dataclass(frozen=True, slots=True)
class Settlement:
    """One batch's bookkeeping, applied at most once (marked by its journal entry's ID)."""

    journal: Journal | None = None
    acks: list[Ack] = field(default_factory=list)
    dead: list[Dead] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.journal or self.acks or self.dead)


@dataclass(frozen=True, slots=True)
class Commit:
    """Signals and derived entries (`calls`, one per stream), and the batches' settlements.

    `counted`: the streams whose new entries count as signals (their kind says so; the rest
    are derived entries); `counts` is the run's counters hash, or "" for none.
    """

    calls: list[Call]
    settlements: list[Settlement] = field(default_factory=list)
    counted: tuple[str, ...] = ()
    counts: str = ""
    counts_ttl: int = 0

    def __bool__(self) -> bool:
        return bool(self.calls or any(self.settlements))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (the spill file's lines)."""
        return {
            "calls": [c.to_json() for c in self.calls],
            "settlements": [[s.journal, s.acks, s.dead] for s in self.settlements],
            "counted": list(self.counted), "counts": self.counts, "counts_ttl": self.counts_ttl,
        }  # fmt: skip

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Commit:
        """Back from `to_json`; a spill line of the earlier layout settles its batch unmarked."""
        calls = [Call.from_json(c) for c in obj["calls"]]
        acks = [(str(s), str(g), [str(i) for i in ids]) for s, g, ids in obj.get("acks", [])]
        dead = [(str(k), dict(f)) for k, f in obj.get("dead", [])]
        settlements = [Settlement(None, acks, dead)] if acks or dead else []
        for journal, acks_, dead_ in obj.get("settlements", []):
            settlements.append(Settlement(
                None if journal is None else _journal(journal),
                [(str(s), str(g), [str(i) for i in ids]) for s, g, ids in acks_],
                [(str(k), dict(f)) for k, f in dead_],
            ))  # fmt: skip
        counted = obj.get("counted", ())
        if isinstance(counted, str):  # a key prefix, as the first spill lines of this layout had
            counted = [c.stream for c in calls if counted and c.stream.startswith(counted)]
        return cls(calls, settlements, tuple(str(c) for c in counted),
                   str(obj.get("counts", "")), int(obj.get("counts_ttl", 0)))  # fmt: skip


def _journal(raw: list[Any]) -> Journal:
    key, entry_id, fields, ttl = raw
    return str(key), str(entry_id), dict(fields), int(ttl)


def merged(commits: list[Commit]) -> Commit:
    """Several commits as one: each stream's signals concatenated in order, settlements kept."""
    if len(commits) == 1:
        return commits[0]
    calls: dict[str, Call] = {}
    for c in commits:
        for call in c.calls:
            known = calls.get(call.stream)
            if known is None:
                calls[call.stream] = Call(call.stream, call.latest, call.channel, call.min_id,
                                          list(call.entries))  # fmt: skip
            else:
                known.min_id = min(known.min_id, call.min_id)
                known.entries.extend(call.entries)
    counted = tuple(dict.fromkeys(s for c in commits for s in c.counted))
    return Commit(list(calls.values()), [s for c in commits for s in c.settlements], counted,
                  commits[-1].counts, max(c.counts_ttl for c in commits))  # fmt: skip


def script_arguments(commit: Commit) -> tuple[list[str], list[str | bytes | int]]:
    """KEYS and ARGV of `COMMIT_LUA` for a commit (the layout is in ARGV[1], the header)."""
    keys: list[str] = []
    argv: list[str | bytes | int] = [""]
    calls, settles, counted = [], [], set(commit.counted)
    for call in commit.calls:
        keys += [call.stream, call.latest]
        argv += [call.min_id, call.channel, msgpack.packb(call.entries)]
        calls.append(int(call.stream in counted))
    for s in commit.settlements:
        if s.journal is not None:
            key, entry_id, fields, _ = s.journal
            keys.append(key)
            argv += [entry_id, _pairs(fields)]
        for stream, fields in s.dead:
            keys.append(stream)
            argv.append(_pairs(fields))
        for stream, _, ids in s.acks:
            keys.append(stream)
            argv += ids
        settles.append([
            0 if s.journal is None else s.journal[3],
            int(s.journal is not None),
            [[group, len(ids)] for _, group, ids in s.acks],
            len(s.dead),
        ])  # fmt: skip
    if commit.counts:
        keys.append(commit.counts)
    header = {"c": calls, "s": settles, "n": int(bool(commit.counts)),
              "t": commit.counts_ttl, "m": DEAD_LETTER_MAXLEN, "a": ACK_CHUNK,
              "b": ANNOUNCE_CHUNK, "v": ANNOUNCE_VERSION}  # fmt: skip
    argv[0] = orjson.dumps(header).decode()
    return keys, argv


def _pairs(fields: dict[str, str]) -> str:
    """Fields as one JSON array [name, value, …]; text that cannot be UTF-8 is escaped."""
    flat: list[str] = []
    for k, v in fields.items():
        flat += [_utf8(k), _utf8(v)]
    return orjson.dumps(flat).decode()


def _utf8(value: object) -> str:
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the script did: new entries per stream, refused back-fills, batches settled."""

    added: dict[str, int]
    refused: list[str]  # `stream:id`
    settled: int
    skipped: int  # settlements the journal already held (a commit sent again)


def outcome(commit: Commit, reply: Any, text: Any) -> Outcome:
    """The script's reply `{added per call, refused "i id", settled, skipped}` as an Outcome."""
    added_per_call, refused_raw, settled, skipped = reply
    added: dict[str, int] = {}
    for call, n in zip(commit.calls, added_per_call, strict=True):
        added[call.stream] = added.get(call.stream, 0) + int(n)
    refused = []
    for item in refused_raw:
        index, entry_id = text(item).split(" ", 1)
        refused.append(f"{commit.calls[int(index) - 1].stream}:{entry_id}")
    return Outcome(added, refused, int(settled), int(skipped))


# The script. KEYS and ARGV follow `script_arguments`: per call its stream and latest hash,
# then per settlement its journal key, dead-letter streams and ack streams, then the counts
# hash. ARGV[1] is the header (h.c: per call, 1 when its entries count as signals); per call:
# min id, channel, and its entries as one MessagePack array of `Entry` rows; per settlement:
# journal id and fields, one JSON array per dead letter, the ack ids. A settlement writes its
# journal entry first: were a later write refused (only possible on 6.2, whose scripts cannot
# check permissions first), the bars stay unacknowledged and a restart hands them over again,
# where they are skipped as handled and acknowledged.
COMMIT_LUA = r"""
local h = cjson.decode(ARGV[1])
local check = redis.acl_check_cmd  -- Redis >= 7.0; 6.2 is checked once at start
local function allowed(...)
  if check and not check(...) then
    return redis.error_reply('NOPERM this user may not run ' .. table.concat({...}, ' ', 1, 2)
      .. ': nothing of the batch was written')
  end
end
local function kind(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE ' .. key .. ' is a ' .. t .. ', not a ' .. want
      .. ': nothing of the batch was written')
  end
end

-- 1. read only: permissions, key types, settlements already in the journal
local k, a = 1, 2
for _, c in ipairs(h.c) do
  local err = allowed('XADD', KEYS[k], 'MINID', '0', '1-1', 'f', 'v')
    or allowed('HSET', KEYS[k + 1], 'f', 'v') or allowed('PUBLISH', ARGV[a + 1], 'm')
    or allowed('XRANGE', KEYS[k], '-', '+')
  if err then return err end
  k, a = k + 2, a + 3
end
local done, counted = {}, h.n == 1
for i, s in ipairs(h.s) do
  if s[2] == 1 then
    local err = allowed('XADD', KEYS[k], '1-1', 'f', 'v') or allowed('EXPIRE', KEYS[k], '1')
      or allowed('XRANGE', KEYS[k], '-', '+') or kind(KEYS[k], 'stream')
    if err then return err end
    done[i] = #redis.call('XRANGE', KEYS[k], ARGV[a], ARGV[a]) > 0
    k, a = k + 1, a + 2
  end
  for _ = 1, s[4] do
    local err = allowed('XADD', KEYS[k], 'MAXLEN', '~', '1', '*', 'f', 'v')
      or kind(KEYS[k], 'stream')
    if err then return err end
    k, a = k + 1, a + 1
  end
  for _, ack in ipairs(s[3]) do
    local err = allowed('XACK', KEYS[k], ack[1], '0-1')
    if err then return err end
    k, a = k + 1, a + ack[2]
  end
end
if counted then
  local err = allowed('HINCRBY', KEYS[k], 'f', '1') or allowed('EXPIRE', KEYS[k], '1')
    or kind(KEYS[k], 'hash')
  if err then return err end
end

-- 2. signals and derived entries: idempotent by stream ID
local added, refused, published, derived, repeats = {}, {}, 0, 0, 0
local latest, hashes, new, channels = {}, {}, {}, {}  -- what the new entries announce
k, a = 1, 2
for ci, counts_as_signal in ipairs(h.c) do
  local n = 0
  for _, e in ipairs(cmsgpack.unpack(ARGV[a + 2])) do  -- e: id, field, payload, fields…
    local ok = redis.pcall('XADD', KEYS[k], 'MINID', ARGV[a], e[1], unpack(e, 4))
    if type(ok) == 'table' and ok.err then
      if not string.find(ok.err, 'equal or smaller', 1, true) then
        return redis.error_reply(ok.err)
      end
      if #redis.call('XRANGE', KEYS[k], e[1], e[1]) == 0 then
        refused[#refused + 1] = ci .. ' ' .. e[1]
      elseif counts_as_signal == 1 then
        repeats = repeats + 1
      end
    else
      local l = latest[KEYS[k + 1]]
      if not l then
        l = {fields = {}, values = {}}
        latest[KEYS[k + 1]] = l
        hashes[#hashes + 1] = KEYS[k + 1]
      end
      if not l.values[e[2]] then l.fields[#l.fields + 1] = e[2] end
      l.values[e[2]] = e[3]
      local news = new[ARGV[a + 1]]
      if not news then
        news = {}
        new[ARGV[a + 1]] = news
        channels[#channels + 1] = ARGV[a + 1]
      end
      news[#news + 1] = e[3]
      n = n + 1
    end
  end
  added[ci] = n
  if counts_as_signal == 1 then published = published + n else derived = derived + n end
  k, a = k + 2, a + 3
end
-- each latest hash once (a field's newest value), each channel once per chunk of entries
for _, key in ipairs(hashes) do
  local l, args = latest[key], {}
  for _, f in ipairs(l.fields) do
    args[#args + 1] = f
    args[#args + 1] = l.values[f]
  end
  for j = 1, #args, 2 * h.a do
    redis.call('HSET', key, unpack(args, j, math.min(j + 2 * h.a, #args + 1) - 1))
  end
end
for _, ch in ipairs(channels) do
  local news = new[ch]
  for j = 1, #news, h.b do
    redis.call('PUBLISH', ch, '{"v":' .. h.v .. ',"entries":['
      .. table.concat(news, ',', j, math.min(j + h.b - 1, #news)) .. ']}')
  end
end

-- 3. settlements not yet in the journal: journal entry, dead letters, acks
local settled, skipped, dead = 0, 0, 0
for i, s in ipairs(h.s) do
  local apply = not done[i]
  if s[2] == 1 then
    if apply then
      redis.call('XADD', KEYS[k], ARGV[a], unpack(cjson.decode(ARGV[a + 1])))
      redis.call('EXPIRE', KEYS[k], s[1])
    end
    k, a = k + 1, a + 2
  end
  for _ = 1, s[4] do
    if apply then
      redis.call('XADD', KEYS[k], 'MAXLEN', '~', h.m, '*', unpack(cjson.decode(ARGV[a])))
      dead = dead + 1
    end
    k, a = k + 1, a + 1
  end
  for _, ack in ipairs(s[3]) do
    if apply then
      for j = a, a + ack[2] - 1, h.a do
        redis.call('XACK', KEYS[k], ack[1], unpack(ARGV, j, math.min(j + h.a, a + ack[2]) - 1))
      end
    end
    k, a = k + 1, a + ack[2]
  end
  if apply then settled = settled + 1 else skipped = skipped + 1 end
end

-- 4. the run's counters: what this commit really did
if counted then
  for name, v in pairs({published = published, derived = derived, repeats = repeats,
                        dead = dead, batches = settled}) do
    if v > 0 then redis.call('HINCRBY', KEYS[k], name, v) end
  end
  if h.t > 0 then redis.call('EXPIRE', KEYS[k], h.t) end
end
return {added, refused, settled, skipped}
"""
