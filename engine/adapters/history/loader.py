"""Spark side of history loading: read, enforce schema, clean, align, pivot, shard, hand to Ray."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from simsignal.engine.adapters.history import curves_cache
from simsignal.engine.adapters.history.clean import (
    CHANNEL_COLUMNS,
    DAY,
    OK,
    OUT_SCHEMA,
    ROWS,
    ticker_rows_and_days,
)
from simsignal.engine.adapters.history.days import KEPT
from simsignal.engine.adapters.history.formats import (
    SEED,
    BarFormat,
    detect_format,
    expand_paths,
    header_of,
)
from simsignal.engine.adapters.history.loaded import LoadedHistory, LoadReport, TickerReport
from simsignal.engine.core.templates import SessionTemplate

Step = Callable[[str], None]


def _canonical(spark: Any, files: list[Path], fmt: BarFormat) -> Any:
    """Read one group of same-header files as strings and map to canonical columns."""
    from pyspark.sql import functions as F  # noqa: PLC0415

    names = [str(f) for f in files]
    if files[0].suffix.lower() == ".parquet":
        raw = spark.read.parquet(*names)
    else:
        raw = spark.read.option("header", True).option("inferSchema", False).csv(names)
    c = {**fmt.required, **{k: v for k, v in fmt.optional.items() if v in raw.columns}}
    ticker = F.trim(F.col(c["ticker"]).cast("string"))
    if fmt is SEED:  # the seed's codes are 6 digits; a numeric round-trip may have eaten zeros
        ticker = F.when(ticker.rlike(r"^\d{1,5}$"), F.lpad(ticker, 6, "0")).otherwise(ticker)
        ts_text = F.concat_ws(
            " ", F.trim(F.col(c["date"]).cast("string")), F.trim(F.col(c["time"]).cast("string"))
        )
    else:
        ts_text = F.trim(F.col(c["datetime"]).cast("string"))  # the cast takes "T" or " "

    def num(name: str) -> Any:
        return F.col(c[name]).cast("double") if name in c else F.lit(None).cast("double")

    return raw.select(
        ticker.alias("ticker"),
        ts_text.cast("timestamp").alias("ts"),
        *(num(n).alias(n) for n in ("open", "high", "low", "close", "volume", "amount")),
    )


def _read_bars(spark: Any, files: list[Path], tickers: list[str] | None) -> Any:
    """All files as one canonical frame (times parsed in the session's time zone)."""
    from pyspark.sql import functions as F  # noqa: PLC0415

    groups: dict[tuple[str, ...], list[Path]] = {}
    for f in files:
        groups.setdefault((f.suffix.lower(), *header_of(f)), []).append(f)
    frames = [
        _canonical(spark, fs, detect_format(list(h[1:]), str(fs[0]))) for h, fs in groups.items()
    ]
    bars = frames[0]
    for other in frames[1:]:
        bars = bars.unionByName(other)
    if tickers:
        bars = bars.filter(F.col("ticker").isin(list(tickers)))
    return bars


def _shard_of_ticker(days: dict[str, int], shards: int) -> dict[str, int]:
    """Tickers to shards balanced by days (largest first onto the lightest shard)."""
    load = [0] * shards
    out: dict[str, int] = {}
    for ticker, n in sorted(days.items(), key=lambda kv: (-kv[1], kv[0])):
        shard = min(range(shards), key=lambda i: (load[i], i))
        out[ticker] = shard
        load[shard] += n
    return out


def load_history(
    spark: Any,
    paths: list[str],
    template: SessionTemplate,
    shards: int,
    *,
    max_missing: int,
    max_gap_days: int = 4,
    before_date: str | None = None,
    partition: str = "auto",
    tickers: list[str] | None = None,
    cache: Path | None = None,
    columns: tuple[str, ...] = CHANNEL_COLUMNS,
    step: Step = lambda _: None,
) -> LoadedHistory:
    """Load bar files into day curves in Ray's object store, sharded, with a report.

    Times with a UTC offset are converted to the template's exchange zone (Spark's session
    zone is set to it); naive ones are taken as exchange-local. `tickers` limits the load.
    Check the template first (`template_fit.choose_for`): this function trusts it. With
    `cache`, the kept day curves and the report are also written there (`curves_cache`,
    every channel); `columns` are the channel columns handed to the shards.
    """
    import pyarrow.compute as pc  # noqa: PLC0415
    import ray  # noqa: PLC0415
    from pyspark.sql import Window  # noqa: PLC0415
    from pyspark.sql import functions as F  # noqa: PLC0415

    t0 = time.perf_counter()
    report = LoadReport()
    files = expand_paths(paths)
    report.files = len(files)
    chosen = template
    report.template = chosen.name
    spark.conf.set("spark.sql.session.timeZone", chosen.timezone)
    step(f"reading {len(files)} file(s) ({chosen.name} session, {chosen.timezone})")
    bars = _read_bars(spark, files, tickers).withColumn("_row", F.monotonically_increasing_id())

    step("cleaning, aligning and pivoting bars to day curves (one pass per ticker)")
    minutes = np.full(1440, -1, np.int64)
    minutes[list(chosen.minutes)] = np.arange(chosen.slots)
    fn = partial(
        ticker_rows_and_days, minutes=minutes, session=chosen.name, before=before_date,
        n_slots=chosen.slots, max_missing=max_missing, max_gap_days=max_gap_days,
    )  # fmt: skip
    out = bars.groupBy("ticker").applyInPandas(fn, OUT_SCHEMA).cache()
    tally = out.filter(F.col("kind") == ROWS).select("ticker", "status", "rows", "late").collect()
    report.rows_read = sum(r["rows"] for r in tally)
    for r in tally:
        if r["status"] == OK:
            report.rows_out_of_order += r["late"]
            report.per_ticker.setdefault(r["ticker"] or "", TickerReport()).rows_kept += r["rows"]
        else:
            report.rows_dropped[r["status"]] = report.rows_dropped.get(r["status"], 0) + r["rows"]
    days = out.filter(F.col("kind") == DAY).drop("kind", "rows", "late")
    for r in days.groupBy("ticker", "status").count().collect():
        per = report.per_ticker.setdefault(r["ticker"], TickerReport())
        if r["status"] == KEPT:
            per.days_kept += r["count"]
        else:
            per.days_dropped[r["status"]] = per.days_dropped.get(r["status"], 0) + r["count"]
            report.days_dropped[r["status"]] = report.days_dropped.get(r["status"], 0) + r["count"]
    report.days_kept = sum(r.days_kept for r in report.per_ticker.values())
    latest = days.groupBy("ticker").agg(F.max_by(F.struct("date", "last_close"), "date").alias("x"))
    last_close = {r["ticker"]: (r["x"]["date"], r["x"]["last_close"]) for r in latest.collect()}
    kept_days = {t: r.days_kept for t, r in report.per_ticker.items() if r.days_kept}
    report.tickers = len(kept_days)

    kept = days.filter(F.col("status") == KEPT).drop("status", "missing", "last_close")
    by_day = partition == "day" or (partition == "auto" and len(kept_days) < shards)
    report.by_day = by_day
    if by_day:
        # Few tickers: deal the days out in turn, so every shard gets its share.
        order = Window.orderBy("ticker", "date")
        kept = kept.withColumn("shard", F.pmod(F.row_number().over(order) - 1, F.lit(shards)))
        n = report.days_kept
        dealt = {i: n // shards + (i < n % shards) for i in range(shards)}
        report.rows_per_shard = {i: k for i, k in dealt.items() if k}
    else:
        owner = _shard_of_ticker(kept_days, shards)
        table = spark.createDataFrame(list(owner.items()), "ticker string, shard int")
        kept = kept.join(F.broadcast(table), "ticker")
        for ticker, shard in owner.items():
            report.rows_per_shard[shard] = report.rows_per_shard.get(shard, 0) + kept_days[ticker]
    # Each partition crosses to Ray as one Java byte array (2 GiB at most, and heap): keep
    # them near 128 MB. Range partitions hold one shard's rows each (but at the boundaries),
    # so a shard fetches only its own blocks; only the channels in use cross.
    handed = kept.select("ticker", "date", "prev_close", "shard", *columns)
    size = report.days_kept * chosen.slots * 4 * len(columns)
    handed = handed.repartitionByRange(max(shards, -(-size // 2**27)), "shard", "ticker", "date")
    step(f"handing {report.days_kept} day curves to Ray's object store")
    refs = ray.data.from_spark(handed).to_arrow_refs() if report.days_kept else []
    by_shard: dict[int, list[Any]] = {}
    for ref in refs:
        for s in pc.unique(ray.get(ref)["shard"]).to_pylist():
            by_shard.setdefault(int(s), []).append(ref)
    report.seconds = time.perf_counter() - t0
    loaded = LoadedHistory(
        refs=refs, report=report, last_close=last_close, template=chosen, by_shard=by_shard
    )
    if cache is not None and report.days_kept:
        step(f"writing the day-curves cache {cache}")
        curves_cache.write(cache, kept, loaded)
    out.unpersist()
    return loaded
