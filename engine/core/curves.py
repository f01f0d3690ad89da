"""Day curves as NumPy arrays, rebuilt from the Arrow blocks the loader left in Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from simsignal.engine.core.channels import COLUMNS

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
        channels: tuple[str, ...] = ("price",), order: Literal["C", "F"] = "C",
    ) -> DayCurves:  # fmt: skip
        """One shard's rows (all when None) of the blocks, sorted by (ticker, date).

        Each curve is copied once, from the block's (zero-copy) values into its final place:
        no Arrow concatenation, filter or sort, whose freed buffers Arrow's allocator keeps.
        `order="F"` lays each channel out slot-major in memory (what a shard scans).
        """
        wanted = {c: COLUMNS.get(c, "ratio") for c in dict.fromkeys(("price", *channels))}
        batches = [b for t in tables for b in t.to_batches() if b.num_rows]
        missing = [n for n in wanted.values() if batches and n not in batches[0].schema.names]
        if missing:
            raise ValueError(f"the loaded history has no {', '.join(missing)} curves")
        picks = [
            np.arange(b.num_rows) if shard is None
            else np.flatnonzero(b.column("shard").to_numpy(zero_copy_only=False) == shard)
            for b in batches
        ]  # fmt: skip
        n = sum(len(k) for k in picks)
        if n == 0:
            return cls.empty(slots)

        def gather(name: str) -> NDArray[Any]:
            return np.concatenate([
                b.column(name).to_numpy(zero_copy_only=False)[k]
                for b, k in zip(batches, picks, strict=True)
            ])  # fmt: skip

        tickers, dates = gather("ticker").astype(object), gather("date").astype(object)
        rank = np.lexsort((dates.astype(str), tickers.astype(str)))
        place = np.empty(n, np.intp)
        place[rank] = np.arange(n)  # where each gathered row goes
        grids = {c: np.empty((n, slots), np.float32, order=order) for c in wanted}
        start = 0
        for b, k in zip(batches, picks, strict=True):
            dest = place[start : start + len(k)]
            start += len(k)
            for c, name in wanted.items():
                flat = b.column(name).flatten().to_numpy(zero_copy_only=False)
                grids[c][dest] = flat.reshape(b.num_rows, slots)[k]
        return cls(
            tickers=tickers[rank],
            dates=dates[rank],
            ratio=grids.pop("price"),
            prev_close=gather("prev_close")[rank].astype(np.float64),
            extra=grids,
        )

    @classmethod
    def empty(cls, slots: int) -> DayCurves:
        """No days (a shard the hash left empty)."""
        return cls(np.array([], object), np.array([], object),
                   np.zeros((0, slots), np.float32), np.zeros(0))  # fmt: skip

    def __len__(self) -> int:
        return int(self.ratio.shape[0])

    def select(self, rows: NDArray[np.bool_] | NDArray[np.intp]) -> DayCurves:
        """The given rows (a mask or indices, kept in order), every channel with them."""
        extra = {c: v[rows] for c, v in self.extra.items()}
        return DayCurves(
            self.tickers[rows], self.dates[rows], self.ratio[rows], self.prev_close[rows], extra
        )

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
