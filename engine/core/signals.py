"""The signal message and its Redis forms (schema version `v`).

Schema 2 keeps an entry slim: the neighbour list is written once, in the stream entry. The
pub/sub payload and the latest hash carry the other fields as one JSON object, plus `id`, the
stream entry that holds the neighbours. Schema 3 adds `up_prob_raw` (the neighbours' share
of risers) beside `up_prob` (that share calibrated, when the engine has a calibration).
Schema 4 keeps the fields and changes how a commit announces them: once per batch and channel
(`announce.py`), and one write per latest hash.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from simsignal.engine.core.keys import Keys
from simsignal.engine.core.kinds import Kind, of_signal

SCHEMA_VERSION = 4

# A published entry as the commit script takes it (`commit.py`):
# [stream ID, latest-hash field, payload JSON, name, value, name, value, …]
Entry = list[str]


@dataclass(frozen=True, slots=True)
class Signal:
    """What the coordinator publishes for (ticker, date, minute, algo)."""

    ticker: str
    date: str
    minute: int  # how many of today's bars the signal used, 1..slots
    slot: str  # HH:MM of the newest bar
    algo: str
    algo_index: int  # position in the registry; part of the stream ID
    bar_epoch_ms: int  # the newest bar's time; part of the stream ID
    k: int
    pred_close: float
    pred_close_mean: float
    pred_move: float
    up_prob: float
    up_prob_raw: float
    q10: float
    q50: float
    q90: float
    dispersion: float
    neighbors: tuple[tuple[str | float, ...], ...]  # (ticker, date[, slot], score), best first
    latency_ms: float = 0.0
    v: int = SCHEMA_VERSION

    @property
    def kind(self) -> Kind:
        """A ticker's signal, or a pair's spread forecast (`kinds.py`)."""
        return of_signal(self.ticker)

    def stream(self, keys: Keys) -> str:
        """The stream of its kind and ticker (or pair)."""
        return self.kind.stream(keys, self.ticker)

    def latest(self, keys: Keys) -> str:
        """The latest hash of its kind and ticker (field: the algorithm)."""
        return self.kind.latest(keys, self.ticker)

    def channel(self, keys: Keys) -> str:
        """Its kind's announcement channel."""
        return self.kind.channel(keys, self.ticker)

    @property
    def hash_field(self) -> str:
        """The latest hash's field."""
        return self.algo

    @property
    def stream_id(self) -> str:
        """Deterministic ID: Redis refuses to add it twice, which makes publishing idempotent."""
        return f"{self.bar_epoch_ms}-{self.algo_index}"

    def _plain(self) -> dict[str, Any]:
        """Field → value except the neighbours, shallow (dataclasses.asdict deep-copies: slow)."""
        return {key: getattr(self, key) for key in self.__slots__ if key != "neighbors"}

    def to_fields(self) -> dict[str, str]:
        """Flat string fields for the stream entry (the only place with the neighbours)."""
        flat = self.field_list()
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def field_list(self) -> list[str]:
        """`to_fields` as [name, value, name, value, …], the form the publish script takes."""
        out: list[str] = []
        for key in _SCALARS:
            v = getattr(self, key)
            out += (key, repr(v) if isinstance(v, float) else str(v))
        out += ("neighbors", orjson.dumps(self.neighbors).decode())
        return out

    def to_json(self) -> str:
        """The pub/sub and latest-hash payload: native types, no neighbours, the entry's `id`."""
        return orjson.dumps({**self._plain(), "id": self.stream_id}).decode()

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Signal:
        """Parse the stream / hash form back (what consumers do)."""
        ints = {"minute", "algo_index", "bar_epoch_ms", "k", "v"}
        strs = {"ticker", "date", "slot", "algo"}
        kwargs: dict[str, Any] = {}
        for key in cls.__slots__:
            if key == "up_prob_raw" and key not in fields:  # schema 2: never calibrated
                kwargs[key] = float(fields["up_prob"])
                continue
            raw = fields[key]
            if key == "neighbors":
                kwargs[key] = tuple(tuple(n) for n in orjson.loads(raw))
            elif key in ints:
                kwargs[key] = int(raw)
            elif key in strs:
                kwargs[key] = raw
            else:
                kwargs[key] = float(raw)
        return cls(**kwargs)


_SCALARS = tuple(k for k in Signal.__slots__ if k != "neighbors")
_TEXT = frozenset({"ticker", "date", "slot", "algo"})  # the rest are numbers, written by repr
_SCALARS_OF = operator.attrgetter(*_SCALARS)
_PAYLOAD_KEYS = (*_SCALARS, "id")
_EPOCH, _ALGO_INDEX = _SCALARS.index("bar_epoch_ms"), _SCALARS.index("algo_index")


def signal_entries(signals: Sequence[Signal]) -> list[Entry]:
    """Each signal's commit row (`commit.Entry`), formatted a column at a time.

    The same text as `[stream_id, hash_field, to_json(), *field_list()]` signal by signal,
    built for a market minute's thousands of signals with one getter call per signal and one
    `repr` pass per numeric column.
    """
    if not signals:
        return []
    rows = list(map(_SCALARS_OF, signals))
    columns = list(zip(*rows, strict=True))
    ids = list(map("{}-{}".format, columns[_EPOCH], columns[_ALGO_INDEX]))
    texts = zip(*(col if key in _TEXT else map(repr, col)
                  for key, col in zip(_SCALARS, columns, strict=True)), strict=True)  # fmt: skip
    dumps = orjson.dumps
    return [
        [sid, sig.algo, dumps(dict(zip(_PAYLOAD_KEYS, (*row, sid), strict=True))).decode(),
         *[x for pair in zip(_SCALARS, text, strict=True) for x in pair],
         "neighbors", dumps(sig.neighbors).decode()]
        for sig, row, text, sid in zip(signals, rows, texts, ids, strict=True)
    ]  # fmt: skip


def epoch_ms(ts: datetime, zone: object) -> int:
    """Epoch milliseconds of a naive exchange-local time in `zone` (a tzinfo)."""
    return int(ts.replace(tzinfo=zone).timestamp() * 1000)  # type: ignore[arg-type]
