"""What a history load hands over: the day curves' object-store blocks and the load's report.

Apart from the loader so that the curves cache (which writes and reads these) and the loader
(which uses the cache) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simsignal.engine.core.templates import SessionTemplate


@dataclass
class TickerReport:
    """One ticker's part of the load."""

    rows_kept: int = 0
    days_kept: int = 0
    days_dropped: dict[str, int] = field(default_factory=dict)


@dataclass
class LoadReport:
    """What loading did, for the summary table, `summary.json` and the tests."""

    files: int = 0
    template: str = ""
    template_fit: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_dropped: dict[str, int] = field(default_factory=dict)
    rows_out_of_order: int = 0
    days_kept: int = 0
    days_dropped: dict[str, int] = field(default_factory=dict)
    tickers: int = 0
    per_ticker: dict[str, TickerReport] = field(default_factory=dict)
    rows_per_shard: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    by_day: bool = False  # days dealt to shards in turn (fewer tickers than shards): split

    @property
    def tickers_without_days(self) -> list[str]:
        """Tickers with history rows but no usable day: their live bars are refused."""
        return sorted(t for t, r in self.per_ticker.items() if r.days_kept == 0)


@dataclass
class LoadedHistory:
    """Day curves in Ray's object store (Arrow blocks with a `shard` column) and the report."""

    refs: list[Any]
    report: LoadReport
    last_close: dict[str, tuple[str, float]]  # ticker → (date, close) of its last history day
    template: SessionTemplate
    by_shard: dict[int, list[Any]] | None = None  # the blocks holding each shard's rows
    cached: bool = False  # read from the day-curves cache (no Spark)
    extra: dict[int, list[Any]] = field(default_factory=dict)  # built after the load (spreads)

    def blocks_for(self, shard: int) -> list[Any]:
        """The loaded blocks that hold a shard's rows (all of them when unknown)."""
        if self.by_shard is None:
            return self.refs
        return self.by_shard.get(shard, [])

    def refs_for(self, shard: int) -> list[Any]:
        """Every object-store block of a shard: the loaded ones and those built after."""
        return [*self.blocks_for(shard), *self.extra.get(shard, [])]

    @property
    def slots(self) -> int:
        """Minute slots of the session template the curves are aligned to."""
        return self.template.slots

    @property
    def usable(self) -> set[str]:
        """Tickers with at least one kept day."""
        return {t for t, r in self.report.per_ticker.items() if r.days_kept}
