"""Rest-of-day risk and the band's coverage, each number against a loop or another library.

The targets, every baseline, QLIKE, the Diebold–Mariano p-values and the band's walk-forward
scale are recomputed here from their definitions (loops, statsmodels, scipy), and the verdict
is checked on a GARCH market, whose volatility clustering a vol forecaster must find.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from simsignal.engine.adapters.synthetic import make_history
from simsignal.engine.app.evaluation import band, risk
from simsignal.engine.app.evaluation.evaluate import evaluate
from simsignal.engine.app.evaluation.walk_forward import WalkConfig, dates_to_test, walk_forward
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.templates import get_template
from tests.helpers import brute_topk, curves_from_bars

CN = get_template("cn")


def _ratios(rng: np.random.Generator, days: int) -> np.ndarray:
    vol = np.exp(rng.normal(-7, 0.5, days))[:, None]  # a different level each day
    return np.cumsum(rng.normal(0, 1, (days, CN.slots)) * vol, axis=1)


def _loop_targets(day: np.ndarray, m: int) -> tuple[float, float, float]:
    p = [math.log1p(float(v)) for v in day]
    now = m - 1
    rv = math.sqrt(sum((p[t] - p[t - 1]) ** 2 for t in range(now + 1, len(p))))
    return abs(p[-1] - p[now]), rv, max(p[now:]) - min(p[now:])


def test_targets_match_a_loop_over_each_day_and_minute() -> None:
    ratio = _ratios(np.random.default_rng(1), 4)
    got = risk.day_risk(ratio)
    for d in range(4):
        for m in (1, 2, 30, 120, CN.slots):
            assert got.targets[d, m - 1] == pytest.approx(_loop_targets(ratio[d], m), abs=1e-12)
            p = np.log1p(ratio[d])
            so_far = math.sqrt(sum((p[t] - p[t - 1]) ** 2 for t in range(1, m)))
            assert got.so_far[d, m - 1] == pytest.approx(so_far, abs=1e-12)
        assert got.targets[d, CN.slots - 1].tolist() == [0.0, 0.0, 0.0]


def test_each_baseline_matches_its_definition_on_earlier_days_only() -> None:
    ratio = _ratios(np.random.default_rng(2), 80)
    r = risk.day_risk(ratio)
    d, m = 60, 90
    made = risk.forecasts(r, d, m, [0.1, 0.2, 0.3])
    earlier = np.array([_loop_targets(ratio[i], m) for i in range(d)])
    assert made["hist_mean"] == pytest.approx(earlier.mean(axis=0), rel=1e-9)
    assert made["yesterday"] == pytest.approx(_loop_targets(ratio[d - 1], m), rel=1e-9)
    assert made["analogue"].tolist() == [0.1, 0.2, 0.3]
    # scaled_rv: today's rv so far times the earlier days' share of variance left
    p = np.log1p(ratio[: d + 1])
    sq = np.diff(p, axis=1) ** 2  # sq[:, t - 1]: the return into slot t
    profile = sq[:d].mean(axis=0)
    rv = math.sqrt(sq[d, : m - 1].sum()) * math.sqrt(
        profile[m - 1 :].sum() / profile[: m - 1].sum()
    )
    ratio_to_rv = earlier.mean(axis=0) / earlier[:, 1].mean()
    assert made["scaled_rv"] == pytest.approx(rv * ratio_to_rv, rel=1e-9)
    # har_x: statsmodels OLS of log target on the HAR regressors, days 5..d-1, smeared back
    daily = np.sqrt(sq.sum(axis=1))
    rows = range(5, d)
    x = np.array([[math.log(daily[i - 1]), math.log(daily[i - 5 : i].mean()),
                   math.log(math.sqrt(sq[i, : m - 1].sum()))] for i in rows])  # fmt: skip
    x_today = [1.0, math.log(daily[d - 1]), math.log(daily[d - 5 : d].mean()),
               math.log(math.sqrt(sq[d, : m - 1].sum()))]  # fmt: skip
    for target in range(3):
        y = np.log(earlier[5:, target])
        fit = sm.OLS(y, sm.add_constant(x)).fit()
        smear = np.mean(np.exp(fit.resid))
        assert made["har_x"][target] == pytest.approx(math.exp(fit.params @ x_today) * smear,
                                                      rel=1e-7)  # fmt: skip
    # the test day itself and later days change nothing
    changed = ratio.copy()
    changed[d, m:] += 0.05
    changed[d + 1 :] *= 3
    again = risk.forecasts(risk.day_risk(changed), d, m, [0.1, 0.2, 0.3])
    for name in risk.FORECASTERS:
        assert again[name] == pytest.approx(made[name], rel=1e-12)


def test_har_x_waits_for_enough_days() -> None:
    r = risk.day_risk(_ratios(np.random.default_rng(3), risk.MIN_FIT + 5))
    short = risk.forecasts(r, risk.MIN_FIT + 4, 60, [0, 0, 0])  # fits on days 5 … MIN_FIT + 3
    assert math.isnan(short["har_x"][1]) and math.isfinite(short["hist_mean"][1])
    assert all(math.isnan(v) for v in risk.forecasts(r, 0, 60, [0, 0, 0])["hist_mean"])


def test_scores_match_plain_computations() -> None:
    rng = np.random.default_rng(4)
    n = 120
    rows = pd.DataFrame({"date": np.repeat([f"2024-01-{d:02d}" for d in range(1, 31)], 4),
                         "minute": np.tile([30, 60, 120, 180], 30)})  # fmt: skip
    truth = np.exp(rng.normal(-6, 0.4, n))
    rows["rv"] = truth
    for name in risk.FORECASTERS:
        rows[f"rv:{name}"] = truth * np.exp(rng.normal(0, 0.3 if name == "har_x" else 0.6, n))
    got = risk.scored(rows, "rv")
    for name in risk.FORECASTERS:
        f = rows[f"rv:{name}"].to_numpy()
        b = got[name]
        assert b["n"] == n
        assert b["mae"] == pytest.approx(np.mean(np.abs(f - truth)), rel=1e-12)
        assert b["rmse"] == pytest.approx(math.sqrt(np.mean((f - truth) ** 2)), rel=1e-12)
        assert b["spearman"] == pytest.approx(stats.spearmanr(f, truth).statistic, rel=1e-12)
        ratios = [t * t / (g * g) for t, g in zip(truth, f, strict=True)]
        loop = sum(v - math.log(v) - 1 for v in ratios)
        assert b["qlike"] == pytest.approx(loop / n, rel=1e-9)
        if name != "hist_mean":  # DM, one loss per day: a one-sample t-test on daily differences
            diff = (np.abs(f - truth) - np.abs(rows["rv:hist_mean"] - truth)).groupby(
                rows["date"]).mean()  # fmt: skip
            assert b["dm_pvalue_vs_hist_mean"] == pytest.approx(
                stats.ttest_1samp(diff, 0.0).pvalue, rel=1e-6)  # fmt: skip
    rows.loc[3, "rv:yesterday"] = math.nan  # one missing forecast drops that row for everyone
    assert {b["n"] for b in risk.scored(rows, "rv").values()} == {n - 1}


def test_band_coverage_and_its_walk_forward_scale_match_loops() -> None:
    rng = np.random.default_rng(5)
    days = [f"2024-{1 + d // 28:02d}-{1 + d % 28:02d}" for d in range(50)]
    frame = pd.DataFrame({"date": days, "minute": 60, "algo": "sq", "additive": False})
    frame["q10"] = -0.01 + rng.normal(0, 1e-3, 50)
    frame["q90"] = 0.01 + rng.normal(0, 1e-3, 50)
    frame["x_end"] = rng.normal(0, 0.012, 50)  # wider than the band: it under-covers
    got = band.band_section(frame, "sq")["checkpoints"]
    inside = [(r.q10 <= r.x_end <= r.q90) for r in frame.itertuples()]
    assert got["60"]["coverage_raw"] == pytest.approx(np.mean(inside))
    z = [abs(r.x_end - (r.q10 + r.q90) / 2) / ((r.q90 - r.q10) / 2) for r in frame.itertuples()]
    covered = []
    for i, day in enumerate(days):
        earlier = [z[j] for j in range(50) if days[j] < day]
        scale = np.quantile(earlier, 0.8) if len(earlier) >= band.MIN_EARLIER else 1.0
        covered.append(z[i] <= scale)
    assert got["60"]["coverage_calibrated"] == pytest.approx(np.mean(covered))
    assert got["60"]["scale"] == pytest.approx(np.quantile(z, 0.8))
    assert got["pooled"]["coverage_raw"] == got["60"]["coverage_raw"]
    assert got["60"]["coverage_raw"] < 0.8 and got["60"]["scale"] > 1  # too narrow: widened


def _curves_of(ratios: dict[str, np.ndarray]) -> DayCurves:
    tickers, dates, rows = [], [], []
    for ticker, ratio in ratios.items():
        tickers += [ticker] * len(ratio)
        dates += pd.bdate_range("2023-01-02", periods=len(ratio)).strftime("%Y-%m-%d").tolist()
        rows.append(ratio)
    return DayCurves(np.asarray(tickers, object), np.asarray(dates, object),
                     np.concatenate(rows).astype(np.float32), np.ones(len(tickers)))  # fmt: skip


def test_the_analogue_is_the_mean_of_the_brute_force_neighbours_targets() -> None:
    rng = np.random.default_rng(6)
    curves = _curves_of({"AAA": _ratios(rng, 30), "BBB": _ratios(rng, 30)})
    config = WalkConfig(("sq",), 5, CN, checkpoints=(30, 120))
    frame = walk_forward(curves, config, dates_to_test(curves, "2023-02-06", "2023-02-08")).frame
    all_dates = curves.dates.astype(str)
    for row in frame.itertuples():
        own = np.flatnonzero((all_dates < row.date) & (curves.tickers == row.ticker))
        today = np.flatnonzero((all_dates == row.date) & (curves.tickers == row.ticker))[0]
        x = curves.ratio[today, : row.minute].astype(np.float64)
        keys = [(row.ticker, str(d)) for d in curves.dates[own]]
        best = brute_topk("sq", x, curves.ratio[own][:, : row.minute], keys, 5)
        where = {k: i for k, i in zip(keys, own, strict=True)}
        want = np.mean([_loop_targets(curves.ratio[where[(t, d)]], row.minute)
                        for t, d, _ in best], axis=0)  # fmt: skip
        got = [row.an_abs_move, row.an_rv, row.an_range]
        assert got == pytest.approx(want.tolist(), rel=1e-5)


def test_on_a_garch_market_a_vol_forecaster_beats_the_historical_mean() -> None:
    """GARCH volatility clusters: today's vol so far says much about the rest of the day."""
    bars = make_history(CN, years=1.2, seed=7)
    wide = curves_from_bars(bars, CN)
    curves = DayCurves(np.asarray(wide.index.get_level_values(0), object),
                       np.asarray(wide.index.get_level_values(1), object),
                       wide.to_numpy(np.float32), np.ones(len(wide)))  # fmt: skip
    dates = curves.dates.astype(str)
    report = evaluate(curves, WalkConfig(("sq",), 20, CN, checkpoints=(60, 120)),
                      str(dates[200]), str(dates[-1])).report  # fmt: skip
    pooled = report["risk"]["targets"]["rv"]["checkpoints"]["pooled"]["forecasters"]
    best = min(pooled, key=lambda n: pooled[n]["mae"])
    assert best in ("scaled_rv", "har_x")
    assert pooled[best]["mae"] < pooled["hist_mean"]["mae"]
    assert pooled[best]["dm_pvalue_vs_hist_mean"] < 0.01
    assert any(line.startswith(f"rv: {best} is best, beats") for line in report["risk"]["reading"])
    cover = report["band"]["checkpoints"]["pooled"]
    assert 0 <= cover["coverage_raw"] <= 1 and cover["n"] == pooled["hist_mean"]["n"]
