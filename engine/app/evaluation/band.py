"""Does the published [q10, q90] hold 80 % of the closes? Its coverage, raw and calibrated.

The band is the neighbours' continued closes' 10th and 90th percentiles. Calibrated, it keeps
its centre c = (q10 + q90)/2 and scales its half-width w = (q90 − q10)/2 by λ, the 80th
percentile of |close − c| / w over the EARLIER test days at the same checkpoint (1 until
`MIN_EARLIER` of them are known): walk-forward, as the up_prob calibration, never fitted on
the day it is judged on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

COVER = 0.8
MIN_EARLIER = 20


def distance(rows: pd.DataFrame) -> NDArray[np.float64]:
    """|close − centre| in half-widths (inf for a closed band the close missed, 0 on it)."""
    centre = (rows["q10"] + rows["q90"]).to_numpy() / 2
    half = (rows["q90"] - rows["q10"]).to_numpy() / 2
    off = np.abs(rows["x_end"].to_numpy() - centre)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = off / half
    return np.where(half > 0, z, np.where(off > 0, np.inf, 0.0))


def walk_forward_scales(rows: pd.DataFrame) -> NDArray[np.float64]:
    """Each row's λ from the rows of earlier dates only (rows of one checkpoint)."""
    z = distance(rows)
    dates = rows["date"].astype(str).to_numpy()
    out = np.ones(len(rows))
    for date in np.unique(dates):
        earlier = z[dates < date]
        if len(earlier) >= MIN_EARLIER:
            out[dates == date] = float(np.quantile(earlier, COVER))
    return out


def coverage(rows: pd.DataFrame) -> dict[str, Any]:
    """Share of closes inside the raw and the calibrated band, and the λ for live use."""
    if not len(rows):
        return {"n": 0, "coverage_raw": math.nan, "coverage_calibrated": math.nan,
                "scale": math.nan}  # fmt: skip
    z = distance(rows)
    inside_raw = (rows["q10"] <= rows["x_end"]) & (rows["x_end"] <= rows["q90"])
    return {
        "n": len(rows),
        "coverage_raw": float(inside_raw.mean()),
        "coverage_calibrated": float(np.mean(z <= walk_forward_scales(rows))),
        "scale": float(np.quantile(z, COVER)),  # fitted on every row: what a live run would use
    }


def band_section(frame: pd.DataFrame, algo: str) -> dict[str, Any]:
    """`band` of the report: per checkpoint and pooled, for `algo`'s published band."""
    rows = frame[(frame["algo"] == algo) & ~frame["additive"].astype(bool)]
    per: dict[str, Any] = {}
    calibrated = []
    for minute, at in rows.groupby("minute", sort=True):
        per[str(minute)] = coverage(at)
        calibrated.append(distance(at) <= walk_forward_scales(at))
    pooled = coverage(rows)
    if calibrated:  # pooled: each row with its own checkpoint's λ
        pooled["coverage_calibrated"] = float(np.mean(np.concatenate(calibrated)))
    per["pooled"] = pooled
    return {"algorithm": algo, "target": COVER, "checkpoints": per}
