"""Loading the history: the files and their template, the curves cache, or Spark on Ray.

One object, used where the files are: by the driver's Session, and by the HistoryLoader actor
on a cluster node when the driver is a Ray client. Ray must be up (`layout` says how many
shards and Spark executors); a wrong file or template fails before that, in `files`.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from simsignal.actors import cluster, placement, shared_paths
from simsignal.config.settings import Settings
from simsignal.engine.adapters.history import curves_cache
from simsignal.engine.adapters.history.formats import (
    NoHistoryError,
    count_bars,
    expand_paths,
    first_written_day,
    sample_times,
)
from simsignal.engine.adapters.history.loaded import LoadedHistory
from simsignal.engine.adapters.history.loader import load_history
from simsignal.engine.adapters.history.template_fit import choose_for
from simsignal.engine.core.channels import COLUMNS
from simsignal.engine.core.templates import SessionTemplate

Checked = tuple[list[Path], SessionTemplate, list[Any]]  # files, their template, every fit


@dataclass
class HistoryLoad:
    """The day curves of the history strictly before a date, and where they came from."""

    settings: Settings
    console: Console
    layout: placement.Layout | None = None  # known once Ray is up
    history: LoadedHistory | None = None
    cache: Path | None = None  # this history's day-curves cache (None: off)
    columns: list[str] = field(default_factory=list)  # the curve columns loaded

    def files(self, history_paths: list[str], wanted: list[str] | None, date: str) -> Checked:
        """The history files and their session template: a wrong one fails before Ray starts.

        So does a session date that Parquet statistics show is before every bar.
        """
        files = expand_paths(history_paths)
        first = first_written_day(files)
        # a date written in UTC may be the day before the exchange's: a day's margin
        if first is not None and dt.date.fromisoformat(first) - dt.timedelta(days=1) >= (
            dt.date.fromisoformat(date)
        ):
            where = ", ".join(history_paths)
            raise NoHistoryError(
                f"no usable history day before {date} in {where} (its first bar is on {first})"
            )
        template, fits = choose_for(sample_times(files, wanted), self.settings.history.template)
        chosen = next(f for f in fits if f.name == template.name)
        self.console.print(f"[green]✓[/] {len(files)} history file(s); session template "
                           f"{template.name} ({chosen.describe()})")  # fmt: skip
        return files, template, fits

    def check_here(
        self, history_paths: list[str], wanted: list[str] | None, date: str
    ) -> Checked | None:
        """The files and template, checked before Ray starts (None for a Ray client).

        A Ray client's history is on the cluster: its loader checks the files there.
        """
        if cluster.is_client(self.settings.cluster.address):
            return None
        return self.files(history_paths, wanted, date)

    def load(
        self, checked: Checked, date: str, wanted: list[str] | None, history_paths: list[str],
        t0: float, status: Any,
    ) -> LoadedHistory:  # fmt: skip
        """The day curves from the cache or through Spark (RayDP), Ray being up."""
        files, template, fits = checked
        s, say = self.settings, self.console.print
        warnings.filterwarnings("ignore", message=".*sql_ctx.*")
        assert self.layout is not None, "Ray first: the layout says how many shards"
        if s.cluster.address and self.layout.nodes > 1:
            shared_paths.check_visible(files)

        def step(msg: str) -> None:
            status.update(f"loading history: {msg}…")
            say(f"  · {msg} ({time.perf_counter() - t0:.1f}s)")

        cache = self.cache = self._cache_folder(files, template, date, wanted)
        columns = self.columns = list(dict.fromkeys(
            COLUMNS[c] for c in ("price", *s.engine.channels) if c in COLUMNS))  # fmt: skip
        hit = curves_cache.read(cache, template, columns) if cache else None
        if hit is not None:
            say(f"[green]✓[/] day curves from the cache {cache} "
                f"({time.perf_counter() - t0:.1f}s): Spark not needed")  # fmt: skip
            history = hit
        else:
            short = None if s.cluster.address else disk_short(files, cluster.ray_folder())
            if short:
                say(f"[yellow]![/] {short}")
            status.update("starting Spark on Ray (RayDP)…")
            memory = cluster.executor_memory_for(count_bars(files), s.cluster.executor_memory)
            spark = cluster.start_spark(executor_memory=memory,
                                        executor_cores=self.layout.executor_cores,
                                        executors=self.layout.executors)  # fmt: skip
            say(f"[green]✓[/] Spark on Ray up ({time.perf_counter() - t0:.1f}s, "
                f"executor memory {memory})")  # fmt: skip
            history = load_history(
                spark, [str(f) for f in files], template, self.n_shards,
                max_missing=s.history.max_missing_slots, max_gap_days=s.history.max_gap_days,
                before_date=date, partition=s.engine.partition, tickers=wanted, cache=cache,
                columns=tuple(columns), step=step,
            )  # fmt: skip
            cluster.release_spark()
        history.report.template_fit = [f.describe() for f in fits]
        if history.report.days_kept == 0:
            raise NoHistoryError(
                f"no usable history day before {date} in {', '.join(history_paths)} "
                f"({history.report.rows_read:,} rows read; see the load report)"
            )
        self.history = history
        return history

    @property
    def n_shards(self) -> int:
        """Shard actors of this run (the setting, or one per CPU of the cluster)."""
        if self.layout is not None:
            return self.layout.shards
        shards = self.settings.engine.shards
        assert isinstance(shards, int), "shards = auto is known once Ray is up"
        return shards

    def _cache_folder(
        self, files: list[Path], template: SessionTemplate, date: str, tickers: list[str] | None
    ) -> Path | None:
        """Where this history's day curves are cached (None: the cache is off)."""
        h, e = self.settings.history, self.settings.engine
        if not h.cache_dir:
            return None
        key = curves_cache.fingerprint(
            files, template=template.name, max_missing=h.max_missing_slots,
            max_gap_days=h.max_gap_days, before=date, tickers=sorted(tickers or []),
            shards=self.n_shards, partition=e.partition,
        )  # fmt: skip
        return Path(h.cache_dir) / key


def disk_short(files: list[Path], folder: Path, free: int | None = None) -> str | None:
    """A warning when `folder`'s disk has less room than a Spark load of `files` may take.

    A cold load of 500 tickers × 10 years wrote more than twice its 7.1 GB of Parquet under
    Ray's session folder (docs/operating.md); a full disk there stops the load part-way.
    """
    size = sum(f.stat().st_size for f in files)
    if free is None:
        probe = folder if folder.exists() else folder.parent
        free = shutil.disk_usage(probe).free
    if free >= 2 * size:
        return None
    return (f"{free / 2**30:.1f} GiB free under {folder} for a Spark load of "
            f"{size / 2**30:.1f} GiB of history files: a load can write more than twice their "
            "size there (Spark's shuffle, Ray's spilled objects; docs/operating.md)")  # fmt: skip
