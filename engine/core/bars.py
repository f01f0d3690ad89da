"""A live bar: parsing from raw string fields, and the checks that guard the engine's state."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

from simsignal.engine.core.templates import SessionTemplate

BAR_FIELDS = ("ticker", "ts", "open", "high", "low", "close", "volume")
MAX_FIELD_CHARS = 64  # a number, a time or a ticker never needs more
MAX_JSON_CHARS = 4096

# Plain ASCII decimals only: no "nan"/"inf", no "7_005", no Unicode digits (float() takes all).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
# The documented forms: YYYY-MM-DD(T| )HH:MM[:SS[.ffffff]][Z|±HH:MM]. Not ISO-week or compact.
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_TICKER = re.compile(r"[A-Za-z0-9._^=-]{1,32}")
TIME_FORMS = "YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM]"
MAX_PRICE = 1e9  # no instrument trades above this; larger is a unit or parsing error


class BadBar(ValueError):
    """Input that the engine refuses: the field, the offending value (shortened) and why.

    `code` is a fixed name for the kind of problem; counts are kept per `field:code`, so a
    flood of distinct bad values cannot grow the counters (the reason text may quote values).
    """

    def __init__(self, field: str, value: object, reason: str, code: str = "invalid") -> None:
        self.field = field
        self.value = _short(value)
        self.reason = reason
        self.code = code
        super().__init__(f"{field}={self.value}: {reason}")

    @property
    def key(self) -> str:
        """The counter key: `field:code`, bounded whatever the input."""
        return f"{self.field}:{self.code}"


def _short(value: object, most: int = 80) -> str:
    """The repr of a value, cut to `most` characters (reprs escape surrogates and control bytes)."""
    text = repr(value)
    return text if len(text) <= most else text[: most - 1] + "…"


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
            raise BadBar(name, raw, "missing field", "missing")
        return None
    if len(raw) > MAX_FIELD_CHARS or not _NUMBER.fullmatch(raw):
        raise BadBar(name, raw, "not a plain decimal number (ASCII digits, '.', 'e')", "not_number")
    value = float(raw)
    if not math.isfinite(value) or value > (MAX_PRICE if positive else 1e18):
        raise BadBar(name, raw, "implausibly large", "too_large")
    if positive and value <= 0:
        raise BadBar(name, raw, "must be > 0", "not_positive")
    if value < 0:
        raise BadBar(name, raw, "must be >= 0", "negative")
    return value


def decode_fields(raw: dict[str, str]) -> dict[str, str]:
    """Accept flat fields, or one `json` field holding a flat object (some producers send that)."""
    if set(raw) == {"json"}:
        text = raw["json"]
        if len(text) > MAX_JSON_CHARS:
            raise BadBar("json", text, f"longer than {MAX_JSON_CHARS} characters", "too_long")
        try:
            obj = json.loads(text)
        except (TypeError, ValueError, RecursionError):
            raise BadBar("json", text, "not valid JSON", "not_json") from None
        if not isinstance(obj, dict):
            raise BadBar("json", text, "JSON is not an object", "not_object")
        out = {}
        for k, v in obj.items():
            if isinstance(v, bool) or not isinstance(v, str | int | float | None):
                raise BadBar(str(k), v, "not a string or a number", "not_scalar")
            out[str(k)] = "" if v is None else str(v)
        return out
    return raw


def local_time(ts_raw: str, zone: tzinfo | None) -> datetime:
    """A bar time as naive exchange-local wall time.

    Naive times are exchange-local already; times with a UTC offset (`-04:00`, `Z`) are
    converted to `zone`, the template's exchange zone.
    """
    if len(ts_raw) > MAX_FIELD_CHARS or not _TIME.fullmatch(ts_raw):
        raise BadBar("ts", ts_raw, f"not a time of the form {TIME_FORMS}", "bad_time")
    try:
        ts = datetime.fromisoformat(ts_raw)
    except ValueError:
        raise BadBar("ts", ts_raw, f"not a time of the form {TIME_FORMS}", "bad_time") from None
    if ts.tzinfo is None:
        return ts
    if zone is None:
        raise BadBar("ts", ts_raw, "has a UTC offset but no exchange time zone is known", "no_zone")
    return ts.astimezone(zone).replace(tzinfo=None)


def parse_bar(raw: dict[str, str], zone: tzinfo | None = None) -> Bar:
    """Parse raw string fields into a Bar, or raise BadBar naming the first bad field."""
    fields = decode_fields(raw)
    ticker = fields.get("ticker") or ""
    if not ticker:
        raise BadBar("ticker", fields.get("ticker"), "missing field", "missing")
    if not _TICKER.fullmatch(ticker):
        raise BadBar("ticker", ticker, "not 1-32 of A-Z a-z 0-9 . _ ^ = -", "bad_ticker")
    ts_raw = fields.get("ts")
    if not ts_raw:
        raise BadBar("ts", ts_raw, "missing field", "missing")
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
        raise BadBar("high", fields.get("high"), f"below low {bar.low!r}", "below_low")
    for name in ("open", "close"):
        if not bar.low <= getattr(bar, name) <= bar.high:
            raise BadBar(
                name,
                fields.get(name),
                f"outside [low, high] = [{bar.low!r}, {bar.high!r}]",
                "outside_range",
            )
    return bar


def check_move(bar: Bar, prev_close: float, limit: float) -> None:
    """Refuse a bar whose prices moved more than `limit` (a fraction) from the previous close.

    Why: a fat-fingered or mis-scaled price would enter the day's running sums for good;
    no later bar can take it back out.
    """
    for name in ("low", "high"):  # open and close lie between them
        move = getattr(bar, name) / prev_close - 1.0
        if abs(move) > limit:
            raise BadBar(
                name,
                getattr(bar, name),
                f"{move:+.1%} from the previous close "
                f"{prev_close!r}, beyond the limit ±{limit:.0%}",
                "beyond_limit",
            )


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
        slot = self.check(bar)
        self.take(bar.ticker, slot)
        return slot

    def check(self, bar: Bar) -> int:
        """The bar's slot, or BadBar; changes nothing."""
        if self.tickers is not None and bar.ticker not in self.tickers:
            raise BadBar(
                "ticker",
                bar.ticker,
                f"not a ticker of this session ({_few(self.tickers)})",
                "unknown",
            )
        if bar.ts.date().isoformat() != self.date:
            raise BadBar(
                "ts", bar.ts.isoformat(), f"not on the session date {self.date}", "other_date"
            )
        slot = self.template.slot_of(bar.ts)
        if slot is None:
            raise BadBar(
                "ts",
                bar.ts.isoformat(),
                f"outside the {self.template.name} session",
                "outside_session",
            )
        last = self.last_slot.get(bar.ticker, -1)
        if slot == last:
            raise BadBar("ts", bar.ts.isoformat(), "duplicate minute", "duplicate")
        if slot < last:
            raise BadBar(
                "ts",
                bar.ts.isoformat(),
                f"out of order (already at {self.template.label(last)})",
                "out_of_order",
            )
        return slot

    def take(self, ticker: str, slot: int) -> None:
        """Record `slot` as the ticker's newest."""
        self.last_slot[ticker] = slot


def _few(names: set[str]) -> str:
    shown = sorted(names)[:5]
    return ", ".join(shown) + (" …" if len(names) > 5 else "")
