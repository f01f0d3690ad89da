"""Today's partial curve per ticker: ratios to the previous close, one per session slot."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TodayCurve:
    """Grows one slot at a time; a skipped slot is forward-filled like the history's gaps."""

    ticker: str
    prev_close: float
    xs: list[float] = field(default_factory=list)
    closes: list[float] = field(default_factory=list)

    def advance(self, slot: int, close: float) -> list[tuple[int, float]]:
        """Take the bar at `slot`; returns the new (minute, ratio) pairs, gap-fills included."""
        x = close / self.prev_close - 1.0
        new: list[tuple[int, float]] = []
        while len(self.xs) < slot:  # missing slots: last value, or this one before the first bar
            fill_x = self.xs[-1] if self.xs else x
            fill_c = self.closes[-1] if self.closes else close
            self.xs.append(fill_x)
            self.closes.append(fill_c)
            new.append((len(self.xs), fill_x))
        self.xs.append(x)
        self.closes.append(close)
        new.append((len(self.xs), x))
        return new
