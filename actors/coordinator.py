"""CoordinatorActor: a thin shell that runs the pure minute pipeline on Ray and Redis.

Its jobs are the lifecycle (start / run / stop / close) and the wiring: the pipeline's
fan-out port is `RayFanOut` (compiled graph, classic calls for recovery), its sink is
`RedisSink`, and bars come from one input loop over a source (a replay call or the Redis
bar streams), gathered into one batch per minute.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from simsignal.actors.fanout import RayFanOut
from simsignal.engine.forecast import forecast
from simsignal.engine.gc_pause import gc_paused
from simsignal.engine.keys import Keys
from simsignal.engine.pipeline.batcher import Arrival, MinuteBatcher
from simsignal.engine.pipeline.minute import MinutePipeline, MinuteResult, PipelineConfig
from simsignal.engine.pipeline.observers import ChartSnapshot, LatencyStats
from simsignal.engine.redis_sink import RedisSink
from simsignal.engine.redis_store import RedisError, RedisStore, Unavailable
from simsignal.engine.templates import get_template


@dataclass(frozen=True)
class CoordinatorConfig:
    """The coordinator's settings, built once from the settings tree (`session.py`)."""

    pipeline: PipelineConfig
    redis_url: str
    prefix: str = "simsignal"
    retention_days: float = 5.0  # signal streams keep this many days (XADD MINID)
    chart_minute: int | None = None  # default: mid-session
    compiled_graph: bool = True
    batch_deadline_s: float = 0.05  # a minute's batch closes this long after its first bar
    read_count: int = 1000  # bar-stream entries per XREAD
    park_after_s: float = 1.0  # no bars this long: park the compiled graph (no busy readers)


