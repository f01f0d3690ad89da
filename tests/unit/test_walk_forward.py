"""Walk-forward evaluation through the pure pipeline: exact, no look-ahead, honest verdicts.

Forecasts are checked against a NumPy brute force over the earlier days only; the verdicts on
three made-up markets: a random walk (no skill found), planted day shapes (skill found) and
a trend ("always up" wins, and the report says so).
"""

from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import pytest

from simsignal.engine.app.evaluation.evaluate import evaluate
from simsignal.engine.app.evaluation.walk_forward import WalkConfig, dates_to_test, walk_forward
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.templates import get_template
from tests.helpers import brute_topk

CN = get_template("cn")
SEED_FOUR = ("sq", "var", "sq_norm", "var_norm", "ensemble")


def _curves(ratios: dict[str, np.ndarray], start: str = "2023-01-02") -> DayCurves:
    """Day curves of several tickers on the same business days."""
    tickers, dates, rows, prev = [], [], [], []
    for ticker, ratio in ratios.items():
        days = pd.bdate_range(start, periods=len(ratio)).strftime("%Y-%m-%d").tolist()
        tickers += [ticker] * len(ratio)
        dates += days
        rows.append(ratio)
        prev += [100.0] * len(ratio)
    return DayCurves(np.asarray(tickers, object), np.asarray(dates, object),
                     np.concatenate(rows).astype(np.float32), np.asarray(prev))  # fmt: skip


def _random_walk(rng: np.random.Generator, days: int, drift: float = 0.0) -> np.ndarray:
    steps = rng.normal(drift, 1e-3, (days, CN.slots))
    return np.cumsum(steps, axis=1)


def test_walk_forward_equals_a_brute_force_over_earlier_days() -> None:
    rng = np.random.default_rng(11)
    curves = _curves({"AAA": _random_walk(rng, 30), "BBB": _random_walk(rng, 30)})
    # the last slot: every neighbour is unchanged from now to its close, a tie counted ½
    config = WalkConfig(("sq", "var"), 5, CN, checkpoints=(5, 30, 120, CN.slots))
    dates = dates_to_test(curves, "2023-02-06", "2023-02-10")
    assert len(dates) == 5
    frame = walk_forward(curves, config, dates).frame
    assert len(frame) == 5 * 2 * 4 * 2
    all_dates = curves.dates.astype(str)
    for row in frame.itertuples():
        today = np.flatnonzero((all_dates == row.date) & (curves.tickers == row.ticker))[0]
        own = np.flatnonzero((all_dates < row.date) & (curves.tickers == row.ticker))
        hist = curves.ratio[own].astype(np.float64)
        x = curves.ratio[today].astype(np.float64)
        m = row.minute
        keys = [(row.ticker, str(d)) for d in curves.dates[own]]
        best = brute_topk(row.algo, x[:m], hist[:, :m], keys, 5)
        rows = [own[keys.index((t, d))] for t, d, _ in best]
        s = np.array([sc for _, _, sc in best])
        w = 1.0 / (s + 1e-3 * s.mean() + 1e-300)
        w /= w.sum()
        y_now = curves.ratio[rows, m - 1].astype(np.float64)
        y_end = curves.ratio[rows, -1].astype(np.float64)
        closes = (1 + x[m - 1]) * (1 + y_end) / (1 + y_now) - 1
        assert row.pred_close == pytest.approx(float(w @ closes), rel=1e-9, abs=1e-12)
        rose = [1.0 if e > n else 0.5 if e == n else 0.0 for n, e in zip(y_now, y_end, strict=True)]
        assert row.up_raw == pytest.approx(float(w @ np.array(rose)), abs=1e-9)
        deciles = statistics.quantiles(closes.tolist(), n=10, method="inclusive")
        assert (row.q10, row.q90) == pytest.approx((deciles[0], deciles[8]), abs=1e-12)
        assert row.dispersion == pytest.approx(statistics.pstdev(closes.tolist()), abs=1e-12)
        assert row.move == pytest.approx((1 + x[-1]) / (1 + x[m - 1]) - 1, rel=1e-6, abs=1e-9)
        moves = (1 + hist[:, -1]) / (1 + hist[:, m - 1]) - 1
        assert row.mean_move == pytest.approx(moves.mean(), rel=1e-9, abs=1e-15)
        ups = [1.0 if v > 0 else 0.5 if v == 0 else 0.0 for v in moves]
        assert row.base_up == pytest.approx(np.mean(ups), abs=1e-12)
    last = frame[frame["minute"] == CN.slots]
    np.testing.assert_allclose(last[["up_raw", "base_up"]].to_numpy(), 0.5, atol=1e-12)


def test_no_look_ahead_later_days_and_later_minutes_change_nothing() -> None:
    rng = np.random.default_rng(12)
    ratio = _random_walk(rng, 40)
    config = WalkConfig(("sq", "sq_norm"), 5, CN, checkpoints=(60,))
    day = str(_curves({"AAA": ratio}).dates[30])
    base = walk_forward(_curves({"AAA": ratio}), config, [day]).frame
    changed = ratio.copy()
    changed[31:] = rng.normal(0, 0.05, changed[31:].shape)  # every later day
    changed[30, 60:] += 0.03  # today after the checkpoint
    other = walk_forward(_curves({"AAA": changed}), config, [day]).frame
    forecast = ["pred_close", "pred_move", "up_raw", "q10", "q90", "mean_move", "base_up"]
    pd.testing.assert_frame_equal(base[forecast], other[forecast])
    assert not np.allclose(base["move"], other["move"])  # the outcome did see the change


def _evaluate(ratio: np.ndarray, test_days: int) -> dict:
    curves = _curves({"IDX": ratio})
    dates = curves.dates.astype(str)
    config = WalkConfig(SEED_FOUR, 20, CN, checkpoints=(30, 60, 120, 180))
    return evaluate(curves, config, dates[-test_days], dates[-1]).report


