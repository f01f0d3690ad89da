"""Day curves as NumPy arrays, rebuilt from the Arrow blocks the loader left in Ray."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray


@dataclass(frozen=True)
class DayCurves:
    """Rows sorted by (ticker, date); `ratio` is float32 [days, slots]."""

    tickers: NDArray[np.object_]
    dates: NDArray[np.object_]
    ratio: NDArray[np.float32]
    prev_close: NDArray[np.float64]

    @classmethod
    def from_arrow(cls, tables: list[pa.Table], slots: int, shard: int | None = None) -> DayCurves:
        """Concatenate blocks, keep one shard's rows (all when None), sort by (ticker, date)."""
        if not tables:
            return cls.empty(slots)
        table = pa.concat_tables(
            [t.select(["ticker", "date", "ratio", "prev_close", "shard"]) for t in tables]
        )
        if shard is not None:
            table = table.filter(pc.equal(table["shard"], shard))
        table = table.sort_by([("ticker", "ascending"), ("date", "ascending")])
        if table.num_rows == 0:
            return cls.empty(slots)
        ratio_col = table["ratio"].combine_chunks()
        flat = ratio_col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        return cls(
            tickers=np.asarray(table["ticker"].to_pylist(), dtype=object),
            dates=np.asarray(table["date"].to_pylist(), dtype=object),
            ratio=flat.reshape(table.num_rows, slots),
            prev_close=table["prev_close"].to_numpy(),
        )

    @classmethod
    def empty(cls, slots: int) -> DayCurves:
        """No days (a shard the hash left empty)."""
        return cls(
            np.array([], object),
            np.array([], object),
            np.zeros((0, slots), np.float32),
            np.zeros(0),
        )

    def __len__(self) -> int:
        return int(self.ratio.shape[0])

    def ticker_ranges(self) -> dict[str, tuple[int, int]]:
        """Each ticker's contiguous row range [lo, hi)."""
        out: dict[str, tuple[int, int]] = {}
        if len(self) == 0:
            return out
        change = np.flatnonzero(self.tickers[1:] != self.tickers[:-1]) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [len(self)]])
        for lo, hi in zip(starts, ends, strict=True):
            out[str(self.tickers[lo])] = (int(lo), int(hi))
        return out
