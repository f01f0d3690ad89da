"""Live bar sources: replay of a file (either layout), at a chosen speed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd

from simsignal.engine.adapters.history.formats import SEED, detect_format


def replay_rows(path: Path) -> Iterator[dict[str, str]]:
    """Raw bar fields (strings, as a Redis producer would send them) in file order.

    File order is kept on purpose: an out-of-order or duplicate row must reach the gate
    and be rejected there, exactly as it would be live.
    """
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path).astype(str)
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    fmt = detect_format(list(frame.columns), str(path))
    names = {**fmt.required, **fmt.optional}
    for rec in frame.to_dict("records"):
        ticker = str(rec[names["ticker"]]).strip()
        if fmt is SEED:
            ts = f"{rec[names['date']]}T{rec[names['time']]}:00"
        else:
            ts = str(rec[names["datetime"]]).replace(" ", "T")
        fields = {
            "ticker": ticker.zfill(6) if fmt is SEED and ticker.isdigit() else ticker,
            "ts": ts,
        }
        for canon in ("open", "high", "low", "close", "volume", "amount"):
            col = names.get(canon)
            if col is not None and col in rec:
                fields[canon] = str(rec[col])
        yield fields


Numbered = tuple[int, dict[str, str]]  # a row with its place in the file (its receipt)


def paced(rows: Iterator[Numbered], speed: float) -> Iterator[Numbered]:
    """Yield rows in bar time divided by `speed` (0: as fast as possible; 60: a minute a second)."""
    if speed <= 0:
        yield from rows
        return
    start_wall = time.monotonic()
    start_bar: datetime | None = None
    for row in rows:
        try:
            ts = datetime.fromisoformat(row[1].get("ts", ""))
        except (ValueError, TypeError):
            yield row  # let the gate reject it with its reason
            continue
        start_bar = start_bar or ts.replace(tzinfo=None)
        due = start_wall + (ts.replace(tzinfo=None) - start_bar).total_seconds() / speed
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield row


def minute_batches(rows: Iterator[Numbered]) -> Iterator[list[Numbered]]:
    """Consecutive rows with the same time as one batch: a market's minute, one fan-out."""
    batch: list[Numbered] = []
    for row in rows:
        if batch and row[1].get("ts") != batch[0][1].get("ts"):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch
