"""The per-ticker bar rules of the loader, in pandas alone (Spark only groups the rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simsignal.engine.adapters.history.clean import (
    CONFLICT,
    DAY,
    EXACT,
    OK,
    ROWS,
    ticker_rows_and_days,
)
from simsignal.engine.core.templates import get_template

CN = get_template("cn")


def _minutes() -> np.ndarray:
    table = np.full(1440, -1, np.int64)
    table[list(CN.minutes)] = np.arange(CN.slots)
    return table


def _bars(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    ts = pd.to_datetime([t for t, _, _ in rows], errors="coerce", format="%Y-%m-%d %H:%M")
    n = len(rows)
    return pd.DataFrame({
        "ticker": "600000", "ts": ts, "open": 1.0, "high": 1.0, "low": 1.0,
        "close": [c for _, c, _ in rows], "volume": [v for _, _, v in rows],
        "amount": np.nan, "_row": np.arange(n)[::-1] * 10,  # file order is the reverse
    })  # fmt: skip


def test_every_rule_in_its_order_of_precedence() -> None:
    in_file = [  # (time, close, volume) in file order
        ("2020-01-06 09:31", 10.0, 5.0),  # ok
        ("2020-01-06 09:31", 10.0, 5.0),  # exact duplicate
        ("2020-01-06 09:31", 11.0, 5.0),  # conflicting duplicate minute
        ("2020-01-06 09:33", 10.2, 5.0),  # ok
        ("2020-01-06 09:32", 10.1, 5.0),  # ok, but after a later time: out of order
        ("2020-01-06 12:00", 10.1, 5.0),  # lunch break: outside the session
        ("not a time", 10.1, 5.0),  # unparseable
        ("2020-01-06 09:34", 0.0, 5.0),  # close <= 0
        ("2020-01-06 09:35", 10.0, -1.0),  # negative volume
        ("2020-01-06 09:36", np.nan, np.nan),  # both bad: the close is named first
        ("2020-01-07 09:31", 10.0, 5.0),  # on the --date day
    ]
    bars = _bars(in_file[::-1])  # shuffled rows; `_row` restores the file order
    out = ticker_rows_and_days(bars, minutes=_minutes(), session="cn", before="2020-01-07",
                               n_slots=CN.slots, max_missing=300, max_gap_days=4)  # fmt: skip
    tally = out[out["kind"] == ROWS].set_index("status")
    assert tally["rows"].to_dict() == {
        OK: 3, EXACT: 1, CONFLICT: 1, "outside the cn session": 1, "unparseable timestamp": 1,
        "close missing, NaN or <= 0": 2, "volume missing, NaN or < 0": 1,
        "on or after 2020-01-07": 1,
    }  # fmt: skip
    assert tally.loc[OK, "late"] == 1 and tally["late"].sum() == 1
    days = out[out["kind"] == DAY]
    assert days["date"].tolist() == ["2020-01-06"]  # its only day, first: no previous close
    assert days["status"].tolist() == ["first day (no previous close)"]
    assert days["last_close"].tolist() == [10.2]  # 09:33 is the last bar; filled to the close


def test_a_ticker_with_no_usable_row_yields_counts_only() -> None:
    bars = _bars([("bad", 10.0, 1.0), ("2020-01-06 09:31", -1.0, 1.0)])
    out = ticker_rows_and_days(bars, minutes=_minutes(), session="cn", before=None,
                               n_slots=CN.slots, max_missing=12, max_gap_days=4)  # fmt: skip
    assert set(out["kind"]) == {ROWS} and out["rows"].sum() == 2
    assert all(len(a) == 0 for a in out["ratio"])


def test_a_ticker_with_every_row_dropped_still_fills_the_schema() -> None:
    """Spark checks a pandas UDF's columns: a ticker with no kept row (all on or after the
    session date) must return every column of OUT_SCHEMA, not only the counts."""
    from simsignal.engine.adapters.history.clean import OUT_SCHEMA

    out = ticker_rows_and_days(_bars([("2024-01-02 09:30", 1.0, 1.0)]), minutes=_minutes(),
                               session="cn", before="2001-01-04", n_slots=CN.slots,
                               max_missing=12, max_gap_days=4)  # fmt: skip
    assert list(out["kind"]) == [ROWS] and out["rows"].sum() == 1
    assert {c.split()[0] for c in OUT_SCHEMA.split(", ")} <= set(out.columns)
