"""The derived signals as strategies: the live timing and rebalance rules on the forecasts.

Timing: one position per checkpoint, held to the close. Rebalance: each test day starts in
cash; at every checkpoint the live rules (engine/core/derived.py) set the timing positions and move
the weights toward their target by at most `max_turnover`; the weights are held to the next
checkpoint and sold at the close. Costs are charged on turnover.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from simsignal.engine.core.derived import RebalanceRule, TimingRule, edges
from simsignal.engine.core.forecast import move


def row_edges(rows: pd.DataFrame) -> NDArray[np.float64]:
    """The live edge (engine/core/derived.py) of every row."""
    return edges(rows["pred_move"].to_numpy(), rows["dispersion"].to_numpy())


def positions(rows: pd.DataFrame, rule: TimingRule) -> pd.Series:
    """The live timing rule (engine/core/derived.py) on every row."""
    held = rule.positions(rows["up_prob"].to_numpy(), row_edges(rows))
    return pd.Series(held.astype(np.float64), index=rows.index)


def rebalance_strategy(
    rows: pd.DataFrame, timing: TimingRule, rule: RebalanceRule, cost_bps: float
) -> dict[str, Any]:
    """Summed daily returns of the rebalanced portfolio, before and after costs.

    The comparison is an equal-weight basket of the same tickers, bought at the first
    checkpoint and held to the close.
    """
    long = positions(rows, timing).to_numpy() > 0
    rows = rows.assign(edge=np.where(long, row_edges(rows), 0.0))
    gross, net, basket, turnover = [], [], [], []
    for _, day in rows.groupby("date", sort=True):
        level = {(t, m): x for t, m, x in zip(day["ticker"], day["minute"], day["x_now"],
                                               strict=True)}  # fmt: skip
        close = dict(zip(day["ticker"], day["x_end"], strict=True))
        minutes = sorted(day["minute"].unique())
        held: dict[str, float] = {}
        edges: dict[str, float] = {}
        made = traded = 0.0
        for i, m in enumerate(minutes):
            now = day[day["minute"] == m]
            edges.update(zip(now["ticker"], now["edge"], strict=True))
            moved = rule.step(held, rule.target(edges))
            traded += sum(abs(moved.get(t, 0.0) - held.get(t, 0.0)) for t in set(moved) | set(held))
            held = moved
            for t, w in held.items():
                later = level.get((t, minutes[i + 1])) if i + 1 < len(minutes) else None
                end = close[t] if later is None else later
                made += w * float(move(level[(t, m)], end))
        traded += sum(abs(w) for w in held.values())  # sold at the close
        first = day[day["minute"] == minutes[0]]
        gross.append(made)
        net.append(made - 1e-4 * cost_bps * traded)
        basket.append(float(move(first["x_now"], first["x_end"]).mean()))
        turnover.append(traded)
    return {
        "days": len(gross),
        "total_return": float(np.sum(gross)),
        "total_return_after_cost": float(np.sum(net)),
        "basket_total": float(np.sum(basket)),
        "mean_turnover": float(np.mean(turnover)) if turnover else 0.0,
        "days_invested": int(sum(1 for t in turnover if t > 0)),
        "cap": rule.cap,
        "max_turnover": rule.max_turnover,
        "cost_bps_per_side": cost_bps,
    }
