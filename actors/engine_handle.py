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
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

Say = Callable[[str], None]


class EngineHandle:
    """A coordinator actor seen as plain calls; `say` prints a line for the operator."""

    def __init__(self, coordinator: Any, say: Say) -> None:
        self._co = coordinator
        self._say = say

    def call(self, method: str, *args: Any, seconds: float = 120.0) -> Any:
        """The coordinator's `method(*args)`, sent again while Ray restarts it (≤ `seconds`)."""
        deadline, told = time.monotonic() + seconds, False
        while True:
            try:
                return ray.get(getattr(self._co, method).remote(*args))
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
        pending = int(self.call("flush"))
        if pending:
            self._say(f"Redis is unreachable: {pending} signal(s) buffered, retrying…")
            while pending and time.monotonic() < deadline:
                time.sleep(1.0)
                pending = int(self.call("flush"))
        spilled = self.call("spill")
        if spilled["spilled_total"]:
            self._say(
                f"[red]{spilled['spilled_total']} signal(s) could not be published[/]: Redis "
                f"stayed unreachable. They are kept in {spilled['path']}; `simsignal flush "
                f"--spill {spilled['path']}` (or the next run) publishes them."
            )
        return int(spilled["spilled_total"]) + int(spilled["pending"])

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
            if health["failing_s"] > 5 and time.monotonic() - said > every_s:
                said = time.monotonic()
                self._say(
                    f"[red]Redis has been failing for {health['failing_s']:.0f} s[/] "
                    f"({health['last_error']}): {health['pending']:,} signal(s) held in memory "
                    f"(limit {health['max_pending']:,}, then spilled to {health['spill']}), "
                    f"{health['spilled']:,} spilled so far"
                )
