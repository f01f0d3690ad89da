"""Does the published [q10, q90] hold 80 % of the closes? Its coverage, raw and calibrated.

The band is the neighbours' continued closes' 10th and 90th percentiles. Calibrated, it keeps
its centre c = (q10 + q90)/2 and scales its half-width w = (q90 − q10)/2 by λ, the 80th
percentile of |close − c| / w over the EARLIER test days, all checkpoints together (1 until
`MIN_EARLIER` of them are known): walk-forward, as the up_prob calibration, never fitted on
the day it is judged on. λ fitted on every test day is what `calibration.json` carries for
a live run (`final_scales`).
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


def coverage(rows: pd.DataFrame, scales: NDArray[np.float64]) -> dict[str, Any]:
    """Share of closes inside the raw and the calibrated band (by `scales`), and λ of these rows."""
    if not len(rows):
        return {"n": 0, "coverage_raw": math.nan, "coverage_calibrated": math.nan,
                "scale": math.nan}  # fmt: skip
    z = distance(rows)
    inside_raw = (rows["q10"] <= rows["x_end"]) & (rows["x_end"] <= rows["q90"])
    return {
        "n": len(rows),
        "coverage_raw": float(inside_raw.mean()),
        "coverage_calibrated": float(np.mean(z <= scales)),
        "scale": float(np.quantile(z, COVER)),  # fitted on every row
    }


def band_section(frame: pd.DataFrame, algo: str) -> dict[str, Any]:
    """`band` of the report: per checkpoint and pooled, for `algo`'s published band.

    Every row is calibrated by the λ of the earlier days' rows of all checkpoints, as live.
    """
    rows = frame[(frame["algo"] == algo) & ~frame["additive"].astype(bool)]
    scaled = pd.Series(walk_forward_scales(rows), index=rows.index)
    per: dict[str, Any] = {}
    for minute, at in rows.groupby("minute", sort=True):
        per[str(minute)] = coverage(at, scaled[at.index].to_numpy())
    per["pooled"] = coverage(rows, scaled.to_numpy())
    return {"algorithm": algo, "target": COVER, "checkpoints": per}


def final_scales(frame: pd.DataFrame) -> dict[str, float]:
    """λ per algorithm from every test day: the factor a live run applies to its band."""
    rows = frame[~frame["additive"].astype(bool)]
    out = {}
    for algo, at in rows.groupby("algo", sort=True):
        z = distance(at)
        if len(z) >= MIN_EARLIER and np.isfinite(np.quantile(z, COVER)):
            out[str(algo)] = float(np.quantile(z, COVER))
    return out
