"""The pure minute pipeline with in-process shards and a list sink: no Ray, no Redis.

Batched (every ticker's bar of a minute in one fan-out) equals the single-bar path, equals a
NumPy brute force, and does not depend on how the days are split over shards; tickers that
skip a minute (gap-filled), send nothing, or arrive late are covered.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from simsignal.engine.core.calibration import Calibration
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.pipeline.batcher import Arrival, MinuteBatcher
from simsignal.engine.core.pipeline.local import ListSink, LocalShards
from simsignal.engine.core.pipeline.minute import MinutePipeline
from simsignal.engine.core.pipeline.ports import PipelineConfig, Rejection
from simsignal.engine.core.shard_state import ShardState
from simsignal.engine.core.signals import Signal
from simsignal.engine.core.templates import get_template
from tests.helpers import brute_topk

CN = get_template("cn")
ALGOS = ("sq", "var", "sq_norm", "var_norm")
TICKERS = [f"{i:06d}" for i in range(1, 8)]
DATE = "2024-04-26"


def _history(seed: int = 5, days: int = 40) -> tuple[DayCurves, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    tickers, dates, curves = [], [], []
    for t in TICKERS:
        for d in range(days):
            tickers.append(t)
            dates.append(f"2024-{1 + d // 28:02d}-{1 + d % 28:02d}")
            curves.append(np.cumsum(rng.normal(0, 1e-3, CN.slots)))
    ratio = np.asarray(curves, np.float32)
    hist = DayCurves(np.asarray(tickers, object), np.asarray(dates, object), ratio,
                     np.ones(len(tickers)))  # fmt: skip
    per = {t: ratio[[i for i, x in enumerate(tickers) if x == t]] for t in TICKERS}
    return hist, per


def _split(hist: DayCurves, n: int) -> list[DayCurves]:
    """Days to n shards by ticker (as the loader does), each sorted by (ticker, date)."""
    out = []
    for s in range(n):
        rows = [i for i, t in enumerate(hist.tickers) if TICKERS.index(t) % n == s]
        out.append(DayCurves(hist.tickers[rows], hist.dates[rows], hist.ratio[rows],
                             hist.prev_close[rows]))  # fmt: skip
    return out


def _pipeline(n_shards: int, k: int = 5) -> tuple[MinutePipeline, ListSink, LocalShards]:
    hist, _ = _history()
    shards = LocalShards([ShardState(c, list(ALGOS), k, False) for c in _split(hist, n_shards)])
    sink = ListSink()
    config = PipelineConfig(
        algorithms=ALGOS, k=k, template="cn", date=DATE,
        last_close={t: ("2024-04-25", 100.0) for t in TICKERS},
    )  # fmt: skip
    return MinutePipeline(config, shards, sink), sink, shards


def _bars(minutes: int, seed: int = 9) -> dict[str, list[dict[str, str]]]:
    """Per ticker, a bar per minute; ticker 3 skips minutes 4-5, ticker 6 sends nothing."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict[str, str]]] = {}
    for t in TICKERS[:-1]:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, minutes)))
        rows = []
        for m in range(minutes):
            if t == TICKERS[2] and m in (3, 4):
                continue
            c = f"{close[m]:.4f}"
            rows.append({"ticker": t, "ts": f"{DATE}T{CN.label(m)}:00", "open": c, "high": c,
                         "low": c, "close": c, "volume": "10"})  # fmt: skip
        out[t] = rows
    return out


def _arrivals(rows: list[dict[str, str]], t0: float = 0.0) -> list[Arrival]:
    return [Arrival(r, "test", t0 + i * 1e-6) for i, r in enumerate(rows)]


def _by_key(signals: list[Signal]) -> dict[tuple[str, int, str], Signal]:
    return {(s.ticker, s.minute, s.algo): replace(s, latency_ms=0.0) for s in signals}


