"""CoordinatorActor: a thin shell that runs the pure minute pipeline on Ray and Redis.

Its jobs are the lifecycle (start / run / stop / close) and the wiring: the pipeline's
fan-out port is `RayFanOut` (direct links, classic calls for recovery), its sink is
`RedisSink`, and bars come from one input loop over a source (a replay call or the Redis
bar streams), gathered into one batch per minute.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import ray

from simsignal.actors.fanout import RayFanOut, ShardLost
from simsignal.actors.replies import Health, RunStats, Spilled
from simsignal.engine.adapters.bar_source import RedisBarSource
from simsignal.engine.adapters.publish import SignalPublisher
from simsignal.engine.adapters.redis_sink import RedisSink
from simsignal.engine.adapters.redis_store import RedisError, RedisStore, Unavailable
from simsignal.engine.adapters.status_writer import StatusWriter
from simsignal.engine.core.bars import BadBar
from simsignal.engine.core.forecast import forecast
from simsignal.engine.core.gc_pause import gc_paused
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.pipeline.batcher import Arrival, MinuteBatcher
from simsignal.engine.core.pipeline.journal import BatchRecord
from simsignal.engine.core.pipeline.minute import MinutePipeline
from simsignal.engine.core.pipeline.observers import ChartSnapshot, LatencyStats, LiveView
from simsignal.engine.core.pipeline.ports import MinuteResult, PipelineConfig, Rejection
from simsignal.engine.core.templates import get_template

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoordinatorConfig:
    """The coordinator's settings, built once from the settings tree (`session.py`)."""

    pipeline: PipelineConfig
    redis_url: str
    prefix: str = "simsignal"
    retention_days: float = 5.0  # signal streams keep this many days (XADD MINID)
    chart_minute: int | None = None  # default: mid-session
    authkey: bytes | None = None  # the shards' direct links (None: classic Ray calls)
    batch_deadline_s: float = 0.05  # a minute's batch closes this long after its first bar
    read_count: int = 1000  # bar-stream entries per XREADGROUP
    idle_after_s: float = 1.0  # no bars this long: flush what is pending, write the figures
    run: str = "live"  # the journal's run name: "live" for the Redis feed, unique per replay
    consumer: str = "coordinator"  # this engine's name in the bar streams' consumer group
    max_pending: int = 100_000  # signals kept in memory while Redis fails, then spilled
    spill_path: str | None = None  # JSON lines of commits Redis did not take (simsignal flush)
    view_tickers: frozenset[str] = frozenset()  # drawn for the dashboard ({prefix}:view:{t})
    health_every_s: float = 1.0  # the engine hash's live figures, at most this often


