"""Channels by hand, live values equal to the history functions, and the ensemble rule."""

from __future__ import annotations

import numpy as np
import pytest

from simsignal.engine.adapters.history.days import days_of_ticker
from simsignal.engine.adapters.synthetic import make_history
from simsignal.engine.core.channels import money_flow, parse_channels, volume_share
from simsignal.engine.core.forecast import Forecast, ensemble
from simsignal.engine.core.templates import get_template
from simsignal.engine.core.today import TodayCurve


def test_volume_share_and_money_flow_by_hand() -> None:
    vol = np.array([[10.0, 30.0, 0.0, 60.0]])
    np.testing.assert_allclose(volume_share(vol), [[1.0, 0.75, 0.0, 0.6]])
    close = np.array([[101.0, 100.0, 100.0, 102.0]])
    amount = np.array([[10.0, 30.0, 20.0, 40.0]])
    flow = money_flow(close, np.array([100.0]), amount)
    np.testing.assert_allclose(flow, [[1.0, -0.5, -1 / 3, 0.2]])
    assert volume_share(np.zeros((1, 3))).tolist() == [[0.0, 0.0, 0.0]]


def test_live_channels_equal_history_channels() -> None:
    """Today's curve, bar by bar, equals what the loader computes for the same day."""
    cn = get_template("cn")
    bars = make_history(cn, years=2 / 243, seed=9)
    bars["date"] = bars["datetime"].str[:10]
    bars["slot"] = np.tile(np.arange(cn.slots), 2)
    days = days_of_ticker(bars, cn.slots, max_missing=0)
    day2 = days.iloc[1]
    today = TodayCurve("000300", float(day2["prev_close"]), ("price", "volume", "flow"))
    rows = bars[bars["date"] == day2["date"]]
    got = [
        v
        for r in rows.itertuples()
        for _, _, v in today.advance(r.slot, r.close, r.volume, r.amount)
    ]
    got_arr = np.array(got)
    np.testing.assert_allclose(got_arr[:, 0], day2["ratio"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got_arr[:, 1], day2["volume_share"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got_arr[:, 2], day2["money_flow"], rtol=1e-6, atol=1e-7)


def test_parse_channels() -> None:
    assert parse_channels("price:1,volume:0.5") == {"price": 1.0, "volume": 0.5}
    assert parse_channels("flow") == {"flow": 1.0}
    assert parse_channels({"volume": 0, "price": 2}) == {"price": 2.0}
    for bad, msg in [
        ("price:x", "not a number"),
        ("oi:1", "unknown channel"),
        ("price:-1", ">= 0"),
        ("price:0", "at least one"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_channels(bad)


def _f(pred: float, disp: float, up: float) -> Forecast:
    return Forecast(pred, pred, pred, up, pred - disp, pred, pred + disp, disp, up)


def test_ensemble_weights_by_precision() -> None:
    f, w = ensemble([_f(0.01, 0.001, 1.0), _f(-0.01, 0.002, 0.0)], x_now=0.0)
    raw = np.array([1 / (1e-6 + 1e-3 * 2.5e-6), 1 / (4e-6 + 1e-3 * 2.5e-6)])
    np.testing.assert_allclose(w, raw / raw.sum())
    assert f.pred_close == pytest.approx(w @ [0.01, -0.01])
    assert f.up_prob == pytest.approx(w[0])
    assert f.dispersion == pytest.approx(np.sqrt(w @ [1e-6, 4e-6]))
    assert 0 < f.pred_close < 0.01
    with pytest.raises(ValueError, match="at least one"):
        ensemble([], 0.0)
