"""The app's handle on a running engine: the coordinator's calls, without Ray in the app.

Why a facade: the CLI should say what it wants (a batch handled, the stats, the feed followed
until stopped), not speak Ray's protocol (`.remote()`, `ray.get`, `ray.wait`, actor errors).
Every call is sent again while Ray restarts a coordinator that died: that is safe, because a
restarted coordinator resumes from its journal and a batch sent again skips the bars the
journal already holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import ray
from ray import ObjectRef
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

from simsignal.actors.replies import CoordinatorHandle, RunStats, Spilled

Say = Callable[[str], None]
T = TypeVar("T")


class EngineHandle:
    """A coordinator actor seen as plain calls; `say` prints a line for the operator."""

    def __init__(self, coordinator: CoordinatorHandle, say: Say) -> None:
        self._co = coordinator
        self._say = say

    def on_bars(self, raws: list[dict[str, str]], source: str, receipts: list[Any]
                ) -> list[dict[str, Any]]:  # fmt: skip
        """A batch of raw bars handled: one reply per bar (its minute, or why it was refused)."""
        return self._call(lambda: self._co.on_bars.remote(raws, source, receipts))

    def stats(self) -> RunStats:
        """The run's counts and latencies, for the summary."""
        return self._call(self._co.stats.remote)

    def chart_data(self, ticker: str) -> dict[str, Any] | None:
        """The chart minute's snapshot of a ticker (None: the day did not reach it)."""
        return self._call(lambda: self._co.chart_data.remote(ticker))

    def _call(self, send: Callable[[], ObjectRef[T]], seconds: float = 120.0) -> T:
        """`send` the call and wait for its reply; again while Ray restarts it (≤ `seconds`)."""
        deadline, told = time.monotonic() + seconds, False
        while True:
            try:
                return ray.get(send())
            except (RayActorError, ActorUnavailableError) as err:
                if time.monotonic() > deadline:  # restarts used up, or it cannot start again
                    raise err from None
                if not told:
                    self._say("[yellow]the coordinator died: Ray is restarting it, and it "
                              "resumes from the journal[/]")  # fmt: skip
                    told = True
                time.sleep(0.5)

    def stop(self) -> None:
        """Ask the Redis feed loop to return (from a signal handler: does not wait)."""
        self._co.stop.remote()

    def drain(self, seconds: float = 30.0) -> int:
        """Retry what Redis has not taken for a while, then spill it; signals not in Redis.

        Nothing is dropped: what stays unpublished goes to the spill file, which `simsignal
        flush` (or the next run) publishes.
        """
        deadline = time.monotonic() + seconds
        pending = self._call(self._co.flush.remote)
        if pending:
            self._say(f"Redis is unreachable: {pending} signal(s) buffered, retrying…")
            while pending and time.monotonic() < deadline:
                time.sleep(1.0)
                pending = self._call(self._co.flush.remote)
        spilled: Spilled = self._call(self._co.spill.remote)
        if spilled.spilled_total:
            self._say(
                f"[red]{spilled.spilled_total} signal(s) could not be published[/]: Redis "
                f"stayed unreachable. They are kept in {spilled.path}; `simsignal flush "
                f"--spill {spilled.path}` (or the next run) publishes them."
            )
        return spilled.spilled_total + spilled.pending

    def follow(self, tickers: list[str], every_s: float = 30.0) -> int:
        """Run the Redis feed loop until it returns; the bars handled.

        While Redis fails it says so every `every_s`; after a coordinator restart it runs the
        loop again (the restarted coordinator resumes from the journal and the group).
        """
        handled, said = 0, 0.0
        loop = self._co.run_redis_feed.remote(tickers)
        while True:
            try:
                done, _ = ray.wait([loop], timeout=5.0)
                if done:
                    return handled + int(ray.get(loop))
                health = ray.get(self._co.health.remote(), timeout=30)
            except RayActorError:
                self._say("[yellow]the coordinator died: Ray restarted it; it resumes from the "
                          "journal and the consumer group[/]")  # fmt: skip
                time.sleep(1.0)
                loop = self._co.run_redis_feed.remote(tickers)
                continue
            except GetTimeoutError:
                continue
            if health.failing_s > 5 and time.monotonic() - said > every_s:
                said = time.monotonic()
                self._say(
                    f"[red]Redis has been failing for {health.failing_s:.0f} s[/] "
                    f"({health.last_error}): {health.pending:,} signal(s) held in memory "
                    f"(limit {health.max_pending:,}, then spilled to {health.spill}), "
                    f"{health.spilled:,} spilled so far"
                )
