"""Where a run's actors go on the cluster: how many shards, their CPUs, their nodes."""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_AUTO_SHARDS = 32  # one fan-out message per shard and minute: more costs more than it adds


class ClusterTooSmall(RuntimeError):
    """The cluster cannot place what the settings ask for."""


def _share(cpus: float, shards: int) -> float:
    """Each shard's CPUs, rounded down so that the shards never ask for more than there is.

    To 1/100 of a CPU, or to Ray's finest grain (1/10,000) when shards outnumber 100 a CPU.
    """
    share = min(1.0, cpus / shards)
    grain = 100 if share >= 0.01 else 10_000
    if share * grain < 1:
        raise ClusterTooSmall(f"{shards} shards (engine.shards) cannot share {cpus:g} CPU(s): "
                              f"at most {int(cpus * grain)}")  # fmt: skip
    return math.floor(share * grain) / grain


@dataclass(frozen=True)
class Layout:
    """How one run uses the cluster: shard actors and Spark executors, sized from its nodes.

    Unset settings default from the CPUs of the live nodes, so the same configuration runs on
    one machine and on a cluster: a shard per CPU, one executor per node with that node's cores.
    """

    nodes: int
    cpus: float
    shards: int
    shard_cpus: float
    executors: int
    executor_cores: int

    @classmethod
    def of(cls, node_cpus: list[float], joined: bool, shards: int | str,
           shard_cpus: float | None = None, executors: int | None = None,
           executor_cores: int | None = None) -> Layout:  # fmt: skip
        """The layout on nodes with these CPU counts; `joined`: a cluster this run did not start."""
        cpus = sum(node_cpus)
        n = shards if isinstance(shards, int) else max(1, min(int(cpus), MAX_AUTO_SHARDS))
        per_shard = shard_cpus or _share(cpus, n)
        # Spark's executors ask Ray for no CPU: locally its tasks may use every core while loading
        local_cores = os.cpu_count() or 1
        default_cores = max(1, int(min(node_cpus, default=1))) if joined else local_cores
        return cls(
            nodes=len(node_cpus), cpus=cpus, shards=n, shard_cpus=per_shard,
            executors=executors or (len(node_cpus) if joined else 1) or 1,
            executor_cores=executor_cores or default_cores,
        )  # fmt: skip

    def describe(self) -> str:
        """One line for the console."""
        return (f"{self.nodes} node(s), {self.cpus:g} CPU(s): {self.shards} shard(s) × "
                f"{self.shard_cpus:g} CPU; Spark {self.executors} executor(s) × "
                f"{self.executor_cores} core(s)")  # fmt: skip


@dataclass(frozen=True)
class Node:
    """A live node with CPUs: where shards, Spark's executors and history checks can run."""

    id: str
    ip: str
    cpus: float


def cpu_nodes() -> list[Node]:
    """The cluster's live nodes that have CPUs (a 0-CPU node only hosts a driver)."""
    import ray  # noqa: PLC0415

    return [Node(n["NodeID"], n["NodeManagerAddress"], float(n["Resources"]["CPU"]))
            for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]  # fmt: skip


def spread_group(layout: Layout, timeout_s: float = 120.0) -> Any:
    """The shards' placement group: one bundle of CPUs per shard of `layout`, ready to use."""
    bundles, cpus, total = layout.shards, layout.shard_cpus, layout.cpus
    if bundles * cpus > total + 1e-9:
        raise ClusterTooSmall(f"{bundles} shards × {cpus:g} CPU (cluster.shard_cpus) need "
                              f"{bundles * cpus:g} CPUs; the cluster has {total:g}")  # fmt: skip
    what = f"{bundles} shards × {cpus:g} CPU (cluster.shard_cpus)"
    return placed([{"CPU": cpus}] * bundles, what, timeout_s)


def placed(bundles: list[dict[str, float]], what: str, timeout_s: float = 120.0) -> Any:
    """A SPREAD placement group of `bundles`, once Ray has placed it.

    `what` names the bundles (and their settings) in the ClusterTooSmall raised when placing
    takes longer than `timeout_s`. SPREAD puts the bundles on distinct nodes while there are
    enough, and Ray places a dead node's bundles again on live ones (their actors restart).
    """
    import ray  # noqa: PLC0415
    from ray.util.placement_group import placement_group  # noqa: PLC0415

    group = placement_group(bundles, strategy="SPREAD")
    try:
        ray.get(group.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        ray.util.remove_placement_group(group)
        raise ClusterTooSmall(f"{what} could not be placed in {timeout_s:.0f} s: the live "
                              "nodes lack the free resources") from None  # fmt: skip
    return group


def in_bundle(group: Any, index: int) -> Any:
    """The scheduling strategy that puts an actor in one bundle of a placement group."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy  # noqa: PLC0415

    return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)


def node_near(redis_url: str) -> Any:
    """Where the coordinator should run: the node at Redis's address, else the driver's node.

    The coordinator makes every Redis round trip of a minute; the driver (the CLI) talks to
    Redis too, so with no node at Redis's address its own node is the best guess. On the
    driver's node it is held there: that node cannot die without ending the run anyway (a
    soft preference was overridden in CI). On Redis's node it is soft, so the coordinator can
    restart elsewhere if that node dies.
    """
    import ray  # noqa: PLC0415
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

    host = urlsplit(redis_url).hostname or ""
    try:
        ip = socket.gethostbyname(host)
    except OSError:
        ip = ""
    live = [n for n in ray.nodes() if n["Alive"]]
    at_redis = [n["NodeID"] for n in live if n["NodeManagerAddress"] == ip]
    driver = ray.get_runtime_context().get_node_id()
    node = at_redis[0] if at_redis and not _loopback(ip) else driver
    return NodeAffinitySchedulingStrategy(node, soft=node != driver)


def _loopback(ip: str) -> bool:
    return ip.startswith("127.")
