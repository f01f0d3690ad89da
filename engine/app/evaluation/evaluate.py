"""`simsignal evaluate` without the loading: walk forward, calibrate, report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from simsignal.actors.replies import ShardHandle
from simsignal.engine.app.evaluation import calibration, report
from simsignal.engine.app.evaluation.band import band_section, final_scales
from simsignal.engine.app.evaluation.cross_section import MIN_TICKERS, cross_section
from simsignal.engine.app.evaluation.cross_section import reading as cs_reading
from simsignal.engine.app.evaluation.on_shards import walk_on_shards
from simsignal.engine.app.evaluation.risk import risk_frame, risk_section
from simsignal.engine.app.evaluation.walk_forward import (
    Progress,
    WalkConfig,
    dates_to_test,
    moves_to_close,
    up_share,
    walk_forward,
)
from simsignal.engine.core import pairs
from simsignal.engine.core.algorithms import ENSEMBLE
from simsignal.engine.core.calibration import Calibration
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.derived import RebalanceRule, TimingRule


@dataclass
class Evaluation:
    """The forecasts with outcomes, the report, and the calibration a live run can use."""

    frame: pd.DataFrame
    report: dict[str, Any]
    calibration: Calibration


def evaluate(
    curves: DayCurves,
    config: WalkConfig,
    start: str,
    end: str,
    tickers: Sequence[str] | None = None,
    cost_bps: float = 1.0,
    rule: TimingRule = TimingRule(),
    rebalance: RebalanceRule = RebalanceRule(),
    progress: Progress = lambda done, total: None,
    shards: Sequence[ShardHandle] = (),
) -> Evaluation:
    """Walk forward over the test days in [start, end]; calibrate up_prob on earlier days.

    With `shards`, the walk runs on those shard actors (`on_shards.py`), which hold `curves`'
    days; here it runs in this process, through the live minute pipeline.
    """
    tickers = pairs.with_members(tickers, config.pairs)  # a pair's tickers are fed too
    dates = dates_to_test(curves, start, end, tickers)
    if not dates:
        raise ValueError(f"no test day in {start}..{end} with an earlier history day")
    if shards:
        walked, risk_rows = walk_on_shards(shards, config, dates[0], dates[-1], tickers, progress)
    else:
        walked, risk_rows = walk_forward(curves, config, dates, tickers, progress), None
    everything = walked.frame
    spread = everything["additive"].to_numpy(bool)
    frame, pair_frame = everything[~spread].copy(), everything[spread].copy()
    frame["up_prob"] = calibration.calibrate(
        frame["up_raw"].to_numpy(), frame["base_up"].to_numpy(),
        calibration.walk_forward_weights(frame).to_numpy(),
    )  # fmt: skip
    pair_frame["up_prob"] = pair_frame["up_raw"]  # pairs are not calibrated (nor live)
    names = sorted({str(t) for t in frame["ticker"]})
    meta = {
        "from": dates[0], "to": dates[-1], "days": walked.days, "tickers": names,
        "template": config.template.name, "k": config.k, "algorithms": list(config.algorithms),
        "checkpoints": list(config.checkpoints) if config.checkpoints else "all",
        "pooled": config.pooled, "forecasts": len(frame), "rejected": walked.rejected,
        "on": "shards" if shards else "process",
        "seconds": round(walked.seconds, 2), "cost_bps_per_side": cost_bps,
    }  # fmt: skip
    fitted = Calibration(
        weights=calibration.final_weights(frame),
        base_up=_base_rates(curves, end, names, config.pooled),
        fitted_on={"from": dates[0], "to": dates[-1], "days": walked.days, "k": config.k},
        band=final_scales(frame),
    )
    built = report.build(frame, meta, cost_bps, rule, rebalance)
    scorers = [a for a in config.algorithms if a != ENSEMBLE]
    published = ENSEMBLE if ENSEMBLE in config.algorithms else scorers[0]
    if risk_rows is None:
        risk_rows = risk_frame(curves, frame, scorers[0])
    built["risk"] = risk_section(risk_rows, scorers[0])
    if len(names) >= MIN_TICKERS:
        built["cross_section"] = cross_section(frame, cost_bps, published)
        built["cross_section"]["reading"] = [
            cs_reading(built["cross_section"], a) for a in config.algorithms
        ]
    built["band"] = band_section(frame, published)
    if len(pair_frame):
        spreads = report.build(pair_frame, meta, cost_bps, rule, None)
        built["pairs"] = {"results": spreads["results"], "reading": spreads["reading"]}
    return Evaluation(pd.concat([frame, pair_frame]), built, fitted)


def _base_rates(
    curves: DayCurves, end: str, tickers: list[str], pooled: bool
) -> dict[str, list[float]]:
    """Share of days up to `end` that rose from each minute to the close: per ticker and "*"."""
    upto = curves.dates.astype(str) <= end
    out = {"*": up_share(moves_to_close(curves.ratio[upto])).tolist()}
    if not pooled:
        for t in tickers:
            own = upto & (curves.tickers == t)
            out[t] = up_share(moves_to_close(curves.ratio[own])).tolist()
    return out