class Coordinator:
    """Everything here runs inside one actor process."""

    def __init__(self, shards: list[Any], config: CoordinatorConfig) -> None:
        self.config = config
        self.keys = Keys(config.prefix)
        self.store = RedisStore.connect(config.redis_url)
        self.sink = RedisSink(self.store, self.keys, config.retention_days)
        self.fanout = RayFanOut(shards, self._history, config.compiled_graph)
        self.latency = LatencyStats()
        template = get_template(config.pipeline.template)
        self.chart = ChartSnapshot(
            config.chart_minute or template.slots // 2,
            next(a for a in config.pipeline.algorithms if a != "ensemble"),
            lambda ticker: list(self.pipeline.today[ticker].xs),
        )
        self.pipeline = MinutePipeline(
            config.pipeline, self.fanout, self.sink, observers=[self.latency, self.chart]
        )
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the actor is threaded (stop() must reach the feed loop)

    def _history(self, ticker: str, m: int) -> list[tuple[float, ...]]:
        return self.pipeline.values_before(ticker, m)

    # -- lifecycle ------------------------------------------------------------------------
    def compile(self) -> bool:
        """Start: compile the fan-out and pay first-use costs now, not on the first minute."""
        compiled = self.fanout.compile()
        with contextlib.suppress(RedisError):
            self.sink.publisher.preload()
        forecast(0.0, np.ones(2), np.zeros(2), np.zeros(2))
        gc.freeze()  # start-up objects out of the collector's way: no 50 ms gen-2 pauses later
        return compiled

    def stop(self) -> None:
        """Ask run_redis_feed to return."""
        self._stop.set()

    def close(self) -> None:
        """Tear the compiled graph down (before the shards go away)."""
        self.fanout.close()

    # -- input ----------------------------------------------------------------------------
    def on_bar(self, raw: dict[str, str], source: str = "replay") -> dict[str, Any]:
        """One raw bar as a batch of one; returns a row for the live table (or the rejection)."""
        return self.on_bars([raw], source)[-1]

    def on_bars(self, raws: list[dict[str, str]], source: str = "replay") -> list[dict[str, Any]]:
        """Several raw bars as one batch (one fan-out, one publish); a row per bar."""
        now = time.perf_counter()
        return self._run([Arrival(r, source, now) for r in raws])

    def _run(self, batch: list[Arrival], wake: bool = True) -> list[dict[str, Any]]:
        # The batch's results are dropped before the collector is back on: otherwise its
        # first collection would scan every signal and neighbour tuple of the minute.
        with self._lock, gc_paused():
            out = self.pipeline.on_batch(batch)
            if wake:
                self.fanout.wake()  # a no-op unless this batch found the graph parked
            rows: dict[int, dict[str, Any]] = {}
            for item in out:
                key = id(item.arrival)
                if isinstance(item, MinuteResult):
                    rows[key] = self._row(item)
                else:
                    rows[key] = {"rejected": str(item.bad)}
            del out
        return [rows.get(id(a), {}) for a in batch]

    def _row(self, r: MinuteResult) -> dict[str, Any]:
        first = r.signals[0] if r.signals else None
        return {"minute": r.minute, "slot": first.slot if first else "", "close": r.close,
                "x": r.x, "pred_close": first.pred_close if first else float("nan"),
                "up_prob": first.up_prob if first else float("nan"),
                "algo": first.algo if first else "",
                "latency_ms": (time.perf_counter() - r.arrived_at) * 1e3,
                "pending": len(self.sink.publisher.pending)}  # fmt: skip

    def run_redis_feed(self, tickers: list[str], block_ms: int = 200) -> int:
        """Read `simsignal:bars:{ticker}` until stop(), many entries a call, a batch a minute."""
        streams = {self.keys.bars(t): "0-0" for t in tickers}
        usable = self.config.pipeline.usable  # tickers without days send bars to be refused
        expected = frozenset(tickers) & usable if usable is not None else frozenset(tickers)
        batcher = MinuteBatcher(expected, self.config.batch_deadline_s)
        handled, last_bar = 0, time.perf_counter()
        while not self._stop.is_set():
            due = batcher.due(time.perf_counter())
            wait = block_ms if due is None else max(1, int(due * 1e3))
            if due is None and time.perf_counter() - last_bar > self.config.park_after_s:
                with self._lock:
                    self.fanout.park()
            try:
                entries = self.store.read(streams, block_ms=wait, count=self.config.read_count)
            except Unavailable:
                time.sleep(0.5)
                self.sink.publisher.flush()
                continue
            now = time.perf_counter()
            if entries:
                last_bar = now
            arrivals = []
            for e in entries:
                streams[e.stream] = e.id
                arrivals.append(Arrival(e.fields, e.stream, now, e.id))
            batches = batcher.add(arrivals, now)
            # Compiling the graph takes ~0.2 s, which the next minute would wait for: only
            # worth it for a backlog (a catch-up); a minute-by-minute feed stays on classic calls.
            backlog = len(batches) > 1
            for batch in batches:
                self._run(batch, wake=backlog)
                handled += len(batch)
        for batch in batcher.flush():
            self._run(batch)
            handled += len(batch)
        return handled

    # -- reporting --------------------------------------------------------------------------
    def flush(self) -> int:
        """Retry pending publications; returns how many are still pending."""
        self.sink.publisher.flush()
        return len(self.sink.publisher.pending)

    def stats(self) -> dict[str, Any]:
        """Counts and latencies for the summary."""
        pub = self.sink.publisher
        return {
            "accepted": self.pipeline.accepted, "rejected": dict(self.pipeline.rejected),
            "published": pub.published, "repeats": pub.repeats, "pending": len(pub.pending),
            **self.latency.summary(), "restarts": self.fanout.restarts,
            "compiled_graph": self.fanout.graph is not None or self.fanout.parked,
            "recompiles": self.fanout.recompiles, "graph_parks": self.fanout.parks,
            "latencies_ms": list(self.latency.latencies_ms),
        }  # fmt: skip

    def chart_data(self, ticker: str) -> dict[str, Any] | None:
        """The chart-minute snapshot with the neighbours' full curves, and today's full line."""
        snap = self.chart.taken.get(ticker)
        if snap is None:
            return None
        curves = self.fanout.curves(snap["where"])
        return {**snap, "curves": np.array(curves), "today": list(self.pipeline.today[ticker].xs)}


_remote: Any = ray.remote  # its overloads do not list every actor option
# Typed as Any: the actor handle's methods are Ray's, whatever its release's hints say.
CoordinatorActor: Any = _remote(num_cpus=0, max_concurrency=4)(Coordinator)
