"""What `simsignal evaluate` prints and writes once the day curves are in this process."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from simsignal.actors.replies import ShardHandle
from simsignal.engine.app.evaluation import report
from simsignal.engine.app.evaluation.evaluate import Evaluation, evaluate
from simsignal.engine.app.evaluation.walk_forward import WalkConfig
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.derived import RebalanceRule, TimingRule


def evaluate_and_write(
    console: Console,
    curves: DayCurves,
    config: WalkConfig,
    start: str,
    end: str,
    tickers: Sequence[str] | None,
    cost_bps: float,
    paths: dict[str, Path],
    rule: TimingRule = TimingRule(),
    rebalance: RebalanceRule = RebalanceRule(),
    shards: Sequence[ShardHandle] = (),
) -> Evaluation:
    """Walk forward with a progress bar; print the pooled table and the reading; write files."""
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True) as bar:
        what = "on the shards (tickers)" if shards else "(test days)"
        task = bar.add_task(f"walking forward {what}", total=None)
        done = evaluate(curves, config, start, end, tickers, cost_bps, rule, rebalance,
                        lambda i, n: bar.update(task, completed=i, total=n), shards)  # fmt: skip
    r = done.report
    console.print(
        f"[green]✓[/] {r['days']} test days {r['from']} … {r['to']}, {r['forecasts']:,} "
        f"forecasts in {r['seconds']:.1f} s (each day from the days before it only)"
    )
    console.print(pooled_table(r))
    for algo, lines in r["reading"].items():
        console.print(f"[bold]{algo}[/]: " + " ".join(lines), highlight=False)
    for algo, lines in r.get("pairs", {}).get("reading", {}).items():
        console.print(f"[bold]pairs, {algo}[/]: " + " ".join(lines), highlight=False)
    console.print("[bold]rest of day, size[/]: " + escape(" ".join(r["risk"]["reading"])),
                  highlight=False)  # fmt: skip
    console.print("[bold]band[/]: " + escape(report.band_line(r["band"])), highlight=False)
    for line in r.get("cross_section", {}).get("reading", []):
        console.print("[bold]across the market[/]: " + escape(line), highlight=False)
    report.write_json(r, paths["json"])
    report.write_html(r, paths["html"])
    done.calibration.save(paths["calibration"])
    if "plots" in paths:
        report.write_plots(r, paths["plots"])
    console.print(f"wrote {paths['json']}, {paths['html']} and {paths['calibration']} "
                  "(for run --calibration)")  # fmt: skip
    return done


def pooled_table(r: dict[str, Any]) -> Table:
    """One row per algorithm: the pooled statistics against their baselines."""
    t = Table(title="pooled over checkpoints " + str(r["checkpoints"]),
              caption=report.CLUSTERED)  # fmt: skip
    for name in ("algorithm", "n", "hit rate (95% CI)", "always up", "PT p", "RMSE",
                 "RMSE no move", "DM p", "IC", "Brier", "Brier base"):  # fmt: skip
        t.add_column(name, justify="left" if name == "algorithm" else "right")
    for algo, per in r["results"].items():
        b = per["pooled"]
        (lo, hi), pt = report.quoted(b)
        t.add_row(algo, f"{b['n_direction']:,}", f"{b['hit_rate']:.1%} ({lo:.1%}–{hi:.1%})",
                  f"{b['hit_rate_always_up']:.1%}", report.shown(pt), f"{b['rmse']:.3%}",
                  f"{b['rmse_no_move']:.3%}", report.shown(b["dm_pvalue_no_move"]),
                  report.shown(b["ic_spearman"], "+.3f"), f"{b['brier']:.4f}",
                  f"{b['brier_base_rate']:.4f}")  # fmt: skip
    return t