@pytest.mark.slow(seconds=10)  # walks 60 days minute by minute
def test_random_walk_shows_no_skill() -> None:
    report = _evaluate(_random_walk(np.random.default_rng(13), 150), 60)
    for algo, per in report["results"].items():
        b = per["pooled"]
        lo, hi = b["hit_rate_ci95"]
        assert lo <= 0.5 <= hi, algo
        assert not b["pt_pvalue"] < 0.01 and not b["pt_pvalue_days"] < 0.01, algo
        lo, hi = b["hit_rate_ci95_days"]
        assert lo <= 0.5 <= hi, algo
        assert not (b["dm_pvalue_no_move"] < 0.01 and b["dm_stat_no_move"] < 0), algo
        assert abs(b["ic_tstat"]) < 2.576, algo
        assert b["brier"] <= b["brier_base_rate"] + 1e-15, algo
        assert (
            "no evidence of skill" in report["reading"][algo][0]
            or "always up" in (report["reading"][algo][0])
        ), algo


def _planted(rng: np.random.Generator, days: int) -> np.ndarray:
    """Four intraday shapes (rally then fade, fall then recover, grind up, grind down)."""
    t = np.linspace(0, 1, CN.slots)
    shapes = np.array([
        0.012 * np.sin(np.pi * t) - 0.006 * t,
        -0.012 * np.sin(np.pi * t) + 0.006 * t,
        0.004 * t + 0.008 * t**2,
        -0.004 * t - 0.008 * t**2,
    ])  # fmt: skip
    noise = np.cumsum(rng.normal(0, 1.5e-4, (days, CN.slots)), axis=1)
    return shapes[rng.integers(0, 4, days)] + noise


@pytest.mark.slow(seconds=10)  # walks 60 days minute by minute
def test_planted_day_shapes_are_found_and_beat_every_baseline() -> None:
    report = _evaluate(_planted(np.random.default_rng(14), 160), 60)
    for algo, per in report["results"].items():
        b = per["pooled"]
        assert b["hit_rate"] >= 0.70, algo
        assert b["hit_rate"] > b["hit_rate_always_up"], algo
        assert b["pt_pvalue"] < 0.01 and b["pt_pvalue_days"] < 0.01, algo
        assert b["rmse"] < b["rmse_no_move"] and b["rmse"] < b["rmse_hist_mean"], algo
        assert b["dm_pvalue_no_move"] < 0.05 and b["dm_stat_no_move"] < 0, algo
        assert b["brier"] < b["brier_base_rate"], algo
        s = b["strategy"]
        assert s["trades"] and s["total_return_after_cost"] > s["buy_and_hold_total"], algo
        assert report["reading"][algo][0].startswith("Direction: better than chance"), algo


@pytest.mark.slow(seconds=10)  # walks 60 days minute by minute
def test_on_a_trend_always_up_wins_and_the_report_says_so() -> None:
    report = _evaluate(_random_walk(np.random.default_rng(15), 150, drift=1.5e-4), 60)
    for algo, per in report["results"].items():
        b = per["pooled"]
        assert b["hit_rate_always_up"] > 0.8, algo
        assert b["hit_rate"] <= b["hit_rate_always_up"], algo
        assert b["brier"] <= b["brier_base_rate"] + 1e-15, algo
        assert "'always up'" in report["reading"][algo][0], algo


def test_pairs_are_walked_forward_additively_and_reported_apart() -> None:
    rng = np.random.default_rng(16)
    a, b = _random_walk(rng, 30), _random_walk(rng, 30)
    curves = _curves({"AAA": a, "BBB": b})
    config = WalkConfig(("sq", "var"), 5, CN, checkpoints=(5, 60), pairs=(("AAA", "BBB"),))
    dates = curves.dates.astype(str)[-4:]
    done = evaluate(curves, config, str(dates[0]), str(dates[-1]), ["AAA"])
    frame = done.frame[done.frame["ticker"] == "AAA~BBB"]
    assert len(frame) == 4 * 2 * 2 and frame["additive"].all()
    assert set(done.report["results"]) == {"sq", "var"}  # tickers: AAA and BBB only
    assert set(done.report["pairs"]["results"]) == {"sq", "var"}
    assert "AAA~BBB" not in done.report["tickers"]
    spread = a.astype(np.float32).astype(np.float64) - b.astype(np.float32).astype(np.float64)
    days = curves.dates[:30].astype(str).tolist()
    for row in frame.itertuples():
        t = days.index(row.date)
        m = row.minute
        keys = [("AAA~BBB", d) for d in days[:t]]
        best = brute_topk(row.algo, spread[t, :m], spread[:t, :m].astype(np.float32), keys, 5)
        rows = [days.index(d) for _, d, _ in best]
        s = np.array([sc for *_, sc in best])
        w = 1.0 / (s + 1e-3 * s.mean() + 1e-300)
        w /= w.sum()
        y = spread[rows].astype(np.float32).astype(np.float64)
        x_now = spread[t, m - 1]
        assert row.pred_close == pytest.approx(float(w @ (x_now + y[:, -1] - y[:, m - 1])),
                                               rel=1e-6, abs=1e-9)  # fmt: skip
        assert row.move == pytest.approx(spread[t, -1] - x_now, rel=1e-5, abs=1e-9)
        earlier = spread[:t].astype(np.float32).astype(np.float64)
        assert row.mean_move == pytest.approx(np.mean(earlier[:, -1] - earlier[:, m - 1]),
                                              rel=1e-6, abs=1e-12)  # fmt: skip
        assert row.up_prob == row.up_raw  # pairs are not calibrated
