"""The day-curves cache: the loader's output, written once; a restart skips Spark.

Keyed by a fingerprint of the input files (path, size, modification time) and of every
setting that shapes the curves or their sharding. A hit is read with pyarrow in the driver and
put into Ray's object store one table per shard, so each shard fetches only its own rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simsignal.engine.adapters.history.loaded import LoadedHistory, LoadReport, TickerReport
from simsignal.engine.core.templates import SessionTemplate

FORMAT = 1  # bump when what the cache holds changes


def fingerprint(files: list[Path], **shape: Any) -> str:
    """Hash of the files' identities and the settings that shape the curves."""
    h = hashlib.sha256(f"simsignal-curves-{FORMAT}".encode())
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(json.dumps(shape, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


def write(folder: Path, kept: Any, history: LoadedHistory) -> None:
    """Write the kept day curves (a Spark DataFrame) and the report; atomic by rename.

    Each writer has its own temporary folder: two engines started at once on one history
    both write, the first rename wins and the other's equal copy is dropped.
    """
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    kept.write.parquet(str(tmp / "curves"))
    meta = {"report": dataclasses.asdict(history.report), "last_close": history.last_close,
            "template": history.template.name}  # fmt: skip
    (tmp / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    try:
        tmp.rename(folder)
    except OSError:
        if not (folder / "meta.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another writer's copy is there: the same


def read(folder: Path, template: SessionTemplate, columns: list[str]) -> LoadedHistory | None:
    """The cached history as one object-store table per shard, or None on a miss."""
    import ray  # noqa: PLC0415

    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta["template"] != template.name:
        return None
    table = pq.read_table(folder / "curves", columns=["ticker", "date", "prev_close", "shard",
                                                      *columns])  # fmt: skip
    by_shard = {
        int(s): [ray.put(_rows_of(table, s))] for s in pc.unique(table["shard"]).to_pylist()
    }
    raw = meta["report"]
    per = {t: TickerReport(**r) for t, r in raw.pop("per_ticker").items()}
    report = LoadReport(**raw, per_ticker=per)
    report.rows_per_shard = {int(k): v for k, v in report.rows_per_shard.items()}
    if "by_day" not in raw:  # a cache written before the flag: more shards hold rows than tickers
        report.by_day = report.tickers < len(report.rows_per_shard)
    last = {t: (d, float(c)) for t, (d, c) in meta["last_close"].items()}
    refs = [r for rs in by_shard.values() for r in rs]
    return LoadedHistory(refs=refs, report=report, last_close=last, template=template,
                         by_shard=by_shard, cached=True)  # fmt: skip


def shard_rows(folder: Path, shard: int, columns: list[str]) -> pa.Table:
    """One shard's cached rows, read where the caller runs (a shard rebuilt on another node)."""
    return pq.read_table(folder / "curves", columns=["ticker", "date", "prev_close", "shard",
                                                     *columns],
                         filters=[("shard", "=", shard)])  # fmt: skip


def _rows_of(table: pa.Table, shard: int) -> pa.Table:
    return table.filter(pc.equal(table["shard"], shard))
