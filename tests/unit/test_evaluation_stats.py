"""The evaluation's statistics and calibration against independent computations.

Wilson against statsmodels; Diebold–Mariano with one-step losses against scipy's one-sample
t-test (the small-sample corrected statistic is exactly that t); the rest against loops.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from simsignal.engine.app.evaluation import calibration, metrics, report
from simsignal.engine.core.derived import TimingRule


@pytest.mark.parametrize(("hits", "n"), [(0, 10), (7, 10), (523, 1000), (1884, 1884)])
def test_wilson_matches_statsmodels(hits: int, n: int) -> None:
    lo, hi = proportion_confint(hits, n, alpha=0.05, method="wilson")
    assert metrics.wilson(hits, n) == pytest.approx((lo, hi), abs=1e-12)


def _pt_by_table(x: np.ndarray, y: np.ndarray) -> float:
    """Pesaran–Timmermann from the 2×2 table's margins, written out separately."""
    n = len(x)
    table = np.array([[np.sum(~x & ~y), np.sum(~x & y)], [np.sum(x & ~y), np.sum(x & y)]])
    hit = (table[0, 0] + table[1, 1]) / n
    px, py = table[1].sum() / n, table[:, 1].sum() / n
    star = px * py + (1 - px) * (1 - py)
    var_hit = star * (1 - star) / n
    var_star = (
        ((2 * py - 1) ** 2) * px * (1 - px) / n
        + ((2 * px - 1) ** 2) * py * (1 - py) / n
        + 4 * px * py * (1 - px) * (1 - py) / (n * n)
    )
    return float(stats.norm.sf((hit - star) / math.sqrt(var_hit - var_star)))


def test_pesaran_timmermann_matches_the_table_form_and_detects_skill() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.55
    noise = rng.random(500) < 0.5
    assert metrics.pesaran_timmermann(noise, y) == pytest.approx(_pt_by_table(noise, y), rel=1e-9)
    skilled = np.where(rng.random(500) < 0.8, y, ~y)
    p = metrics.pesaran_timmermann(skilled, y)
    assert p == pytest.approx(_pt_by_table(skilled, y), rel=1e-9)
    assert p < 1e-6
    assert math.isnan(metrics.pesaran_timmermann(np.ones(50, bool), y[:50]))  # always up


def test_diebold_mariano_one_step_is_the_one_sample_t_test() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 80) ** 2, rng.normal(0.1, 1, 80) ** 2
    dm, p = metrics.diebold_mariano(a, b)
    t = stats.ttest_1samp(a - b, 0.0)
    assert dm == pytest.approx(t.statistic, rel=1e-10)
    assert p == pytest.approx(t.pvalue, rel=1e-10)


def test_diebold_mariano_with_a_longer_horizon_matches_a_loop() -> None:
    rng = np.random.default_rng(5)
    d = rng.normal(0.05, 1, 60)
    n, h = len(d), 3
    mean = sum(d) / n
    gammas = [sum((d[i] - mean) * (d[i - k] - mean) for i in range(k, n)) / n for k in range(h)]
    stat = mean / math.sqrt((gammas[0] + 2 * (gammas[1] + gammas[2])) / n)
    stat *= math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    dm, p = metrics.diebold_mariano(d, np.zeros(n), h=h)
    assert dm == pytest.approx(stat, rel=1e-10)
    assert p == pytest.approx(2 * (1 - stats.t.cdf(abs(stat), n - 1)), rel=1e-8)


def test_spearman_brier_and_reliability_match_plain_computations() -> None:
    rng = np.random.default_rng(6)
    pred, real = rng.normal(size=300), rng.normal(size=300)
    real[:5] = 0.0
    r, t = metrics.spearman_ic(pred, real)
    ranked = pd.Series(pred).rank().corr(pd.Series(real).rank())
    assert r == pytest.approx(ranked, rel=1e-12)
    assert t == pytest.approx(ranked * math.sqrt(298 / (1 - ranked**2)), rel=1e-12)
    prob = rng.random(300)
    y = metrics.outcome(real)
    assert sum(y == 0.5) == 5
    assert metrics.brier(prob, y) == pytest.approx(
        sum((p - o) ** 2 for p, o in zip(prob, y, strict=True)) / 300, rel=1e-12
    )
    table = metrics.reliability(prob, y, bins=4)
    for row in table:
        inside = [(p, o) for p, o in zip(prob, y, strict=True) if row["lo"] <= p < row["hi"]]
        assert row["n"] == len(inside)
        assert row["mean_prob"] == pytest.approx(np.mean([p for p, _ in inside]))
        assert row["freq"] == pytest.approx(np.mean([o for _, o in inside]))
    assert sum(row["n"] for row in table) == 300


