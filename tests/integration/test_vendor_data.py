"""Real vendor data, shaped as it was seen: wrong templates, UTC offsets, calendar holes,
minutes without trades, tickers left with no day. Real Spark via RayDP, real Ray and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import ray

from simsignal.actors.coordinator import CoordinatorActor, CoordinatorConfig
from simsignal.actors.shard import ShardActor
from simsignal.engine.adapters.history.days import FIRST_DAY, TOO_MANY_MISSING, after_hole
from simsignal.engine.adapters.history.formats import sample_times
from simsignal.engine.adapters.history.loaded import LoadedHistory
from simsignal.engine.adapters.history.loader import load_history
from simsignal.engine.adapters.history.template_fit import TemplateMismatchError, choose_for
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.pipeline.ports import PipelineConfig
from simsignal.engine.core.templates import get_template
from tests.helpers import curves_from_bars, published

CN, US = get_template("cn"), get_template("us")


def _load(spark: Any, paths: list[Path], template: str = "us", **kw: Any) -> LoadedHistory:
    """Check the template on the files as the session does, then load."""
    chosen, _ = choose_for(sample_times(paths, kw.get("tickers")), template)
    return load_history(spark, [str(p) for p in paths], chosen, 2, max_missing=12, **kw)


def _curves(res: LoadedHistory) -> DayCurves:
    return DayCurves.from_arrow(ray.get(res.refs), res.slots)


def _us_etf(days: int, seed: int, ticker: str = "SPY", start: str = "2025-06-02") -> pd.DataFrame:
    """US session bars plus thin pre- and post-market minutes, as a vendor sends them."""
    from simsignal.engine.adapters.synthetic import make_history

    bars = make_history(US, years=days / 243, ticker=ticker, start=start, seed=seed, level=500.0)
    rng = np.random.default_rng(seed)
    extra = []
    for day in bars["datetime"].str[:10].unique():
        for minute in rng.choice(np.r_[240:570, 960:1200], size=60, replace=False):
            extra.append({**bars.iloc[0].to_dict(), "datetime": f"{day} {minute // 60:02d}:"
                          f"{minute % 60:02d}:00"})  # fmt: skip
    return pd.concat([bars, pd.DataFrame(extra)], ignore_index=True)


def test_wrong_template_stops_the_load_and_names_the_right_one(spark: Any, tmp_path: Path) -> None:
    us_path = tmp_path / "us.csv"
    _us_etf(6, 1).to_csv(us_path, index=False)
    with pytest.raises(
        TemplateMismatchError, match=r"--template cn does not fit.*use --template us"
    ):
        _load(spark, [us_path], "cn")
    res = _load(spark, [us_path], "auto")
    assert res.template.name == "us" and res.report.template == "us"
    assert res.report.rows_dropped["outside the us session"] == 6 * 60  # pre/post-market

    from simsignal.engine.adapters.synthetic import make_history

    cn_path = tmp_path / "cn.csv"
    make_history(CN, years=6 / 243, seed=2).to_csv(cn_path, index=False)
    with pytest.raises(TemplateMismatchError, match=r"--template us does not fit.*--template cn"):
        _load(spark, [cn_path], "us")


def test_times_with_utc_offsets_are_exchange_local(spark: Any, tmp_path: Path) -> None:
    bars = _us_etf(5, 3)
    bars = bars[bars["datetime"].str[11:16].between("09:30", "15:59")]
    naive = tmp_path / "naive.csv"
    bars.to_csv(naive, index=False)
    local = pd.to_datetime(bars["datetime"]).dt.tz_localize("America/New_York")
    offset = tmp_path / "offset.csv"
    bars.assign(datetime=local.astype(str)).to_csv(offset, index=False)  # 09:30:00-04:00
    utc = tmp_path / "utc.parquet"
    bars.assign(datetime=local.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_parquet(
        utc
    )
    assert "-04:00" in offset.read_text().splitlines()[1]
    want = _curves(_load(spark, [naive]))
    for path in (offset, utc):
        got = _curves(_load(spark, [path]))
        assert list(got.dates) == list(want.dates) == sorted(bars["datetime"].str[:10].unique())[1:]
        np.testing.assert_array_equal(got.ratio, want.ratio, err_msg=path.name)
    reference = curves_from_bars(bars, US)
    np.testing.assert_array_equal(want.ratio, reference.to_numpy())


def test_calendar_holes_missing_minutes_and_the_report(spark: Any, tmp_path: Path) -> None:
    """A 3-week hole, a holiday, a day with minutes missing, a ticker left with no day."""
    etf = _us_etf(30, 4)
    dates = sorted(etf["datetime"].str[:10].unique())
    hole = dates[10:25]  # 15 business days missing: the day after must not use that old close
    holiday = dates[27:28]  # one business day missing: kept
    etf = etf[~etf["datetime"].str[:10].isin([*hole, *holiday])]
    thin_day = dates[5]
    in_session = etf["datetime"].str[11:16].between("09:30", "15:59")
    thin = etf.index[(etf["datetime"].str[:10] == thin_day) & in_session][100:120]
    etf = etf.drop(index=thin)  # 20 minutes without trades
    dead = _us_etf(4, 5, ticker="DEAD")  # one day, then a hole: no usable day at all
    dead = dead[dead["datetime"].str[:10].isin(sorted(dead["datetime"].str[:10].unique())[:1])]
    path = tmp_path / "vendor.csv"
    pd.concat([etf, dead]).to_csv(path, index=False)

    res = _load(spark, [path], max_gap_days=4)
    r = res.report
    spy, gone = r.per_ticker["SPY"], r.per_ticker["DEAD"]
    assert spy.days_dropped == {FIRST_DAY: 1, after_hole(4): 1, TOO_MANY_MISSING: 1}
    assert spy.days_kept == 30 - 15 - 1 - 3
    assert (gone.days_kept, gone.days_dropped) == (0, {FIRST_DAY: 1})
    assert r.tickers_without_days == ["DEAD"] and r.tickers == 1 and res.usable == {"SPY"}
    curves = _curves(res)
    assert dates[25] not in set(curves.dates) and holiday[0] not in set(curves.dates)
    assert dates[26] in set(curves.dates)
    # Only SPY has days, so they are dealt out over both shards, not all on one.
    assert sorted(r.rows_per_shard.values()) == [
        spy.days_kept // 2,
        spy.days_kept - spy.days_kept // 2,
    ]

    loose = _load(spark, [path], max_gap_days=20)  # the hole is 15 business days
    assert loose.report.per_ticker["SPY"].days_kept == spy.days_kept + 1
    wide = load_history(spark, [str(path)], US, 2, max_missing=30, max_gap_days=4)
    assert wide.report.per_ticker["SPY"].days_kept == spy.days_kept + 1  # the thin day


def test_ticker_limits_the_load(spark: Any, tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    pd.concat([_us_etf(4, 6, "AAA"), _us_etf(4, 7, "BBB")]).to_csv(path, index=False)
    res = _load(spark, [path], tickers=["BBB"])
    assert set(res.report.per_ticker) == {"BBB"} and set(res.last_close) == {"BBB"}
    assert res.report.rows_read == 4 * (390 + 60)


def test_a_ticker_without_days_is_dead_lettered_and_the_rest_runs_on(
    spark: Any, redis_server: Any, store: RedisStore, tmp_path: Path
) -> None:
    from simsignal.engine.adapters.synthetic import make_history

    good = make_history(CN, years=30 / 243, ticker="000300", seed=8)
    bad = make_history(CN, years=3 / 243, ticker="600000", seed=9)
    bad = bad.drop(index=bad.index[bad["datetime"].str[11:13] == "10"])  # 60 minutes missing
    day = good["datetime"].str[:10].iloc[-1]
    path = tmp_path / "h.parquet"
    hist = pd.concat([good, bad])
    hist[hist["datetime"].str[:10] < day].to_parquet(path)
    res = load_history(spark, [str(path)], CN, 2, max_missing=12)
    assert res.report.tickers_without_days == ["600000"]
    shards = [ShardActor.remote(i, res.refs, CN.slots, ["sq"], 5, False) for i in range(2)]
    pipeline = PipelineConfig(algorithms=("sq",), k=5, template="cn", date=day,
                              last_close=res.last_close, usable=frozenset(res.usable))  # fmt: skip
    co = CoordinatorActor.remote(shards, CoordinatorConfig(pipeline, redis_url=redis_server.url))
    ray.get(co.connect.remote())
    live = good[good["datetime"].str.startswith(day)].head(10)
    try:
        for r in live.itertuples():
            for ticker in ("600000", "000300"):
                fields = {"ticker": ticker, "ts": r.datetime, "open": str(r.open),
                          "high": str(r.high), "low": str(r.low), "close": str(r.close),
                          "volume": str(r.volume)}  # fmt: skip
                ray.get(co.on_bar.remote(fields))
        stats = ray.get(co.stats.remote())
    finally:
        ray.get(co.close.remote())
    assert stats.accepted == 10
    assert stats.rejected == {"ticker:no_history": 10}
    assert sorted(published(store, "000300")) == [(m, "sq") for m in range(1, 11)]
    letters = store.entries("simsignal:deadletter")
    assert len(letters) == 10 and {e.fields["value"] for e in letters} == {"'600000'"}
    assert {e.fields["reason"] for e in letters} == {"has no usable history day (see the load "
                                                     "report)"}  # fmt: skip


def test_cli_names_the_fitting_template_in_one_line_before_starting_ray(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    path = tmp_path / "us.parquet"
    _us_etf(3, 10).to_parquet(path)
    replay = tmp_path / "day.csv"
    _us_etf(1, 11, start="2025-06-05").to_csv(replay, index=False)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", "run", "--history", str(path),
         "--replay", str(replay), "--template", "cn", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if line.startswith("history error:")]
    assert len(errors) == 1 and "use --template us" in errors[0], proc.stdout
    assert "Ray up" not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 60
