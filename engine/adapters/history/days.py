"""One ticker's bars → its day curves (runs inside Spark, per ticker, on pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simsignal.engine.core.channels import money_flow, price_ratio, volume_share

DAY_SCHEMA = (
    "ticker string, date string, status string, missing int, prev_close double, "
    "last_close double, ratio array<float>, volume_share array<float>, money_flow array<float>"
)
KEPT = "kept"
TOO_MANY_MISSING = "too many missing slots"
FIRST_DAY = "first day (no previous close)"


def after_hole(max_gap_days: int) -> str:
    """The drop reason of a day whose previous trading day in the data is too far back."""
    return f"after a calendar hole (> {max_gap_days} business days missing before it)"


def days_of_ticker(
    bars: pd.DataFrame, n_slots: int, max_missing: int, max_gap_days: int = 4
) -> pd.DataFrame:
    """Pivot one ticker's aligned bars to day curves.

    `bars` has ticker, date (text or datetime64), slot, close, volume, amount (may be null).
    Short gaps are forward-filled (a leading gap back-filled) with no volume; prev_close is
    the previous day's last close in the data, so the first day of a ticker has none and is
    marked. A day whose previous day in the data lies more than `max_gap_days` business days
    back (a hole in the vendor's calendar) is marked too: its "overnight" move spans weeks.
    """
    day, di = np.unique(bars["date"].to_numpy().astype("datetime64[D]"), return_inverse=True)
    dates = np.datetime_as_string(day, unit="D")
    slot = bars["slot"].to_numpy(dtype=np.int64)
    shape = (len(dates), n_slots)

    def grid(values: pd.Series) -> np.ndarray:
        g = np.full(shape, np.nan)
        g[di, slot] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return g

    close, volume, amount = grid(bars["close"]), grid(bars["volume"]), grid(bars["amount"])
    missing = np.isnan(close).sum(axis=1)
    close = pd.DataFrame(close).ffill(axis=1).bfill(axis=1).to_numpy()
    volume = np.nan_to_num(volume, nan=0.0)
    amount = np.where(np.isnan(amount), close * volume, amount)
    last = close[:, -1]
    prev = np.concatenate([[np.nan], last[:-1]])
    skipped = np.concatenate([[0], np.busday_count(day[:-1], day[1:]) - 1])
    status = np.select(
        [missing > max_missing, np.isnan(prev), skipped > max_gap_days],
        [TOO_MANY_MISSING, FIRST_DAY, after_hole(max_gap_days)],
        KEPT,
    )
    has_prev = ~np.isnan(prev)
    safe_prev = np.where(has_prev, prev, 1.0)
    return pd.DataFrame({
        "ticker": bars["ticker"].iloc[0],
        "date": dates,
        "status": status,
        "missing": missing.astype(np.int32),
        "prev_close": prev,
        "last_close": last,
        "ratio": list(np.where(has_prev[:, None], price_ratio(close, safe_prev), np.nan)
                      .astype(np.float32)),
        "volume_share": list(volume_share(volume).astype(np.float32)),
        "money_flow": list(money_flow(close, safe_prev, amount).astype(np.float32)),
    })  # fmt: skip