def _frame(rng: np.random.Generator, days: int, skill: float) -> pd.DataFrame:
    """Forecast rows: 5 checkpoints a day; up_raw carries `skill` about the outcome."""
    rows = []
    for d in range(days):
        for m in (30, 60, 90, 120, 180):
            move = rng.normal(0.0002, 0.005)
            base = 0.52
            up_raw = float(np.clip(base + skill * np.sign(move) + rng.normal(0, 0.2), 0, 1))
            rows.append({"date": f"2024-{1 + d // 28:02d}-{1 + d % 28:02d}", "algo": "sq",
                         "minute": m, "up_raw": up_raw, "base_up": base, "move": move})  # fmt: skip
    return pd.DataFrame(rows)


def _weight_from_scratch(frame: pd.DataFrame, before: str) -> float:
    """λ from the rows dated before `before`, recomputed with a loop over days."""
    earlier = frame[frame["date"] < before]
    days = sorted(earlier["date"].unique())
    if len(days) < calibration.MIN_DAYS:
        return 0.0
    a_days, b_days = [], []
    for day in days:
        rows = earlier[earlier["date"] == day]
        gap = rows["up_raw"] - rows["base_up"]
        y = np.where(rows["move"] > 0, 1.0, np.where(rows["move"] == 0, 0.5, 0.0))
        a_days.append(float((gap * (y - rows["base_up"])).sum()))
        b_days.append(float((gap * gap).sum()))
    slope = sum(a_days) / sum(b_days)
    se = math.sqrt(sum((a - slope * b) ** 2 for a, b in zip(a_days, b_days, strict=True)))
    return min(1.0, max(0.0, slope - calibration.Z * se / sum(b_days)))


@pytest.mark.parametrize("skill", [0.0, 0.3])
def test_calibration_weights_use_earlier_days_only(skill: float) -> None:
    frame = _frame(np.random.default_rng(7), 60, skill)
    lam = calibration.walk_forward_weights(frame)
    for day in sorted(frame["date"].unique())[::7]:
        got = lam[frame["date"] == day].unique()
        assert got.tolist() == pytest.approx([_weight_from_scratch(frame, day)], abs=1e-12)
    last = calibration.final_weights(frame)["sq"]
    assert last == pytest.approx(_weight_from_scratch(frame, "9999"), abs=1e-12)
    if skill:
        assert last > 0.5  # real skill is kept
        cal = calibration.calibrate(frame["up_raw"], frame["base_up"], lam.to_numpy())
        y = metrics.outcome(frame["move"])
        assert metrics.brier(cal, y) < metrics.brier(frame["base_up"], y)
    else:
        assert last == 0.0  # none claimed


def test_block_statistics_match_loops() -> None:
    rng = np.random.default_rng(8)
    n = 200
    x_now = rng.normal(0, 0.01, n)
    x_end = x_now + rng.normal(0, 0.01, n)
    x_end[:4] = x_now[:4]  # unchanged: not rated for direction
    pred_close = x_now + 0.3 * (x_end - x_now) + rng.normal(0, 0.01, n)
    rows = pd.DataFrame({
        "date": [f"d{i // 4:03d}" for i in range(n)], "x_now": x_now, "x_end": x_end,
        "pred_close": pred_close, "pred_move": (1 + pred_close) / (1 + x_now) - 1,
        "move": (1 + x_end) / (1 + x_now) - 1, "mean_move": 0.0005, "up_raw": rng.random(n),
        "base_up": 0.5, "up_prob": rng.random(n), "dispersion": rng.uniform(0.0, 0.02, n),
    })  # fmt: skip
    rows.loc[:9, "dispersion"] = 0.0  # unbounded edge
    b = report.block(rows, cost_bps=2.0, rule=TimingRule(prob_margin=0.1, min_edge=0.2))
    rated = [(p, m) for p, m in zip(rows["pred_move"], rows["move"], strict=True) if m and p]
    hits = sum((p > 0) == (m > 0) for p, m in rated)
    assert b["n_direction"] == len(rated) == n - 4
    assert b["hit_rate"] == pytest.approx(hits / len(rated))
    assert b["mae"] == pytest.approx(np.mean(np.abs(pred_close - x_end)))
    assert b["rmse_no_move"] == pytest.approx(math.sqrt(np.mean((x_now - x_end) ** 2)))
    hist = (1 + x_now) * 1.0005 - 1
    assert b["mae_hist_mean"] == pytest.approx(np.mean(np.abs(hist - x_end)))
    daily = rows.assign(d=(pred_close - x_end) ** 2 - (x_now - x_end) ** 2).groupby("date")["d"]
    assert b["dm_pvalue_no_move"] == pytest.approx(stats.ttest_1samp(daily.mean(), 0).pvalue)
    pos = []
    for p, u, d in zip(rows["pred_move"], rows["up_prob"], rows["dispersion"], strict=True):
        e = p / d if d else (math.inf if p > 0 else -math.inf)
        pos.append(1 if u >= 0.6 and e >= 0.2 else -1 if u <= 0.4 and e <= -0.2 else 0)
    assert {1, -1, 0} <= set(pos)
    trades = [q * m - 2 * 2e-4 * abs(q) for q, m in zip(pos, rows["move"], strict=True)]
    s = b["strategy"]
    assert s["trades"] == sum(1 for q in pos if q)
    assert s["mean_return_after_cost"] == pytest.approx(np.mean(trades))
    assert s["total_return_after_cost"] == pytest.approx(
        sum(np.mean(trades[i : i + 4]) for i in range(0, n, 4))
    )


