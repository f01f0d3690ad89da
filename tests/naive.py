"""Slow, obviously right references: plain loops over the prefix, one day at a time."""

from __future__ import annotations

import math

import numpy as np


def _scale(v: list[float]) -> list[float]:
    lo, hi = min(v), max(v)
    return [0.0 if hi == lo else (a - lo) / (hi - lo) for a in v]


def _sq(d: list[float]) -> float:
    return math.fsum(a * a for a in d)


def _var(d: list[float]) -> float:
    if len(d) < 2:
        return 0.0
    mean = math.fsum(d) / len(d)
    return math.fsum((a - mean) ** 2 for a in d) / (len(d) - 1)


def naive_scores(name: str, x: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Score every row of `history` [days, m] against `x` [m] with plain Python loops."""
    out = []
    xs = [float(a) for a in x]
    for row in history:
        ys = [float(a) for a in row]
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
