"""dtw against tslearn and dtaidistance; motif against stumpy.mass; LB_Keogh pruning is exact."""

from __future__ import annotations

import numpy as np
import pytest
import stumpy
from dtaidistance import dtw as dtai
from tslearn.metrics import dtw as tslearn_dtw

from simsignal.engine.core.algorithms import Params
from simsignal.engine.core.algorithms.dtw import DynamicTimeWarping, topk_lb_keogh
from simsignal.engine.core.algorithms.motif import Motif, window_distances
from simsignal.engine.core.topk import smallest_k

SEED = 7_000_001


def _feed(algo: DynamicTimeWarping | Motif, x: np.ndarray, hist: np.ndarray) -> object:
    cols = np.ascontiguousarray(hist.T)
    state = algo.new_state(*hist.shape)
    for v in x:
        state.update(cols, float(v))
    return state


@pytest.mark.parametrize("r", [0, 2, 10])
def test_dtw_matches_tslearn_and_dtaidistance(r: int) -> None:
    rng = np.random.default_rng(SEED + r)
    hist = np.cumsum(rng.normal(0, 1e-3, (12, 60)), axis=1).astype(np.float32)
    x = np.cumsum(rng.normal(0, 1e-3, 45))
    algo = DynamicTimeWarping(Params(dtw_band=r))
    got = algo.scores(_feed(algo, x, hist))  # type: ignore[arg-type]
    y = hist[:, :45].astype(np.float64)
    ts = [tslearn_dtw(x, row, global_constraint="sakoe_chiba", sakoe_chiba_radius=r) for row in y]
    da = [dtai.distance(x, row, window=r + 1, use_c=False) for row in y]  # |i−j| < window
    np.testing.assert_allclose(got, ts, rtol=1e-9)
    np.testing.assert_allclose(got, da, rtol=1e-9)


def test_motif_window_distances_match_stumpy_mass() -> None:
    rng = np.random.default_rng(SEED)
    hist = np.cumsum(rng.normal(0, 1e-3, (6, 80)), axis=1).astype(np.float32)
    x = np.cumsum(rng.normal(0, 1e-3, 50))
    w = 20
    state = _feed(Motif(Params(motif_window=w)), x, hist)
    got = np.sqrt(state.d2)  # type: ignore[attr-defined]  # [offsets, days], running state
    for d in range(hist.shape[0]):
        mass = stumpy.mass(x[-w:], hist[d].astype(np.float64))
        np.testing.assert_allclose(got[:, d], mass[: 80 - w + 1], rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(window_distances(x, hist, w), got, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("k", [1, 5, 40])
def test_lb_keogh_pruned_topk_is_exact(k: int) -> None:
    rng = np.random.default_rng(SEED + k)
    hist = np.cumsum(rng.normal(0, 1e-3, (300, 120)), axis=1).astype(np.float32)
    x = np.cumsum(rng.normal(0, 1e-3, 90))
    algo = DynamicTimeWarping(Params(dtw_band=5))
    full = algo.recompute(x, hist)
    idx, dist = topk_lb_keogh(x, hist, 5, k)
    np.testing.assert_array_equal(idx, smallest_k(full, k))
    np.testing.assert_allclose(dist, full[idx], rtol=1e-12)
