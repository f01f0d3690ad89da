"""History loading in real Spark via RayDP: both layouts, the real samples, dirty input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import ray

from simsignal.engine.adapters.history.formats import MissingColumnError
from simsignal.engine.adapters.history.loader import load_history
from simsignal.engine.adapters.synthetic import make_history, to_seed_format
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.templates import get_template
from tests.helpers import curves_from_bars

CN = get_template("cn")


def _load(spark: Any, paths: list[str], **kw: Any) -> tuple[Any, DayCurves]:
    res = load_history(spark, paths, CN, 2, max_missing=kw.pop("max_missing", 12), **kw)
    curves = (
        DayCurves.from_arrow(ray.get(res.refs), CN.slots) if res.refs else DayCurves.empty(CN.slots)
    )
    return res, curves


def test_plain_ohlcv_with_dirty_rows(spark: Any, tmp_path: Path) -> None:
    bars = pd.concat(
        [
            make_history(CN, years=4 / 243, ticker="000300", seed=1),
            make_history(CN, years=4 / 243, ticker="AAPL", seed=2),
        ],
        ignore_index=True,
    )
    clean = bars.copy()
    day2 = bars["datetime"].str.startswith("2015-01-06")
    nan_row = bars.index[day2 & (bars["ticker"] == "000300")][10]
    bars.loc[nan_row, "close"] = np.nan  # NaN price (slot ffilled)
    gap = bars.index[day2 & (bars["ticker"] == "AAPL")][40:70]
    bars = bars.drop(index=gap)  # 30 missing slots: day dropped
    dirty = pd.DataFrame(
        [
            bars.iloc[5].to_dict(),  # exact duplicate
            {**bars.iloc[6].to_dict(), "close": 1.0},  # conflicting duplicate minute
            {**bars.iloc[7].to_dict(), "datetime": "2015-01-05 12:00:00"},  # lunch: outside session
            {**bars.iloc[8].to_dict(), "datetime": "yesterday"},  # unparseable timestamp
        ]
    )
    shuffled = pd.concat([bars.iloc[:200].sample(frac=1, random_state=3), bars.iloc[200:], dirty])
    path = tmp_path / "bars.csv"
    shuffled.to_csv(path, index=False)

    res, curves = _load(spark, [str(path)])
    r = res.report
    assert r.rows_read == len(shuffled)
    assert r.rows_dropped == {
        "exact duplicate": 1,
        "conflicting duplicate minute (kept the first in file order)": 1,
        "outside the cn session": 1,
        "unparseable timestamp": 1,
        "close missing, NaN or <= 0": 1,
    }
    assert r.rows_out_of_order > 0
    assert r.days_dropped == {"first day (no previous close)": 2, "too many missing slots": 1}
    assert r.days_kept == 2 * 4 - 3
    assert set(curves.tickers) == {"000300", "AAPL"}

    want = curves_from_bars(clean, CN)
    for i in range(len(curves)):
        key = (curves.tickers[i], curves.dates[i])
        expected = want.loc[key].to_numpy()
        if key == ("000300", "2015-01-06"):  # the NaN minute took its neighbour's close
            slot = CN.slot_of(pd.Timestamp(clean.loc[nan_row, "datetime"]))
            assert slot is not None
            expected = expected.copy()
            expected[slot] = expected[slot - 1]
        np.testing.assert_array_equal(curves.ratio[i], expected, err_msg=str(key))


def test_seed_samples_and_per_day_files(spark: Any, seed_data: Path, tmp_path: Path) -> None:
    """The real 2016-07-01 file plus a synthetic next day: ticker stays '000001'."""
    real = pd.read_csv(seed_data / "000001-20160702.csv", dtype={"ticker": str})
    nxt = real.copy()
    nxt["dataDate"] = "2016-07-04"
    nxt["closePrice"] = nxt["closePrice"] * 1.01
    nxt.to_csv(tmp_path / "000001-20160704.csv", index=False)  # without the index column
    res, curves = _load(spark, [str(seed_data / "000001-20160702.csv"), str(tmp_path)])
    assert res.report.rows_read == 2 * 241
    assert res.report.days_dropped == {"first day (no previous close)": 1}
    assert curves.tickers.tolist() == ["000001"] and curves.dates.tolist() == ["2016-07-04"]
    prev = real["closePrice"].iloc[-1]
    assert res.last_close["000001"] == ("2016-07-04", pytest.approx(nxt["closePrice"].iloc[-1]))
    np.testing.assert_array_equal(
        curves.ratio[0], (nxt["closePrice"].to_numpy() / prev - 1).astype(np.float32)
    )


def test_parquet_glob_and_before_date(spark: Any, tmp_path: Path) -> None:
    bars = make_history(CN, years=6 / 243, ticker="000300", seed=5)
    seed_layout = to_seed_format(bars)
    seed_layout.iloc[: 241 * 3].to_parquet(tmp_path / "a.parquet")
    seed_layout.iloc[241 * 3 :].to_parquet(tmp_path / "b.parquet")
    res, curves = _load(spark, [str(tmp_path / "*.parquet")], before_date="2015-01-12")
    assert res.report.files == 2
    assert res.report.rows_dropped == {"on or after 2015-01-12": 241}
    assert curves.dates.tolist() == ["2015-01-06", "2015-01-07", "2015-01-08", "2015-01-09"]
    # before every bar: nothing kept (the engine refuses to run on that, in one line)
    none, empty = _load(spark, [str(tmp_path / "*.parquet")], before_date="2015-01-05")
    assert none.report.days_kept == 0 and len(empty.dates) == 0
    assert none.report.rows_dropped == {"on or after 2015-01-05": len(seed_layout)}


def test_missing_column_is_a_clear_error(spark: Any, tmp_path: Path) -> None:
    bars = make_history(CN, years=2 / 243).drop(columns=["close"])
    bars.to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(MissingColumnError, match=r"missing column\(s\) close for the ohlcv format"):
        _load(spark, [str(tmp_path / "x.csv")])
    with pytest.raises(FileNotFoundError, match="no such file"):
        _load(spark, [str(tmp_path / "nope.csv")])


def test_day_curves_cache_gives_back_the_same_history(spark: Any, tmp_path: Path) -> None:
    from simsignal.engine.adapters.history import curves_cache

    bars = pd.concat([make_history(CN, years=6 / 243, ticker=t, seed=s)
                      for t, s in (("000300", 1), ("600000", 2))])  # fmt: skip
    path = tmp_path / "bars.parquet"
    bars.to_parquet(path)
    cache = tmp_path / "cache" / curves_cache.fingerprint([path], shards=2)
    fresh = load_history(spark, [str(path)], CN, 2, max_missing=12, cache=cache)
    hit = curves_cache.read(cache, CN, ["ratio", "volume_share"])
    assert hit is not None and hit.cached and not fresh.cached
    assert hit.last_close == fresh.last_close and hit.report == fresh.report
    for shard in (0, 1):
        want = DayCurves.from_arrow(ray.get(fresh.refs), CN.slots, shard, ("price", "volume"))
        got = DayCurves.from_arrow(ray.get(hit.refs_for(shard)), CN.slots, shard,
                                   ("price", "volume"))  # fmt: skip
        assert len(got) == len(want) > 0
        assert list(got.dates) == list(want.dates) and list(got.tickers) == list(want.tickers)
        np.testing.assert_array_equal(got.ratio, want.ratio)
        np.testing.assert_array_equal(got.extra["volume"], want.extra["volume"])
    assert curves_cache.read(cache, get_template("us"), ["ratio"]) is None  # other template
    before = curves_cache.fingerprint([path], shards=2)
    assert curves_cache.fingerprint([path], shards=3) != before
    bars.head(100).to_parquet(path)  # the file changed: a new key, a miss
    assert curves_cache.fingerprint([path], shards=2) != before
