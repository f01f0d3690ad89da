"""Day curves as NumPy arrays, rebuilt from the Arrow blocks the loader left in Ray."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from simsignal.engine.channels import COLUMNS

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class DayCurves:
    """Rows sorted by (ticker, date); `ratio` (price) and other channels float32 [days, slots]."""

    tickers: NDArray[np.object_]
    dates: NDArray[np.object_]
    ratio: F32
    prev_close: NDArray[np.float64]
    extra: dict[str, F32] = field(default_factory=dict)  # channel name → curves

    @classmethod
    def from_arrow(
        cls, tables: list[pa.Table], slots: int, shard: int | None = None,
        channels: tuple[str, ...] = ("price",),
    ) -> DayCurves:  # fmt: skip
        """Concatenate blocks, keep one shard's rows (all when None), sort by (ticker, date)."""
        if not tables:
            return cls.empty(slots)
        wanted = [COLUMNS[c] for c in channels if c != "price"]
        missing = [c for c in wanted if c not in tables[0].column_names]
        if missing:
            raise ValueError(f"the loaded history has no {', '.join(missing)} curves")
        names = ["ticker", "date", "ratio", "prev_close", "shard", *wanted]
        table = pa.concat_tables([t.select(names) for t in tables])
        if shard is not None:
            table = table.filter(pc.equal(table["shard"], shard))
        table = table.sort_by([("ticker", "ascending"), ("date", "ascending")])
        if table.num_rows == 0:
            return cls.empty(slots)

        def grid(column: str) -> F32:
            flat = table[column].combine_chunks().flatten().to_numpy(zero_copy_only=False)
            return flat.astype(np.float32, copy=False).reshape(table.num_rows, slots)

        return cls(
            tickers=np.asarray(table["ticker"].to_pylist(), dtype=object),
            dates=np.asarray(table["date"].to_pylist(), dtype=object),
            ratio=grid("ratio"),
            prev_close=table["prev_close"].to_numpy(),
            extra={c: grid(COLUMNS[c]) for c in channels if c != "price"},
        )

    @classmethod
    def empty(cls, slots: int) -> DayCurves:
        """No days (a shard the hash left empty)."""
        return cls(np.array([], object), np.array([], object),
                   np.zeros((0, slots), np.float32), np.zeros(0))  # fmt: skip

    def __len__(self) -> int:
        return int(self.ratio.shape[0])

    def channel(self, name: str) -> F32:
        """The curves of one channel."""
        if name == "price":
            return self.ratio
        if len(self) == 0:
            return self.ratio
        return self.extra[name]

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
