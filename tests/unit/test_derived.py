"""Derived signals (ticker timing, portfolio rebalance) against plain recomputations.

The pipeline's timing entries are recomputed from its own published signals' fields, and the
rebalance weights by replaying those entries through a loop written here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from simsignal.engine.core.derived import Derived, RebalanceRule, TimingRule
from simsignal.engine.core.forecast import Forecast
from simsignal.engine.core.pipeline.local import ListSink, LocalShards
from simsignal.engine.core.pipeline.minute import MinutePipeline
from simsignal.engine.core.pipeline.ports import PipelineConfig
from simsignal.engine.core.shard_state import ShardState
from tests.unit.test_pipeline import ALGOS, CN, DATE, TICKERS, _arrivals, _bars, _history


def _f(pred_move: float, up: float, dispersion: float) -> Forecast:
    return Forecast(0.0, 0.0, pred_move, up, 0.0, 0.0, 0.0, dispersion, up)


def _position(pred_move: float, up: float, dispersion: float, margin: float, need: float) -> int:
    e = (
        pred_move / dispersion
        if dispersion > 0
        else math.copysign(math.inf, pred_move) * bool(pred_move)
    )
    if up >= 0.5 + margin and e >= need:
        return 1
    if up <= 0.5 - margin and e <= -need:
        return -1
    return 0


def test_timing_positions_follow_the_documented_thresholds() -> None:
    rule = TimingRule(prob_margin=0.05, min_edge=0.25)
    grid = itertools.product([-0.004, -0.001, 0.0, 0.001, 0.004], [0.3, 0.45, 0.5, 0.55, 0.7],
                             [0.0, 0.002, 0.01])  # fmt: skip
    seen = set()
    for pred, up, disp in grid:
        want = _position(pred, up, disp, 0.05, 0.25)
        assert rule.position(_f(pred, up, disp)) == want, (pred, up, disp)
        seen.add(want)
    assert seen == {-1, 0, 1}
    assert TimingRule().position(_f(0.01, 0.52, 0.01)) == 0  # near the base rate: no position


def test_rebalance_targets_are_capped_proportional_and_turnover_is_limited() -> None:
    rule = RebalanceRule(cap=0.3, max_turnover=0.2)
    edges = {"A": 2.0, "B": 1.0, "C": 0.5, "D": -1.0, "E": 0.0}
    target = rule.target(edges)
    assert set(target) == {"A", "B", "C"}
    assert target["A"] == pytest.approx(0.3)  # 2/3.5 capped
    assert target["B"] == pytest.approx(1.0 / 3.5) and target["C"] == pytest.approx(0.5 / 3.5)
    held = {"A": 0.1, "D": 0.2}
    moved = rule.step(held, target)
    delta = {t: target.get(t, 0.0) - held.get(t, 0.0) for t in "ABCD"}
    total = sum(abs(d) for d in delta.values())
    for t in "ABCD":
        assert moved.get(t, 0.0) == pytest.approx(held.get(t, 0.0) + 0.2 / total * delta[t])
    assert sum(abs(moved.get(t, 0.0) - held.get(t, 0.0)) for t in "ABCD") == pytest.approx(0.2)
    assert rule.step(moved, moved) == moved  # at the target: no trade


def test_the_pipeline_publishes_timing_and_rebalance_recomputable_from_its_signals() -> None:
    rule, reb = TimingRule(prob_margin=0.0, min_edge=0.0), RebalanceRule(0.4, 0.3)
    hist, _ = _history()
    sink = ListSink()
    config = PipelineConfig(
        algorithms=ALGOS, k=5, template="cn", date=DATE,
        last_close={t: ("2024-04-25", 100.0) for t in TICKERS}, timing=rule, rebalance=reb,
    )  # fmt: skip
    pipeline = MinutePipeline(config, LocalShards([ShardState(hist, list(ALGOS), 5, False)]),
                              sink)  # fmt: skip
    bars = _bars(8)
    for m in range(8):
        rows = [r for rs in bars.values() for r in rs if r["ts"][11:16] == CN.label(m)]
        pipeline.on_batch(_arrivals(rows))
    source = {(s.ticker, s.minute): s for s in sink.signals if s.algo == ALGOS[0]}
    timing = [d for d in sink.derived if d.kind == "timing"]
    assert {(d.ticker, d.minute) for d in timing} == set(source)
    for d in timing:
        s = source[(d.ticker, d.minute)]
        assert d.values["position"] == _position(s.pred_move, s.up_prob, s.dispersion, 0.0, 0.0)
        assert d.stream_id == s.stream_id.split("-")[0] + "-0"
    # the rebalance, replayed here: latest long edge per ticker, capped share, turnover limit
    held: dict[str, float] = {}
    edges: dict[str, float] = {}
    rebalances = [d for d in sink.derived if d.kind == "rebalance"]
    assert len(rebalances) == 8
    for d in rebalances:
        for t in (x for x in timing if x.minute <= d.minute):
            e = t.values["pred_move"] / t.values["dispersion"]
            edges[t.ticker] = e if t.values["position"] > 0 else 0.0
        positive = {t: e for t, e in edges.items() if e > 0}
        target = {t: min(0.4, e / sum(positive.values())) for t, e in positive.items()}
        names = set(held) | set(target)
        delta = {t: target.get(t, 0.0) - held.get(t, 0.0) for t in names}
        turn = sum(abs(v) for v in delta.values())
        k = 1.0 if turn <= 0.3 else 0.3 / turn
        held = {t: held.get(t, 0.0) + k * delta[t] for t in names}
        held = {t: w for t, w in held.items() if abs(w) > 1e-12}
        got = d.values["weights"]
        assert got.keys() == held.keys()
        np.testing.assert_allclose([got[t] for t in sorted(got)], [held[t] for t in sorted(held)],
                                   rtol=1e-12, atol=1e-15)  # fmt: skip
        assert d.values["cash"] == pytest.approx(1 - sum(held.values()))
        assert d.values["turnover"] <= 0.3 + 1e-12
    assert any(d.values["weights"] for d in rebalances)  # it did invest


def test_a_derived_entry_is_plain_json_with_finite_numbers() -> None:
    d = Derived("timing", "AAA", DATE, 3, "09:32", "sq", 1714095120000,
                {"position": 1, "edge": 0.5, "pred_move": 0.001})  # fmt: skip
    fields = dict(zip(d.field_list()[::2], d.field_list()[1::2], strict=True))
    assert fields["v"] == "1" and fields["kind"] == "timing" and fields["position"] == "1"
    assert d.stream_id == "1714095120000-0"
