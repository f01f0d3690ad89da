"""The market section of `evaluate`: rank IC and the long–short decile, against scipy and loops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simsignal.engine.app.evaluation.cross_section import cross_section, reading


def _frame(rng: np.random.Generator, tickers: int, days: int, skill: float) -> pd.DataFrame:
    rows = []
    for d in range(days):
        for m in (30, 120):
            for algo in ("sq", "var"):
                pred = rng.normal(0, 1e-3, tickers)
                pred[:3] = pred[3]  # tied forecasts: average ranks, deciles by ticker name
                real = skill * pred + rng.normal(0, 1e-3, tickers)
                for t in range(tickers):
                    rows.append(
                        {
                            "date": f"2024-01-{d + 1:02d}",
                            "minute": m,
                            "algo": algo,
                            "ticker": f"T{t:03d}",
                            "pred_move": pred[t],
                            "move": real[t],
                        }
                    )
    frame = pd.DataFrame(rows)
    frame.loc[5, "pred_move"] = np.nan  # a missing forecast is left out of its minute
    return frame


def _by_loops(frame: pd.DataFrame, cost_bps: float) -> dict[tuple[str, int, str], tuple]:
    out = {}
    for (algo, m, date), group in frame.groupby(["algo", "minute", "date"]):
        at = group.dropna(subset=["pred_move", "move"]).sort_values("ticker")
        ic = stats.spearmanr(at["pred_move"], at["move"]).statistic
        n = len(at)
        cut = max(1, n // 10)
        order = sorted(range(n), key=lambda i: (at["pred_move"].iloc[i], i))  # ties: by name
        low = at["move"].iloc[order[:cut]].mean()
        high = at["move"].iloc[order[-cut:]].mean()
        out[(algo, m, date)] = (ic, high - low, high - low - 4 * cost_bps / 1e4)
    return out


def test_rank_ic_and_long_short_match_scipy_and_loops() -> None:
    frame = _frame(np.random.default_rng(7), 37, 12, skill=0.3)
    got = cross_section(frame, cost_bps=2.0, published="var")
    assert (
        got["algorithm"] == "var" and got["checkpoints"] is got["algorithms"]["var"]["checkpoints"]
    )
    want = _by_loops(frame, 2.0)
    for algo in ("sq", "var"):
        per = got["algorithms"][algo]["checkpoints"]
        for m in (30, 120):
            days = [v for (a, mm, _), v in sorted(want.items()) if a == algo and mm == m]
            ic = [v[0] for v in days]
            after = [v[2] for v in days]
            block = per[str(m)]
            assert block["n_days"] == 12
            assert block["rank_ic_mean"] == pytest.approx(np.mean(ic), rel=1e-9)
            assert block["rank_ic_t"] == pytest.approx(stats.ttest_1samp(ic, 0).statistic, rel=1e-9)
            assert block["long_short_after_costs"] == pytest.approx(np.mean(after), rel=1e-9)
            assert block["long_short_after_costs_t"] == pytest.approx(
                stats.ttest_1samp(after, 0).statistic, rel=1e-9)  # fmt: skip
            assert block["long_short_before_costs"] == pytest.approx(
                np.mean([v[1] for v in days]), rel=1e-9)  # fmt: skip
        # pooled: a day's checkpoints averaged first, then over days
        daily: dict[str, list[float]] = {}
        for (a, _, date), v in want.items():
            if a == algo:
                daily.setdefault(date, []).append(v[0])
        pooled_ic = [np.mean(v) for _, v in sorted(daily.items())]
        assert per["pooled"]["rank_ic_mean"] == pytest.approx(np.mean(pooled_ic), rel=1e-9)
        assert per["pooled"]["rank_ic_t"] == pytest.approx(
            stats.ttest_1samp(pooled_ic, 0).statistic, rel=1e-9)  # fmt: skip
    # a real link between forecast and outcome is found, and said
    assert got["algorithms"]["sq"]["checkpoints"]["pooled"]["rank_ic_t"] > 2
    assert "some skill" in reading(got, "sq")


def test_no_link_reads_as_no_skill_and_small_markets_are_left_out() -> None:
    frame = _frame(np.random.default_rng(8), 20, 8, skill=0.0)
    got = cross_section(frame, cost_bps=1.0)
    p = got["algorithms"]["sq"]["checkpoints"]["pooled"]
    assert abs(p["rank_ic_t"]) < 2 and "no skill" in reading(got, "sq")
    small = cross_section(frame[frame["ticker"] < "T009"], cost_bps=1.0)  # 9 tickers a minute
    assert small["algorithms"] == {}
    assert cross_section(frame.head(0), 1.0)["algorithms"] == {}
