"""Pair mode: the spread A − B searched against the pair's own spread days, exactly.

The same checks as for ticker curves: every pair signal's neighbours equal a NumPy brute force
over spreads computed here, and its forecast is the additive continuation, recomputed here.
"""

from __future__ import annotations

import numpy as np
import pytest

from simsignal.engine.core import pairs
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.pipeline.local import ListSink, LocalShards
from simsignal.engine.core.pipeline.minute import MinutePipeline
from simsignal.engine.core.pipeline.ports import PipelineConfig
from simsignal.engine.core.shard_state import ShardState
from tests.helpers import brute_topk
from tests.unit.test_pipeline import ALGOS, CN, DATE, TICKERS, _arrivals, _bars, _history

A, B = TICKERS[0], TICKERS[2]  # B skips minutes 4-5 (gap-filled)


def _with_spreads(hist: DayCurves) -> DayCurves:
    spreads = pairs.spread_curves(hist, [(A, B)])
    both = DayCurves(
        np.concatenate([hist.tickers, spreads.tickers]),
        np.concatenate([hist.dates, spreads.dates]),
        np.concatenate([hist.ratio, spreads.ratio]),
        np.concatenate([hist.prev_close, spreads.prev_close]),
    )
    order = np.lexsort((both.dates.astype(str), both.tickers.astype(str)))
    return both.select(order)


def _run(minutes: int) -> tuple[MinutePipeline, ListSink]:
    hist, _ = _history()
    sink = ListSink()
    config = PipelineConfig(
        algorithms=(*ALGOS, "ensemble"), k=5, template="cn", date=DATE,
        last_close={t: ("2024-04-25", 100.0) for t in TICKERS}, pairs=((A, B),),
    )  # fmt: skip
    shard = ShardState(_with_spreads(hist), list(ALGOS), 5, False)
    pipeline = MinutePipeline(config, LocalShards([shard]), sink)
    bars = _bars(minutes)
    for m in range(minutes):
        rows = [r for rs in bars.values() for r in rs if r["ts"][11:16] == CN.label(m)]
        pipeline.on_batch(_arrivals(rows))
    return pipeline, sink


def test_pair_signals_equal_a_brute_force_over_the_pairs_spread_days() -> None:
    _, per = _history()
    spread = per[A].astype(np.float64) - per[B].astype(np.float64)
    keys = [(pairs.name((A, B)), f"2024-{1 + d // 28:02d}-{1 + d % 28:02d}")
            for d in range(len(spread))]  # fmt: skip
    _, sink = _run(9)
    bars = _bars(9)
    close = {t: {r["ts"][11:16]: float(r["close"]) for r in bars[t]} for t in (A, B)}
    got = {(s.minute, s.algo): s for s in sink.signals if s.ticker == pairs.name((A, B))}
    assert {m for m, _ in got} == set(range(1, 10))  # B's gap minutes too, once it caught up
    for m in range(1, 10):
        x = []
        for i in range(m):  # today's spread so far, B forward-filled over its gap
            label = CN.label(i)
            xa = close[A][label] / 100.0 - 1
            prev_b = [v for k, v in close[B].items() if k <= label][-1]
            x.append(xa - (prev_b / 100.0 - 1))
        today = np.asarray(x)
        for algo in ALGOS:
            best = brute_topk(algo, today, spread[:, :m].astype(np.float32), keys, 5)
            sig = got[(m, algo)]
            assert [tuple(n[:2]) for n in sig.neighbors] == [(t, d) for t, d, _ in best], (m, algo)
            rows = [keys.index((t, d)) for t, d, _ in best]
            s = np.array([sc for *_, sc in best])
            w = 1.0 / (s + 1e-3 * s.mean() + 1e-300)
            w /= w.sum()
            y_now = spread[rows, m - 1].astype(np.float32).astype(np.float64)
            y_end = spread[rows, -1].astype(np.float32).astype(np.float64)
            want = float(w @ (today[-1] + y_end - y_now))
            assert sig.pred_close == pytest.approx(want, rel=1e-6, abs=1e-9), (m, algo)
            assert sig.pred_move == pytest.approx(want - today[-1], rel=1e-6, abs=1e-9)
        assert (m, "ensemble") in got


def test_pair_signals_have_their_own_stream() -> None:
    _, sink = _run(3)
    pair = [s for s in sink.signals if pairs.is_pair(s.ticker)]
    assert pair and pair[0].stream(Keys()) == f"simsignal:pair:{A}~{B}"
    assert pair[0].latest(Keys()) == f"simsignal:pair-latest:{A}~{B}"
    assert sink.signals[0].stream(Keys()) == f"simsignal:signals:{sink.signals[0].ticker}"


def test_a_restored_pipeline_knows_todays_spread_minutes() -> None:
    pipeline, sink = _run(6)
    hist, _ = _history()
    fresh = MinutePipeline(pipeline.config, LocalShards([ShardState(_with_spreads(hist),
                           list(ALGOS), 5, False)]), ListSink())  # fmt: skip
    values = fresh.restore(sink.records)
    name = pairs.name((A, B))
    assert values[name] == pipeline.pair_values[name] and len(values[name]) == 6
    assert fresh.values_before(name, 4) == pipeline.pair_values[name][:3]
