"""The pure pipeline under hostile input and restarts (in-process shards, list sink).

A refused bar leaves no trace in the day's state; a pipeline rebuilt from its journal goes on
exactly as one that never stopped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simsignal.engine.core.pipeline.batcher import Arrival
from simsignal.engine.core.pipeline.local import ListSink, LocalShards
from simsignal.engine.core.pipeline.minute import MinutePipeline
from simsignal.engine.core.pipeline.ports import PipelineConfig, Rejection
from simsignal.engine.core.shard_state import ShardState
from tests.unit.test_pipeline import (
    ALGOS,
    CN,
    TICKERS,
    _arrivals,
    _bars,
    _by_key,
    _history,
    _pipeline,
    _split,
)


def _minute_rows(bars: dict[str, list[dict[str, str]]], m: int) -> list[dict[str, str]]:
    return [r for rows in bars.values() for r in rows if r["ts"][11:16] == CN.label(m)]


def _scaled(row: dict[str, str], factor: float) -> dict[str, str]:
    out = dict(row)
    for name in ("open", "high", "low", "close"):
        out[name] = f"{float(row[name]) * factor:.4f}"
    return out


def test_a_fat_finger_is_refused_and_changes_no_later_minute() -> None:
    bars = _bars(10)
    clean, clean_sink, _ = _pipeline(2)
    dirty, dirty_sink, _ = _pipeline(2)
    for m in range(10):
        rows = _minute_rows(bars, m)
        clean.on_batch(_arrivals(rows))
        if m == 4:  # the same minute first arrives ×1000, then correctly
            [bad] = dirty.on_batch(_arrivals([_scaled(rows[0], 1000)]))
            assert isinstance(bad, Rejection) and bad.bad.code == "beyond_limit"
            assert "beyond the limit ±20%" in bad.bad.reason
        dirty.on_batch(_arrivals(rows))
    assert _by_key(dirty_sink.signals) == _by_key(clean_sink.signals)
    assert dict(dirty.rejected) == {"low:beyond_limit": 1}  # low is checked first


def test_prev_close_that_disagrees_with_history_is_refused() -> None:
    pipe, _, _ = _pipeline(1)
    row = _bars(1)[TICKERS[0]][0]
    [far] = pipe.on_batch(_arrivals([{**row, "prev_close": "150"}]))  # history says 100
    assert isinstance(far, Rejection) and far.bad.key == "prev_close:disagrees"
    assert TICKERS[0] not in pipe.today  # nothing was started from it
    [ok] = pipe.on_batch(_arrivals([{**row, "prev_close": "101"}]))  # within 25 %: taken
    assert not isinstance(ok, Rejection) and pipe.today[TICKERS[0]].prev_close == 101.0


def test_an_unexpected_error_in_one_bar_is_that_bars_refusal() -> None:
    pipe, sink, _ = _pipeline(1)
    good = _bars(1)[TICKERS[0]][0]
    weird: Any = {**good, "ticker": 5}  # not a str: the parser itself raises TypeError
    out = pipe.on_batch([Arrival(weird, "test", 0.0), Arrival(good, "test", 0.0)])
    assert isinstance(out[0], Rejection) and out[0].bad.code == "unreadable"
    assert "TypeError" in out[0].bad.reason
    assert not isinstance(out[1], Rejection) and len(sink.signals) == len(ALGOS)


def test_a_pipeline_rebuilt_from_its_journal_goes_on_exactly() -> None:
    bars = _bars(12)
    straight, straight_sink, _ = _pipeline(2)
    first, first_sink, shards = _pipeline(2)
    receipts = iter(range(10_000))

    def numbered(rows: list[dict[str, str]]) -> list[Arrival]:
        return [Arrival(r, "replay", 0.0, str(next(receipts))) for r in rows]

    sent = []
    for m in range(12):
        straight.on_batch(_arrivals(_minute_rows(bars, m)))
        if m < 7:
            batch = numbered(_minute_rows(bars, m))
            sent.append(batch)
            first.on_batch(batch)
    # A new coordinator: same shards, a fresh pipeline rebuilt from the journal records.
    hist, _ = _history()
    fresh_shards = LocalShards([ShardState(c, list(ALGOS), 5, False) for c in _split(hist, 2)])
    sink = ListSink()
    config = PipelineConfig(algorithms=ALGOS, k=5, template="cn", date="2024-04-26",
                            last_close={t: ("2024-04-25", 100.0) for t in TICKERS})  # fmt: skip
    again = MinutePipeline(config, fresh_shards, sink)
    values = again.restore(first_sink.records + first_sink.records[-2:])  # a record twice
    for shard in fresh_shards.shards:  # the shards' queries were restored with the pipeline
        assert set(shard.queries) == set(values) and values
        assert all(shard.queries[t].m == len(v) for t, v in values.items())
    assert again.accepted == first.accepted
    assert again.on_batch(sent[-1]) == []  # the last batch again (a retry): all skipped
    for m in range(7, 12):
        again.on_batch(numbered(_minute_rows(bars, m)))
    want = {k: s for k, s in _by_key(straight_sink.signals).items() if k[1] > 7}
    got = _by_key(sink.signals)
    assert got.keys() == want.keys() and len(got) > 0
    for key, sig in want.items():
        np.testing.assert_allclose(got[key].pred_close, sig.pred_close, rtol=1e-12)
        assert got[key] == sig, key
    assert shards.calls == 7
