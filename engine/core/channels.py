"""Channels: the curves an algorithm can score, each a scale-free [days, slots] array.

- `price`: close / previous close − 1 (the default, and what forecasts are made of);
- `volume`: each minute's share of the day's volume so far, v_s / Σ_{t≤s} v_t;
- `flow`: money flow so far, Σ sign(Δclose)·amount / Σ amount, in [−1, 1] (amount, else
  close × volume). Δclose of the first minute is against the previous close.
The same functions build history curves (in Spark) and today's curve (in the coordinator),
so live values match what history holds.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

CHANNELS = ("price", "volume", "flow")
COLUMNS = {"price": "ratio", "volume": "volume_share", "flow": "money_flow"}

F64 = NDArray[np.float64]


def price_ratio(close: F64, prev_close: F64) -> F64:
    """Close / prev_close − 1, per row."""
    return np.asarray(close / prev_close[:, None] - 1.0, np.float64)


def volume_share(volume: F64) -> F64:
    """Each minute's share of the day's volume so far (0 before any volume)."""
    cum = np.cumsum(volume, axis=1)
    return np.divide(volume, cum, out=np.zeros_like(cum), where=cum > 0)


def money_flow(close: F64, prev_close: F64, amount: F64) -> F64:
    """Signed money flow so far over money traded so far (0 before any)."""
    before = np.concatenate([prev_close[:, None], close[:, :-1]], axis=1)
    signed = np.cumsum(np.sign(close - before) * amount, axis=1)
    total = np.cumsum(amount, axis=1)
    return np.divide(signed, total, out=np.zeros_like(total), where=total > 0)


def parse_channels(spec: str | dict[str, float]) -> dict[str, float]:
    """`price:1,volume:0.5` (or a dict) → weights; unknown names and bad weights are errors."""
    if isinstance(spec, str):
        weights: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, raw = part.partition(":")
            try:
                weights[name.strip()] = float(raw) if raw else 1.0
            except ValueError:
                raise ValueError(f"channel weight {part!r}: not a number") from None
    else:
        weights = {str(k): float(v) for k, v in spec.items()}
    unknown = [n for n in weights if n not in CHANNELS]
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown}; known: {', '.join(CHANNELS)}")
    if any(w < 0 or not np.isfinite(w) for w in weights.values()):
        raise ValueError(f"channel weights must be finite and >= 0: {weights}")
    if not any(w > 0 for w in weights.values()):
        raise ValueError("at least one channel needs a weight > 0")
    return {n: weights[n] for n in CHANNELS if weights.get(n, 0) > 0}
