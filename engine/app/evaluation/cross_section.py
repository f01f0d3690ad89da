"""Judging a signal across a market: rank IC and a long–short decile spread after costs.

What a fund asks of a cross-sectional signal is whether, at one minute, the tickers it ranks
higher go on to do better than those it ranks lower. Per (test day, checkpoint), over the
tickers with a forecast:

- **rank IC**: Spearman's correlation of `pred_move` with the realised move to the close;
- **long–short**: the mean move of the top decile by `pred_move` minus that of the bottom
  decile (ties by ticker name), held from the checkpoint to the close. Each leg is bought and
  sold once, so the costs are 4 × the cost per side.

Over days: the mean and its t statistic (one value per day, so days count as independent and
the tickers of one day do not). "pooled" first averages a day's checkpoints, then goes over days.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

DECILE = 10
MIN_TICKERS = 10  # fewer and a decile is under one ticker


def cross_section(frame: pd.DataFrame, cost_bps: float, published: str = "") -> dict[str, Any]:
    """`cross_section` of the report: per algorithm, per checkpoint and pooled.

    `checkpoints` at the top are the `published` algorithm's (the one the band follows).
    """
    per_minute = daily_values(frame, cost_bps)
    algos: dict[str, Any] = {}
    for algo, rows in per_minute.groupby("algo", sort=False):
        checkpoints = {str(m): summary(at) for m, at in rows.groupby("minute", sort=True)}
        pooled = rows.groupby("date")[["ic", "spread", "after_costs"]].mean()
        checkpoints["pooled"] = summary(pooled)
        algos[str(algo)] = {"checkpoints": checkpoints}
    top = algos.get(published, {"checkpoints": {}})["checkpoints"]
    return {"deciles": DECILE, "min_tickers": MIN_TICKERS, "cost_bps_per_side": cost_bps,
            "algorithm": published, "checkpoints": top, "algorithms": algos}  # fmt: skip


def daily_values(frame: pd.DataFrame, cost_bps: float) -> pd.DataFrame:
    """One row per (algorithm, date, minute) with enough tickers: IC, spread, after costs."""
    rows = frame[np.isfinite(frame["pred_move"]) & np.isfinite(frame["move"])]
    rows = rows.sort_values(["algo", "date", "minute", "ticker"], kind="stable")
    groups = rows.groupby(["algo", "date", "minute"], sort=False)
    n = groups["ticker"].transform("size")
    keep = n >= MIN_TICKERS
    rows, n = rows[keep], n[keep]
    groups = rows.groupby(["algo", "date", "minute"], sort=False)
    a = groups["pred_move"].rank(method="average")
    b = groups["move"].rank(method="average")
    ic = _pearson(rows[["algo", "date", "minute"]].assign(a=a, b=b))
    place = groups["pred_move"].rank(method="first")  # ties by ticker: rows are sorted by it
    cut = (n // DECILE).clip(lower=1)
    legs = rows[["algo", "date", "minute"]].assign(
        top=np.where(place > n - cut, rows["move"], np.nan),
        bottom=np.where(place <= cut, rows["move"], np.nan),
    )
    means = legs.groupby(["algo", "date", "minute"], sort=False)[["top", "bottom"]].mean()
    out = means.assign(ic=ic, spread=means["top"] - means["bottom"])
    out["after_costs"] = out["spread"] - 4.0 * cost_bps / 1e4
    return out.reset_index()


def _pearson(ranks: pd.DataFrame) -> pd.Series:
    """Pearson's r of columns a and b within each (algo, date, minute): Spearman's on ranks."""
    g = ranks.assign(ab=ranks["a"] * ranks["b"], aa=ranks["a"] ** 2, bb=ranks["b"] ** 2)
    s = g.groupby(["algo", "date", "minute"], sort=False)[["a", "b", "ab", "aa", "bb"]].mean()
    cov = s["ab"] - s["a"] * s["b"]
    var = (s["aa"] - s["a"] ** 2) * (s["bb"] - s["b"] ** 2)
    return (cov / np.sqrt(var.where(var > 0))).rename("ic")


def summary(days: pd.DataFrame) -> dict[str, float]:
    """Mean and t statistic over days of the IC and the long–short spread."""
    out: dict[str, float] = {"n_days": len(days)}
    for name, column in (("rank_ic", "ic"), ("long_short_before_costs", "spread"),
                         ("long_short_after_costs", "after_costs")):  # fmt: skip
        mean, t = mean_and_t(days[column].to_numpy(np.float64))
        out[name if name != "rank_ic" else "rank_ic_mean"] = mean
        out[f"{name}_t" if name != "rank_ic" else "rank_ic_t"] = t
    return out


def mean_and_t(values: np.ndarray) -> tuple[float, float]:
    """The mean of the finite values and its t statistic, mean / (sd / √n) with ddof = 1."""
    v = values[np.isfinite(values)]
    if len(v) < 2:
        return (float(v.mean()) if len(v) else math.nan), math.nan
    sd = float(v.std(ddof=1))
    return float(v.mean()), float(v.mean() / (sd / math.sqrt(len(v)))) if sd > 0 else math.nan


def reading(section: dict[str, Any], algo: str) -> str:
    """One line on `algo`'s pooled rank IC and long–short spread after costs."""
    p = section["algorithms"][algo]["checkpoints"]["pooled"]
    if not p["n_days"]:
        return f"{algo}: no day had {MIN_TICKERS} tickers with a forecast."
    ic, t = p["rank_ic_mean"], p["rank_ic_t"]
    ls, ls_t = p["long_short_after_costs"], p["long_short_after_costs_t"]
    skill = "no skill"
    if not math.isnan(t) and abs(t) >= 2:
        skill = "some skill" if ic > 0 else "skill the wrong way round"
    return (f"{algo}: mean rank IC {ic:+.3f} (t = {t:.1f}, {p['n_days']} days): {skill} in "
            f"ranking tickers; top minus bottom decile {ls:+.3%} a trade after costs "
            f"(t = {ls_t:.1f}).")  # fmt: skip


def html_table(section: dict[str, Any]) -> str:
    """The section as an HTML table (pooled rows per algorithm) and its reading."""
    rows = "".join(
        f"<tr><td>{html.escape(algo)}</td><td>{p['n_days']}</td><td>{p['rank_ic_mean']:+.3f}</td>"
        f"<td>{p['rank_ic_t']:.1f}</td><td>{p['long_short_before_costs']:+.3%}</td>"
        f"<td>{p['long_short_after_costs']:+.3%}</td><td>{p['long_short_after_costs_t']:.1f}</td>"
        "</tr>"
        for algo, per in section["algorithms"].items()
        for p in [per["checkpoints"]["pooled"]]
    )
    said = "".join(f"<li>{html.escape(line)}</li>" for line in section.get("reading", []))
    return (
        "<h2>Across the market: ranking tickers</h2><table><tr><th>algorithm</th><th>days</th>"
        "<th>rank IC</th><th>t</th><th>long–short</th><th>after costs</th><th>t</th></tr>"
        f"{rows}</table><ul>{said}</ul>"
    )
