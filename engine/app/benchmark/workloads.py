"""Benchmark workloads: synthetic multi-ticker histories, generated once and cached."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from simsignal.engine.adapters.synthetic import make_history
from simsignal.engine.core.templates import get_template

SEED = 20161201


@dataclass(frozen=True)
class Workload:
    """One benchmark shape: W1 one index, W2 a market (own history), W3 pooled."""

    name: str
    tickers: int
    years: float
    template: str = "cn"

    @property
    def pooled(self) -> bool:
        """W3 matches each query against every ticker's days."""
        return self.name == "w3"

    @property
    def key(self) -> str:
        """The workload's name in results."""
        return f"{self.name}-{self.tickers}x{self.years:g}y-{self.template}"

    @property
    def data_key(self) -> str:
        """Cache folder name: W3 searches W2's market, so they share its files."""
        kind = "w1" if self.name == "w1" else "w2"
        return f"{kind}-{self.tickers}x{self.years:g}y-{self.template}"

    @property
    def live_tickers(self) -> list[str] | None:
        """Tickers that send bars live: W3 is one pooled query; None is every ticker."""
        return self.names()[:1] if self.pooled else None

    def names(self) -> list[str]:
        """Ticker codes."""
        return (
            ["000300"] if self.tickers == 1 else [f"{600000 + i:06d}" for i in range(self.tickers)]
        )


@dataclass(frozen=True)
class Prepared:
    """Where a workload's files are, and its live (held-back) day."""

    history: Path  # a folder of Parquet files, one per ticker
    live: pd.DataFrame  # the held-back day's bars of every ticker, in time order
    date: str
    bars: int  # history bars


def prepare(w: Workload, root: Path, say: Callable[[str], None] = print) -> Prepared:
    """Write (once) one Parquet file per ticker and the held-back day; reuse them after."""
    folder = root / w.data_key
    history, live_path = folder / "history", folder / "live.parquet"
    if not live_path.is_file():
        template = get_template(w.template)
        history.mkdir(parents=True, exist_ok=True)
        live = []
        for i, ticker in enumerate(w.names()):
            bars = make_history(
                template,
                years=w.years,
                ticker=ticker,
                seed=SEED + i,
                level=10.0 + 90.0 * ((i * 37) % 101) / 100,
            )
            last = bars["datetime"].str[:10].iloc[-1]
            held = bars["datetime"].str.startswith(last)
            bars[~held].to_parquet(history / f"{ticker}.parquet", index=False)
            live.append(bars[held])
            if (i + 1) % 50 == 0:
                say(f"  generated {i + 1}/{w.tickers} tickers")
        day = pd.concat(live).sort_values(["datetime", "ticker"], kind="stable")
        day.to_parquet(live_path.with_suffix(".tmp"), index=False)
        live_path.with_suffix(".tmp").rename(live_path)
    day = pd.read_parquet(live_path)
    n = sum(pq.ParquetFile(p).metadata.num_rows for p in history.glob("*.parquet"))
    return Prepared(history, day, str(day["datetime"].iloc[0])[:10], n)
