"""The two accepted bar file layouts and how their columns map to canonical bar fields."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]|$)")  # how every vendor we know writes dates


class NoHistoryError(ValueError):
    """The history holds no usable day before the session date."""


class MissingColumnError(ValueError):
    """A required column is absent; names the column, the format and the file."""


@dataclass(frozen=True)
class BarFormat:
    """Canonical field → source column, per layout."""

    name: str
    required: dict[str, str]
    optional: dict[str, str]


SEED = BarFormat(
    "seed",
    required={
        "ticker": "ticker",
        "date": "dataDate",
        "time": "barTime",
        "close": "closePrice",
        "open": "openPrice",
        "high": "highPrice",
        "low": "lowPrice",
        "volume": "totalVolume",
    },
    optional={"amount": "totalValue"},
)
OHLCV = BarFormat(
    "ohlcv",
    required={
        "ticker": "ticker",
        "datetime": "datetime",
        "open": "open",
        "high": "high",
        "low": "low",
        "close": "close",
        "volume": "volume",
    },
    optional={"amount": "amount"},
)


def detect_format(columns: list[str], source: str) -> BarFormat:
    """Pick the layout from the header; a missing required column is a clear error."""
    cols = set(columns)
    fmt = SEED if {"barTime", "dataDate"} & cols else OHLCV
    missing = [c for c in fmt.required.values() if c not in cols]
    if missing:
        raise MissingColumnError(
            f"{source}: missing column(s) {', '.join(missing)} for the {fmt.name} format "
            f"(found: {', '.join(columns)}); "
            f"seed format needs {', '.join(SEED.required.values())}; "
            f"plain OHLCV needs {', '.join(OHLCV.required.values())}[, amount]"
        )
    return fmt


def expand_paths(paths: list[str]) -> list[Path]:
    """Files behind the given files, globs and directories (CSV and Parquet), sorted."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix.lower() in (".csv", ".parquet"))
        elif any(ch in raw for ch in "*?["):
            files += sorted(Path(q) for q in glob.glob(raw, recursive=True))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"history path {raw}: no such file or directory")
    if not files:
        raise FileNotFoundError(f"no CSV or Parquet files under {', '.join(paths)}")
    return files


def header_of(path: Path) -> list[str]:
    """Column names of a CSV (first line) or Parquet file, without reading the data."""
    if path.suffix.lower() == ".parquet":
        return list(pq.read_schema(path).names)
    with path.open(encoding="utf-8-sig") as fh:
        line = fh.readline().rstrip("\r\n")
    return [c.strip().strip('"') for c in line.split(",")]


def sample_times(files: list[Path], tickers: list[str] | None = None,
                 rows: int = 200_000) -> list[str]:  # fmt: skip
    """Bar times (as written) from up to 50 files spread over the list, about `rows` in all.

    Read in the driver with pandas/pyarrow, before Spark starts, so that a wrong session
    template fails in seconds: the times' minutes of day tell which session they follow.
    """
    picked = (
        files
        if len(files) <= 50
        else [files[i] for i in np.linspace(0, len(files) - 1, 50).astype(int)]
    )
    per_file = max(1_000, rows // len(picked))
    out: list[str] = []
    for path in picked:
        fmt = detect_format(header_of(path), str(path))
        cols = [
            fmt.required[c]
            for c in (("ticker", "date", "time") if fmt is SEED else ("ticker", "datetime"))
        ]
        if path.suffix.lower() == ".parquet":
            frame = pq.read_table(path, columns=cols).slice(0, per_file).to_pandas()
        else:
            frame = pd.read_csv(path, usecols=cols, dtype=str, nrows=per_file, encoding="utf-8-sig")
        if tickers:
            codes = frame[cols[0]].astype(str).str.strip()
            if fmt is SEED:
                codes = codes.str.zfill(6)
            frame = frame[codes.isin(tickers)]
        if fmt is SEED:
            times = (
                frame[cols[1]].astype(str).str.strip()
                + " "
                + frame[cols[2]].astype(str).str.strip()
            )
        else:
            times = frame[cols[1]].astype(str)
        out += times.tolist()
    return out


def first_written_day(files: list[Path]) -> str | None:
    """The earliest date the bars are written with, from Parquet statistics alone.

    Lets a session date before all history fail in a second instead of after a Spark load.
    None when it cannot be known without reading the bars: a CSV file, a file without
    statistics, or a value that does not start with an ISO date (Spark parses more forms).
    """
    earliest: str | None = None
    for f in files:
        if f.suffix.lower() != ".parquet":
            return None
        meta = pq.ParquetFile(f).metadata  # the footer, read once: columns and statistics
        names = meta.schema.names
        fmt = detect_format(names, str(f))
        at = names.index(fmt.required["date" if fmt is SEED else "datetime"])
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(at).statistics
            if stats is None or not stats.has_min_max:
                return None
            low, high = str(stats.min), str(stats.max)
            if not (ISO_DATE.match(low) and ISO_DATE.match(high)):
                return None
            earliest = min(earliest or low[:10], low[:10])
    return earliest


def count_bars(files: list[Path]) -> int:
    """Bars in the files: exact for Parquet (its metadata), estimated for CSV (~60 B a row)."""
    total = 0
    for f in files:
        if f.suffix.lower() == ".parquet":
            total += pq.ParquetFile(f).metadata.num_rows
        else:
            total += f.stat().st_size // 60
    return total
