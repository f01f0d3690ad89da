"""Today's partial curves per ticker, one value per session slot and channel."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simsignal.engine.core.channels import money_flow, price_ratio, volume_share


@dataclass
class TodayCurve:
    """Grows one slot at a time; a skipped slot is forward-filled (no volume), like history."""

    ticker: str
    prev_close: float
    channels: tuple[str, ...] = ("price",)
    closes: list[float] = field(default_factory=list)
    volumes: list[float] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    values: list[tuple[float, ...]] = field(default_factory=list)  # per minute, per channel

    @property
    def xs(self) -> list[float]:
        """Today's price ratios so far."""
        return [
            float(v) for v in price_ratio(np.array([self.closes]), np.array([self.prev_close]))[0]
        ]

    def advance(
        self, slot: int, close: float, volume: float = 0.0, amount: float | None = None
    ) -> list[tuple[int, float, tuple[float, ...]]]:
        """Take the bar at `slot`; returns (minute, price ratio, channel values), gaps filled."""
        start = len(self.closes)
        while len(self.closes) < slot:  # missing slots: last close (this one before the first)
            self.closes.append(self.closes[-1] if self.closes else close)
            self.volumes.append(0.0)
            self.amounts.append(0.0)
        self.closes.append(close)
        self.volumes.append(volume)
        self.amounts.append(close * volume if amount is None else amount)
        curves = self._curves()
        new = []
        for i in range(start, len(self.closes)):
            values = tuple(float(curves[c][i]) for c in self.channels)
            self.values.append(values)
            new.append((i + 1, float(curves["price"][i]), values))
        return new

    def _curves(self) -> dict[str, np.ndarray]:
        close = np.array([self.closes])
        prev = np.array([self.prev_close])
        out = {"price": price_ratio(close, prev)[0]}
        if "volume" in self.channels:
            out["volume"] = volume_share(np.array([self.volumes]))[0]
        if "flow" in self.channels:
            out["flow"] = money_flow(close, prev, np.array([self.amounts]))[0]
        return out
