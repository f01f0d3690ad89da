"""Slow, obviously right references: plain loops, one day (and one window) at a time."""

from __future__ import annotations

import math

import numpy as np

from simsignal.engine.core.algorithms import Params


def _scale(v: list[float]) -> list[float]:
    lo, hi = min(v), max(v)
    return [0.0 if hi == lo else (a - lo) / (hi - lo) for a in v]


def _sq(d: list[float]) -> float:
    return math.fsum(a * a for a in d)


def _var(d: list[float], ddof: int = 1) -> float:
    if len(d) <= ddof:
        return 0.0
    mean = math.fsum(d) / len(d)
    return math.fsum((a - mean) ** 2 for a in d) / (len(d) - ddof)


def _pearson(x: list[float], y: list[float]) -> float:
    if max(x) == min(x) or max(y) == min(y):
        return 0.0
    mx, my = math.fsum(x) / len(x), math.fsum(y) / len(y)
    c = math.fsum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    vx = math.fsum((a - mx) ** 2 for a in x)
    vy = math.fsum((b - my) ** 2 for b in y)
    return max(-1.0, min(1.0, c / math.sqrt(vx * vy)))


def _znorm(x: list[float], y: list[float]) -> float:
    """Euclidean distance of z-normalised sequences; flat: both → 0, one → √len (STUMPY)."""
    fx, fy = max(x) == min(x), max(y) == min(y)
    if fx or fy:
        return 0.0 if fx and fy else math.sqrt(len(x))
    mx, my = math.fsum(x) / len(x), math.fsum(y) / len(y)
    sx, sy = math.sqrt(_var(x, 0)), math.sqrt(_var(y, 0))
    return math.sqrt(
        math.fsum(((a - mx) / sx - (b - my) / sy) ** 2 for a, b in zip(x, y, strict=True))
    )


def _dtw(x: list[float], y: list[float], r: int) -> float:
    n = len(x)
    big = math.inf
    dp = [[big] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if abs(i - j) > r:
                continue
            cost = (x[i] - y[j]) ** 2
            if i == 0 and j == 0:
                dp[i][j] = cost
                continue
            prev = min(
                dp[i - 1][j] if i > 0 else big,
                dp[i][j - 1] if j > 0 else big,
                dp[i - 1][j - 1] if i > 0 and j > 0 else big,
            )
            dp[i][j] = cost + prev
    return math.sqrt(dp[n - 1][n - 1])


def naive_motif_windows(x: list[float], day: list[float], w: int) -> list[float]:
    """Distance of today's last min(m, w) minutes to the window at each offset 0..len−w."""
    length = min(len(x), w)
    q = x[len(x) - length :]
    return [_znorm(q, day[o : o + length]) for o in range(len(day) - w + 1)]


def naive_scores(
    name: str, x: np.ndarray, history: np.ndarray, params: Params = Params()
) -> np.ndarray:
    """Score every history day ([days, slots], full days) against today's prefix `x`."""
    m = len(x)
    xs = [float(a) for a in x]
    out = []
    for row in history:
        full = [float(a) for a in row]
        ys = full[:m]
        if name == "motif":
            out.append(min(naive_motif_windows(xs, full, params.motif_window)))
        elif name == "dtw":
            out.append(_dtw(xs, ys, params.dtw_band))
        elif name == "corr":
            out.append(1.0 - _pearson(xs, ys))
        elif name == "znorm":
            out.append(_znorm(xs, ys))
        else:
            if name in ("sq_norm", "var_norm"):
                d = [a - b for a, b in zip(_scale(xs), _scale(ys), strict=True)]
            else:
                d = [a - b for a, b in zip(xs, ys, strict=True)]
            out.append(_sq(d) if name.startswith("sq") else _var(d))
    return np.array(out)


def naive_topk(
    scores: np.ndarray, tickers: list[str], dates: list[str], k: int
) -> list[tuple[str, str, float]]:
    """The k best days, ordered by (score, ticker, date): the engine's documented tie rule."""
    rows = sorted(zip(scores.tolist(), tickers, dates, strict=True))
    return [(t, d, s) for s, t, d in rows[:k]]
