"""Terminal output: the live per-minute table and the end-of-run summary (rich)."""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from simsignal.actors.replies import RunStats
from simsignal.engine.adapters.history.loaded import LoadReport


class LiveTable:
    """The newest minutes as a table, redrawn in place on a terminal, sparse lines otherwise."""

    def __init__(self, console: Console, ticker: str, rows: int = 12, every: int = 30) -> None:
        self.console = console
        self.ticker = ticker
        self.rows: deque[dict[str, Any]] = deque(maxlen=rows)
        self.rejected: deque[str] = deque(maxlen=3)
        self.every = every
        self.live = Live(console=console, auto_refresh=False) if console.is_terminal else None

    def __enter__(self) -> LiveTable:
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.__exit__(None, None, None)

    def add(self, row: dict[str, Any]) -> None:
        """Show one coordinator reply."""
        if "rejected" in row:
            self.rejected.append(row["rejected"])
            if not self.live:
                # Text, not markup: a rejected value may hold "[/x]", which markup would parse.
                self.console.print(Text("rejected ", style="red") + Text(str(row["rejected"])))
        elif row:
            self.rows.append(row)
            if not self.live and (row["minute"] % self.every == 0 or row["minute"] == 1):
                self.console.print(self._line(row))
        if self.live:
            self.live.update(self._render(), refresh=True)

    def _line(self, r: dict[str, Any]) -> str:
        return (
            f"minute {r['minute']:>3} {r['slot']}  price {r['close']:.3f}  now {r['x']:+.3%}  "
            f"pred close {r['pred_close']:+.3%}  up {r['up_prob']:.0%}  "
            f"latency {r['latency_ms']:.2f} ms"
        )

    def _render(self) -> Group:
        t = Table(
            title=f"{self.ticker}: live signals ({self.rows[-1]['algo'] if self.rows else ''})"
        )
        for col in ("minute", "time", "price", "now", "pred close", "up prob", "latency ms"):
            t.add_column(col, justify="right")
        for r in self.rows:
            t.add_row(
                str(r["minute"]),
                r["slot"],
                f"{r['close']:.3f}",
                f"{r['x']:+.3%}",
                f"{r['pred_close']:+.3%}",
                f"{r['up_prob']:.0%}",
                f"{r['latency_ms']:.2f}",
            )
        notes = [Text(f"rejected: {msg}", style="red") for msg in self.rejected]
        return Group(t, *notes)


def load_table(report: LoadReport) -> Table:
    """What the history load did."""
    t = Table(title="history load", show_header=False)
    t.add_row("files", str(report.files))
    t.add_row("session template", report.template)
    t.add_row("rows read", f"{report.rows_read:,}")
    for reason, n in sorted(report.rows_dropped.items()):
        t.add_row("  rows dropped", f"{n:,}  ({reason})")
    if report.rows_out_of_order:
        t.add_row("  rows out of time order", f"{report.rows_out_of_order:,}  (sorted, kept)")
    t.add_row("tickers with days", str(report.tickers))
    t.add_row("days kept", f"{report.days_kept:,}")
    for reason, n in sorted(report.days_dropped.items()):
        who = [f"{tk} {r.days_dropped[reason]}" for tk, r in sorted(report.per_ticker.items())
               if reason in r.days_dropped]  # fmt: skip
        t.add_row("  days dropped", f"{n:,}  ({reason}: {_few(who)})")
    t.add_row(
        "days per shard", ", ".join(f"{k}: {v:,}" for k, v in sorted(report.rows_per_shard.items()))
    )
    t.add_row("seconds", f"{report.seconds:.1f}")
    empty = report.tickers_without_days
    if empty:
        t.add_row(
            Text("warning", style="bold yellow"),
            Text(f"{len(empty)} ticker(s) with no usable day, their bars will be refused: "
                 f"{_few(empty)}", style="yellow"),
        )  # fmt: skip
    return t


def ticker_table(report: LoadReport, most: int = 20) -> Table:
    """Per ticker: rows kept, days kept and days dropped by reason (the largest first)."""
    t = Table(title="history per ticker")
    for col in ("ticker", "rows kept", "days kept", "days dropped (reason)"):
        t.add_column(col, justify="left" if col.startswith(("ticker", "days dropped")) else "right")
    ranked = sorted(report.per_ticker.items(), key=lambda kv: (kv[1].days_kept, kv[0]))
    for ticker, r in ranked[:most]:
        dropped = "; ".join(f"{n} {why}" for why, n in sorted(r.days_dropped.items()))
        t.add_row(ticker, f"{r.rows_kept:,}", f"{r.days_kept:,}", dropped or "-",
                  style="yellow" if r.days_kept == 0 else None)  # fmt: skip
    if len(ranked) > most:
        t.caption = f"{len(ranked) - most} more in summary.json (fewest days first)"
    return t


def _few(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def summary_table(stats: RunStats, info: dict[str, str]) -> Table:
    """The end-of-run summary."""
    t = Table(title="summary", show_header=False)
    for key, value in info.items():
        t.add_row(key, value)
    t.add_row("bars accepted", str(stats.accepted))
    rejected = stats.rejected
    t.add_row(
        "bars rejected",
        Text(f"{sum(rejected.values())}"
             + (f"  ({'; '.join(f'{n}× {r}' for r, n in sorted(rejected.items()))})"
                if rejected else "")),
    )  # fmt: skip
    t.add_row(
        "signals published",
        f"{stats.published:,} new"
        + (f", {stats.repeats} repeats left as they were" if stats.repeats else ""),
    )
    if stats.derived:
        t.add_row("timing, rebalance, risk and pair entries", f"{stats.derived:,} new")
    if stats.pending:
        t.add_row("signals pending (Redis down)", str(stats.pending))
    if stats.spilled:
        where = f"{stats.spilled:,} in {stats.spill_path}: simsignal flush"
        t.add_row(Text("signals spilled (Redis down)", style="red"), Text(where))
    if stats.refused_backfill:
        t.add_row(Text("signals refused (back-fill)", style="red"),
                  str(len(stats.refused_backfill)))  # fmt: skip
    if stats.engine_errors:
        t.add_row("engine errors (see the log)", str(stats.engine_errors))
    if stats.coordinator_restarted or stats.resumed_batches:
        t.add_row("resumed from the journal", f"{stats.resumed_batches} batch(es)"
                  + (" after a coordinator restart" if stats.coordinator_restarted
                     else ""))  # fmt: skip
    t.add_row(
        "latency (bar in → signal out)",
        f"p50 {stats.p50_ms:.2f} ms, p99 {stats.p99_ms:.2f} ms, "
        f"max {stats.max_ms:.2f} ms over {stats.minutes} minutes",
    )
    if stats.restarts:
        t.add_row("shard recoveries", str(stats.restarts))
    return t
