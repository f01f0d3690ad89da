"""The engine's face in Redis for people: its live figures and the dashboard's views.

Both are displays: a Redis error here is swallowed, never worth stopping a minute for (the
commit of the minute's signals has its own, strict, path).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson

from simsignal.engine.adapters.redis_store import RedisError, RedisStore
from simsignal.engine.core.keys import Keys


class StatusWriter:
    """Writes `{prefix}:engine`'s live figures (at most every `every_s`) and the views."""

    def __init__(self, store: RedisStore, keys: Keys, keep_s: int, every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.store, self.keys, self.keep_s, self.every_s = store, keys, keep_s, every_s
        self.clock = clock
        self._at = float("-inf")

    def health(self, figures: Callable[[], dict[str, Any]], force: bool = False) -> None:
        """The figures (made only when due) into the engine hash, stamped `health_at`."""
        now = self.clock()
        if not force and now - self._at < self.every_s:
            return
        self._at = now
        with contextlib.suppress(RedisError):
            self.store.set_hash(self.keys.engine, {**figures(), "health_at": round(time.time(), 3)})

    def view(self, ticker: str, view: dict[str, Any]) -> None:
        """What the dashboard draws for a ticker, announced on `{prefix}:views`."""
        with contextlib.suppress(RedisError):
            note = orjson.dumps({"ticker": ticker, "minute": view["minute"]}).decode()
            self.store.put(self.keys.view(ticker), orjson.dumps(view).decode(), self.keep_s,
                           announce=(self.keys.views, note))  # fmt: skip
