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

from simsignal.engine import cluster, placement
from simsignal.engine.settings import Settings


class HistoryLoader:
    """Runs a Session's load steps where the data is; returns what the driver's Session needs."""

    def __init__(self, settings: Settings, layout: placement.Layout) -> None:
        from simsignal.actors.session import Session  # noqa: PLC0415 - session imports this

        self.output = io.StringIO()
        console = Console(file=self.output, width=120, force_terminal=False, soft_wrap=True)
        cache = settings.history.cache_dir
        if cache and not Path(cache).is_absolute():  # relative to a Ray worker's folder: no
            console.print(f"[yellow]![/] the curves cache is off: history.cache_dir {cache!r} "
                          "is relative; a Ray client needs a path shared by the nodes")  # fmt: skip
            history = settings.history.model_copy(update={"cache_dir": ""})
            settings = settings.model_copy(update={"history": history})
        self.session = Session(settings, console, layout=layout)

    def load(self, history_paths: list[str], date: str, wanted: list[str] | None) -> dict[str, Any]:
        """The loaded history, its cache folder and columns, and what the load printed."""
        t0 = time.perf_counter()
        s = self.session
        cluster.ensure_java(s.console.print)
        cluster.spark_env()
        files, template, fits = s._files(history_paths, wanted)
        with s.console.status("loading") as status:
            history = s._load_history(files, template, fits, date, wanted, history_paths, t0,
                                      status)  # fmt: skip
        return {"history": history, "cache": s.cache, "columns": s.columns,
                "said": self.output.getvalue()}  # fmt: skip


_remote: Any = ray.remote
HistoryLoaderActor: Any = _remote(num_cpus=0, max_restarts=0)(HistoryLoader)
