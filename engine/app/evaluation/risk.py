"""How much is left of the day, judged: the risk forecasters scored on the walk's test days.

The targets and forecasters themselves (abs_move, rv and range left; hist_mean, yesterday,
scaled_rv, har_x, analogue and the live model as `published`) are defined in
`engine/core/risk_baselines.py`, where the shards compute them for a market evaluate too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from simsignal.engine.app.evaluation import metrics
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.risk_baselines import (
    FORECASTERS,
    TARGETS,
    Baselines,
    DayRisk,
    day_risk,
    forecasts,
    har_design,
    ticker_risk_rows,
)
from simsignal.engine.core.risk_model import MIN_FIT

__all__ = ["FORECASTERS", "MIN_FIT", "TARGETS", "Baselines", "DayRisk", "day_risk", "forecasts",
           "har_design", "risk_frame", "risk_section", "scored"]  # fmt: skip
F64 = NDArray[np.float64]


def risk_frame(curves: DayCurves, walked: pd.DataFrame, algo: str) -> pd.DataFrame:
    """One row per (date, ticker, checkpoint) the walk forecast: targets and every forecaster.

    The analogue's neighbours are `algo`'s (the walk's `an_*` columns); pair spreads are left
    out (their risk is not a ticker's).
    """
    rows = walked[(walked["algo"] == algo) & ~walked["additive"].astype(bool)]
    parts = []
    dates = curves.dates.astype(str)
    for ticker, at in rows.groupby("ticker", sort=True):
        own = curves.tickers == ticker
        names = dates[own]
        index = {d: i for i, d in enumerate(names.tolist())}
        day = np.array([index[str(d)] for d in at["date"]])
        minute = at["minute"].to_numpy(int)
        days, minutes = sorted(set(day.tolist())), sorted(set(minute.tolist()))
        analogue = np.full((len(days), len(minutes), 3), math.nan)
        analogue[np.searchsorted(days, day), np.searchsorted(minutes, minute)] = at[
            ["an_abs_move", "an_rv", "an_range"]
        ].to_numpy(np.float64)
        made = pd.DataFrame(ticker_risk_rows(curves.ratio[own], days, minutes, analogue))
        made = made.merge(pd.DataFrame({"day": day, "minute": minute}), on=["day", "minute"])
        parts.append(made.assign(date=names[made["day"].to_numpy(int)], ticker=ticker))
    if not parts:
        return pd.DataFrame(columns=["date", "ticker", "minute", *TARGETS])
    return pd.concat(parts, ignore_index=True).drop(columns="day")


def qlike(realised: F64, forecast: F64) -> float:
    """Mean QLIKE loss of the variance forecasts h = f² for σ² = realised²: σ²/h − log(σ²/h) − 1."""
    ratio = np.asarray(realised, np.float64) ** 2 / np.asarray(forecast, np.float64) ** 2
    return float(np.mean(ratio - np.log(ratio) - 1.0)) if len(ratio) else math.nan


def scored(rows: pd.DataFrame, target: str) -> dict[str, dict[str, float]]:
    """Each forecaster of `target` on the rows where all of them and the outcome are usable.

    One common sample, so the numbers compare; DM runs on one absolute-error loss per day.
    """
    names = [n for n in FORECASTERS if rows[f"{target}:{n}"].notna().any()]
    usable = rows[target].notna()
    for n in names:
        usable &= rows[f"{target}:{n}"].notna()
    at = rows[usable]
    y = at[target].to_numpy()
    loss = {n: (at[f"{target}:{n}"] - at[target]).abs() for n in names}
    daily = pd.DataFrame(loss | {"date": at["date"]}).groupby("date").mean()
    out: dict[str, dict[str, float]] = {}
    for n in names:
        f = at[f"{target}:{n}"].to_numpy()
        e = f - y
        block = {"n": len(at), "mae": _mean(np.abs(e)), "rmse": math.sqrt(_mean(e * e)),
                 "spearman": metrics.spearman_ic(f, y)[0],
                 "dm_pvalue_vs_hist_mean": math.nan if n == "hist_mean" else
                 metrics.diebold_mariano(daily[n], daily["hist_mean"])[1]}  # fmt: skip
        if target == "rv":  # QLIKE needs both sides above zero
            positive = (y > 0) & (f > 0)
            block["qlike"] = qlike(y[positive], f[positive])
        out[n] = block
    return out


def _mean(v: F64) -> float:
    return float(np.mean(v)) if len(v) else math.nan


def risk_section(frame: pd.DataFrame, algo: str) -> dict[str, Any]:
    """`risk` of the report: per target, per checkpoint and pooled, every forecaster scored."""
    targets: dict[str, Any] = {}
    for target in TARGETS:
        per: dict[str, Any] = {}
        for minute, at in frame.groupby("minute", sort=True):
            per[str(minute)] = {"forecasters": scored(at, target)}
        per["pooled"] = {"forecasters": scored(frame, target)}
        targets[target] = {"checkpoints": per}
    return {"analogue_algorithm": algo, "targets": targets,
            "reading": risk_reading(targets)}  # fmt: skip


def risk_reading(targets: dict[str, Any]) -> list[str]:
    """Per target: the best forecaster by MAE, against the historical mean; the analogue."""
    lines = []
    for target, per in targets.items():
        pooled = per["checkpoints"]["pooled"]["forecasters"]
        if "hist_mean" not in pooled or not pooled["hist_mean"]["n"]:
            lines.append(f"{target}: nothing to score.")
            continue
        best = min(pooled, key=lambda n: pooled[n]["mae"])
        base, b = pooled["hist_mean"], pooled[best]
        p = b["dm_pvalue_vs_hist_mean"]
        gain = 1 - b["mae"] / base["mae"]
        if best != "hist_mean" and not math.isnan(p) and p < 0.01:
            verdict = f"beats the historical mean by {gain:.0%} of its MAE (DM p = {p:.2g})"
        elif best == "hist_mean":
            verdict = "nothing beats the historical mean"
        else:
            verdict = (
                f"{gain:.0%} below the historical mean's MAE, not significant (DM p = {p:.2g})"
            )
        a = pooled.get("analogue")
        said = ""
        if a is not None and best != "analogue":
            rel = a["mae"] / b["mae"] - 1
            said = (f"; the neighbours' analogue is {rel:.0%} worse than {best} "
                    f"(rank correlation {a['spearman']:+.2f})")  # fmt: skip
        live = pooled.get("published")
        if live is not None and best != "published":
            said += (f"; the live risk signal (published) is {live['mae'] / b['mae'] - 1:.0%} "
                     f"worse than {best}")  # fmt: skip
        lines.append(f"{target}: {best} is best, {verdict}{said} (n = {b['n']}).")
    return lines
