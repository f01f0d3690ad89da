"""Rest-of-day risk and the band's coverage, each number against a loop or another library.

The targets, every baseline, QLIKE, the Diebold–Mariano p-values and the band's walk-forward
scale are recomputed here from their definitions (loops, statsmodels, scipy), and the verdict
is checked on a GARCH market, whose volatility clustering a vol forecaster must find.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

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
        assert again[name] == pytest.approx(made[name], rel=1e-12, nan_ok=True)


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
    days = [f"2024-{1 + d // 28:02d}-{1 + d % 28:02d}" for d in range(30)]
    frame = pd.DataFrame({"date": days * 2, "minute": [60] * 30 + [120] * 30, "algo": "sq",
                          "additive": False})  # fmt: skip
    frame["q10"] = -0.01 + rng.normal(0, 1e-3, 60)
    frame["q90"] = 0.01 + rng.normal(0, 1e-3, 60)
    frame["x_end"] = rng.normal(0, 0.012, 60)  # wider than the band: it under-covers
    got = band.band_section(frame, "sq")["checkpoints"]
    rows = list(frame.itertuples())
    z = [abs(r.x_end - (r.q10 + r.q90) / 2) / ((r.q90 - r.q10) / 2) for r in rows]
    covered = []
    for i, r in enumerate(rows):  # λ from the earlier days' rows of both checkpoints
        earlier = [z[j] for j, o in enumerate(rows) if o.date < r.date]
        scale = np.quantile(earlier, 0.8) if len(earlier) >= band.MIN_EARLIER else 1.0
        covered.append(z[i] <= scale)
    for minute, part in ((60, slice(0, 30)), (120, slice(30, 60))):
        inside = [(r.q10 <= r.x_end <= r.q90) for r in rows[part]]
        assert got[str(minute)]["coverage_raw"] == pytest.approx(np.mean(inside))
        assert got[str(minute)]["coverage_calibrated"] == pytest.approx(np.mean(covered[part]))
        assert got[str(minute)]["scale"] == pytest.approx(np.quantile(z[part], 0.8))
    assert got["pooled"]["coverage_calibrated"] == pytest.approx(np.mean(covered))
    assert got["pooled"]["coverage_raw"] < 0.8 and got["pooled"]["scale"] > 1  # too narrow
    assert band.final_scales(frame) == {"sq": pytest.approx(np.quantile(z, 0.8))}


def test_a_calibration_file_carries_the_band_and_an_older_one_still_loads(tmp_path: Path) -> None:
    from simsignal.engine.core.calibration import Calibration, CalibrationError

    cal = Calibration({"sq": 0.5}, {"*": [0.5] * 3}, band={"sq": 1.25})
    again = Calibration.load(cal.save(tmp_path / "c.json"))
    assert again == cal and again.q10_q90("sq", -0.02, 0.04) == pytest.approx((-0.0275, 0.0475))
    assert again.q10_q90("var", -0.02, 0.04) == (-0.02, 0.04)
    older = json.loads((tmp_path / "c.json").read_text())
    del older["band"]
    (tmp_path / "old.json").write_text(json.dumps(older))
    assert Calibration.load(tmp_path / "old.json").band == {}
    older["band"] = {"sq": -1}
    (tmp_path / "bad.json").write_text(json.dumps(older))
    with pytest.raises(CalibrationError, match="band factor of 'sq' is -1"):
        Calibration.load(tmp_path / "bad.json")


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
    assert best in ("published", "scaled_rv", "har_x")
    for target in ("rv", "range"):  # the live signal's model is evaluate's HAR-X, fitted alike
        both = report["risk"]["targets"][target]["checkpoints"]["pooled"]["forecasters"]
        assert both["published"]["mae"] == pytest.approx(both["har_x"]["mae"], rel=1e-9)
    assert "published" not in report["risk"]["targets"]["abs_move"]["checkpoints"]["pooled"][
        "forecasters"]  # fmt: skip
    assert pooled[best]["mae"] < pooled["hist_mean"]["mae"]
    assert pooled[best]["dm_pvalue_vs_hist_mean"] < 0.01
    assert any(line.startswith(f"rv: {best} is best, beats") for line in report["risk"]["reading"])
    cover = report["band"]["checkpoints"]["pooled"]
    assert 0 <= cover["coverage_raw"] <= 1 and cover["n"] == pooled["hist_mean"]["n"]


def _har_by_statsmodels(days: np.ndarray, today: np.ndarray, m: int) -> dict[str, float]:
    """Minute m's live risk entry from scratch: OLS per target, smearing, residual quantiles."""
    p = np.log1p(days.astype(np.float64))
    sq = np.diff(p, axis=1) ** 2  # sq[:, t - 1]: the return into slot t
    daily = np.sqrt(sq.sum(axis=1))
    x, ys = [], []
    for i in range(5, len(days)):
        x.append([math.log(daily[i - 1]), math.log(daily[i - 5 : i].mean()),
                  math.log(math.sqrt(sq[i, : m - 1].sum()))])  # fmt: skip
        rest = p[i, m - 1 :]
        ys.append([math.log(math.sqrt(sq[i, m - 1 :].sum())), math.log(rest.max() - rest.min())])
    t = np.log1p(today[:m].astype(np.float64))
    so_far = math.sqrt(float((np.diff(t) ** 2).sum()))
    x_now = [1.0, math.log(daily[-1]), math.log(daily[-5:].mean()), math.log(so_far)]
    out = {"rv_so_far": so_far}
    for j, name in enumerate(("rv", "range")):
        fit = sm.OLS(np.array(ys)[:, j], sm.add_constant(np.array(x))).fit()
        level = float(fit.params @ x_now)
        out[name] = math.exp(level) * float(np.mean(np.exp(fit.resid)))
        out[f"{name}_q10"] = math.exp(level + float(np.quantile(fit.resid, 0.1)))
        out[f"{name}_q90"] = math.exp(level + float(np.quantile(fit.resid, 0.9)))
    return out


