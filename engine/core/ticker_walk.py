"""One ticker's walk-forward at checkpoints, where its days are held: forecasts and outcomes.

The columns are those of the in-process walk (`WALK_COLUMNS`), one row per (test day,
checkpoint, algorithm), from the ticker's own earlier days only; a shard answers a market
`evaluate` with them for the tickers it holds. The neighbours come from `checkpoint_top_k`,
the forecasts from the live `forecast_many` and `ensemble_columns`, the risk rows from
`risk_baselines` (the live risk model refitted for every test day).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.core.algorithms import ENSEMBLE, Algorithm
from simsignal.engine.core.checkpoint_top_k import Nearest, nearest_at
from simsignal.engine.core.forecast import ensemble_columns, forecast_many, move, rose
from simsignal.engine.core.risk_baselines import day_risk, ticker_risk_rows

F64 = NDArray[np.float64]
WALK_COLUMNS = (
    "date", "ticker", "minute", "algo", "x_now", "x_end", "pred_close", "pred_move", "up_raw",
    "q10", "q90", "dispersion", "move", "mean_move", "base_up", "additive", "an_abs_move",
    "an_rv", "an_range",
)  # fmt: skip
_FORECAST = ("pred_close", "pred_move", "up_raw", "q10", "q90", "dispersion")


@dataclass(frozen=True)
class TickerWalk:
    """What a ticker's walk needs besides its days."""

    algos: tuple[Algorithm, ...]  # the scoring algorithms, in the run's order
    ensemble: bool  # also the ensemble of their forecasts (`forecast.ensemble`)
    k: int
    minutes: tuple[int, ...]  # checkpoints, 1-based
    risk_algo: str = ""  # whose neighbours feed the risk analogue; "": no risk rows


def walk_ticker(
    ticker: str, dates: Sequence[str], cols: NDArray[np.floating], tests: Sequence[int],
    how: TickerWalk,
) -> tuple[dict[str, NDArray[Any]], dict[str, NDArray[Any]]]:  # fmt: skip
    """The walk's rows and the risk rows (dated) of the test rows `tests` of one ticker.

    `cols` holds the ticker's days slot-major [slots, days] in date order, `dates` their
    dates. A test row with no earlier day has no rows.
    """
    minutes = sorted(set(how.minutes))
    ratio = np.asarray(cols, np.float64).T  # [days, slots]
    got = nearest_at(cols, tests, minutes, how.algos, how.k)
    tests = [j for j in tests if j > 0]
    risk_days = day_risk(ratio)
    targets = risk_days.targets[:, [m - 1 for m in minutes]]  # [days, minutes, 3]
    zero = np.zeros((1, ratio.shape[1]))
    sums = {  # over the days before each row: the means are these / the row's index
        "mean_move": np.concatenate([zero, np.cumsum(move(ratio, ratio[:, -1:]), axis=0)]),
        "base_up": np.concatenate([zero, np.cumsum(rose(ratio, ratio[:, -1:]), axis=0)]),
    }
    parts: dict[str, list[NDArray[Any]]] = {c: [] for c in WALK_COLUMNS}
    analogue = np.full((len(tests), len(minutes), 3), np.nan)
    n, n_before = len(tests), np.asarray(tests, np.float64)
    for c, m in enumerate(minutes):
        made = {a.name: _forecasts(ratio, tests, m, [got[(j, m, a.name)] for j in tests])
                for a in how.algos}  # fmt: skip
        if how.ensemble and made:
            each = list(made.values())
            made[ENSEMBLE] = ensemble_columns(
                ratio[tests, m - 1], np.stack([f["dispersion"] for f in each], axis=1),
                {c: np.stack([f[c] for f in each], axis=1)
                 for c in ("pred_close", "up_raw", "q10", "q90")},
            )  # fmt: skip
        x_now, x_end = ratio[tests, m - 1], ratio[tests, -1]
        for name, f in made.items():
            an = np.full((n, 3), np.nan)
            if name != ENSEMBLE:
                an = np.stack([targets[got[(j, m, name)].rows, c].mean(axis=0) for j in tests])
                if name == how.risk_algo:
                    analogue[:, c] = an
            columns = {
                "date": np.asarray(dates, object)[tests], "ticker": np.full(n, ticker, object),
                "minute": np.full(n, m), "algo": np.full(n, name, object),
                "x_now": x_now, "x_end": x_end, **f, "move": move(x_now, x_end),
                "mean_move": sums["mean_move"][tests, m - 1] / n_before,
                "base_up": sums["base_up"][tests, m - 1] / n_before,
                "additive": np.zeros(n, bool),
                "an_abs_move": an[:, 0], "an_rv": an[:, 1], "an_range": an[:, 2],
            }  # fmt: skip
            for key, values in columns.items():
                parts[key].append(np.asarray(values))
    risk: dict[str, NDArray[Any]] = {}
    if how.risk_algo and tests:
        risk = ticker_risk_rows(ratio, tests, minutes, analogue, risk_days)
        risk["date"] = np.asarray(dates, object)[risk.pop("day").astype(np.intp)]
    empty = {c: np.zeros(0) for c in WALK_COLUMNS}
    return {c: np.concatenate(v) if v else empty[c] for c, v in parts.items()}, risk


def _forecasts(ratio: F64, tests: list[int], m: int, near: list[Nearest]) -> dict[str, F64]:
    """forecast_many over the test days, grouped by neighbour count (early days have fewer)."""
    out = {c: np.full(len(tests), np.nan) for c in _FORECAST}
    sizes = np.array([len(n.rows) for n in near])
    for size in np.unique(sizes).tolist():
        at = np.flatnonzero(sizes == size)
        rows = np.stack([near[i].rows for i in at])
        ends = np.stack([near[i].ends for i in at])
        later = np.minimum(ends + (ratio.shape[1] - m), ratio.shape[1] - 1)
        made = forecast_many(
            ratio[np.asarray(tests)[at], m - 1],
            np.stack([near[i].scores for i in at]),
            ratio[rows, ends],
            ratio[rows, later],
        )
        for c, f in zip(
            _FORECAST,
            ("pred_close", "pred_move", "up_prob", "q10", "q90", "dispersion"),
            strict=True,
        ):
            out[c][at] = [getattr(v, f) for v in made]
    return out
