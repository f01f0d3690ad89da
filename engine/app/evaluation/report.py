"""The evaluation report: statistics per algorithm and checkpoint, a plain reading, JSON, HTML.

JSON schema `version` 3 (documented in docs/evaluation.md): `results[algo][checkpoint | "pooled"]`,
`risk` and `band` (new in 2), `cross_section` and `on` (new in 3; a market of 10 tickers or more).
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import orjson
import pandas as pd

from simsignal.engine.app.evaluation import metrics
from simsignal.engine.app.evaluation.cross_section import html_table
from simsignal.engine.app.evaluation.strategies import positions, rebalance_strategy
from simsignal.engine.core.derived import RebalanceRule, TimingRule

VERSION = 3
ALPHA = 0.01  # a test "rejects no skill" below this p-value
CLUSTERED = ("With several checkpoints a day, the hit-rate interval and the PT p-value are "
             "day-clustered: a day's checkpoints are one piece of evidence.")  # fmt: skip


def block(
    rows: pd.DataFrame, cost_bps: float, rule: TimingRule = TimingRule(), equity: bool = False
) -> dict[str, Any]:
    """Every statistic of one set of forecasts (one algorithm, one checkpoint or pooled)."""
    move, pred = rows["move"], rows["pred_move"]
    rated = (move != 0) & (pred != 0)
    hits = ((pred > 0) == (move > 0))[rated]
    n_hit = int(rated.sum())
    moved = move[move != 0]
    e_model = rows["pred_close"] - rows["x_end"]
    e_none = rows["x_now"] - rows["x_end"]
    spread = rows.get("additive", False)
    e_mean = pd.Series(
        np.where(spread, rows["x_now"] + rows["mean_move"],
                 (1 + rows["x_now"]) * (1 + rows["mean_move"]) - 1) - rows["x_end"],
        index=rows.index,
    )  # fmt: skip
    daily = pd.DataFrame({"date": rows["date"], "m": e_model**2, "n": e_none**2, "h": e_mean**2})
    daily = daily.groupby("date").mean()
    dm_none, p_none = metrics.diebold_mariano(daily["m"], daily["n"])
    dm_mean, p_mean = metrics.diebold_mariano(daily["m"], daily["h"])
    ic, ic_t = metrics.spearman_ic(pred, move)
    y = metrics.outcome(move)
    pos = positions(rows, rule)
    gross = pos * move
    net = gross - 2e-4 * cost_bps * pos.abs()
    per_day = pd.DataFrame({"date": rows["date"], "g": gross, "c": net, "b": move})
    per_day = per_day.groupby("date").mean()
    out: dict[str, Any] = {
        "n": len(rows),
        "days": int(rows["date"].nunique()),
        "n_direction": n_hit,
        "hit_rate": float(hits.mean()) if n_hit else math.nan,
        "hit_rate_ci95": list(metrics.wilson(int(hits.sum()), n_hit)),
        "hit_rate_always_up": float((moved > 0).mean()) if len(moved) else math.nan,
        "hit_rate_ci95_days": list(metrics.clustered_mean(hits, rows["date"][rated])[1:]),
        "pt_pvalue": metrics.pesaran_timmermann((pred > 0)[rated], (move > 0)[rated]),
        "pt_pvalue_days": metrics.pesaran_timmermann_days(
            (pred > 0)[rated], (move > 0)[rated], rows["date"][rated]
        ),
        "mae": float(e_model.abs().mean()),
        "rmse": float(np.sqrt((e_model**2).mean())),
        "mae_no_move": float(e_none.abs().mean()),
        "rmse_no_move": float(np.sqrt((e_none**2).mean())),
        "mae_hist_mean": float(e_mean.abs().mean()),
        "rmse_hist_mean": float(np.sqrt((e_mean**2).mean())),
        "dm_stat_no_move": dm_none,
        "dm_pvalue_no_move": p_none,
        "dm_stat_hist_mean": dm_mean,
        "dm_pvalue_hist_mean": p_mean,
        "ic_spearman": ic,
        "ic_tstat": ic_t,
        "brier": metrics.brier(rows["up_prob"], y),
        "brier_raw": metrics.brier(rows["up_raw"], y),
        "brier_base_rate": metrics.brier(rows["base_up"], y),
        "reliability": metrics.reliability(rows["up_prob"], y),
        "strategy": {
            "trades": int((pos != 0).sum()),
            "long_share": float((pos > 0).mean()),
            "short_share": float((pos < 0).mean()),
            "mean_return": float(gross.mean()),
            "mean_return_after_cost": float(net.mean()),
            "total_return": float(per_day["g"].sum()),
            "total_return_after_cost": float(per_day["c"].sum()),
            "buy_and_hold_total": float(per_day["b"].sum()),
            "cost_bps_per_side": cost_bps,
            "prob_margin": rule.prob_margin,
            "min_edge": rule.min_edge,
        },
    }
    if equity:
        out["equity"] = {
            "dates": per_day.index.tolist(),
            "strategy": per_day["g"].cumsum().tolist(),
            "after_cost": per_day["c"].cumsum().tolist(),
            "buy_and_hold": per_day["b"].cumsum().tolist(),
        }
    return out


def quoted(b: dict[str, Any]) -> tuple[list[float], float]:
    """The hit-rate interval and direction p-value to quote: by day when days repeat."""
    if b["n"] > b["days"]:
        return b["hit_rate_ci95_days"], b["pt_pvalue_days"]
    return b["hit_rate_ci95"], b["pt_pvalue"]


def reading(b: dict[str, Any]) -> list[str]:
    """What one block means, in plain words; never more than the numbers support.

    With several checkpoints a day, the day-clustered interval and test are the ones quoted:
    they count a day's checkpoints as the one piece of evidence they are.
    """
    (lo, hi), pt = quoted(b)
    up = b["hit_rate_always_up"]
    clustered = " by day" if b["n"] > b["days"] else ""
    lines = []
    if b["hit_rate"] <= up:
        lines.append(f"Direction: no better than 'always up' ({b['hit_rate']:.1%} against "
                     f"{up:.1%}).")  # fmt: skip
    elif not math.isnan(pt) and pt < ALPHA:
        lines.append(f"Direction: better than chance (hit {b['hit_rate']:.1%}, "
                     f"95% CI{clustered} {lo:.1%}–{hi:.1%}, PT p = {pt:.2g}) and than 'always up' "
                     f"({up:.1%}).")  # fmt: skip
    else:
        lines.append(f"Direction: no evidence of skill (hit {b['hit_rate']:.1%}, "
                     f"95% CI{clustered} {lo:.1%}–{hi:.1%}, PT p = {pt:.2g}).")  # fmt: skip
    dm, p = b["dm_stat_no_move"], b["dm_pvalue_no_move"]
    if not math.isnan(p) and p < ALPHA and dm < 0:
        lines.append(f"Size: beats 'no further move' (RMSE {b['rmse']:.3%} vs "
                     f"{b['rmse_no_move']:.3%}, DM p = {p:.2g}).")  # fmt: skip
    elif b["rmse"] > b["rmse_no_move"]:
        lines.append(f"Size: worse than 'no further move' (RMSE {b['rmse']:.3%} vs "
                     f"{b['rmse_no_move']:.3%}).")  # fmt: skip
    else:
        lines.append(f"Size: not distinguishable from 'no further move' (DM p = {p:.2g}).")
    brier, base = b["brier"], b["brier_base_rate"]
    verb = "better than" if brier < base else "no better than"
    lines.append(f"up_prob: Brier {brier:.4f}, {verb} the base rate's {base:.4f} "
                 f"(uncalibrated {b['brier_raw']:.4f}).")  # fmt: skip
    s = b["strategy"]
    if not s["trades"]:
        lines.append("Timing rule: no trade; up_prob and the edge never both cleared the "
                     f"thresholds (±{s['prob_margin']} around ½, edge "
                     f"{s['min_edge']}).")  # fmt: skip
    else:
        lines.append(f"Timing rule: {s['trades']} trades, {s['total_return_after_cost']:+.2%} "
                     f"after costs ({s['total_return']:+.2%} before) against buy-and-hold "
                     f"{s['buy_and_hold_total']:+.2%}, summed over days.")  # fmt: skip
    r = b.get("rebalance")
    if r:
        lines.append(f"Rebalance: invested on {r['days_invested']} of {r['days']} days, "
                     f"{r['total_return_after_cost']:+.2%} after costs against the basket's "
                     f"{r['basket_total']:+.2%}.")  # fmt: skip
    return lines


def build(
    frame: pd.DataFrame,
    meta: dict[str, Any],
    cost_bps: float,
    rule: TimingRule = TimingRule(),
    rebalance: RebalanceRule | None = RebalanceRule(),
) -> dict[str, Any]:
    """The whole report: meta, then per algorithm the pooled block and one per checkpoint.

    `rebalance` None: no portfolio (pair spreads are not in the rebalance).
    """
    results: dict[str, dict[str, Any]] = {}
    readings: dict[str, list[str]] = {}
    for algo, rows in frame.groupby("algo", sort=False):
        per: dict[str, Any] = {"pooled": block(rows, cost_bps, rule, equity=True)}
        if rebalance is not None:
            per["pooled"]["rebalance"] = rebalance_strategy(rows, rule, rebalance, cost_bps)
        for minute, at in rows.groupby("minute", sort=True):
            per[str(minute)] = block(at, cost_bps, rule)
        results[str(algo)] = per
        readings[str(algo)] = reading(per["pooled"])
    return {"version": VERSION, **meta, "results": results, "reading": readings}


def band_line(b: dict[str, Any]) -> str:
    """The band's coverage in one sentence, raw and calibrated."""
    p = b["checkpoints"]["pooled"]
    if not p["n"]:
        return "no forecast to cover."
    return (f"{b['algorithm']}'s [q10, q90] held {p['coverage_raw']:.1%} of the closes (target "
            f"{b['target']:.0%}); widened or narrowed walk-forward, {p['coverage_calibrated']:.1%} "
            f"(n = {p['n']}).")  # fmt: skip


