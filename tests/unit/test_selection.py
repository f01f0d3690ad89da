"""Top-k under ties, the merge across shards, forecasts and settings."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from simsignal.config.settings import DEFAULT_CONFIG, Settings, load_settings
from simsignal.engine.core.forecast import continued_closes, forecast, similarity_weights
from simsignal.engine.core.pipeline.merge import merge_candidates
from simsignal.engine.core.shard_state import Candidates
from simsignal.engine.core.topk import smallest_k
from tests.naive import naive_topk


@pytest.mark.parametrize("seed", range(5))
def test_smallest_k_matches_a_full_sort_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 50).astype(np.float64)  # many ties
    for k in (1, 3, 10, 50, 80):
        want = np.lexsort((np.arange(50), scores))[:k]
        np.testing.assert_array_equal(smallest_k(scores, k), want)


def test_merge_equals_brute_force_over_split_shards() -> None:
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 4, 40).astype(np.float64)
    tickers = [f"T{i % 3}" for i in range(40)]
    dates = [f"2020-01-{i:02d}" for i in range(40)]
    order = np.lexsort((dates, tickers))
    shards: list[list[tuple[float, str, str, int]]] = [[], []]
    for pos, i in enumerate(order):
        shards[pos % 2].append((scores[i], tickers[i], dates[i], pos))
    parts: list[Candidates | None] = []
    for rows in shards:
        idx = smallest_k(np.array([r[0] for r in rows]), 7)
        top = [rows[j] for j in idx]
        n = np.arange(len(top))
        f32 = np.zeros(len(top), np.float32)
        names = np.array([r[1] for r in top], dtype=str)
        days = np.array([r[2] for r in top], dtype=str)
        parts.append(Candidates(np.array([r[0] for r in top]), n, n, names, days, f32, f32))
    got = merge_candidates(parts, 7)
    assert list(got.neighbors()) == naive_topk(scores, tickers, dates, 7)


def test_merge_of_one_holding_shard_equals_brute_force() -> None:
    """Own-history matching: one shard holds the ticker, the others answer with nothing."""
    rng = np.random.default_rng(11)
    scores = rng.integers(0, 4, 30).astype(np.float64)
    tickers, dates = ["T"] * 30, [f"2020-02-{i:02d}" for i in range(30)]
    idx = smallest_k(scores, 7)
    f32 = np.arange(30, dtype=np.float32)
    held = Candidates(scores[idx], idx, idx, np.array(tickers)[idx], np.array(dates)[idx],
                      f32[idx], f32[idx] * 2)  # fmt: skip
    e = np.zeros(0, np.intp)
    none = Candidates(np.zeros(0), e, e, np.zeros(0, str), np.zeros(0, str), f32[:0], f32[:0])
    got = merge_candidates([none, held], 7)
    assert list(got.neighbors()) == naive_topk(scores, tickers, dates, 7)
    assert got.shards.tolist() == [1] * 7 and got.rows.tolist() == idx.tolist()
    np.testing.assert_array_equal(got.y_end, f32[idx] * 2)


def test_forecast_by_hand() -> None:
    f = forecast(0.01, np.array([0.0, 1.0]), np.array([0.0, 0.02]), np.array([0.02, 0.0]))
    closes = continued_closes(0.01, np.array([0.0, 0.02]), np.array([0.02, 0.0]))
    assert closes == pytest.approx([1.01 * 1.02 - 1, 1.01 / 1.02 - 1])
    w = similarity_weights(np.array([0.0, 1.0]))
    assert w[0] > 0.99 and w.sum() == pytest.approx(1)
    assert f.pred_close == pytest.approx(w @ closes)
    assert f.pred_close_mean == pytest.approx(0.01)
    assert f.up_prob == pytest.approx(w[0])
    assert f.pred_move == pytest.approx((1 + f.pred_close) / 1.01 - 1)
    with pytest.raises(ValueError, match="at least one"):
        forecast(0.0, np.array([]), np.array([]), np.array([]))


def test_quantiles_and_dispersion_against_the_statistics_module() -> None:
    """q10, q50, q90 (R's type 7, `inclusive`) and dispersion (population σ) of the continued
    closes, computed by the standard library from a loop over the neighbours."""
    import statistics

    rng = np.random.default_rng(7)
    for k in (1, 2, 5, 40):
        x_now = float(rng.normal(0, 0.01))
        y_now, y_end = rng.normal(0, 0.01, k), rng.normal(0, 0.02, k)
        f = forecast(x_now, rng.random(k), y_now, y_end)
        closes = [(1 + x_now) * (1 + e) / (1 + n) - 1 for n, e in zip(y_now, y_end, strict=True)]
        deciles = statistics.quantiles(closes, n=10, method="inclusive") if k > 1 else closes * 9
        assert f.q10 == pytest.approx(deciles[0], abs=1e-15)
        assert f.q50 == pytest.approx(statistics.median(closes), abs=1e-15)
        assert f.q90 == pytest.approx(deciles[8], abs=1e-15)
        assert f.dispersion == pytest.approx(statistics.pstdev(closes), abs=1e-15)


def test_weights_are_scale_free() -> None:
    s = np.array([0.1, 0.2, 0.4])
    np.testing.assert_allclose(similarity_weights(s), similarity_weights(s * 1e6))


def test_default_toml_matches_code_defaults() -> None:
    file_values = tomllib.loads(DEFAULT_CONFIG.read_text())
    loaded = Settings()
    for section, values in file_values.items():
        for key, value in values.items():
            got = getattr(getattr(loaded, section), key)
            assert (list(got) if isinstance(got, tuple) else got) == value, f"{section}.{key}"


def test_settings_layers_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[engine]\nk = 10\nshards = 3\n[redis]\nurl = "redis://u:secret@h:1/0"\n')
    monkeypatch.setenv("SIMSIGNAL_ENGINE__SHARDS", "5")
    s = load_settings(cfg, engine={"algorithms": "sq,var_norm"})
    assert (s.engine.k, s.engine.shards, s.engine.algorithms) == (10, 5, ("sq", "var_norm"))
    assert "secret" not in repr(s)
    with pytest.raises(ValueError, match="unknown algorithm"):
        load_settings(None, engine={"algorithms": "sq,nope"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nkk = 3\n")
    with pytest.raises(ValueError, match="kk"):
        load_settings(bad)


def test_derived_signal_settings_parse_and_refuse_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMSIGNAL_SIGNALS__PAIRS", '[["600000", "601398"]]')
    assert load_settings().signals.pairs == (("600000", "601398"),)
    s = load_settings(signals={"pairs": "AAA~BBB,CCC~DDD", "algo": "var"})
    assert s.signals.pairs == (("AAA", "BBB"), ("CCC", "DDD")) and s.signals.algo == "var"
    for bad, msg in [("AAA~AAA", "two different tickers"), ("AAA", "two different tickers"),
                     ("A~B~C", "two different tickers")]:  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            load_settings(signals={"pairs": bad})
    with pytest.raises(ValueError, match="pooled = false"):
        load_settings(signals={"pairs": "AAA~BBB"}, engine={"pooled": True})
    with pytest.raises(ValueError, match=r"signals\.algo 'dtw' is not among"):
        load_settings(signals={"algo": "dtw"})


def test_the_continuation_rule_by_hand() -> None:
    """Today at +1 %, a neighbour from +2 % to −1 %: it fell by 2.94…%, applied to today."""
    from simsignal.engine.core.forecast import continued, move

    assert float(continued(0.01, 0.02, -0.01)) == pytest.approx(1.01 * 0.99 / 1.02 - 1)
    assert float(move(0.02, -0.01)) == pytest.approx(0.99 / 1.02 - 1)
    # a spread moves additively: from 0.3 with a neighbour going 0.1 → 0.25
    assert float(continued(0.3, 0.1, 0.25, additive=True)) == pytest.approx(0.45)
    assert float(move(0.1, 0.25, additive=True)) == pytest.approx(0.15)
    # continuing by a neighbour's move and measuring it again gives that move back
    x, a, b = 0.013, -0.004, 0.021
    assert float(move(x, continued(x, a, b))) == pytest.approx(float(move(a, b)))
