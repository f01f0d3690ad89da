"""One engine run: Java/Ray/Spark up, history loaded and sharded, actors ready, feed, summary."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from rich.console import Console

from simsignal.actors import cluster, placement
from simsignal.actors.configs import coordinator_config
from simsignal.actors.coordinator import CoordinatorActor
from simsignal.actors.history_load import Checked, HistoryLoad
from simsignal.actors.loader import HistoryLoaderActor
from simsignal.actors.replies import CoordinatorHandle, ShardHandle, ShardInfo
from simsignal.actors.shard import ShardActor
from simsignal.config.settings import Settings
from simsignal.engine.adapters.history.loaded import LoadedHistory
from simsignal.engine.adapters.redis_connect import refuse_missing_permissions, resolve_redis
from simsignal.engine.adapters.redis_server import RedisServer
from simsignal.engine.core import pairs
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.pairs import is_pair
from simsignal.engine.core.risk_model import RiskModel


@dataclass
class Session:
    """Owns the cluster, the actors and the Redis connection of one run."""

    settings: Settings
    console: Console
    redis_url: str = ""
    embedded: RedisServer | None = None
    history: LoadedHistory | None = None
    shards: list[ShardHandle] = field(default_factory=list)
    coordinator: CoordinatorHandle | None = None  # the app reaches it through EngineHandle
    shard_info: list[ShardInfo] = field(default_factory=list)
    cold_start_s: float = 0.0
    direct: bool = False  # the fan-out runs over direct links
    authkey: bytes | None = None  # the run's secret for them (engine.direct_links)
    layout: placement.Layout | None = None
    loader: Any = None  # a Ray client's HistoryLoader, which owns the day curves
    coordinator_node: str = ""
    shard_group: Any = None  # the shards' placement group
    loading: HistoryLoad | None = None  # the history load in this process
    _remote_cache: tuple[Path | None, list[str]] = (None, [])  # a Ray client's, from its loader

    def __post_init__(self) -> None:
        self.loading = HistoryLoad(self.settings, self.console)

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
        assert self.loading is not None
        checked = self.loading.check_here(history_paths, wanted, date)
        url = s.redis.url.get_secret_value() if s.redis.url else None
        self.redis_url, self.embedded = resolve_redis(url, say)
        refuse_missing_permissions(self.redis_url, s.redis.prefix, (tickers or ["any"])[0],
                                   date, run)  # fmt: skip
        with self.console.status("starting Ray…") as status:
            history = self._history(checked, history_paths, date, wanted, t0, status)
            if s.signals.pairs:
                self._add_spreads(history)
            status.update("starting shard actors…")
            self.authkey = secrets.token_bytes(32) if s.engine.direct_links else None
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
                    self.authkey,
                ),
            )
            self.direct = ray.get(self.coordinator.connect.remote())
            self.coordinator_node = ray.get(self.coordinator.__ray_call__.remote(_node_id))
        self.cold_start_s = time.perf_counter() - t0

    def start_shards(self) -> None:
        """Shard actors over the loaded history, and nothing else (a market `evaluate`)."""
        assert self.history is not None, "load() first"
        self.shards = self._start_shards(self.history, risk=False)
        self.shard_info = ray.get([sh.info.remote() for sh in self.shards])

    def _start_shards(self, history: LoadedHistory, risk: bool | None = None) -> list[Any]:
        """One actor per shard, each in its bundle of a SPREAD placement group.

        A bundle whose node dies is placed again on a live node and Ray restarts the shard
        there; the shard reloads its days from the object store, or from the curves cache when
        those blocks died with the node.
        """
        s, layout = self.settings, self.layout
        assert layout is not None
        self.shard_group = placement.spread_group(layout)
        cache, columns = self._cache_and_columns()
        backup = (str(cache), columns) if cache is not None and cache.is_dir() else None
        # days dealt out in turn (a few tickers): no shard holds a ticker's days, fit them here
        risk = s.signals.risk if risk is None else risk
        models = risk_models(history) if risk and history.report.by_day else None
        return [
            ShardActor.options(
                num_cpus=layout.shard_cpus,
                scheduling_strategy=placement.in_bundle(self.shard_group, i),
            ).remote(
                i, history.blocks_for(i), history.slots, list(s.engine.algorithms), s.engine.k,
                s.engine.pooled, s.engine.params, s.engine.channels,
                extra=history.extra.get(i, []), backup=backup, authkey=self.authkey,
                risk=risk, risk_models=models,
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
        assert self.loading is not None
        checked = self.loading.check_here(history_paths, wanted, before)
        with self.console.status("starting Ray…") as status:
            self._history(checked, history_paths, before, wanted, t0, status)
        self.cold_start_s = time.perf_counter() - t0

    def curves(self) -> DayCurves:
        """Every loaded day curve (all shards' rows, sorted by ticker and date) in this process."""
        assert self.history is not None, "load() first"
        tables = ray.get(self.history.refs)
        return DayCurves.from_arrow(tables, self.history.slots)

    def _history(
        self, checked: Checked | None, history_paths: list[str], date: str,
        wanted: list[str] | None, t0: float, status: Any,
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
            assert self.loading is not None
            self.loading.layout = self.layout
            self.history = self.loading.load(checked, date, wanted, history_paths, t0, status)
            return self.history
        status.update("loading history on a cluster node (Ray client)…")
        self.loader = HistoryLoaderActor.remote(s, self.layout)
        got = ray.get(self.loader.load.remote(history_paths, date, wanted))
        for line in got["said"].splitlines():
            say(line, highlight=False, markup=False)
        self.history, self._remote_cache = got["history"], (got["cache"], got["columns"])
        say(f"[green]✓[/] history loaded on the cluster ({time.perf_counter() - t0:.1f}s)")
        return self.history

    @property
    def n_shards(self) -> int:
        """Shard actors of this run (the setting, or one per CPU of the cluster)."""
        assert self.loading is not None
        self.loading.layout = self.layout
        return self.loading.n_shards

    def _cache_and_columns(self) -> tuple[Path | None, list[str]]:
        """The curves cache folder and columns of this run's load (here or on the cluster)."""
        if self.loader is not None:
            return self._remote_cache
        assert self.loading is not None
        return self.loading.cache, self.loading.columns

    def shards_now(self) -> list[ShardInfo]:
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
            "days": sum(i.days for i in self.shard_info),
            "curves_bytes": sum(i.bytes for i in self.shard_info),
            "shards": len(self.shards), "direct_links": int(self.direct),
            "shard_nodes": ",".join(i.node for i in self.shard_info),
            "coordinator_node": self.coordinator_node,
            "template": report.template if report else "",
            "cache_hit": int(bool(self.history and self.history.cached)),
        }  # fmt: skip

    def close(self) -> None:
        """Close the direct links, stop Spark, Ray and an embedded Redis (in that order)."""
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


def risk_models(history: LoadedHistory) -> dict[str, RiskModel]:
    """Each ticker's rest-of-day risk model, fitted in this process on all of its days.

    For a load whose days were dealt out to the shards in turn: that happens only with fewer
    tickers than shards, so the curves fetched here are a few tickers' worth.
    """
    curves = DayCurves.from_arrow(ray.get(history.refs), history.slots)
    return {t: RiskModel.fit(curves.ratio[lo:hi]) for t, (lo, hi) in curves.ticker_ranges().items()
            if not is_pair(t)}  # fmt: skip