def write_json(report: dict[str, Any], path: Path) -> Path:
    """The report as JSON; NaN (an undefined statistic) becomes null."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(_nulls(report), option=orjson.OPT_INDENT_2))
    return path


def _nulls(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nulls(v) for v in value]
    return value


def write_html(report: dict[str, Any], path: Path) -> Path:
    """One self-contained page: the reading, the pooled table and four plots."""
    results = report["results"]
    rows = []
    for algo, per in results.items():
        b = per["pooled"]
        (lo, hi), pt = quoted(b)
        rows.append(
            f"<tr><td>{html.escape(algo)}</td><td>{b['n']}</td><td>{b['hit_rate']:.1%} "
            f"({lo:.1%}–{hi:.1%})</td><td>{b['hit_rate_always_up']:.1%}</td>"
            f"<td>{shown(pt)}</td><td>{b['rmse']:.3%}</td><td>{b['rmse_no_move']:.3%}</td>"
            f"<td>{shown(b['dm_pvalue_no_move'])}</td><td>{shown(b['ic_spearman'], '+.3f')}</td>"
            f"<td>{b['brier']:.4f}</td><td>{b['brier_base_rate']:.4f}</td></tr>"
        )
    readings = "".join(
        f"<h3>{html.escape(a)}</h3><ul>{''.join(f'<li>{html.escape(x)}</li>' for x in lines)}</ul>"
        for a, lines in report["reading"].items()
    )
    plots = "".join(f'<img alt="{name}" src="data:image/png;base64,{png}">'
                    for name, png in _plots(results))  # fmt: skip
    risk_rows = "".join(
        f"<tr><td>{html.escape(target)}</td><td>{html.escape(name)}</td><td>{b['n']}</td>"
        f"<td>{b['mae']:.3%}</td><td>{b['rmse']:.3%}</td><td>{shown(b['spearman'], '+.2f')}</td>"
        f"<td>{shown(b['dm_pvalue_vs_hist_mean'])}</td></tr>"
        for target, per in report["risk"]["targets"].items()
        for name, b in per["checkpoints"]["pooled"]["forecasters"].items()
    )
    risk_reading = "".join(f"<li>{html.escape(x)}</li>" for x in report["risk"]["reading"])
    risk = (
        "<h2>Rest of the day: how much is left</h2><table><tr><th>target</th><th>forecaster</th>"
        "<th>n</th><th>MAE</th><th>RMSE</th><th>rank corr.</th><th>DM p vs hist. mean</th></tr>"
        f"{risk_rows}</table><ul>{risk_reading}</ul>"
        f"<p>Band: {html.escape(band_line(report['band']))}</p>"
    )
    cross = html_table(report["cross_section"]) if "cross_section" in report else ""
    title = f"simsignal evaluate: {report['from']} to {report['to']}"
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{padding:2px 8px;"
        "text-align:right}img{width:100%}</style>"
        f"<h1>{html.escape(title)}</h1><p>{report['days']} test days, tickers "
        f"{html.escape(', '.join(report['tickers']))}, k = {report['k']}, checkpoints "
        f"{html.escape(str(report['checkpoints']))}. Walk-forward: each day is forecast from "
        "earlier days only.</p><table><tr><th>algorithm</th><th>n</th><th>hit rate (95% CI)</th>"
        "<th>always up</th><th>PT p</th><th>RMSE</th><th>RMSE no move</th><th>DM p</th>"
        f"<th>IC</th><th>Brier</th><th>Brier base</th></tr>{''.join(rows)}</table>"
        f"<p>{CLUSTERED}</p>"
        f"{readings}{risk}{cross}{plots}"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path


def write_plots(report: dict[str, Any], folder: Path) -> list[Path]:
    """The HTML's four plots as PNG files (for documents)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, png in _plots(report["results"]):
        path = folder / f"evaluation-{name.replace(' ', '-')}.png"
        path.write_bytes(base64.b64decode(png))
        out.append(path)
    return out