def test_the_live_risk_entries_equal_a_statsmodels_fit_and_survive_a_restart() -> None:
    """Each ticker's risk entry per minute, from the shard holding its days, as the contract."""
    from simsignal.engine.core.derived import Derived
    from simsignal.engine.core.pipeline.batcher import Arrival
    from simsignal.engine.core.pipeline.local import ListSink, LocalShards
    from simsignal.engine.core.pipeline.minute import MinutePipeline
    from simsignal.engine.core.pipeline.ports import PipelineConfig
    from simsignal.engine.core.shard_state import ShardState

    rng = np.random.default_rng(8)
    ratios = {"AAA": _ratios(rng, 61), "BBB": _ratios(rng, 61)}
    history = {t: r[:-1].astype(np.float32) for t, r in ratios.items()}  # as a shard holds them
    shards = [
        ShardState(_curves_of({t: h}), ["sq"], 5, False, risk=True) for t, h in history.items()
    ]
    date = "2024-04-26"

    def pipeline(states: list[ShardState]) -> tuple[MinutePipeline, ListSink]:
        config = PipelineConfig(algorithms=("sq",), k=5, template="cn", date=date,
                                last_close={t: ("2024-04-25", 100.0) for t in ratios},
                                risk=True)  # fmt: skip
        sink = ListSink()
        return MinutePipeline(config, LocalShards(states), sink), sink

    def bars(minute: int) -> list[Arrival]:
        out = []
        for t, r in ratios.items():
            c = repr(100 * (1 + float(r[-1, minute - 1])))
            out.append(Arrival({"ticker": t, "ts": f"{date}T{CN.label(minute - 1)}:00",
                                "open": c, "high": c, "low": c, "close": c, "volume": "1"},
                               "test", 0.0))  # fmt: skip
        return out

    live, sink = pipeline(shards)
    for minute in range(1, 41):
        live.on_batch(bars(minute))
    risk = {(d.ticker, d.minute): d for d in sink.derived if d.kind == "risk"}
    assert set(risk) == {(t, m) for t in ratios for m in range(1, 41)}
    assert all(type(v) is float for d in risk.values() for v in d.values.values())  # JSON-ready
    assert json.loads(risk[("AAA", 7)].to_json())["rv"] == risk[("AAA", 7)].values["rv"]
    for (ticker, m), entry in risk.items():
        if m < 3:  # no return yet (minute 1) or one: the historical mean at minute 1
            continue
        want = _har_by_statsmodels(history[ticker], ratios[ticker][-1], m)
        assert entry.algo == "har_x" and entry.slot == CN.label(m - 1)
        assert entry.values == pytest.approx(want, rel=1e-6), (ticker, m)
    first = risk[("AAA", 1)]
    assert first.algo == "hist_mean" and first.values["rv_so_far"] == 0.0
    days = np.log1p(history["AAA"].astype(np.float64))
    rest = np.sqrt((np.diff(days, axis=1) ** 2).sum(axis=1))
    assert first.values["rv"] == pytest.approx(rest.mean(), rel=1e-9)
    assert first.values["rv_q90"] == pytest.approx(np.quantile(rest, 0.9), rel=1e-9)

    # a restarted engine: fresh shards restored from the journal give the same next minutes
    fresh = [
        ShardState(_curves_of({t: h}), ["sq"], 5, False, risk=True) for t, h in history.items()
    ]
    again, again_sink = pipeline(fresh)
    again.restore(sink.records[:30])
    for minute in range(31, 41):
        again.on_batch(bars(minute))
    redone = {(d.ticker, d.minute): d for d in again_sink.derived if isinstance(d, Derived)}
    assert redone == {k: v for k, v in risk.items() if k[1] > 30}


