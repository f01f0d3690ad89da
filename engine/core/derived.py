"""Signals derived from the per-ticker forecasts: ticker timing and portfolio rebalance.

Both read one algorithm's forecast (the ensemble when it runs, else the first algorithm) and
go out in the same transaction as the signals they come from, on their own versioned streams.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as fields_of
from typing import Any

import numpy as np
import orjson
from numpy.typing import ArrayLike, NDArray

from simsignal.engine.core.forecast import Forecast
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.kinds import KINDS, REBALANCE, TIMING, Payload
from simsignal.engine.core.pairs import is_pair
from simsignal.engine.core.signals import Entry

DERIVED_VERSION = 1


@dataclass(frozen=True)
class TimingRule:
    """Long, flat or short from a forecast; thresholds are settings (`[signals]`).

    edge = pred_move / dispersion (the expected move in units of the neighbours' spread).
    Long when up_prob ≥ ½ + prob_margin and edge ≥ min_edge; short when up_prob ≤ ½ −
    prob_margin and edge ≤ −min_edge; flat otherwise. With a calibrated up_prob that found no
    skill (the base rate, near ½), the rule stays flat: no position without evidence.
    """

    prob_margin: float = 0.05
    min_edge: float = 0.25

    def positions(self, up_prob: ArrayLike, edge: ArrayLike) -> NDArray[np.int64]:
        """−1, 0 or +1 for each (up_prob, edge): the one implementation, live and in evaluate."""
        up, e = np.asarray(up_prob, np.float64), np.asarray(edge, np.float64)
        long = (up >= 0.5 + self.prob_margin) & (e >= self.min_edge)
        short = (up <= 0.5 - self.prob_margin) & (e <= -self.min_edge)
        return np.where(long, 1, np.where(short, -1, 0)).astype(np.int64)

    def position(self, f: Forecast) -> int:
        """One forecast's position."""
        return int(self.positions([f.up_prob], edges([f.pred_move], [f.dispersion]))[0])


def edges(pred_move: ArrayLike, dispersion: ArrayLike) -> NDArray[np.float64]:
    """pred_move in units of dispersion.

    ±inf when the neighbours all agree on a move (no dispersion), 0 when they agree on none.
    """
    pred, disp = np.asarray(pred_move, np.float64), np.asarray(dispersion, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        unbounded = np.where(pred == 0, 0.0, np.sign(pred) * np.inf)
        return np.where(disp > 0, pred / np.where(disp > 0, disp, 1.0), unbounded)


@dataclass(frozen=True)
class RebalanceRule:
    """Target weights ∝ edge of the tickers timed long, each ≤ cap, the rest cash.

    A minute moves the portfolio at most `max_turnover` (Σ|Δw|) toward the target.
    """

    cap: float = 0.1
    max_turnover: float = 0.2

    def target(self, edges: Mapping[str, float]) -> dict[str, float]:
        """Weights of the long candidates, proportional to edge, capped; Σ ≤ 1."""
        score = {t: e for t, e in edges.items() if e > 0 and math.isfinite(e)}
        total = sum(score.values())
        if total <= 0:
            return {}
        return {t: min(self.cap, e / total) for t, e in sorted(score.items())}

    def step(self, held: Mapping[str, float], target: Mapping[str, float]) -> dict[str, float]:
        """Held weights moved toward the target by at most max_turnover."""
        names = sorted(set(held) | set(target))
        delta = {t: target.get(t, 0.0) - held.get(t, 0.0) for t in names}
        turnover = sum(abs(d) for d in delta.values())
        scale = 1.0 if turnover <= self.max_turnover else self.max_turnover / turnover
        moved = {t: held.get(t, 0.0) + scale * delta[t] for t in names}
        return {t: w for t, w in moved.items() if abs(w) > 1e-12}


@dataclass(frozen=True)
class Derived:
    """One derived entry, published like a signal: idempotent by its stream ID."""

    kind: str  # a derived kind of `kinds.KINDS`: timing | rebalance
    ticker: str  # "" for the portfolio-wide rebalance
    date: str
    minute: int
    slot: str
    algo: str
    bar_epoch_ms: int
    values: dict[str, Any] = field(default_factory=dict)
    v: int = DERIVED_VERSION

    @property
    def stream_id(self) -> str:
        """`<epoch ms of the minute>-0`: one entry per minute and stream."""
        return f"{self.bar_epoch_ms}-0"

    def stream(self, keys: Keys) -> str:
        """The stream of its kind and subject (`kinds.py`)."""
        return KINDS[self.kind].stream(keys, self.ticker)

    def latest(self, keys: Keys) -> str:
        """The hash holding its kind's newest entries (field: `hash_field`)."""
        return KINDS[self.kind].latest(keys, self.ticker)

    def channel(self, keys: Keys) -> str:
        """Its kind's announcement channel."""
        return KINDS[self.kind].channel(keys, self.ticker)

    @property
    def hash_field(self) -> str:
        """The latest hash's field: the subject's name (the ticker, or "portfolio")."""
        return KINDS[self.kind].latest_field(self.ticker)

    def _plain(self) -> dict[str, Any]:
        return {"v": self.v, "kind": self.kind, "ticker": self.ticker, "date": self.date,
                "minute": self.minute, "slot": self.slot, "algo": self.algo,
                "bar_epoch_ms": self.bar_epoch_ms, **self.values}  # fmt: skip

    def field_list(self) -> list[str]:
        """[name, value, …] for the stream entry (dicts as JSON)."""
        out: list[str] = []
        for key, value in self._plain().items():
            if isinstance(value, dict):
                text = orjson.dumps(value).decode()
            elif isinstance(value, float):
                text = repr(value)
            else:
                text = str(value)
            out += (key, text)
        return out

    def to_json(self) -> str:
        """The pub/sub and latest-hash payload, with the entry's `id`."""
        return orjson.dumps({**self._plain(), "id": self.stream_id}).decode()

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Derived:
        """Parse the stream form back (the inverse of `field_list`, what consumers do)."""
        kind = fields["kind"]
        if kind not in KINDS or KINDS[kind].payload is not Payload.DERIVED:
            raise ValueError(f"kind = {kind!r}: not a derived kind")
        values = {key: _value(text) for key, text in fields.items() if key not in _BASE}
        return cls(kind, fields["ticker"], fields["date"], int(fields["minute"]),
                   fields["slot"], fields["algo"], int(fields["bar_epoch_ms"]), values,
                   int(fields["v"]))  # fmt: skip


_BASE = frozenset(f.name for f in fields_of(Derived)) - {"values"}  # the rest is the payload


def derived_entry(entry: Derived) -> Entry:
    """A derived entry's commit row (`commit.Entry`)."""
    return [entry.stream_id, entry.hash_field, entry.to_json(), *entry.field_list()]


def _value(text: str) -> Any:
    """A payload value from its stream text: JSON (numbers, dicts), else a float (`nan`)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return float(text)


@dataclass
class Deriver:
    """Turns each batch's forecasts into timing entries and one rebalance entry."""

    algo: str
    timing: TimingRule | None = TimingRule()
    rebalance: RebalanceRule | None = RebalanceRule()
    held: dict[str, float] = field(default_factory=dict)  # the rebalance's current weights
    edges: dict[str, float] = field(default_factory=dict)  # each ticker's latest long edge
    done: int = 0  # the last minute a rebalance was published for

    def entries(self, minutes: Sequence[Any], date: str, stamp: Any, label: Any) -> list[Derived]:
        """Timing per (ticker, minute) with a forecast; one rebalance per new minute.

        The rebalance is at the batch's newest minute, if none was published for it yet (a
        late bar's edge counts from the next minute on). `minutes` are the pipeline's
        MinuteResults; `stamp(m)` and `label(m)` give a minute's epoch ms and HH:MM.
        """
        out: list[Derived] = []
        # pairs have their own streams
        mine = [(r, r.forecasts[self.algo]) for r in minutes
                if self.algo in r.forecasts and not is_pair(r.ticker)]  # fmt: skip
        last = max((r.minute for r, _ in mine), default=0)
        e = edges([f.pred_move for _, f in mine], [f.dispersion for _, f in mine])
        if self.timing is None:
            self.edges.update((r.ticker, float(x)) for (r, _), x in zip(mine, e, strict=True))
        else:  # the whole batch at once
            pos = self.timing.positions([f.up_prob for _, f in mine], e)
            for (r, f), x, p in zip(mine, e.tolist(), pos.tolist(), strict=True):
                values = {"position": p, "edge": _finite(x), "pred_move": f.pred_move,
                          "up_prob": f.up_prob, "dispersion": f.dispersion}  # fmt: skip
                out.append(Derived(TIMING.name, r.ticker, date, r.minute, label(r.minute),
                                   self.algo, stamp(r.minute), values))  # fmt: skip
                self.edges[r.ticker] = x if p > 0 else 0.0
        if self.rebalance is not None and last > self.done:  # a late bar waits for the next
            # tickers without a bar in this batch keep their last edge (a late bar is no exit)
            target = self.rebalance.target(self.edges)
            moved = self.rebalance.step(self.held, target)
            turnover = sum(abs(moved.get(t, 0.0) - self.held.get(t, 0.0))
                           for t in set(moved) | set(self.held))  # fmt: skip
            self.held, self.done = moved, last
            known = {t: _finite(e) for t, e in self.edges.items()}
            out.append(Derived(REBALANCE.name, "", date, last, label(last), self.algo, stamp(last),
                               {"weights": moved, "target": target, "turnover": turnover,
                                "cash": 1.0 - sum(moved.values()), "edges": known}))  # fmt: skip
        return out

    def restore(self, entry: Mapping[str, Any]) -> None:
        """Carry on from a published rebalance entry (its payload): weights held, edges known."""
        self.held = {str(t): float(w) for t, w in dict(entry.get("weights") or {}).items()}
        self.edges = {str(t): float(e) for t, e in dict(entry.get("edges") or {}).items()}
        self.done = int(entry.get("minute") or 0)


def _finite(x: float) -> float:
    """JSON has no infinity: an unbounded edge is published as ±1e9."""
    return x if math.isfinite(x) else math.copysign(1e9, x)
