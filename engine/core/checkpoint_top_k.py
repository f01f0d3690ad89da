"""Each test day's k nearest earlier days at a few checkpoint minutes, for one ticker at once.

A walk-forward over a market asks, for every test day of a ticker, which of the ticker's
*earlier* days were nearest at minutes such as 30, 60, 120 and 180. The shard holds all of the
ticker's days once, in date order, so "earlier" is a row bound (the first `j` rows), never a
copy. Two ways to score:

- the seed's four metrics (`SEED_FOUR`) come from the same sums as the live running state
  (Σx′, Σx′², Σy′, Σy′², Σx′y′, minima and maxima, with x′ = x − x₀), here taken for all test
  days at once: Σx′y′ is one matrix product per stretch between checkpoints, the rest are
  cumulative sums. The live kernel `seed_four_scores` turns them into ranked scores, so the
  formulas and the tie grid are the live ones; only the summation order differs (≈1e-16).
- any other algorithm runs its own live running state over the bounded rows, minute by minute
  up to the last checkpoint: the live code, at the live cost.

Ties go to the earlier day, as live (rows are in date order within a ticker).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.core.algorithms import Algorithm
from simsignal.engine.core.algorithms.moments import SEED_FOUR, seed_four_scores
from simsignal.engine.core.topk import smallest_k, smallest_k_rows

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Nearest:
    """One (test day, minute, algorithm)'s neighbours, best first: rows and where they end."""

    scores: F64
    rows: NDArray[np.intp]
    ends: NDArray[np.intp]  # the slot each match ends at (m − 1 for aligned algorithms)


def nearest_at(
    cols: NDArray[np.floating],
    tests: Sequence[int],
    minutes: Sequence[int],
    algos: Sequence[Algorithm],
    k: int,
) -> dict[tuple[int, int, str], Nearest]:
    """Top-k of every (test row, minute, algorithm) among the rows before the test row.

    `cols` is the ticker's days slot-major [slots, days] in date order (the shard's layout);
    a test row with no earlier row has no entry.
    """
    minutes = sorted(set(minutes))
    out: dict[tuple[int, int, str], Nearest] = {}
    fused = [a.name for a in algos if a.name in SEED_FOUR]
    if fused:
        out |= _seed_four_at(cols, tests, minutes, fused, k)
    others: dict[Hashable, list[Algorithm]] = {}
    for a in algos:
        if a.name not in SEED_FOUR:
            others.setdefault(a.state_key(), []).append(a)
    for group in others.values():
        for j in tests:
            if j > 0:
                out |= _running_at(cols, j, minutes, group, k)
    return out


def _seed_four_at(
    cols: NDArray[np.floating], tests: Sequence[int], minutes: list[int], names: list[str],
    k: int,
) -> dict[tuple[int, int, str], Nearest]:  # fmt: skip
    """The seed's four metrics from cumulative sums and one matrix product per stretch."""
    y = np.asarray(cols, np.float64).T  # [days, slots]
    y0 = y[:, 0].copy()
    shifted = y - y0[:, None]
    c1, c2 = np.cumsum(shifted, axis=1), np.cumsum(shifted * shifted, axis=1)
    lows, highs = np.minimum.accumulate(y, axis=1), np.maximum.accumulate(y, axis=1)
    t = np.asarray([j for j in tests if j > 0], np.intp)
    which = [SEED_FOUR.index(n) for n in names]
    sxy = np.zeros((len(t), y.shape[0]))
    out: dict[tuple[int, int, str], Nearest] = {}
    done = 0
    for m in minutes:
        sxy += shifted[t, done:m] @ shifted[:, done:m].T  # Σ x′y′ over the stretch
        done = m
        s = m - 1
        sy, syy, low, high = (np.ascontiguousarray(a[:, s]) for a in (c1, c2, lows, highs))
        for i, j in enumerate(t.tolist()):
            sx, sxx = float(c1[j, s]), float(c2[j, s])
            cross = sxx + syy[:j] - 2.0 * sxy[i, :j]  # Σ (x′ − y′)²
            gap = float(y0[j]) - y0[:j]  # x − y = (x′ − y′) + (x₀ − y₀)
            sdd = np.maximum(cross + 2.0 * gap * (sx - sy[:j]) + m * gap * gap, 0.0)
            m2_d = cross - (sx - sy[:j]) ** 2 / m
            part = np.empty((4, j))
            seed_four_scores(m, float(y0[j]), sx, sxx, float(low[j]), float(high[j]), sdd,
                             m2_d, y0[:j], sy[:j], syy[:j], sxy[i, :j], low[:j], high[:j],
                             part)  # fmt: skip
            ranked = part[which]
            idx = smallest_k_rows(ranked, k)
            top = np.take_along_axis(ranked, idx, 1)
            ends = np.full(idx.shape[1], s, np.intp)
            for a, name in enumerate(names):
                out[(j, m, name)] = Nearest(top[a], idx[a], ends)
    return out


def _running_at(
    cols: NDArray[np.floating], j: int, minutes: list[int], group: list[Algorithm], k: int
) -> dict[tuple[int, int, str], Nearest]:
    """Algorithms sharing one running state, fed test row j's minutes over rows [0, j)."""
    days = cols[:, :j]
    x = np.asarray(cols[:, j], np.float64)
    state = group[0].new_state(j, cols.shape[0])
    out: dict[tuple[int, int, str], Nearest] = {}
    wanted = set(minutes)
    for m in range(1, minutes[-1] + 1):
        state.update(days, float(x[m - 1]))
        if m not in wanted:
            continue
        for algo in group:
            scores, ends = algo.combine([state], [1.0])
            idx = smallest_k(scores, k)
            end = np.full(len(idx), m - 1, np.intp) if ends is None else ends[idx]
            out[(j, m, algo.name)] = Nearest(scores[idx], idx, end.astype(np.intp))
    return out
