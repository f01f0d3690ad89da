"""Gathering one minute's bars across tickers into one batch (one broadcast to the shards).

A batch closes when every expected ticker has sent a bar, when a ticker sends its next bar
(that one opens the next batch), or when `deadline_s` has passed since the batch's first
bar. A late bar therefore joins the next batch, and each bar keeps its own arrival time, so
its latency is still measured from when it arrived.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Arrival:
    """A raw bar as it came in, with where from and when (monotonic seconds)."""

    fields: dict[str, str]
    source: str
    at: float
    receipt: str = ""  # the source's own handle (a stream entry ID), for acknowledging

    @property
    def ticker(self) -> str:
        """The ticker as sent (unvalidated: the gate decides)."""
        return (self.fields.get("ticker") or "").strip()


@dataclass
class MinuteBatcher:
    """Collects arrivals into batches; `expected` is the set of tickers that send every minute."""

    expected: frozenset[str]
    deadline_s: float = 0.05
    _open: list[Arrival] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    @property
    def opened_at(self) -> float | None:
        """Arrival time of the open batch's first bar (None: nothing open)."""
        return self._open[0].at if self._open else None

    def due(self, now: float) -> float | None:
        """Seconds until the open batch must close (None: nothing open)."""
        start = self.opened_at
        return None if start is None else max(0.0, start + self.deadline_s - now)

    def add(self, arrivals: Iterable[Arrival], now: float) -> list[list[Arrival]]:
        """Take arrivals in order; return the batches they closed, oldest first."""
        closed: list[list[Arrival]] = []
        for a in arrivals:
            if self._open and (a.ticker in self._seen or self._expired(a.at)):
                closed.append(self._close())
            self._open.append(a)
            self._seen.add(a.ticker)
            if self.expected and self.expected <= self._seen:
                closed.append(self._close())
        if self._open and self._expired(now):
            closed.append(self._close())
        return closed

    def flush(self) -> list[list[Arrival]]:
        """Close whatever is open (end of input)."""
        return [self._close()] if self._open else []

    def _expired(self, now: float) -> bool:
        start = self.opened_at
        return start is not None and now - start >= self.deadline_s

    def _close(self) -> list[Arrival]:
        batch, self._open = self._open, []
        self._seen = set()
        return batch
