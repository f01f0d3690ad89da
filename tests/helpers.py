"""Independent (pandas) reconstruction of day curves and a NumPy brute-force top-k."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.algorithms import REGISTRY, Params
from simsignal.engine.core.algorithms.base import snap
from simsignal.engine.core.algorithms.motif import window_distances
from simsignal.engine.core.signals import Signal
from simsignal.engine.core.templates import SessionTemplate


def curves_from_bars(bars: pd.DataFrame, template: SessionTemplate) -> pd.DataFrame:
    """ratio curves per (ticker, date) of complete days, straight from plain OHLCV bars."""
    ts = pd.to_datetime(bars["datetime"])
    frame = pd.DataFrame(
        {
            "ticker": bars["ticker"].astype(str),
            "date": ts.dt.strftime("%Y-%m-%d"),
            "minute": ts.dt.hour * 60 + ts.dt.minute,
            "close": bars["close"].astype(float),
        }
    )
    slot_of = {m: i for i, m in enumerate(template.minutes)}
    frame["slot"] = frame["minute"].map(slot_of)
    frame = frame.dropna(subset=["slot"])
    wide = frame.pivot_table(
        index=["ticker", "date"], columns="slot", values="close", aggfunc="first"
    )
    wide = wide.sort_index()
    last = wide[template.slots - 1]
    prev = last.groupby(level="ticker").shift(1)
    ratio = wide.div(prev, axis=0) - 1.0
    return ratio.dropna().astype(np.float32)


def brute_topk(
    name: str, x: np.ndarray, hist: np.ndarray, keys: list[tuple[str, str]], k: int
) -> list[tuple[str, str, float]]:
    """The k best history days for today's prefix x, computed from scratch with NumPy."""
    y = hist.astype(np.float64)

    def scale(a: np.ndarray) -> np.ndarray:
        lo, hi = a.min(axis=-1, keepdims=True), a.max(axis=-1, keepdims=True)
        return np.where(hi > lo, (a - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)

    d = scale(x)[None, :] - scale(y) if name.endswith("_norm") else x[None, :] - y
    if name.startswith("sq"):
        s = (d * d).sum(axis=1)
    else:
        s = d.var(axis=1, ddof=1) if x.shape[0] > 1 else np.zeros(len(y))
    if name.endswith("_norm"):  # the documented tie grid of the scaled metrics
        q = 1e-11 * x.shape[0]
        s = np.round(s / q) * q
    rows = sorted(zip(s.tolist(), keys, strict=True), key=lambda r: (r[0], r[1]))
    return [(t, dt, sc) for sc, (t, dt) in rows[:k]]


def reference_ranked(name: str, params: Params, x: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """Single-process recompute from scratch, on the documented tie grid.

    For motif: per window [offsets, days] (channels are mixed per window, then each day's
    best window is taken); for the others, per day.
    """
    algo = REGISTRY[name](params)
    if name == "motif":
        d = window_distances(x, hist, params.motif_window)
        return np.sqrt(snap(d**2, 1e-11 * min(len(x), params.motif_window)))
    s = algo.recompute(x, hist)
    if name == "znorm":
        return np.sqrt(snap(s**2, 1e-11 * len(x)))
    return snap(s, algo.tie_grid(len(x)))


def assert_neighbors(sig: Any, scores: np.ndarray, keys: list[tuple[str, str]], k: int,
                     what: str) -> None:  # fmt: skip
    """A signal's neighbours are the k best (score, ticker, date) of a reference, to 1e-9."""
    want = sorted(zip(scores.tolist(), keys, strict=True))[:k]
    assert [tuple(n[:2]) for n in sig.neighbors] == [w[1] for w in want], what
    np.testing.assert_allclose([float(n[-1]) for n in sig.neighbors], [w[0] for w in want],
                               rtol=1e-9, atol=1e-12, err_msg=what)  # fmt: skip


def signals_in(store: RedisStore, ticker: str, prefix: str = "simsignal") -> list[Signal]:
    """A ticker's signal stream, parsed, in stream order."""
    return [Signal.from_fields(e.fields) for e in store.entries(f"{prefix}:signals:{ticker}")]


def published(store: RedisStore, ticker: str) -> dict[tuple[int, str], Signal]:
    """A ticker's signals keyed by (minute, algo)."""
    return {(s.minute, s.algo): s for s in signals_in(store, ticker)}
