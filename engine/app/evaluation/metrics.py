"""The statistics a fund judges a forecast by; each takes plain arrays and returns numbers.

Observations within one day share that day's path, so the tests that need independence (the
Diebold–Mariano test) run on one loss differential per day; the hit-rate interval and the
Pesaran–Timmermann test treat checkpoints as independent, which flatters them when pooled.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats


def wilson(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a hit rate (NaNs when there is nothing to rate)."""
    if n == 0:
        return (math.nan, math.nan)
    ci = stats.binomtest(hits, n).proportion_ci(level, method="wilson")
    return (float(ci.low), float(ci.high))


def pesaran_timmermann(predicted_up: ArrayLike, realised_up: ArrayLike) -> float:
    """One-sided p-value of "direction predicted no better than by independence" (PT 1992).

    NaN when the test is undefined: every prediction (or every outcome) on one side.
    """
    x = np.asarray(predicted_up, bool)
    y = np.asarray(realised_up, bool)
    n = len(x)
    if n < 2:
        return math.nan
    p_hat = float(np.mean(x == y))
    px, py = float(x.mean()), float(y.mean())
    p_star = py * px + (1 - py) * (1 - px)
    v_p = p_star * (1 - p_star) / n
    v_star = ((2 * py - 1) ** 2 * px * (1 - px) / n + (2 * px - 1) ** 2 * py * (1 - py) / n
              + 4 * py * px * (1 - py) * (1 - px) / n**2)  # fmt: skip
    if v_p - v_star <= 0:
        return math.nan
    return float(stats.norm.sf((p_hat - p_star) / math.sqrt(v_p - v_star)))


def clustered_mean(
    values: ArrayLike, groups: ArrayLike, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, lo, hi) with a standard error robust to any dependence within a group (a day).

    se² = G/(G−1) · Σ_g (Σ_{i∈g} (v_i − v̄))² / n², the cluster-robust form.
    """
    v = np.asarray(values, np.float64)
    g = np.asarray(groups)
    n = len(v)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    _, which = np.unique(g, return_inverse=True)
    sums = np.bincount(which, weights=v - v.mean())
    clusters = len(sums)
    if clusters < 2:
        return (float(v.mean()), math.nan, math.nan)
    se = math.sqrt(clusters / (clusters - 1) * float(sums @ sums)) / n
    z = float(stats.norm.ppf(0.5 + level / 2))
    return (float(v.mean()), float(v.mean()) - z * se, float(v.mean()) + z * se)


def pesaran_timmermann_days(
    predicted_up: ArrayLike, realised_up: ArrayLike, days: ArrayLike
) -> float:
    """One-sided p-value of "no better than independence" when checkpoints share days.

    The hits' excess over the rate independence gives (from the margins, as in PT) is
    averaged with a day-clustered standard error; ignoring the margins' own estimation error
    makes it a little conservative. Several checkpoints of one day are one piece of evidence,
    not several.
    """
    x = np.asarray(predicted_up, bool)
    y = np.asarray(realised_up, bool)
    if len(x) < 2:
        return math.nan
    px, py = float(x.mean()), float(y.mean())
    if px in (0.0, 1.0) or py in (0.0, 1.0):
        return math.nan
    excess = (x == y) - (py * px + (1 - py) * (1 - px))
    mean, lo, _ = clustered_mean(excess, days)
    if math.isnan(lo) or mean == lo:
        return math.nan
    return float(stats.norm.sf(mean / ((mean - lo) / stats.norm.ppf(0.975))))


def diebold_mariano(loss_a: ArrayLike, loss_b: ArrayLike, h: int = 1) -> tuple[float, float]:
    """(statistic, two-sided p-value) of "equal expected loss", Harvey et al.'s small-sample form.

    Negative statistics mean `a` lost less. The long-run variance uses autocovariances up to
    lag h − 1; the statistic is compared with Student's t on n − 1 degrees of freedom.
    """
    d = np.asarray(loss_a, np.float64) - np.asarray(loss_b, np.float64)
    n = len(d)
    if n < 3:
        return (math.nan, math.nan)
    centred = d - d.mean()
    gamma = [float(centred[k:] @ centred[: n - k]) / n for k in range(h)]
    variance = (gamma[0] + 2 * sum(gamma[1:])) / n
    if variance <= 0:
        return (math.nan, math.nan)
    dm = float(d.mean()) / math.sqrt(variance)
    dm *= math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    return (dm, float(2 * stats.t.sf(abs(dm), n - 1)))


def spearman_ic(predicted: ArrayLike, realised: ArrayLike) -> tuple[float, float]:
    """(rank correlation, its t-statistic r·√((n−2)/(1−r²)))."""
    x, y = np.asarray(predicted, np.float64), np.asarray(realised, np.float64)
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return (math.nan, math.nan)
    r = float(stats.spearmanr(x, y).statistic)
    t = math.inf if abs(r) >= 1 else r * math.sqrt((n - 2) / (1 - r * r))
    return (r, t)


def brier(prob: ArrayLike, outcome: ArrayLike) -> float:
    """Mean squared distance of probabilities from outcomes (1 up, 0 down, ½ unchanged)."""
    p, y = np.asarray(prob, np.float64), np.asarray(outcome, np.float64)
    return float(np.mean((p - y) ** 2)) if len(p) else math.nan


def reliability(prob: ArrayLike, outcome: ArrayLike, bins: int = 10) -> list[dict[str, float]]:
    """Per probability bin [lo, hi): how many, the mean forecast and how often it came true."""
    p, y = np.asarray(prob, np.float64), np.asarray(outcome, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": n,
                    "mean_prob": float(p[inside].mean()) if n else math.nan,
                    "freq": float(y[inside].mean()) if n else math.nan})  # fmt: skip
    return out


def outcome(move: ArrayLike) -> NDArray[np.float64]:
    """1 for a rise to the close, 0 for a fall, ½ for unchanged (the engine's up_prob rule)."""
    m = np.asarray(move, np.float64)
    return np.where(m > 0, 1.0, np.where(m == 0, 0.5, 0.0))
