"""One ticker's raw bars → each row's fate and its day curves (runs inside Spark, on pandas).

All the bar-level rules live here and run per ticker after ONE shuffle (group by ticker):
ordering-dependent rules (the first of duplicates in file order wins, out-of-order rows) need
a ticker's rows together, and three Spark window functions over the whole input (one sort and
shuffle each) had made them the loader's bottleneck.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simsignal.engine.adapters.history.days import DAY_SCHEMA, days_of_ticker
from simsignal.engine.core.channels import COLUMNS

OK = "ok"
DAY, ROWS = "day", "rows"  # the two kinds of output row
# the day rows, plus per-status row counts (kind = rows: status, rows, late)
OUT_SCHEMA = f"{DAY_SCHEMA}, kind string, rows long, late long"
VALUES = ["ts", "open", "high", "low", "close", "volume", "amount"]  # a row's identity
CHANNEL_COLUMNS = tuple(COLUMNS.values())  # array columns (empty on count rows)
EXACT, CONFLICT = "exact duplicate", "conflicting duplicate minute (kept the first in file order)"


def row_status(
    bars: pd.DataFrame, minutes: np.ndarray, session: str, before: str | None
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Each row's status, slot, day and "came after a later time".

    The status is 0 for a usable row, else i for the drop reason `labels[i − 1]`.

    `bars` is one ticker's rows in file order; `minutes` maps minute-of-day → slot (−1: not
    in the session). Rules in order of precedence: unusable values, exact duplicate,
    conflicting duplicate minute (among usable rows), outside the session, on/after `before`.
    """
    ticker = bars["ticker"].iloc[0]
    ts = bars["ts"].to_numpy(dtype="datetime64[ns]")
    close = bars["close"].to_numpy(dtype=np.float64, na_value=np.nan)
    volume = bars["volume"].to_numpy(dtype=np.float64, na_value=np.nan)
    no_ts = np.isnat(ts)
    unusable = [
        np.full(len(bars), bool(pd.isna(ticker) or ticker == "")),
        no_ts,
        ~(close > 0),  # NaN compares false
        ~(volume >= 0),
    ]
    bad = np.logical_or.reduce(unusable)
    exact = bars.duplicated(subset=VALUES, keep="first").to_numpy()
    conflict = np.zeros(len(bars), bool)
    good = np.flatnonzero(~bad)
    conflict[good] = pd.Series(ts[good]).duplicated(keep="first").to_numpy()
    minute_ns = ts.astype("datetime64[m]").astype(np.int64)
    minute_of_day = np.where(no_ts, 0, minute_ns % 1440)
    slot = minutes[minute_of_day]
    day = ts.astype("datetime64[D]")
    reasons = [
        "missing ticker",
        "unparseable timestamp",
        "close missing, NaN or <= 0",
        "volume missing, NaN or < 0",
    ]
    conds = [*unusable, exact, conflict, slot < 0]
    labels = [*reasons, EXACT, CONFLICT, f"outside the {session} session"]
    if before:
        conds.append(day >= np.datetime64(before, "D"))
        labels.append(f"on or after {before}")
    status = np.select(conds, np.arange(1, len(conds) + 1), 0)
    late = np.zeros(len(bars), bool)
    late[1:] = ts[:-1] > ts[1:]  # NaT compares false
    return status, labels, slot, day, late


def ticker_rows_and_days(
    bars: pd.DataFrame,
    *,
    minutes: np.ndarray,
    session: str,
    before: str | None,
    n_slots: int,
    max_missing: int,
    max_gap_days: int,
) -> pd.DataFrame:
    """Row counts per status and the ticker's day curves, as `OUT_SCHEMA` rows."""
    bars = bars.sort_values("_row", kind="stable").reset_index(drop=True)
    status, labels, slot, day, late = row_status(bars, minutes, session, before)
    counts = np.bincount(status, minlength=len(labels) + 1)
    seen = np.flatnonzero(counts)
    names, counts = np.array([OK, *labels], dtype=object)[seen], counts[seen]
    ok = status == 0
    late_ok = int(late[ok].sum())
    tally = pd.DataFrame({
        "ticker": bars["ticker"].iloc[0], "date": "", "status": names, "missing": 0,
        "prev_close": np.nan, "last_close": np.nan, "kind": ROWS, "rows": counts,
        "late": np.where(names == OK, late_ok, 0),
        **{c: [np.zeros(0, np.float32)] * len(names) for c in CHANNEL_COLUMNS},
    })  # fmt: skip
    if not ok.any():
        return tally
    kept = pd.DataFrame({
        "ticker": bars["ticker"].iloc[0], "date": day[ok], "slot": slot[ok],
        "close": bars["close"].to_numpy()[ok], "volume": bars["volume"].to_numpy()[ok],
        "amount": bars["amount"].to_numpy(dtype=np.float64, na_value=np.nan)[ok],
    })  # fmt: skip
    days = days_of_ticker(kept, n_slots, max_missing=max_missing, max_gap_days=max_gap_days)
    out = pd.concat([days.assign(kind=DAY, rows=0, late=0), tally], ignore_index=True)
    # one chunk per text column: Spark's Arrow conversion refuses pandas' chunked strings
    return out.astype(dict.fromkeys(["ticker", "date", "status", "kind"], object))
