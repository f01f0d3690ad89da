"""History that every node can read: Spark's executors read the files where they run."""

from __future__ import annotations

import os
from pathlib import Path

from simsignal.actors.placement import cpu_nodes


class HistoryNotShared(ValueError):
    """A history path that the cluster's other nodes cannot read."""


def check_visible(paths: list[Path]) -> None:
    """Refuse history files that some node of the cluster cannot see (Spark reads them there).

    A path on the driver's own disk fails here in seconds instead of deep inside a Spark job.
    """
    refused = refusal(unseen_by_node([(str(p), p.stat().st_size) for p in paths]))
    if refused is not None:
        raise refused


def refusal(unseen: dict[str, list[str]]) -> HistoryNotShared | None:
    """The error for the first node that misses a path (None: every node sees them all)."""
    for node, missing in unseen.items():
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        return HistoryNotShared(
            f"history path {missing[0]}{more} is not readable on node {node}: Spark reads "
            "history on every node; put it on a shared path (NFS or similar) mounted at the "
            "same place on every node"
        )
    return None


def unseen_by_node(wanted: list[tuple[str, int]]) -> dict[str, list[str]]:
    """Per node with CPUs ("IP (ID…)"), the paths missing there or of another size.

    Each node checks in a tiny task pinned to it.
    """
    import ray  # noqa: PLC0415
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

    probe = ray.remote(num_cpus=0)(_unseen)
    asked = {
        f"{node.ip} ({node.id[:8]}…)": probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False)
        ).remote(wanted)
        for node in cpu_nodes()
    }
    found = {node: ray.get(ref, timeout=120) for node, ref in asked.items()}
    return {node: missing for node, missing in found.items() if missing}


def _unseen(wanted: list[tuple[str, int]]) -> list[str]:
    """The paths that are missing here or differ in size from the driver's view."""
    return [p for p, size in wanted if not os.path.isfile(p) or os.path.getsize(p) != size]
