"""up_prob with unchanged prices: a tie counts half, so the last minute is not 0 by construction."""

from __future__ import annotations

import numpy as np
import pytest

from simsignal.engine.core.forecast import forecast, similarity_weights


def test_ties_count_half_against_an_independent_sum() -> None:
    rng = np.random.default_rng(7)
    scores = rng.uniform(0.1, 2.0, 12)
    y_now = rng.normal(0, 0.01, 12).astype(np.float32)
    y_end = y_now.copy()
    y_end[:4] += np.float32(0.002)  # rose
    y_end[4:7] -= np.float32(0.003)  # fell; the other five are unchanged
    w = 1.0 / (scores + 1e-3 * scores.mean())
    w /= w.sum()
    want = sum(w[i] * (1.0 if i < 4 else 0.0 if i < 7 else 0.5) for i in range(12))
    got = forecast(0.001, scores, y_now, y_end).up_prob
    assert got == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(similarity_weights(scores), w, rtol=1e-12)


def test_last_minute_is_even_odds() -> None:
    """At the close every neighbour's rest of day is empty: all ties, up_prob = 0.5."""
    closes = np.array([0.01, -0.02, 0.0, 0.005], np.float32)
    f = forecast(0.003, np.array([0.5, 1.0, 1.5, 2.0]), closes, closes)
    assert f.up_prob == pytest.approx(0.5, rel=1e-15)
    assert f.pred_move == pytest.approx(0.0, abs=1e-12)