class Coordinator:
    """Everything here runs inside one actor process.

    At start it publishes a spill file left by an earlier run and rebuilds today from the
    session's journal in Redis, so a coordinator that Ray restarts (or an engine started
    again on the same day) resumes exactly where the last committed batch left off.
    """

    def __init__(self, shards: list[Any], config: CoordinatorConfig) -> None:
        self.config = config
        self.keys = Keys(config.prefix)
        self.store = RedisStore.connect(config.redis_url)
        self.publisher = SignalPublisher(
            self.store, self.keys, config.retention_days,
            journal_key=self.keys.journal(config.pipeline.date, config.run),
            counts_key=self.keys.counts(config.pipeline.date, config.run),
            group=self.keys.group, max_pending=config.max_pending,
            spill=Path(config.spill_path) if config.spill_path else None,
        )  # fmt: skip
        self.sink = RedisSink(self.publisher)
        self.status = StatusWriter(self.store, self.keys, self.publisher.keep_s,
                                   config.health_every_s)  # fmt: skip
        self.fanout = RayFanOut(shards, self._history, config.authkey)
        self.latency = LatencyStats()
        template = get_template(config.pipeline.template)
        self.chart = ChartSnapshot(
            config.chart_minute or template.slots // 2,
            next(a for a in config.pipeline.algorithms if a != "ensemble"),
            lambda ticker: list(self.pipeline.today[ticker].xs),
        )
        self.observers: list[Any] = [self.latency, self.chart]
        if config.view_tickers:
            self.observers.append(LiveView(
                config.view_tickers, self.chart.algo,
                [template.label(i) for i in range(template.slots)],
                lambda ticker: list(self.pipeline.today[ticker].xs),
                self.fanout.curves, self.status.view,
            ))  # fmt: skip
        self.pipeline = self._new_pipeline()
        self.engine_errors = 0
        self.read_failing_since: float | None = None  # the bar streams could not be read
        self.restarted = _reconstructed()
        self.before: dict[str, int] = {}  # the run's counters in Redis when this process began
        self.restored_batches = self._resume()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the actor is threaded (stop() must reach the feed loop)

    def _new_pipeline(self) -> MinutePipeline:
        return MinutePipeline(self.config.pipeline, self.fanout, self.sink, self.observers)

    def _write_health(self, force: bool = False) -> None:
        """The engine hash's live figures (the dashboard's health line), at most every 1 s."""
        self.status.health(self._figures, force)

    def _figures(self) -> dict[str, Any]:
        lat, pub = self.latency.summary(), self.publisher
        return {"minutes": int(lat["minutes"]), "p50_ms": round(float(lat["p50_ms"]), 3),
                "p99_ms": round(float(lat["p99_ms"]), 3), "accepted": self.pipeline.accepted,
                "rejected": sum(self.pipeline.rejected.values()),
                "pending": pub.pending_signals, "spilled": pub.spilled}  # fmt: skip

    def _history(self, ticker: str, m: int) -> list[tuple[float, ...]]:
        return self.pipeline.values_before(ticker, m)

    def _resume(self, timeout_s: float = 120.0) -> int:
        """Publish a left-over spill file, then rebuild today from the journal; batches read."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.publisher.flush()
                entries = self.store.entries(self.publisher.journal_key or "")
                counts = self.store.counts(self.publisher.counts_key)
                break
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                log.warning("Redis unreachable while resuming: retrying")
                time.sleep(1.0)
        # What earlier processes of this run did, as Redis holds it (a spill file published
        # just now by this process is its own).
        mine = {"published": self.publisher.published, "derived": self.publisher.derived,
                "repeats": self.publisher.repeats}  # fmt: skip
        self.before = {k: v - mine.get(k, 0) for k, v in counts.items()}
        if entries:
            self.publisher.journal_seq = max(int(e.id.split("-")[0]) for e in entries)
            self._rebuild([BatchRecord.from_fields(e.fields) for e in entries])
            self._resume_rebalance()
            log.warning("resumed from %d journal entries (restarted: %s)", len(entries),
                        self.restarted)  # fmt: skip
        return len(entries)

    def _resume_rebalance(self) -> None:
        """The portfolio goes on from today's last published weights, not from cash."""
        deriver = self.pipeline.deriver
        if deriver is None or deriver.rebalance is None:
            return
        raw = self.store.hash(self.keys.rebalance_latest).get("portfolio")
        if raw:
            latest = orjson.loads(raw)
            if latest.get("date") == self.config.pipeline.date:
                deriver.restore(latest)

    def _rebuild(self, records: list[BatchRecord]) -> None:
        """A fresh pipeline from `records`, and every shard's query state to match."""
        old = self.pipeline.deriver
        self.pipeline = self._new_pipeline()
        if old is not None and self.pipeline.deriver is not None:  # the same portfolio goes on
            new = self.pipeline.deriver
            new.held, new.edges, new.done = old.held, old.edges, old.done
        self.pipeline.restore(records)  # the shards' queries too, through the fan-out
        self.pipeline.journal = list(records)

    # -- lifecycle ------------------------------------------------------------------------
    def connect(self) -> bool:
        """Start: open the direct links and pay first-use costs now, not on the first minute."""
        direct = self.fanout.connect()
        with contextlib.suppress(RedisError):
            self.publisher.preload()
        forecast(0.0, np.ones(2), np.zeros(2), np.zeros(2))
        gc.freeze()  # start-up objects out of the collector's way: no 50 ms gen-2 pauses later
        return direct

    def stop(self) -> None:
        """Ask run_redis_feed to return."""
        self._stop.set()

    def close(self) -> None:
        """Close the direct links (before the shards go away)."""
        self.fanout.close()

    # -- input ----------------------------------------------------------------------------
    def on_bar(self, raw: dict[str, str], source: str = "replay") -> dict[str, Any]:
        """One raw bar as a batch of one; returns a row for the live table (or the rejection)."""
        return self.on_bars([raw], source)[-1]

    def on_bars(
        self, raws: list[dict[str, str]], source: str = "replay", receipts: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Several raw bars as one batch (one fan-out, one publish); a row per bar.

        `receipts` name the bars (a replay's row numbers): a batch sent again after a
        coordinator restart skips the bars the journal already holds.
        """
        now = time.perf_counter()
        names = receipts or [""] * len(raws)
        return self._run([Arrival(r, source, now, n) for r, n in zip(raws, names, strict=True)])

    def _run(self, batch: list[Arrival]) -> list[dict[str, Any]]:
        # The batch's results are dropped before the collector is back on: otherwise its
        # first collection would scan every signal and neighbour tuple of the minute.
        with self._lock, gc_paused():
            out = self._batch(batch)
            self._write_health()
            rows: dict[int, dict[str, Any]] = {}
            for item in out:
                key = id(item.arrival)
                if isinstance(item, MinuteResult):
                    rows[key] = self._row(item)
                else:
                    rows[key] = {"rejected": str(item.bad)}
            del out
        return [rows.get(id(a), {}) for a in batch]

    def _batch(self, batch: list[Arrival]) -> list[MinuteResult | Rejection]:
        """The pipeline's batch; on an engine error, rebuild from the journal and try once more.

        A batch that fails twice is refused bar by bar (code `engine_error`, dead-lettered and
        acknowledged), so the engine goes on with the state of the last committed batch.
        """
        for attempt in (1, 2):
            try:
                return self.pipeline.on_batch(batch)
            except ShardLost:  # no retry can help: the run stops, the batch unacknowledged
                raise
            except Exception as err:  # an engine fault must not end the run
                self.engine_errors += 1
                log.exception("batch of %d bar(s) failed (attempt %d)", len(batch), attempt)
                self.sink.forget()
                self._rebuild(self.pipeline.journal)
                cause = err
        why = f"engine error ({type(cause).__name__}: {str(cause)[:120]})"
        bad = BadBar("batch", type(cause).__name__, why, "engine_error")
        record = BatchRecord(receipts=[(a.source, a.receipt) for a in batch if a.receipt])
        for a in batch:
            self.sink.reject(a, bad)
            record.rejected.append(bad.key)
            self.pipeline.rejected[bad.key] += 1
        self.sink.publish([], record)
        self.pipeline.journal.append(record)
        return [Rejection(a, bad) for a in batch]

    def _row(self, r: MinuteResult) -> dict[str, Any]:
        first = r.signals[0] if r.signals else None
        return {"minute": r.minute, "slot": first.slot if first else "", "close": r.close,
                "x": r.x, "pred_close": first.pred_close if first else float("nan"),
                "up_prob": first.up_prob if first else float("nan"),
                "algo": first.algo if first else "",
                "latency_ms": (time.perf_counter() - r.arrived_at) * 1e3,
                "pending": self.publisher.pending_signals}  # fmt: skip

    def run_redis_feed(self, tickers: list[str], block_ms: int = 200) -> int:
        """Read `simsignal:bars:{ticker}` in a consumer group until stop(); a batch a minute.

        Entries this consumer was handed before a restart and never acknowledged come first
        (ID `0`), then new ones (`>`). Each batch's bars are acknowledged in the transaction
        that commits its signals, so a restart neither re-reads nor loses a bar.
        """
        source = RedisBarSource(self.store, self.keys, tickers, self.config.consumer,
                                self.config.read_count)  # fmt: skip
        usable = self.config.pipeline.usable  # tickers without days send bars to be refused
        expected = frozenset(tickers) & usable if usable is not None else frozenset(tickers)
        batcher = MinuteBatcher(expected, self.config.batch_deadline_s)
        handled, last_bar = 0, time.perf_counter()
        while not self._stop.is_set():
            due = batcher.due(time.perf_counter())
            wait = block_ms if due is None else max(1, int(due * 1e3))
            if due is None and time.perf_counter() - last_bar > self.config.idle_after_s:
                with self._lock:
                    if self.publisher.pending:
                        self.publisher.flush()
                    self._write_health()  # the last minutes' figures, once bars stop
            try:
                arrivals = source.read(wait)
            except Unavailable as err:
                self.publisher.last_error = f"{type(err).__name__}: {err}"[:300]
                self.read_failing_since = self.read_failing_since or time.monotonic()
                time.sleep(0.5)
                with self._lock:
                    self.publisher.flush()
                continue
            except RedisError as err:  # NOPERM, OOM, READONLY …: say so, keep trying
                self.publisher.last_error = f"{type(err).__name__}: {err}"[:300]
                log.warning("reading the bar streams failed: %s", err)
                time.sleep(1.0)
                continue
            self.read_failing_since = None
            now = time.perf_counter()
            if arrivals:
                last_bar = now
            for batch in batcher.add(arrivals, now):
                self._run(batch)
                handled += len(batch)
        for batch in batcher.flush():
            self._run(batch)
            handled += len(batch)
        return handled

    # -- reporting --------------------------------------------------------------------------
    def flush(self) -> int:
        """Retry pending publications; returns how many signals are still pending."""
        with self._lock:
            self.publisher.flush(force=True)
            self._write_health(force=True)
            return self.publisher.pending_signals

    def spill(self) -> Spilled:
        """Write what Redis did not take to the spill file; what was spilled, and where."""
        with self._lock:
            n = self.publisher.spill_pending()
        pub = self.publisher
        return Spilled(n, pub.spilled, str(pub.spill or ""), pub.pending_signals)

    def health(self) -> Health:
        """For the console while following Redis: is Redis failing, and what is held back."""
        pub = self.publisher
        since = min((t for t in (pub.failing_since, self.read_failing_since) if t), default=None)
        return Health(0.0 if since is None else time.monotonic() - since, str(pub.last_error),
                      pub.pending_signals, pub.spilled, pub.max_pending, str(pub.spill or ""),
                      self.pipeline.accepted, os.getpid())  # fmt: skip

    def stats(self) -> RunStats:
        """Counts and latencies for the summary."""
        pub, lat = self.publisher, self.latency.summary()
        return RunStats(
            accepted=self.pipeline.accepted, rejected=dict(self.pipeline.rejected),
            published=pub.published, derived=pub.derived, repeats=pub.repeats,
            resent_batches=pub.resent, counts=self.store_counts(),
            pending=pub.pending_signals, spilled=pub.spilled, spill_path=str(pub.spill or ""),
            refused_backfill=list(pub.refused), not_finite=self.pipeline.not_finite,
            engine_errors=self.engine_errors, coordinator_restarted=self.restarted,
            resumed_batches=self.restored_batches,
            published_before_restart=self.before.get("published", 0),
            repeats_before_restart=self.before.get("repeats", 0),
            minutes=int(lat["minutes"]), p50_ms=float(lat["p50_ms"]),
            p99_ms=float(lat["p99_ms"]), max_ms=float(lat["max_ms"]),
            restarts=self.fanout.restarts,
            direct_links=self.fanout.links is not None, reconnects=self.fanout.reconnects,
            latencies_ms=list(self.latency.latencies_ms),
        )  # fmt: skip

    def store_counts(self) -> dict[str, int]:
        """The run's counters as Redis holds them ({} while Redis cannot be read)."""
        try:
            return self.store.counts(self.publisher.counts_key)
        except RedisError:
            return {}

    def chart_data(self, ticker: str) -> dict[str, Any] | None:
        """The chart-minute snapshot with the neighbours' full curves, and today's full line."""
        snap = self.chart.taken.get(ticker)
        if snap is None:
            return None
        curves = self.fanout.curves(snap["where"])
        return {**snap, "curves": np.array(curves), "today": list(self.pipeline.today[ticker].xs),
                "fitting": self.chart.fitting(ticker)}  # fmt: skip


def _reconstructed() -> bool:
    """Whether Ray restarted this actor after its process died."""
    try:
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:  # outside an actor
        return False


_remote: Any = ray.remote  # its overloads do not list every actor option
# Typed as Any: the actor handle's methods are Ray's, whatever its release's hints say.
# A coordinator whose process dies is started again (its __init__ resumes from the journal);
# calls in flight fail, and the caller sends them again (receipts make that safe).
CoordinatorActor: Any = _remote(num_cpus=0, max_concurrency=4, max_restarts=5,
                                max_task_retries=0)(Coordinator)  # fmt: skip
