"""A live bar: parsing from raw string fields, and the checks that guard the engine's state."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, tzinfo

from simsignal.engine.templates import SessionTemplate

BAR_FIELDS = ("ticker", "ts", "open", "high", "low", "close", "volume")


class BadBar(ValueError):
    """Input that the engine refuses; names the field and the offending value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={value!r}: {reason}")


@dataclass(frozen=True, slots=True)
class Bar:
    """One minute of one instrument; `ts` is naive exchange-local wall time."""

    ticker: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    amount: float | None = None
    prev_close: float | None = None

    def to_fields(self) -> dict[str, str]:
        """The flat string fields of the `simsignal:bars:{ticker}` stream."""
        fields = {
            "ticker": self.ticker,
            "ts": self.ts.strftime("%Y-%m-%dT%H:%M:%S"),
            "open": repr(self.open),
            "high": repr(self.high),
            "low": repr(self.low),
            "close": repr(self.close),
            "volume": repr(self.volume),
        }
        if self.amount is not None:
            fields["amount"] = repr(self.amount)
        if self.prev_close is not None:
            fields["prev_close"] = repr(self.prev_close)
        return fields


def _number(
    fields: dict[str, str], name: str, *, positive: bool, required: bool = True
) -> float | None:
    raw = fields.get(name)
    if raw is None or raw == "":
        if required:
            raise BadBar(name, raw, "missing field")
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadBar(name, raw, "not a number") from None
    if not math.isfinite(value):
        raise BadBar(name, raw, "not a finite number")
    if positive and value <= 0:
        raise BadBar(name, raw, "must be > 0")
    if value < 0:
        raise BadBar(name, raw, "must be >= 0")
    return value


def decode_fields(raw: dict[str, str]) -> dict[str, str]:
    """Accept flat fields, or one `json` field holding an object (some producers send that)."""
    if set(raw) == {"json"}:
        try:
            obj = json.loads(raw["json"])
        except (TypeError, ValueError):
            raise BadBar("json", raw["json"][:200], "not valid JSON") from None
        if not isinstance(obj, dict):
            raise BadBar("json", raw["json"][:200], "JSON is not an object")
        return {str(k): "" if v is None else str(v) for k, v in obj.items()}
    return raw


def local_time(ts_raw: str, zone: tzinfo | None) -> datetime:
    """A bar time as naive exchange-local wall time.

    Naive times are exchange-local already; times with a UTC offset (`-04:00`, `Z`) are
    converted to `zone`, the template's exchange zone.
    """
    try:
        ts = datetime.fromisoformat(ts_raw)
    except ValueError:
        raise BadBar("ts", ts_raw, "not an ISO 8601 time (YYYY-MM-DDTHH:MM:SS[±HH:MM|Z])") from None
    if ts.tzinfo is None:
        return ts
    if zone is None:
        raise BadBar("ts", ts_raw, "has a UTC offset but no exchange time zone is known")
    return ts.astimezone(zone).replace(tzinfo=None)


def parse_bar(raw: dict[str, str], zone: tzinfo | None = None) -> Bar:
    """Parse raw string fields into a Bar, or raise BadBar naming the first bad field."""
    fields = decode_fields(raw)
    ticker = (fields.get("ticker") or "").strip()
    if not ticker:
        raise BadBar("ticker", fields.get("ticker"), "missing field")
    ts_raw = fields.get("ts")
    if not ts_raw:
        raise BadBar("ts", ts_raw, "missing field")
    ts = local_time(ts_raw, zone)
    values = {n: _number(fields, n, positive=n != "volume") for n in BAR_FIELDS[2:]}
    bar = Bar(
        ticker=ticker,
        ts=ts,
        open=values["open"] or 0.0,
        high=values["high"] or 0.0,
        low=values["low"] or 0.0,
        close=values["close"] or 0.0,
        volume=values["volume"] or 0.0,
        amount=_number(fields, "amount", positive=False, required=False),
        prev_close=_number(fields, "prev_close", positive=True, required=False),
    )
    if bar.high < bar.low:
        raise BadBar("high", fields.get("high"), f"below low {fields.get('low')}")
    return bar


class BarGate:
    """Admits each ticker's bars in strictly increasing session slots of one date.

    Why: the incremental scores assume minute m+1 follows minute m; a duplicate or late bar
    would corrupt every running sum, so it is refused here, before any state changes.
    """

    def __init__(self, template: SessionTemplate, date: str, tickers: set[str] | None) -> None:
        self.template = template
        self.date = date
        self.tickers = tickers
        self.last_slot: dict[str, int] = {}

    def admit(self, bar: Bar) -> int:
        """Return the bar's slot, or raise BadBar; records the slot as taken."""
        if self.tickers is not None and bar.ticker not in self.tickers:
            raise BadBar(
                "ticker", bar.ticker, f"not a ticker of this session ({_few(self.tickers)})"
            )
        if bar.ts.date().isoformat() != self.date:
            raise BadBar("ts", bar.ts.isoformat(), f"not on the session date {self.date}")
        slot = self.template.slot_of(bar.ts)
        if slot is None:
            raise BadBar("ts", bar.ts.isoformat(), f"outside the {self.template.name} session")
        last = self.last_slot.get(bar.ticker, -1)
        if slot == last:
            raise BadBar("ts", bar.ts.isoformat(), "duplicate minute")
        if slot < last:
            raise BadBar(
                "ts", bar.ts.isoformat(), f"out of order (already at {self.template.label(last)})"
            )
        self.last_slot[bar.ticker] = slot
        return slot


def _few(names: set[str]) -> str:
    shown = sorted(names)[:5]
    return ", ".join(shown) + (" …" if len(names) > 5 else "")
