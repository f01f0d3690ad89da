"""Every registered algorithm, after every minute: running state == naive loops == recompute."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.algorithms import REGISTRY
from tests.naive import naive_scores

SEED = 20161101


def tolerance(name: str, x: np.ndarray, hist: np.ndarray) -> float:
    """Absolute slack for float64 rounding: 1e-12 of the size of what is summed.

    Scaled metrics sum terms bounded by 1; raw ones sum d², so the scale is m·max d².
    """
    m = x.shape[0]
    if name.endswith("_norm"):
        return 1e-12 * m
    d = x - hist.astype(np.float64)
    return 1e-12 * m * float(np.max(d * d, initial=0.0)) + 1e-300


def check_every_minute(x: np.ndarray, hist32: np.ndarray) -> None:
    """Feed minute by minute; compare all algorithms after each one."""
    cols = np.ascontiguousarray(hist32.T)  # slot-major, as the shards store it
    states = {kind: kind.new(hist32.shape[0]) for kind in {a.state for a in REGISTRY.values()}}
    for m in range(1, x.shape[0] + 1):
        for state in states.values():
            state.update(cols[m - 1], float(x[m - 1]))
        prefix, hprefix = x[:m], hist32[:, :m]
        for name, algo in REGISTRY.items():
            got = algo.scores(states[algo.state])
            want = naive_scores(name, prefix, hprefix)
            batch = algo.recompute(prefix, hprefix)
            tol = tolerance(name, prefix, hprefix)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=tol, err_msg=f"{name} m={m}")
            np.testing.assert_allclose(
                batch, want, rtol=1e-9, atol=tol, err_msg=f"{name} batch m={m}"
            )


def test_random_walks_all_minutes() -> None:
    rng = np.random.default_rng(SEED)
    hist = np.cumsum(rng.normal(0, 1e-3, (37, 60)), axis=1).astype(np.float32)
    x = np.cumsum(rng.normal(0, 1e-3, 60))
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 12)),
        elements=st.floats(-0.125, 0.125, width=32, allow_subnormal=False),
    ),
    today=st.lists(st.floats(-0.1, 0.1, allow_subnormal=False), min_size=12, max_size=12),
)
def test_property_random_prefixes(data: np.ndarray, today: list[float]) -> None:
    m = data.shape[1]
    check_every_minute(np.array(today[:m]), data)


def test_m1_and_m2_values() -> None:
    """At m = 1 the variance metrics are 0 for every day; at m = 2 they follow ddof = 1."""
    hist = np.array([[0.01, 0.03], [0.02, 0.02]], np.float32)
    x = np.array([0.0, 0.01])
    cols = np.ascontiguousarray(hist.T)
    state = REGISTRY["var"].state.new(2)
    state.update(cols[0], x[0])
    assert REGISTRY["var"].scores(state).tolist() == [0.0, 0.0]
    state.update(cols[1], x[1])
    d = x - hist.astype(np.float64)
    np.testing.assert_allclose(REGISTRY["var"].scores(state), d.var(axis=1, ddof=1), rtol=1e-12)


def test_algorithms_and_state_pickle() -> None:
    """Ray ships algorithms and state between processes."""
    for algo in REGISTRY.values():
        clone = pickle.loads(pickle.dumps(algo))
        state = pickle.loads(pickle.dumps(algo.state.new(3)))
        state.update(np.zeros(3, np.float32), 0.5)
        assert clone.scores(state).shape == (3,)
