"""The fused scoring of the seed's four metrics equals each algorithm's own path, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from simsignal.engine.core.algorithms import select
from simsignal.engine.core.algorithms.moments import SEED_FOUR
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.shard_state import ShardState
from simsignal.engine.core.topk import smallest_k, smallest_k_rows

SLOTS = 30


def _curves(rng: np.random.Generator, days: int) -> DayCurves:
    ratio = np.round(rng.normal(0, 0.01, (days, SLOTS)), 3).astype(np.float32)  # many ties
    ratio[:3] = 0.0  # constant days: scaled prefix 0, ties at every minute
    ratio[3] = ratio[4]  # a twin day
    volume = rng.random((days, SLOTS)).astype(np.float32)
    tickers = np.array(["A"] * days, object)
    dates = np.array([f"2020-01-{i:04d}" for i in range(days)], object)
    return DayCurves(tickers, dates, ratio, np.ones(days), {"volume": volume})


@pytest.mark.parametrize("channels", [{"price": 1.0}, {"price": 1.0, "volume": 0.3}])
def test_fused_top_k_equals_each_algorithms_own_scores(channels: dict[str, float]) -> None:
    rng = np.random.default_rng(7)
    shard = ShardState(_curves(rng, 120), [*SEED_FOUR, "corr"], 9, False, channels=channels)
    today = np.round(rng.normal(0, 0.01, SLOTS), 3)
    for m in range(1, SLOTS + 1):
        values = (float(today[m - 1]), float(rng.random()))[: len(channels)]
        answer = shard.step([("A", m, values)])[0]
        assert answer is not None
        q = shard.queries["A"]
        for algo in select(list(answer.algos)):
            states = [q.states[(c, algo.state_key())] for c in shard.channels]
            want, _ = algo.combine(states, shard.weights)
            idx = smallest_k(want, 9)
            got = answer.of(algo.name)
            np.testing.assert_array_equal(got.rows, idx, err_msg=f"{algo.name} m={m}")
            assert got.scores.tobytes() == want[idx].tobytes(), f"{algo.name} m={m}"
            assert list(got.dates) == [f"2020-01-{i:04d}" for i in idx]
            assert got.ends.tolist() == [m - 1] * len(idx)


def test_row_selection_equals_smallest_k_under_ties_and_nan() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        n, k = int(rng.integers(1, 200)), int(rng.integers(1, 50))
        scores = (rng.integers(0, int(rng.integers(1, 20)), (3, n)) * 0.25).astype(np.float64)
        got = smallest_k_rows(scores, k)
        for row, picked in zip(scores, got, strict=True):
            assert picked.tolist() == smallest_k(row, k).tolist()
    with_nan = np.array([[np.nan, 2.0, 1.0, np.nan, 0.5]])
    assert smallest_k_rows(with_nan, 4).tolist() == [[4, 2, 1, 0]]