def test_day_clustered_interval_and_test_match_statsmodels_cluster_robust_ols() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(9)
    days = np.repeat(np.arange(40), 6)  # six checkpoints a day share a day effect
    y = rng.random(240) < 0.5 + np.repeat(rng.normal(0, 0.2, 40), 6)
    pred = rng.random(240) < 0.6
    hits = (pred == y).astype(float)
    fit = sm.OLS(hits, np.ones(240)).fit(cov_type="cluster", cov_kwds={"groups": days})
    mean, lo, hi = metrics.clustered_mean(hits, days)
    assert mean == pytest.approx(fit.params[0])
    assert (lo, hi) == pytest.approx(tuple(fit.conf_int(0.05)[0]), rel=1e-9)
    star = pred.mean() * y.mean() + (1 - pred.mean()) * (1 - y.mean())
    excess = sm.OLS(hits - star, np.ones(240)).fit(cov_type="cluster", cov_kwds={"groups": days})
    want = stats.norm.sf(excess.params[0] / excess.bse[0])
    assert metrics.pesaran_timmermann_days(pred, y, days) == pytest.approx(want, rel=1e-9)


def test_the_rebalance_strategy_matches_a_day_worked_by_hand() -> None:
    from simsignal.engine.app.evaluation.strategies import rebalance_strategy
    from simsignal.engine.core.derived import RebalanceRule

    rows = pd.DataFrame({
        "date": ["d1"] * 4, "ticker": ["A", "B", "A", "B"], "minute": [30, 30, 120, 120],
        "x_now": [0.01, 0.0, 0.02, -0.01], "x_end": [0.03, -0.02, 0.03, -0.02],
        "pred_move": [0.01, 0.005, -0.01, 0.01], "dispersion": [0.01] * 4,
        "up_prob": [0.7, 0.7, 0.3, 0.7],
    })  # fmt: skip
    got = rebalance_strategy(rows, TimingRule(0.05, 0.25), RebalanceRule(0.5, 0.6), 10.0)
    # 30: edges A 1, B 0.5 -> target A 0.5 (capped), B 1/3; 0.833 of turnover scaled to 0.6
    a, b = 0.5 * 0.6 / (0.5 + 1 / 3), (1 / 3) * 0.6 / (0.5 + 1 / 3)
    made = a * (1.02 / 1.01 - 1) + b * (0.99 / 1.00 - 1)
    # 120: A is short (edge 0), B long with edge 1 -> target B 0.5; 0.62 of turnover scaled
    k = 0.6 / (a + (0.5 - b))
    a2, b2 = a - k * a, b + k * (0.5 - b)
    made += a2 * (1.03 / 1.02 - 1) + b2 * (0.98 / 0.99 - 1)
    traded = 0.6 + 0.6 + a2 + b2
    assert got["total_return"] == pytest.approx(made, rel=1e-12)
    assert got["total_return_after_cost"] == pytest.approx(made - 10e-4 * traded, rel=1e-12)
    assert got["mean_turnover"] == pytest.approx(traded)
    assert got["basket_total"] == pytest.approx(((1.03 / 1.01 - 1) + (0.98 - 1)) / 2)