def test_the_live_model_fits_its_window_and_masked_quantiles_follow_numpy() -> None:
    from simsignal.engine.core.risk_model import RiskModel, quantiles

    ratio = _ratios(np.random.default_rng(9), 90).astype(np.float32)
    m, window = 100, 40
    model = RiskModel.fit(ratio, [m], window=window)
    p = np.log1p(ratio.astype(np.float64))
    sq = np.diff(p, axis=1) ** 2
    daily = np.sqrt(sq.sum(axis=1))
    rows = range(90 - window, 90)  # the last 40 days, their regressors from the days before
    x = [[math.log(daily[i - 1]), math.log(daily[i - 5 : i].mean()),
          math.log(math.sqrt(sq[i, : m - 1].sum()))] for i in rows]  # fmt: skip
    y = [math.log(math.sqrt(sq[i, m - 1 :].sum())) for i in rows]
    fit = sm.OLS(np.array(y), sm.add_constant(np.array(x))).fit()
    assert model.beta[m - 1, 0] == pytest.approx(fit.params, rel=1e-8)
    assert model.smear[m - 1, 0] == pytest.approx(np.mean(np.exp(fit.resid)), rel=1e-9)
    assert np.isnan(model.beta[m, 0]).all()  # only the minutes asked for are fitted
    assert model.mean[m - 1, 0, 0] == pytest.approx(np.mean(np.exp(y)), rel=1e-9)

    values = np.random.default_rng(10).normal(size=(5, 30))
    mask = np.random.default_rng(11).random((5, 30)) > 0.3
    mask[3] = False
    got = quantiles(values, mask, (0.1, 0.5, 0.9))
    for row in range(5):
        want = np.quantile(values[row][mask[row]], [0.1, 0.5, 0.9]) if mask[row].any() else [
            math.nan] * 3  # fmt: skip
        assert got[row] == pytest.approx(want, rel=1e-12, nan_ok=True)
