"""Every registered algorithm, after every minute: running state == naive loops == recompute."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from simsignal.engine.core.algorithms import REGISTRY, Algorithm, Params
from tests.naive import naive_scores

SEED = 20161101
PARAMS = Params(dtw_band=3, motif_window=5)
SQUARED = {"znorm", "motif", "dtw"}  # distances compared squared: √ magnifies noise near 0


def tolerance(name: str, x: np.ndarray, hist: np.ndarray) -> float:
    """Absolute slack for float64 rounding: 1e-12 of the size of what is summed.

    Scaled metrics sum terms bounded by 1; raw ones sum d², so their scale is m·max d².
    """
    m = x.shape[0]
    if name in ("sq_norm", "var_norm", "znorm", "motif"):
        return 1e-12 * m
    if name == "corr":
        return 1e-11
    d = x - hist[:, :m].astype(np.float64)
    return 1e-12 * m * float(np.max(d * d, initial=0.0)) + 1e-300


def _compare(name: str, got: np.ndarray, want: np.ndarray, tol: float, what: str) -> None:
    if name in SQUARED:
        got, want = got**2, want**2
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=tol, err_msg=what)


def check_every_minute(
    x: np.ndarray, hist32: np.ndarray, params: Params = PARAMS, skip: frozenset[str] = frozenset()
) -> None:
    """Feed minute by minute; compare every algorithm (but `skip`) after each one."""
    cols = np.ascontiguousarray(hist32.T)  # slot-major, as the shards store it
    n, slots = hist32.shape
    algos: list[Algorithm] = [cls(params) for cls in REGISTRY.values() if cls.name not in skip]
    states: dict[object, Any] = {}
    for a in algos:
        states.setdefault(a.state_key(), a.new_state(n, slots))
    for m in range(1, x.shape[0] + 1):
        for state in states.values():
            state.update(cols, float(x[m - 1]))
        prefix = x[:m]
        for a in algos:
            got = a.scores(states[a.state_key()])
            want = naive_scores(a.name, prefix, hist32, params)
            tol = tolerance(a.name, prefix, hist32)
            _compare(a.name, got, want, tol, f"{a.name} m={m}")
            _compare(a.name, a.recompute(prefix, hist32), want, tol, f"{a.name} batch m={m}")


def test_random_walks_all_minutes() -> None:
    rng = np.random.default_rng(SEED)
    hist = np.cumsum(rng.normal(0, 1e-3, (23, 40)), axis=1).astype(np.float32)
    x = np.cumsum(rng.normal(0, 1e-3, 40))
    check_every_minute(x, hist)


@pytest.mark.parametrize(
    "case",
    ["constant_today", "constant_history", "identical", "ties", "huge", "tiny", "steps"],
)
def test_adversarial(case: str) -> None:
    rng = np.random.default_rng(SEED + 1)
    m, n = 24, 9
    base = np.cumsum(rng.normal(0, 1e-2, m))
    hist = np.cumsum(rng.normal(0, 1e-2, (n, m)), axis=1)
    x = base
    if case == "constant_today":
        x = np.full(m, 0.0125)
    elif case == "constant_history":
        hist[::2] = -0.003
        hist[1, 5:15] = 0.002  # a flat stretch inside a moving day
    elif case == "identical":
        hist[3] = base
        x = hist[3].astype(np.float32).astype(np.float64)
    elif case == "ties":
        hist[:] = hist[0]
    elif case == "huge":
        x, hist = base * 1e6 + 3e7, hist * 1e6 + 3e7
    elif case == "tiny":
        x, hist = base * 1e-20, hist * 1e-20
    elif case == "steps":
        x = np.repeat([0.0, 0.01, -0.02, 0.01], m // 4)
        hist[:, : m // 2] = 0.004
    check_every_minute(np.asarray(x, np.float64), hist.astype(np.float32))


@pytest.mark.parametrize("params", [Params(0, 1), Params(1, 2), Params(30, 24)])
def test_extreme_band_and_window(params: Params) -> None:
    """r = 0 is the Euclidean alignment; r ≥ m is unconstrained DTW; w = 1 and w = slots."""
    rng = np.random.default_rng(SEED + 2)
    hist = np.cumsum(rng.normal(0, 1e-3, (5, 24)), axis=1).astype(np.float32)
    check_every_minute(np.cumsum(rng.normal(0, 1e-3, 24)), hist, params)


@settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    data=arrays(
        np.float32,
        st.tuples(st.integers(1, 5), st.integers(6, 12)),
        elements=st.floats(-0.125, 0.125, width=32, allow_subnormal=False),
    ),
    # Today's values on a grid of 2^-40: the running state works relative to today's first
    # value, so minutes that differ by less than float64's resolution of that value (~1e-17
    # of it) cannot be told apart; real price ratios differ by 1e-6 or more, or not at all.
    today=st.lists(st.integers(-(2**37), 2**37).map(lambda i: i / 2**40), min_size=12, max_size=12),
)
def test_property_random_prefixes(data: np.ndarray, today: list[float]) -> None:
    """Every algorithm but `motif` on arbitrary data.

    `motif`'s sliding window sums lose precision on a window whose spread is tiny next to its
    distance from the day's first value (hypothesis found 0.125 beside 1e-11 and -4e-29 in one
    history day): such a window is scored as flat, or off by 1e-7 relative. That is the limit
    the README states; `motif` is checked on random walks, the adversarial cases, band and
    window extremes and against stumpy.mass instead.
    """
    check_every_minute(np.array(today[: data.shape[1]]), data, skip=frozenset({"motif"}))


def test_m1_and_m2_values() -> None:
    """At m = 1 the variance metrics are 0 for every day; at m = 2 they follow ddof = 1."""
    hist = np.array([[0.01, 0.03], [0.02, 0.02]], np.float32)
    x = np.array([0.0, 0.01])
    cols = np.ascontiguousarray(hist.T)
    var = REGISTRY["var"]()
    state = var.new_state(2, 2)
    state.update(cols, x[0])
    assert var.scores(state).tolist() == [0.0, 0.0]
    state.update(cols, x[1])
    d = x - hist.astype(np.float64)
    np.testing.assert_allclose(var.scores(state), d.var(axis=1, ddof=1), rtol=1e-12)


def test_algorithms_and_state_pickle() -> None:
    """Ray ships algorithms and state between processes."""
    for cls in REGISTRY.values():
        algo = pickle.loads(pickle.dumps(cls(PARAMS)))
        state = pickle.loads(pickle.dumps(algo.new_state(3, 8)))
        state.update(np.zeros((8, 3), np.float32), 0.5)
        assert algo.scores(state).shape == (3,)


def test_the_wire_indices_are_pinned() -> None:
    """Stream IDs are `<epoch ms>-<index>`: a changed index would change every published ID."""
    from simsignal.engine.core.algorithms import ALGO_INDEX

    assert dict(ALGO_INDEX) == {"sq": 0, "var": 1, "sq_norm": 2, "var_norm": 3, "corr": 4,
                                "znorm": 5, "dtw": 6, "motif": 7, "ensemble": 63}  # fmt: skip
