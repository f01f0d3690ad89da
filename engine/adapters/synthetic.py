"""A realistic synthetic minute history of one index, for the demo and the tests.

Daily volatility follows GARCH(1,1) (clustering); minute returns are Student-t with an intraday
U-shape of volatility and volume (busy open and close, a second bump after the cn lunch
break); each day opens with an overnight gap from the previous close. Fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simsignal.engine.core.templates import SessionTemplate

DAYS_PER_YEAR = 243


def _u_shape(template: SessionTemplate) -> np.ndarray:
    """Relative intraday activity per slot: high at the open, the close, and after a break."""
    s = np.arange(template.slots, dtype=np.float64)
    shape = 1.0 + 1.6 * np.exp(-s / 12.0) + 0.9 * np.exp(-(template.slots - 1 - s) / 15.0)
    gaps = np.flatnonzero(np.diff(np.asarray(template.minutes)) > 1) + 1
    for g in gaps:  # the session restarts after a break (cn lunch)
        after = s >= g
        shape[after] += 0.6 * np.exp(-(s[after] - g) / 8.0)
    return shape


def make_history(
    template: SessionTemplate,
    years: float = 10.0,
    ticker: str = "000300",
    start: str = "2015-01-05",
    seed: int = 20160701,
    level: float = 3000.0,
) -> pd.DataFrame:
    """Minute bars (plain OHLCV columns, ticker as a string) for business days from `start`."""
    rng = np.random.default_rng(seed)
    n_days = max(2, round(years * DAYS_PER_YEAR))
    dates = pd.bdate_range(start, periods=n_days)
    slots = template.slots

    # GARCH(1,1) daily variance around 1.3% a day.
    alpha, beta, target = 0.08, 0.90, 0.013**2
    omega = target * (1 - alpha - beta)
    var = np.empty(n_days)
    shock = rng.standard_t(5, n_days) / np.sqrt(5 / 3)
    var[0] = target
    for t in range(1, n_days):
        var[t] = omega + alpha * var[t - 1] * shock[t - 1] ** 2 + beta * var[t - 1]
    sigma = np.sqrt(var)

    shape = _u_shape(template)
    per_minute = shape / np.sqrt((shape**2).sum())  # Σ minute variance = 1 day's variance
    innov = rng.standard_t(4, (n_days, slots)) / np.sqrt(2.0)
    drift = rng.normal(0, 0.002, n_days)[:, None] / slots  # mild trending days
    minute_ret = sigma[:, None] * 0.9 * per_minute[None, :] * innov + drift
    gap = rng.normal(0, 1, n_days) * sigma * 0.3

    log_close = np.empty((n_days, slots))
    prev = np.log(level)
    for t in range(n_days):
        log_close[t] = prev + gap[t] + np.cumsum(minute_ret[t])
        prev = log_close[t, -1]
    close = np.exp(log_close)
    open_ = np.concatenate([np.exp(log_close[:, :1] - minute_ret[:, :1]), close[:, :-1]], axis=1)
    wick = np.abs(rng.normal(0, 1, (2, n_days, slots))) * sigma[None, :, None] * per_minute * 0.3
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])

    day_volume = np.exp(np.cumsum(rng.normal(0, 0.05, n_days)) * 0.5 + 19.0) * (1 + 20 * sigma)
    volume = np.round(
        day_volume[:, None]
        * (shape / shape.sum())[None, :]
        * rng.lognormal(0, 0.3, (n_days, slots))
    )
    minutes = np.asarray(template.minutes)
    stamps = dates.values[:, None].astype("datetime64[m]") + (minutes[None, :]).astype(
        "timedelta64[m]"
    )
    return pd.DataFrame(
        {
            "ticker": ticker,
            "datetime": pd.DatetimeIndex(stamps.ravel()).strftime("%Y-%m-%d %H:%M:%S"),
            "open": open_.ravel().round(3),
            "high": high.ravel().round(3),
            "low": low.ravel().round(3),
            "close": close.ravel().round(3),
            "volume": volume.ravel(),
            "amount": (close * volume).ravel().round(1),
        }
    )


def to_seed_format(bars: pd.DataFrame) -> pd.DataFrame:
    """The same bars in the seed's DataAPI layout (with its leading pandas index column)."""
    ts = pd.to_datetime(bars["datetime"])
    return pd.DataFrame(
        {
            "unit": 1,
            "ticker": bars["ticker"],
            "exchangeCD": "XSHG",
            "shortNM": "SYNTH",
            "currencyCD": "",
            "barTime": ts.dt.strftime("%H:%M"),
            "dataDate": ts.dt.strftime("%Y-%m-%d"),
            "closePrice": bars["close"],
            "openPrice": bars["open"],
            "highPrice": bars["high"],
            "lowPrice": bars["low"],
            "totalVolume": bars["volume"].astype(np.int64),
            "totalValue": bars["amount"],
        }
    )


def write_demo_data(
    directory: Path, template: SessionTemplate, years: float, ticker: str = "000300"
) -> tuple[Path, Path, str]:
    """Write (once) the history Parquet and the held-back last day as a replay CSV."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{template.name}-{ticker}-{years:g}y"
    history, replay = directory / f"{stem}-history.parquet", directory / f"{stem}-replay.csv"
    if not (history.is_file() and replay.is_file()):
        bars = make_history(template, years=years, ticker=ticker)
        last_date = bars["datetime"].str[:10].iloc[-1]
        held = bars["datetime"].str.startswith(last_date)
        bars[~held].to_parquet(history.with_suffix(".tmp"), index=False)
        bars[held].to_csv(replay.with_suffix(".tmp"), index=False)
        history.with_suffix(".tmp").rename(history)
        replay.with_suffix(".tmp").rename(replay)
    day = pd.read_csv(replay, usecols=["datetime"], nrows=1)["datetime"].iloc[0][:10]
    return history, replay, str(day)