def shown(v: float, spec: str = ".2g") -> str:
    """A statistic for a table: a dash where it is undefined (NaN)."""
    return "–" if math.isnan(v) else format(v, spec)


def _plots(results: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Hit rate by minute (with its band), reliability, IC by minute, equity."""
    out = []
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    for algo, per in results.items():
        minutes = sorted(int(m) for m in per if m != "pooled")
        hit = [per[str(m)]["hit_rate"] for m in minutes]
        band = np.array([per[str(m)]["hit_rate_ci95"] for m in minutes], np.float64)
        (line,) = ax.plot(minutes, hit, marker="." if len(minutes) < 20 else "", label=algo)
        ax.fill_between(minutes, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.12)
    first = next(iter(results.values()))
    minutes = sorted(int(m) for m in first if m != "pooled")
    ax.plot(
        minutes, [first[str(m)]["hit_rate_always_up"] for m in minutes], "k:", label="always up"
    )
    ax.axhline(0.5, color="0.5", lw=0.8)
    ax.set(xlabel="minute of the day", ylabel="direction hit rate", title="Hit rate by minute")
    ax.legend(fontsize=8)
    out.append(("hit rate by minute", _png(fig)))

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for algo, per in results.items():
        rel = [r for r in per["pooled"]["reliability"] if r["n"]]
        ax.plot([r["mean_prob"] for r in rel], [r["freq"] for r in rel], marker="o", label=algo)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="calibrated up_prob", ylabel="observed share up", title="Reliability")
    ax.legend(fontsize=8)
    out.append(("reliability", _png(fig)))

    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    for algo, per in results.items():
        ms = sorted(int(m) for m in per if m != "pooled")
        ax.plot(ms, [per[str(m)]["ic_spearman"] for m in ms], label=algo)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set(xlabel="minute of the day", ylabel="Spearman IC", title="IC by minute")
    ax.legend(fontsize=8)
    out.append(("ic by minute", _png(fig)))

    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    for algo, per in results.items():
        eq = per["pooled"]["equity"]
        x = pd.to_datetime(eq["dates"])
        (line,) = ax.plot(x, eq["strategy"], label=f"{algo}")
        ax.plot(x, eq["after_cost"], color=line.get_color(), ls="--", lw=0.8)
    ax.plot(x, eq["buy_and_hold"], "k:", label="buy and hold")
    ax.set(ylabel="summed daily mean return", title="Timing rule (dashed: after costs)")
    ax.legend(fontsize=8)
    out.append(("equity", _png(fig)))
    return out


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def checkpoints(spec: str, slots: int) -> tuple[int, ...] | None:
    """`--at`: "all" (None) or comma-separated minutes 1..slots; a clear error otherwise."""
    if spec.strip() == "all":
        return None
    out: list[int] = []
    for part in spec.split(","):
        try:
            m = int(part)
        except ValueError:
            raise ValueError(f"--at: {part!r} is not a minute (1..{slots}) or 'all'") from None
        if not 1 <= m <= slots:
            raise ValueError(f"--at: minute {m} is outside 1..{slots}")
        out.append(m)
    return tuple(sorted(set(out)))