def test_batched_equals_single_bar_equals_brute_force() -> None:
    bars = _bars(12)
    batched, batched_sink, batched_shards = _pipeline(2)
    single, single_sink, _ = _pipeline(2)
    for m in range(12):
        minute_rows = [r for rows in bars.values() for r in rows if r["ts"][11:16] == CN.label(m)]
        batched.on_batch(_arrivals(minute_rows))
        for r in minute_rows:
            single.on_batch(_arrivals([r]))
    got, want = _by_key(batched_sink.signals), _by_key(single_sink.signals)
    assert got == want
    assert batched_shards.calls == 12  # one fan-out per minute for the whole market
    assert len(batched_sink.batches) == 12
    # every live ticker has every minute, the gap-filled ones included; ticker 6 none
    assert {(t, m) for t, m, _ in got} == {(t, m) for t in TICKERS[:-1] for m in range(1, 13)}

    _, per = _history()
    for t in TICKERS[:-1]:
        closes = {r["ts"][11:16]: float(r["close"]) for r in bars[t]}
        xs, last = [], 0.0
        for m in range(12):
            last = closes.get(CN.label(m), last)
            xs.append(last / 100.0 - 1.0)
        x = np.asarray(xs)
        keys = [(t, d) for d in _history()[0].dates[_history()[0].tickers == t]]
        for m in range(1, 13):
            for algo in ALGOS:
                want_top = brute_topk(algo, x[:m], per[t][:, :m], keys, 5)
                sig = got[(t, m, algo)]
                assert [tuple(n[:2]) for n in sig.neighbors] == [w[:2] for w in want_top]
                got_scores = [float(n[2]) for n in sig.neighbors]
                want_scores = [w[2] for w in want_top]
                np.testing.assert_allclose(got_scores, want_scores, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("n_shards", [1, 3])
def test_signals_do_not_depend_on_the_shard_split(n_shards: int) -> None:
    bars = _bars(6, seed=3)
    rows = sorted((r for rs in bars.values() for r in rs), key=lambda r: r["ts"])
    two, two_sink, _ = _pipeline(2)
    other, other_sink, _ = _pipeline(n_shards)
    two.on_batch(_arrivals(rows))  # also: several minutes of one ticker in one batch
    other.on_batch(_arrivals(rows))
    assert _by_key(two_sink.signals) == _by_key(other_sink.signals)


def test_rejections_reach_the_sink_and_the_rest_goes_on() -> None:
    pipe, sink, shards = _pipeline(2)
    good = _bars(2)[TICKERS[0]]
    bad = {**good[0], "close": "nan"}
    stranger = {**good[0], "ticker": "999999"}
    out = pipe.on_batch(_arrivals([bad, good[0], stranger]))
    assert [type(o).__name__ for o in out] == ["Rejection", "Rejection", "MinuteResult"]
    assert [b.field for _, b in sink.rejected] == ["close", "ticker"]
    assert pipe.rejected == {"close:not_number": 1, "ticker:unknown": 1}
    empty = pipe.on_batch(_arrivals([{}]))  # nothing at all is refused too, never ignored
    assert isinstance(empty[0], Rejection) and empty[0].bad.field == "ticker"
    late = pipe.on_batch(_arrivals([good[1], good[0]]))  # minute 1 again after minute 2
    assert isinstance(late[0], Rejection) and late[0].bad.reason.startswith("out of order")
    assert shards.calls == 2 and len(sink.signals) == 2 * len(ALGOS)
    assert len(sink.rejected) == 4


def test_batcher_closes_on_all_tickers_a_repeat_or_the_deadline() -> None:
    b = MinuteBatcher(frozenset({"A", "B"}), deadline_s=0.05)

    def bar(t: str, at: float) -> Arrival:
        return Arrival({"ticker": t}, "s", at)

    assert b.add([bar("A", 0.0)], now=0.0) == []
    closed = b.add([bar("B", 0.01)], now=0.01)  # every expected ticker: closes at once
    assert [[a.ticker for a in batch] for batch in closed] == [["A", "B"]]
    closed = b.add([bar("A", 0.02), bar("A", 0.03)], now=0.03)  # A's next minute: a new batch
    assert [[a.ticker for a in batch] for batch in closed] == [["A"]]
    assert b.due(0.04) == pytest.approx(0.04)
    assert b.add([], now=0.09) == [[bar("A", 0.03)]]  # deadline passed
    late: Any = b.add([bar("B", 0.2)], now=0.2)
    assert late == [] and b.flush() == [[bar("B", 0.2)]]


def test_a_calibration_moves_up_prob_toward_the_base_rate_and_keeps_the_raw_share() -> None:
    algos = (*ALGOS, "ensemble")
    base = [0.3 + 0.001 * m for m in range(CN.slots)]
    cal = Calibration(weights={"sq": 0.25, "var": 0.0, "ensemble": 0.5},
                      base_up={TICKERS[0]: base, "*": [0.6] * CN.slots},
                      band={"sq": 1.5, "ensemble": 0.5})  # fmt: skip
    hist, _ = _history()
    runs = []
    for calibration in (None, cal):
        sink = ListSink()
        config = PipelineConfig(
            algorithms=algos, k=5, template="cn", date=DATE,
            last_close={t: ("2024-04-25", 100.0) for t in TICKERS}, calibration=calibration,
        )  # fmt: skip
        pipeline = MinutePipeline(config, LocalShards([ShardState(hist, list(ALGOS), 5, False)]),
                                  sink)  # fmt: skip
        for rows in _bars(6).values():
            pipeline.on_batch(_arrivals(rows))
        runs.append(_by_key(sink.signals))
    plain, calibrated = runs
    assert plain.keys() == calibrated.keys()
    for key, p in plain.items():
        c = calibrated[key]
        ticker, minute, algo = key
        assert p.up_prob == p.up_prob_raw  # no calibration: the raw share
        b = (base if ticker == TICKERS[0] else [0.6] * CN.slots)[minute - 1]
        if algo in ("sq", "var", "ensemble"):
            lam = cal.weights[algo]
            assert c.up_prob_raw == pytest.approx(p.up_prob_raw, abs=1e-15), key
            assert c.up_prob == pytest.approx(b + lam * (p.up_prob_raw - b), abs=1e-12), key
        else:  # no weight for this algorithm: left raw
            assert c.up_prob == p.up_prob, key
        scale = cal.band.get(algo, 1.0)  # the band about its centre; the ensemble mixes raw bands
        centre, half = (p.q10 + p.q90) / 2, (p.q90 - p.q10) / 2
        assert c.q10 == pytest.approx(centre - scale * half, abs=1e-15), key
        assert c.q90 == pytest.approx(centre + scale * half, abs=1e-15), key
        assert replace(c, up_prob=0.0, up_prob_raw=0.0, q10=0.0, q90=0.0) == replace(
            p, up_prob=0.0, up_prob_raw=0.0, q10=0.0, q90=0.0)  # fmt: skip
