"""The benchmark's client: runs the engine as a user would and times each minute from outside.

It starts `simsignal run --feed redis`, then from this separate process writes each minute's
bars of every ticker to Redis at once and times how long until all of that minute's signals
have been announced.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.announce import announced
from simsignal.engine.core.keys import Keys


@dataclass
class EngineRun:
    """What one engine run measured, from the client's side and from its status hash."""

    minute_ms: list[float] = field(default_factory=list)  # first bar written → last signal seen
    written_s: list[float] = field(default_factory=list)  # each minute's write, from the first
    signals: int = 0
    status: dict[str, str] = field(default_factory=dict)
    idle_cores: float = 0.0  # CPU the engine's processes used while no bars came
    shard_rss_bytes: int = 0
    shard_memory: list[dict[str, int]] = field(default_factory=list)  # the engine's own account
    redis_calls: dict[str, int] = field(default_factory=dict)  # the engine's, while fed
    entries: int = 0  # signals and derived entries the engine published while fed

    @property
    def calls_per_entry(self) -> float:
        """Redis commands the engine ran per entry it published (NaN with none)."""
        return sum(self.redis_calls.values()) / self.entries if self.entries else float("nan")


def _wait_ready(
    store: RedisStore, keys: Keys, proc: subprocess.Popen[str], timeout: float, console: Path
) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = store.hash(keys.engine)
        if status.get("state") == "ready" and status.get("pid") == str(proc.pid):
            return status
        if proc.poll() is not None:
            text = console.read_text(errors="replace")
            raise RuntimeError(f"the engine exited with {proc.returncode}: {text[-2000:]}")
        time.sleep(0.5)
    raise TimeoutError(f"the engine was not ready within {timeout:.0f} s")


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _shard_rss(procs: list[psutil.Process]) -> int:
    rss = 0
    for p in procs:
        try:
            if "Shard" in " ".join(p.cmdline()):
                rss += p.memory_info().rss
        except psutil.Error:
            continue
    return rss


def run_engine(
    history: Path,
    live: pd.DataFrame,
    date: str,
    url: str,
    *,
    out: Path,
    algorithms: list[str],
    shards: int,
    pooled: bool,
    minutes: int,
    expected: int,
    say: Callable[[str], None],
    idle_s: float = 5.0,
    ready_timeout: float = 3600.0,
    cache: Path | None = None,
    tickers: list[str] | None = None,
    address: str | None = None,
    own_cluster: bool = True,
    cadence_s: float = 0.0,
) -> EngineRun:
    """Start the engine on `history`, feed `minutes` of `live`, return the measurements.

    `cadence_s`: a minute's bars are written every this many seconds, as a live feed writes
    them (0: each as soon as the last one's signals are in).

    With `address` the engine joins that Ray cluster. When this process started it
    (`own_cluster`), its shards run under the cluster's processes here, so those are measured
    too; on anyone else's cluster idle CPU and the shards' resident memory are not (NaN, 0).
    """
    keys = Keys()
    store = RedisStore.connect(url, timeout=30)
    store.flushdb()  # the bench's own server: a run must not resume the last one's journal
    env = {
        **os.environ,
        "COLUMNS": "150",
        "SIMSIGNAL_ENGINE__POOLED": "true" if pooled else "false",
        "SIMSIGNAL_HISTORY__CACHE_DIR": str(cache) if cache else "",
    }
    cmd = [
        sys.executable,
        "-m",
        "simsignal.engine.app.cli",
        "run",
        "--history",
        str(history),
        "--feed",
        "redis",
        "--date",
        date,
        "--redis-url",
        url,
        "--out",
        str(out),
        "--algorithms",
        ",".join(algorithms),
        "--shards",
        str(shards),
        *(f"--ticker={t}" for t in tickers or []),
        *(["--address", address] if address else []),
    ]
    out.mkdir(parents=True, exist_ok=True)
    console = out / "console.log"  # a file, not a pipe: a full pipe would stall the engine
    with console.open("a") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, text=True, env=env)
    run = EngineRun()
    try:
        run.status = _wait_ready(store, keys, proc, ready_timeout, console)
        say(f"  engine ready: cold start {float(run.status['cold_start_s']):.1f} s")
        if idle_s > 0 and not own_cluster:
            run.idle_cores = float("nan")
        elif idle_s > 0:
            time.sleep(2.0)  # past the engine's idle_after_s: what an idle engine costs
            procs = _tree(os.getpid() if address else proc.pid)
            cpu0, t0 = _cpu_seconds(procs), time.monotonic()
            time.sleep(idle_s)
            run.idle_cores = (_cpu_seconds(procs) - cpu0) / (time.monotonic() - t0)
        by_minute = [g for _, g in live.groupby("datetime", sort=True)][:minutes]
        with store.subscription(keys.channel) as sub:
            calls_before, bars_written = store.command_calls(), 0
            begun = time.monotonic()
            for i, bars in enumerate(by_minute):
                time.sleep(max(0.0, begun + cadence_s * (i + 1) - time.monotonic()))
                rows = [
                    (
                        keys.bars(r.ticker),
                        {
                            "ticker": r.ticker,
                            "ts": r.datetime.replace(" ", "T"),
                            "open": repr(r.open),
                            "high": repr(r.high),
                            "low": repr(r.low),
                            "close": repr(r.close),
                            "volume": repr(r.volume),
                        },
                    )
                    for r in bars.itertuples()
                ]
                start = time.perf_counter()
                run.written_s.append(time.monotonic() - begun)
                store.add_to_streams(rows)
                bars_written += len(rows)
                want, seen = expected * len(rows), 0
                while seen < want:
                    msg = store.next_message(sub, timeout=60.0)
                    if msg is None:
                        raise TimeoutError(f"minute {i + 1}: {seen} of {want} signals in 60 s")
                    seen += sum(e.get("minute") == i + 1 for e in announced(msg))
                run.minute_ms.append((time.perf_counter() - start) * 1e3)
                run.signals += seen
                if (i + 1) % 30 == 0:
                    say(f"  minute {i + 1}/{len(by_minute)}: {run.minute_ms[-1]:.1f} ms")
            run.redis_calls = _engine_calls(store, calls_before, bars_written)
            counts = store.counts(keys.counts(date, "live"))
            run.entries = counts.get("published", 0) + counts.get("derived", 0)
        if own_cluster:
            run.shard_rss_bytes = _shard_rss(_tree(os.getpid() if address else proc.pid))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
        store.close()
    summary = out / "summary.json"
    if summary.is_file():  # written by the engine as it stops
        run.shard_memory = json.loads(summary.read_text()).get("shard_memory", [])
    return run


def _engine_calls(store: RedisStore, before: dict[str, int], bars: int) -> dict[str, int]:
    """The commands Redis ran since `before`, less this client's.

    Those are its bars (one XADD each) and its first reading of the statistics.
    """
    calls = store.command_calls(since=before)
    calls["xadd"] = calls.get("xadd", 0) - bars
    calls["info"] = calls.get("info", 0) - 1
    return {k: v for k, v in calls.items() if v > 0}


def status_fields(status: dict[str, str]) -> dict[str, Any]:
    """The engine's status hash as numbers where they are numbers."""
    out: dict[str, Any] = {}
    for k, v in status.items():
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out
