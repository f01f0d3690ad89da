"""A market's walk-forward where its days are held: exact against a brute force and the live walk.

`nearest_at` is checked against a from-scratch NumPy top-k over the earlier rows only (ties to
the earlier day); a shard's whole walk (forecasts, outcomes, baselines, risk rows) against the
in-process walk, which feeds every minute through the live minute pipeline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simsignal.engine.app.evaluation.risk import risk_frame
from simsignal.engine.app.evaluation.walk_forward import WalkConfig, dates_to_test, walk_forward
from simsignal.engine.core.algorithms import select
from simsignal.engine.core.algorithms.base import snap
from simsignal.engine.core.checkpoint_top_k import nearest_at
from simsignal.engine.core.risk_model import RiskModel
from simsignal.engine.core.shard_state import ShardState
from simsignal.engine.core.templates import get_template
from simsignal.engine.core.ticker_walk import WALK_COLUMNS, TickerWalk
from tests.helpers import brute_topk
from tests.unit.test_walk_forward import _curves, _random_walk

CN = get_template("cn")
KEY = ["date", "ticker", "minute", "algo"]


def _days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random walks with the cases that break naive code: a repeated day, a flat day."""
    days = _random_walk(rng, n)
    days[7] = days[3]  # an exact tie with an earlier day: the earlier one ranks first
    days[11] = 0.0  # a constant prefix: the scaled metrics score it 0 or by the grid
    return days.astype(np.float32)


def test_nearest_at_equals_a_brute_force_over_the_earlier_rows() -> None:
    days = _days(np.random.default_rng(2), 30)
    cols = np.ascontiguousarray(days.T)
    tests, minutes, k = [1, 4, 8, 12, 29], [1, 2, 30, 120, CN.slots], 5
    algos = select(["sq", "var", "sq_norm", "var_norm", "corr"])
    got = nearest_at(cols, [0, *tests], minutes, algos, k)
    assert not any(j == 0 for j, _, _ in got)  # no earlier day: nothing
    keys = [("T", f"d{i:03d}") for i in range(len(days))]
    hist = days.astype(np.float64)
    for j in tests:
        for m in minutes:
            x = hist[j, :m]
            for name in ("sq", "var", "sq_norm", "var_norm"):
                want = brute_topk(name, x, hist[:j, :m], keys[:j], k)
                near = got[(j, m, name)]
                assert [keys[r][1] for r in near.rows] == [d for _, d, _ in want]
                assert near.scores == pytest.approx([s for *_, s in want], rel=1e-9, abs=1e-12)
                assert (near.ends == m - 1).all()
            corr = next(a for a in algos if a.name == "corr")
            s = snap(corr.recompute(x, hist[:j]), corr.tie_grid(m))
            want_rows = sorted(range(j), key=lambda r: (s[r], r))[:k]
            assert got[(j, m, "corr")].rows.tolist() == want_rows


def test_a_shards_walk_equals_the_live_pipeline_walk() -> None:
    rng = np.random.default_rng(5)
    curves = _curves({t: _days(rng, 40) for t in ("AAA", "BBB", "CCC")})
    algos = ("sq", "var", "sq_norm", "var_norm", "corr", "ensemble")
    config = WalkConfig(algos, 5, CN, checkpoints=(1, 30, 120, CN.slots))
    start, end = "2023-02-10", "2023-02-24"
    live = walk_forward(curves, config, dates_to_test(curves, start, end)).frame
    shard = ShardState(curves, [a for a in algos if a != "ensemble"], 5, False)
    how = TickerWalk(tuple(shard.algos), True, 5, config.checkpoints or (), "sq")
    got = shard.walk(["AAA", "BBB", "CCC"], start, end, how)
    walked = pd.concat([pd.DataFrame(rows) for rows, _ in got.values()])
    a = live.sort_values(KEY).reset_index(drop=True)
    b = walked.sort_values(KEY).reset_index(drop=True)
    assert len(a) == len(b) == 11 * 3 * 4 * 6
    assert a[KEY].astype(str).equals(b[KEY].astype(str))
    for c in WALK_COLUMNS[4:]:
        x, y = a[c].to_numpy(np.float64), b[c].to_numpy(np.float64)
        assert np.allclose(x, y, rtol=1e-9, atol=1e-13, equal_nan=True), c
    # the risk rows: the same as evaluate builds from the live walk (the live model refitted)
    want = risk_frame(curves, live, "sq").sort_values(["date", "ticker", "minute"])
    risk = pd.concat([pd.DataFrame(r).assign(ticker=t) for t, (_, r) in got.items()])
    risk = risk.sort_values(["date", "ticker", "minute"])[want.columns]
    assert len(risk) == len(want) == 11 * 3 * 4
    for c in [c for c in want.columns if c not in ("date", "ticker", "minute")]:
        x, y = want[c].to_numpy(np.float64), risk[c].to_numpy(np.float64)
        assert np.allclose(x, y, rtol=1e-12, equal_nan=True), c
    # `published` is the live model fitted on the days before, as the live shard fits it
    dates = curves.dates.astype(str)
    assert risk["minute"].dtype == np.int64
    for r in risk[risk["minute"] > 1].sample(8, random_state=1).to_dict("records"):
        minute, ticker, date = int(r["minute"]), r["ticker"], r["date"]
        own = curves.ratio[(curves.tickers == ticker) & (dates < date)]
        today = curves.ratio[(curves.tickers == ticker) & (dates == date)][0]
        p = np.log1p(today.astype(np.float64))
        so_far = float(np.sqrt(np.sum(np.diff(p[:minute]) ** 2)))
        sent = RiskModel.fit(own, [minute]).forecast(minute, so_far)
        assert r["rv:published"] == pytest.approx(sent["rv"], rel=1e-9)
        assert r["range:published"] == pytest.approx(sent["range"], rel=1e-9)


def test_a_pooled_shard_refuses_to_walk() -> None:
    curves = _curves({"AAA": _days(np.random.default_rng(1), 15)})
    shard = ShardState(curves, ["sq"], 3, True)
    with pytest.raises(ValueError, match="pooled runs are evaluated in one process"):
        shard.walk(["AAA"], "2023-01-01", "2023-12-31", TickerWalk(tuple(shard.algos), False, 3,
                                                                    (30,)))  # fmt: skip
