"""What the actors answer, and their handles as types: the runtime's boundary, typed.

Why: an actor's reply crosses a process; as `dict[str, Any]` a misspelt key is found at run
time, in production. Frozen values name every field, and the handles' `Protocol`s say which
methods a caller may send and what each gives back, so `ray.get(handle.health.remote())` is
a `Health` to mypy. The summary and the engine hash take them as plain dicts (`asdict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from ray import ObjectRef

from simsignal.engine.core.shard_state import Answer, Update, WalkRows
from simsignal.engine.core.ticker_walk import TickerWalk

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """A shard's size and identity: for the summary, the engine hash and the layout checks."""

    shard: int
    days: int
    bytes: int  # of its float32 day curves
    tickers: int
    node: str  # the Ray node it runs on now
    source: str  # where its days came from: "object store" or, after a restart, "curves cache"


@dataclass(frozen=True, slots=True)
class Spilled:
    """What a spill wrote: signals Redis did not take, kept for `simsignal flush`."""

    spilled: int  # by this call
    spilled_total: int  # by the run
    path: str  # the spill file ("" if none)
    pending: int  # still held in memory


@dataclass(frozen=True, slots=True)
class Health:
    """The coordinator's view of Redis while following it (the console's warnings)."""

    failing_s: float  # how long Redis has been failing (0: it is not)
    last_error: str
    pending: int  # signals held in memory
    spilled: int
    max_pending: int  # held in memory up to this, then spilled
    spill: str  # the spill file
    accepted: int  # bars accepted so far
    pid: int  # the coordinator's process (a restart changes it)


@dataclass(frozen=True, slots=True)
class RunStats:
    """The run's counts and latencies at its end: the summary table and summary.json."""

    accepted: int  # bars
    rejected: dict[str, int]  # refused bars by field:code
    published: int  # new signals, by this coordinator process
    derived: int  # new timing, rebalance and pair entries
    repeats: int  # signals Redis already held (a batch handled again)
    resent_batches: int  # commits sent again after a lost reply
    counts: dict[str, int]  # the run's counters as Redis holds them ({} if unreadable)
    pending: int  # signals still held in memory (Redis down)
    spilled: int  # signals written to the spill file
    spill_path: str
    refused_backfill: list[str]  # stream:id of signals older than their stream's last entry
    not_finite: int  # forecasts that were not finite numbers
    engine_errors: int
    coordinator_restarted: bool  # Ray restarted the coordinator during the run
    resumed_batches: int  # batches rebuilt from the journal at start
    published_before_restart: int  # by earlier processes of this run, as Redis counts them
    repeats_before_restart: int
    minutes: int  # latency samples (one per minute batch)
    p50_ms: float
    p99_ms: float
    max_ms: float
    restarts: int  # shard recoveries
    direct_links: bool  # the fan-out runs over direct links (else classic Ray calls)
    reconnects: int  # direct links opened again after one failed
    latencies_ms: list[float]

    def report(self) -> dict[str, Any]:
        """Every field but the latencies themselves, for summary.json."""
        fields = asdict(self)
        del fields["latencies_ms"]
        return fields


class Remote(Protocol, Generic[P, R]):
    """An actor method as its handle exposes it: `.remote(…)` gives a reference to the reply."""

    def remote(self, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
        """Send the call; `ray.get` of the result waits for the reply."""
        ...


class ShardHandle(Protocol):
    """A `ShardActor` (actors/shard.py) as the session and the fan-out call it."""

    info: Remote[[], ShardInfo]
    memory: Remote[[], dict[str, int]]
    step: Remote[[list[Update]], list[Answer | None]]
    address: Remote[[], tuple[str, int] | None]
    restore: Remote[[str, list[tuple[float, ...]]], int]
    reset: Remote[[], None]
    curves_of: Remote[[list[int]], Any]
    held: Remote[[], list[str]]
    walk: Remote[[list[str], str, str, TickerWalk], WalkRows]


class CoordinatorHandle(Protocol):
    """A `CoordinatorActor` (actors/coordinator.py) as the engine handle calls it."""

    on_bars: Remote[..., list[dict[str, Any]]]
    run_redis_feed: Remote[[list[str]], int]
    stats: Remote[[], RunStats]
    chart_data: Remote[[str], dict[str, Any] | None]
    flush: Remote[[], int]
    spill: Remote[[], Spilled]
    health: Remote[[], Health]
    stop: Remote[[], None]
    close: Remote[[], None]
    connect: Remote[[], bool]
    __ray_call__: Remote[..., Any]  # every handle's: run a function in the actor
