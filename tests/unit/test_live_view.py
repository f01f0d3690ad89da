"""What the engine writes for the dashboard agrees with the signals it publishes.

The view's forecast path is computed from the neighbours' whole curves; its last point must
be the signal's `pred_close` (computed by `forecast_many` from the merged top-k alone), and
its band's last points the signal's q10 and q90.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simsignal.engine.core.pipeline.observers import LiveView, Where
from tests.unit.test_pipeline import CN, TICKERS, _arrivals, _bars, _pipeline


def test_the_view_ends_where_the_signal_says() -> None:
    pipe, sink, shards = _pipeline(2)
    views: dict[str, dict[str, Any]] = {}

    def curves(where: Where) -> list[Any]:
        return [shards.shards[s].curves_of([row])[0] for s, row in where]

    pipe.observers.append(LiveView(
        frozenset({TICKERS[0]}), "sq", [CN.label(i) for i in range(CN.slots)],
        lambda t: list(pipe.today[t].xs), curves, views.__setitem__,
    ))  # fmt: skip
    bars = _bars(6)
    for m in range(6):
        pipe.on_batch(_arrivals([r for rows in bars.values() for r in rows
                                 if r["ts"][11:16] == CN.label(m)]))  # fmt: skip
        view = views[TICKERS[0]]
        sig = next(s for s in sink.batches[-1] if s.ticker == TICKERS[0] and s.algo == "sq")
        assert view["minute"] == sig.minute == m + 1 and view["slot"] == sig.slot
        assert [tuple(n) for n in view["neighbors"]] == [tuple(n) for n in sig.neighbors]
        assert len(view["forecast"]) == len(view["q10"]) == CN.slots - m
        np.testing.assert_allclose(view["forecast"][-1], sig.pred_close, atol=2e-6)
        np.testing.assert_allclose([view["q10"][-1], view["q90"][-1]], [sig.q10, sig.q90],
                                   atol=2e-6)  # fmt: skip
        np.testing.assert_allclose(view["today"][-1], view["forecast"][0], atol=2e-6)  # now
    assert set(views) == {TICKERS[0]}  # only the ticker on display
