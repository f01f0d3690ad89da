"""ShardActor: one shard's day curves in memory, scored incrementally every minute."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import ray
from ray.exceptions import ObjectLostError

from simsignal.actors.direct import Address, ShardServer
from simsignal.actors.replies import ShardInfo
from simsignal.engine.core.algorithms import Params
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.gc_pause import gc_paused
from simsignal.engine.core.risk_model import RiskModel
from simsignal.engine.core.shard_state import Answer, ShardState, Update, WalkRows
from simsignal.engine.core.ticker_walk import TickerWalk


class ShardDataLost(RuntimeError):
    """A restarted shard found its day curves gone (their node died) and no cache to read."""


class StaleLink(RuntimeError):
    """A batch from a direct link opened before the shard's queries were reset."""


class Shard:
    """Loads its rows from the object store at start (and again after a restart).

    `extra` are blocks built after the load (pair spreads, owned by the driver); `backup` is
    the curves cache (folder, columns) to read when the loaded blocks died with their node.
    With `authkey`, it also answers `step` on a direct link (`direct.py`) on its node's
    address, which `address()` gives.
    """

    def __init__(
        self,
        shard_id: int,
        refs: list[Any],
        slots: int,
        algorithms: list[str],
        k: int,
        pooled: bool,
        params: Params = Params(),
        channels: dict[str, float] | None = None,
        extra: list[Any] | None = None,
        backup: tuple[str, list[str]] | None = None,
        authkey: bytes | None = None,
        risk: bool = False,
        risk_models: dict[str, RiskModel] | None = None,
    ) -> None:
        self._start = _memory()  # interpreter and libraries, before any day is loaded
        weights = channels or {"price": 1.0}
        tables, self.source = _fetch(shard_id, refs, backup)
        tables += ray.get(extra) if extra else []
        curves = DayCurves.from_arrow(tables, slots, shard_id, tuple(weights), order="F")
        del tables  # the object-store copies: the shard keeps only its own curves
        self.state = ShardState(curves, algorithms, k, pooled, params, weights, risk, risk_models)
        self.shard_id = shard_id
        # A direct link's `step` runs on a thread of its own; Ray's calls on the main one.
        self._lock = threading.Lock()
        del curves
        self._loaded = _memory()
        self._warm_up(slots, algorithms, params, weights)
        self._epoch = 0  # queries reset this many times: a link's batches hold to its own
        self._server = (
            ShardServer(self._linked_step, lambda: self._epoch, ray.util.get_node_ip_address(),
                        authkey)
            if authkey
            else None
        )  # fmt: skip

    @staticmethod
    def _warm_up(
        slots: int, algorithms: list[str], params: Params, weights: dict[str, float]
    ) -> None:
        """Compile the numba kernels now, not on the first live minute."""
        extra = {c: np.zeros((1, slots), np.float32) for c in weights if c != "price"}
        one_day = DayCurves(np.array(["w"], object), np.array(["d"], object),
                            np.zeros((1, slots), np.float32), np.ones(1), extra)  # fmt: skip
        probe = ShardState(one_day, algorithms, 1, False, params, weights)
        values = tuple(0.0 for _ in weights)
        for m in range(1, min(params.motif_window + 1, slots) + 1):  # motif: grow, then slide
            probe.step([("w", m, values)])
        gc.freeze()  # the loaded days and compiled kernels stay out of gen-2 collections

    def address(self) -> Address | None:
        """Where this shard's direct link listens (None: classic calls only)."""
        return self._server.address if self._server else None

    def info(self) -> ShardInfo:
        """Size and identity, for the summary."""
        with self._lock:
            return ShardInfo(self.shard_id, self.state.days, self.state.nbytes,
                             len(self.state.ranges), ray.get_runtime_context().get_node_id(),
                             self.source)  # fmt: skip

    def memory(self) -> dict[str, int]:
        """Memory against what the shard must hold (bytes), for the summary.

        `rss` counts pages shared with other processes too (libraries, object-store pages
        the shard read); `uss` is the shard's private memory. `added` is the private memory
        on top of the libraries and the curves: running state, compiled kernels, and what
        loading left behind.
        """
        with self._lock:
            now = _memory()
            curves = self.state.nbytes
            return {"rss": now["rss"], "uss": now["uss"], "rss_start": self._start["rss"],
                    "uss_start": self._start["uss"], "uss_loaded": self._loaded["uss"],
                    "curves": curves, "state": self.state.state_bytes,
                    "added": now["uss"] - self._start["uss"] - curves}  # fmt: skip

    def step(self, updates: list[Update]) -> list[Answer | None]:
        """One minute for every query in `updates` (the broadcast message), answers aligned."""
        with self._lock, gc_paused():
            return self.state.step(updates)

    def _linked_step(self, updates: list[Update], epoch: int) -> list[Answer | None]:
        """`step` for a direct link opened at `epoch`; refused once the queries were reset."""
        with self._lock, gc_paused():
            if epoch != self._epoch:
                raise StaleLink(f"shard {self.shard_id}: reset since this link opened")
            return self.state.step(updates)

    def restore(self, ticker: str, values: list[tuple[float, ...]]) -> int:
        """Replay today's minutes to rebuild a query's state; returns the minute reached."""
        with self._lock:
            self.state.restore(ticker, values)
        return len(values)

    def curves_of(self, rows: list[int]) -> np.ndarray:
        """Price curves of the given rows."""
        with self._lock:
            return self.state.curves_of(rows)

    def held(self) -> list[str]:
        """The tickers whose days this shard holds (a market evaluate deals them out by this)."""
        return sorted(self.state.ranges)

    def walk(self, tickers: list[str], start: str, end: str, how: TickerWalk) -> WalkRows:
        """A market evaluate's rows for these tickers (`ShardState.walk`), from the days held."""
        with self._lock:
            return self.state.walk(tickers, start, end, how)

    def reset(self) -> None:
        """Forget live queries (and refuse batches from links opened before)."""
        with self._lock:
            self.state.reset()
            self._epoch += 1


def _fetch(
    shard_id: int, refs: list[Any], backup: tuple[str, list[str]] | None
) -> tuple[list[Any], str]:
    """The shard's loaded blocks, and where they came from ("object store" or "curves cache")."""
    try:
        return (ray.get(refs) if refs else []), "object store"
    except ObjectLostError as err:
        if backup is None:
            raise ShardDataLost(
                f"shard {shard_id}: its day curves were lost with their node "
                f"({type(err).__name__}) and the curves cache is off (history.cache_dir)"
            ) from None
        # Imported here: the cache's reader brings pandas, ~45 MB a shard would hold for nothing.
        from simsignal.engine.adapters.history import curves_cache  # noqa: PLC0415

        folder, columns = backup
        return [curves_cache.shard_rows(Path(folder), shard_id, columns)], "curves cache"


def _memory() -> dict[str, int]:
    info = psutil.Process().memory_full_info()
    return {"rss": int(info.rss), "uss": int(info.uss)}


# Typed as Any: the actor handle's methods are Ray's, whatever its release's hints say.
_remote: Any = ray.remote  # its overloads do not list every actor option
_as_actor = _remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
ShardActor: Any = _as_actor(Shard)
