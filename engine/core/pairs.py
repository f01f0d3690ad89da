"""Pair trading: the intraday spread of two tickers matched against the pair's own history.

A pair (A, B) is searched like a ticker named `A~B` whose day curves are the spreads
ratio_A − ratio_B on the days both have. Live, its minute m is x_A(m) − x_B(m) once both
tickers have reached minute m. A spread is a difference, not a ratio to a previous close, so
its forecast continues additively: close = x_now + (y_close − y_now).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simsignal.engine.core.curves import DayCurves

SEP = "~"
Pair = tuple[str, str]


def name(pair: Pair) -> str:
    """The pair's query and stream name, `A~B`."""
    return f"{pair[0]}{SEP}{pair[1]}"


def is_pair(ticker: str) -> bool:
    """Whether a query name is a pair (bar tickers cannot contain the separator)."""
    return SEP in ticker


def spread_curves(curves: DayCurves, pairs: Iterable[Pair]) -> DayCurves:
    """Each pair's spread curve on every date both tickers have, rows sorted by (name, date)."""
    dates = curves.dates.astype(str)
    names, days, rows = [], [], []
    for pair in sorted(set(pairs), key=name):
        a = {d: i for i, d in zip(np.flatnonzero(curves.tickers == pair[0]),
                                  dates[curves.tickers == pair[0]], strict=True)}  # fmt: skip
        b_rows = np.flatnonzero(curves.tickers == pair[1])
        for j in b_rows:
            i = a.get(dates[j])
            if i is not None:
                names.append(name(pair))
                days.append(dates[j])
                rows.append(curves.ratio[i].astype(np.float64) - curves.ratio[j])
    slots = int(curves.ratio.shape[1])
    if not rows:
        return DayCurves.empty(slots)
    order = np.lexsort((np.asarray(days), np.asarray(names)))
    return DayCurves(
        np.asarray(names, object)[order],
        np.asarray(days, object)[order],
        np.asarray(rows, np.float32)[order],
        np.ones(len(rows)),
    )


def members(pairs: Iterable[Pair]) -> list[str]:
    """Every ticker some pair needs."""
    return sorted({t for p in pairs for t in p})


def with_members(tickers: Sequence[str] | None, pairs: Sequence[Pair]) -> list[str] | None:
    """A ticker list plus the pairs' tickers (None, every ticker, stays None)."""
    if not tickers:
        return None
    return list(dict.fromkeys([*tickers, *members(pairs)]))


def spread_table(tables: Sequence[pa.Table], pairs: Sequence[Pair], slots: int,
                 shard: int) -> pa.Table | None:  # fmt: skip
    """The pairs' spread curves as one object-store block for `shard` (None: no common day).

    Only the member tickers' rows are read from the loaded blocks.
    """
    wanted = pa.array(members(pairs))
    parts = [t.filter(pc.is_in(t["ticker"], value_set=wanted)) for t in tables]
    spreads = spread_curves(DayCurves.from_arrow([p for p in parts if p.num_rows], slots), pairs)
    if len(spreads) == 0:
        return None
    flat = pa.array(spreads.ratio.reshape(-1), pa.float32())
    return pa.table({
        "ticker": pa.array(spreads.tickers.astype(str)),
        "date": pa.array(spreads.dates.astype(str)),
        "prev_close": pa.array(spreads.prev_close),
        "shard": pa.array(np.full(len(spreads), shard, np.int32)),
        "ratio": pa.FixedSizeListArray.from_arrays(flat, slots),
    })  # fmt: skip
