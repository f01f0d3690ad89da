"""HistoryLoader: history loaded on a cluster node, for a driver joined through `ray://`.

A Ray client has no Ray node of its own, and RayDP's Spark driver needs one; the history files
live on the cluster, too. So the whole load (template check, Spark or the curves cache) runs in
this actor, and the actor stays up for the run: it owns the day curves in the object store.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import ray
from rich.console import Console

from simsignal.actors import cluster, placement
from simsignal.actors.history_load import HistoryLoad
from simsignal.config.settings import Settings


class HistoryLoader:
    """Runs the history load where the data is; returns what the driver's Session needs."""

    def __init__(self, settings: Settings, layout: placement.Layout) -> None:
        self.output = io.StringIO()
        console = Console(file=self.output, width=120, force_terminal=False, soft_wrap=True)
        cache = settings.history.cache_dir
        if cache and not Path(cache).is_absolute():  # relative to a Ray worker's folder: no
            console.print(f"[yellow]![/] the curves cache is off: history.cache_dir {cache!r} "
                          "is relative; a Ray client needs a path shared by the nodes")  # fmt: skip
            history = settings.history.model_copy(update={"cache_dir": ""})
            settings = settings.model_copy(update={"history": history})
        self.loading = HistoryLoad(settings, console, layout)

    def load(self, history_paths: list[str], date: str, wanted: list[str] | None) -> dict[str, Any]:
        """The loaded history, its cache folder and columns, and what the load printed."""
        t0 = time.perf_counter()
        h = self.loading
        cluster.ensure_java(h.console.print)
        cluster.spark_env()
        checked = h.files(history_paths, wanted, date)
        with h.console.status("loading") as status:
            history = h.load(checked, date, wanted, history_paths, t0, status)
        return {"history": history, "cache": h.cache, "columns": h.columns,
                "said": self.output.getvalue()}  # fmt: skip


_remote: Any = ray.remote
HistoryLoaderActor: Any = _remote(num_cpus=0, max_restarts=0)(HistoryLoader)
