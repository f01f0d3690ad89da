"""Session templates: the minute slots of a trading day, and the exchange's time zone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo


def _span(start: str, end: str) -> list[int]:
    """Minutes of the day from `start` to `end` inclusive, as HH:MM → minute-of-day."""
    h0, m0 = map(int, start.split(":"))
    h1, m1 = map(int, end.split(":"))
    return list(range(h0 * 60 + m0, h1 * 60 + m1 + 1))


@dataclass(frozen=True)
class SessionTemplate:
    """Slot i of a day is the bar stamped at `minutes[i]` (minute of day, exchange-local)."""

    name: str
    minutes: tuple[int, ...]
    timezone: str
    move_limit: float  # default largest accepted move from the previous close (a fraction)
    _slot_of: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_slot_of", {m: i for i, m in enumerate(self.minutes)})

    @property
    def slots(self) -> int:
        """Number of minute slots in one day."""
        return len(self.minutes)

    @property
    def zone(self) -> ZoneInfo:
        """The exchange's time zone, used to turn local bar times into epoch milliseconds."""
        return ZoneInfo(self.timezone)

    def slot_of(self, ts: datetime) -> int | None:
        """The slot of a bar time, or None when that minute is outside the session."""
        return self._slot_of.get(ts.hour * 60 + ts.minute)

    def label(self, slot: int) -> str:
        """HH:MM of a slot."""
        minute = self.minutes[slot]
        return f"{minute // 60:02d}:{minute % 60:02d}"


TEMPLATES: dict[str, SessionTemplate] = {
    # The seed's data: 09:30 (call auction close) … 11:30, then 13:01 … 15:00.
    # Move limits: cn's widest daily band on the main exchanges (ChiNext and STAR, ±20 %;
    # main boards ±10 %); us has no band, ±50 % admits all but a few single-stock days a year.
    "cn": SessionTemplate(
        "cn", tuple(_span("09:30", "11:30") + _span("13:01", "15:00")), "Asia/Shanghai", 0.2
    ),
    "us": SessionTemplate("us", tuple(_span("09:30", "15:59")), "America/New_York", 0.5),
}


def get_template(name: str) -> SessionTemplate:
    """Look a template up by name with an error that lists the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(
            f"unknown session template {name!r}; known: {', '.join(TEMPLATES)}"
        ) from None
