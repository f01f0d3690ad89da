"""Spark side of history loading: read, enforce schema, clean, align, pivot, shard, hand to Ray."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from engine.history.days import DAY_SCHEMA, KEPT, days_of_ticker
from engine.history.formats import SEED, BarFormat, detect_format, expand_paths, header_of
from engine.templates import SessionTemplate

OK = "ok"
Step = Callable[[str], None]


@dataclass
class LoadReport:
    """What loading did, for the summary table and the tests."""

    files: int = 0
    rows_read: int = 0
    rows_dropped: dict[str, int] = field(default_factory=dict)
    rows_out_of_order: int = 0
    days_kept: int = 0
    days_dropped: dict[str, int] = field(default_factory=dict)
    tickers: int = 0
    rows_per_shard: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class LoadedHistory:
    """Day curves in Ray's object store (Arrow blocks with a `shard` column) and the report."""

    refs: list[Any]
    report: LoadReport
    last_close: dict[str, tuple[str, float]]  # ticker → (date, close) of its last history day
    slots: int


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
        ts_text = F.regexp_replace(F.trim(F.col(c["datetime"]).cast("string")), "T", " ")

    def num(name: str) -> Any:
        return F.col(c[name]).cast("double") if name in c else F.lit(None).cast("double")

    return raw.select(
        ticker.alias("ticker"),
        ts_text.alias("ts_text"),
        ts_text.cast("timestamp").alias("ts"),
        *(num(n).alias(n) for n in ("open", "high", "low", "close", "volume", "amount")),
    )


def _bad_reason() -> Any:
    """Why a row cannot be used, or null."""
    from pyspark.sql import functions as F  # noqa: PLC0415

    def bad(col: str) -> Any:
        return F.col(col).isNull() | F.isnan(col)

    return (
        F.when(F.col("ticker").isNull() | (F.col("ticker") == ""), "missing ticker")
        .when(F.col("ts").isNull(), "unparseable timestamp")
        .when(bad("close") | (F.col("close") <= 0), "close missing, NaN or <= 0")
        .when(bad("volume") | (F.col("volume") < 0), "volume missing, NaN or < 0")
    )


def load_history(
    spark: Any,
    paths: list[str],
    template: SessionTemplate,
    shards: int,
    *,
    max_missing: int,
    before_date: str | None = None,
    partition: str = "auto",
    step: Step = lambda _: None,
) -> LoadedHistory:
    """Load bar files into day curves in Ray's object store, sharded, with a report."""
    import ray  # noqa: PLC0415
    from pyspark.sql import Window  # noqa: PLC0415
    from pyspark.sql import functions as F  # noqa: PLC0415

    t0 = time.perf_counter()
    report = LoadReport()
    files = expand_paths(paths)
    report.files = len(files)
    step(f"reading {len(files)} file(s)")
    groups: dict[tuple[str, ...], list[Path]] = {}
    for f in files:
        groups.setdefault((f.suffix.lower(), *header_of(f)), []).append(f)
    frames = [
        _canonical(spark, fs, detect_format(list(h[1:]), str(fs[0]))) for h, fs in groups.items()
    ]
    bars = frames[0]
    for other in frames[1:]:
        bars = bars.unionByName(other)
    bars = bars.withColumn("_row", F.monotonically_increasing_id())

    step("cleaning and aligning bars to the session template")
    slot_df = spark.createDataFrame(
        [(m, i) for i, m in enumerate(template.minutes)], "minute_of_day int, slot int"
    )
    values = ["ticker", "ts", "open", "high", "low", "close", "volume", "amount"]
    reason = _bad_reason()
    bars = bars.withColumn("_bad", reason)
    exact = Window.partitionBy(*values).orderBy("_row")
    minute = Window.partitionBy("ticker", "ts", F.col("_bad").isNull()).orderBy("_row")
    in_file = Window.partitionBy("ticker").orderBy("_row")
    bars = (
        bars.withColumn("_exact", F.row_number().over(exact))
        .withColumn("_dup", F.row_number().over(minute))
        .withColumn("_late", F.lag("ts").over(in_file) > F.col("ts"))
        .withColumn("minute_of_day", F.hour("ts") * 60 + F.minute("ts"))
        .join(F.broadcast(slot_df), "minute_of_day", "left")
        .withColumn("date", F.date_format("ts", "yyyy-MM-dd"))
    )
    status = (
        F.when(F.col("_bad").isNotNull(), F.col("_bad"))
        .when(F.col("_exact") > 1, "exact duplicate")
        .when(F.col("_dup") > 1, "conflicting duplicate minute (kept the first in file order)")
        .when(F.col("slot").isNull(), f"outside the {template.name} session")
    )
    if before_date:
        status = status.when(F.col("date") >= before_date, f"on or after {before_date}")
    bars = bars.withColumn("status", status.otherwise(OK)).cache()
    counts = (
        bars.groupBy("status")
        .agg(F.count("*").alias("n"), F.sum(F.col("_late").cast("int")).alias("late"))
        .collect()
    )
    report.rows_read = sum(r["n"] for r in counts)
    report.rows_dropped = {r["status"]: r["n"] for r in counts if r["status"] != OK}
    report.rows_out_of_order = sum(r["late"] or 0 for r in counts if r["status"] == OK)

    step("pivoting to day curves (prev_close, ratio)")
    fn = partial(days_of_ticker, n_slots=template.slots, max_missing=max_missing)
    days = (
        bars.filter(F.col("status") == OK)
        .select("ticker", "date", "slot", "close", "volume", "amount")
        .groupBy("ticker")
        .applyInPandas(fn, DAY_SCHEMA)
        .cache()
    )
    day_counts = days.groupBy("status").count().collect()
    report.days_kept = sum(r["count"] for r in day_counts if r["status"] == KEPT)
    report.days_dropped = {r["status"]: r["count"] for r in day_counts if r["status"] != KEPT}
    latest = days.groupBy("ticker").agg(F.max_by(F.struct("date", "last_close"), "date").alias("x"))
    last_close = {r["ticker"]: (r["x"]["date"], r["x"]["last_close"]) for r in latest.collect()}
    report.tickers = len(last_close)

    by_day = partition == "day" or (partition == "auto" and report.tickers < shards)
    key = F.hash("ticker", "date") if by_day else F.hash("ticker")
    kept = (
        days.filter(F.col("status") == KEPT)
        .drop("status", "missing", "last_close")
        .withColumn("shard", F.pmod(key, F.lit(shards)))
        .repartition(shards, "shard")
    )
    report.rows_per_shard = {
        r["shard"]: r["count"] for r in kept.groupBy("shard").count().collect()
    }
    step(f"handing {report.days_kept} day curves to Ray's object store")
    refs = ray.data.from_spark(kept).to_arrow_refs() if report.days_kept else []
    bars.unpersist()
    days.unpersist()
    report.seconds = time.perf_counter() - t0
    return LoadedHistory(refs=refs, report=report, last_close=last_close, slots=template.slots)
