"""What the history files say before anything is loaded: the earliest written day."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simsignal.actors.cluster import ray_folder
from simsignal.actors.history_load import disk_short
from simsignal.engine.adapters.history.formats import first_written_day
from simsignal.engine.adapters.synthetic import make_history, to_seed_format
from simsignal.engine.core.templates import get_template

CN = get_template("cn")


def _bars(seed: int, years: float = 5 / 243) -> pd.DataFrame:
    return make_history(CN, years=years, ticker="000300", seed=seed)


def test_the_earliest_day_of_parquet_files_in_both_layouts(tmp_path: Path) -> None:
    plain, seed = _bars(1), to_seed_format(_bars(2))
    shuffled = plain.sample(frac=1.0, random_state=3)  # statistics, not the first row
    pq.write_table(pa.Table.from_pandas(shuffled), tmp_path / "a.parquet", row_group_size=300)
    seed.iloc[241:].to_parquet(tmp_path / "b.parquet")  # from its second day
    got = first_written_day([tmp_path / "a.parquet"])
    assert got == min(plain["datetime"].str[:10])
    assert first_written_day([tmp_path / "b.parquet"]) == sorted(set(seed["dataDate"]))[1]
    both = first_written_day([tmp_path / "b.parquet", tmp_path / "a.parquet"])
    assert both == min(got, sorted(set(seed["dataDate"]))[1])


def test_unknown_without_reading_the_bars(tmp_path: Path) -> None:
    """CSV, dates Spark parses but that do not sort as text, and no statistics: None."""
    bars = _bars(4)
    bars.to_csv(tmp_path / "a.csv", index=False)
    odd = bars.assign(datetime=bars["datetime"].str.replace("-0", "-", regex=False))
    odd.to_parquet(tmp_path / "odd.parquet")
    pq.write_table(pa.Table.from_pandas(bars), tmp_path / "bare.parquet", write_statistics=False)
    bars.to_parquet(tmp_path / "ok.parquet")
    for name in ("a.csv", "odd.parquet", "bare.parquet"):
        assert first_written_day([tmp_path / "ok.parquet", tmp_path / name]) is None, name


def test_a_spark_load_is_warned_of_a_disk_without_twice_its_files_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = tmp_path / "h.parquet"
    with history.open("wb") as f:
        f.truncate(3 * 2**29)  # 1.5 GiB of history files, sparse: nothing is written
    folder = tmp_path / "ray"
    assert disk_short([history], folder, free=3 * 2**30) is None  # twice their size: room
    said = disk_short([history], folder, free=3 * 2**30 - 1)
    assert said == (f"3.0 GiB free under {folder} for a Spark load of 1.5 GiB of history "
                    "files: a load can write more than twice their size there (Spark's "
                    "shuffle, Ray's spilled objects; docs/operating.md)")  # fmt: skip
    small = tmp_path / "small.csv"  # and against this disk's real room, as a run measures it
    small.write_bytes(b"y" * 1000)
    assert shutil.disk_usage(tmp_path).free >= 2000 and disk_short([small], folder) is None
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert ray_folder() == tmp_path / "ray"
