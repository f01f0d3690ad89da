"""The engine on a Ray cluster it did not start: two nodes on this machine
(`ray.cluster_utils.Cluster`), joined with `simsignal run --address`, the worker removed
mid-day."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from simsignal.engine.adapters.redis_server import RedisServer, free_port
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.signals import Signal
from tests.integration.test_cli_faults import SHARED_CACHE, _data, _Engine

MB = 2**20


def _run(args: list[str], cwd: Path, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", "run", *args], cwd=cwd,
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "COLUMNS": "150", **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _signals(store: RedisStore, prefix: str) -> dict[str, Signal]:
    entries = store.entries(f"{prefix}:signals:000300")
    return {e.id: Signal.from_fields(e.fields) for e in entries}


@pytest.mark.slow(seconds=110)
def test_a_two_node_cluster_runs_the_engine_unchanged_and_survives_losing_a_node(
    redis_server: RedisServer, store: RedisStore, tmp_path: Path
) -> None:
    """A Ray client address where nothing answers is one `cluster error:` line, exit 2.
    Same replay, one private local Ray vs a head (2 CPUs) and a worker (1 CPU), joined as a
    Ray client (`ray://`, history loaded by Spark on a node, an executor on each) and from a
    node (HOST:PORT). On the second, the two shards start one on each node; mid-day the worker
    is removed, its shard is placed again on the head, reloads its days and catches up. Both
    give the one-node run's signals, whole (latency aside), and the cluster is still up after
    the engines have gone. The one-node run reads the run's shared curves cache (a local Spark
    load of the same file); the cluster's runs write and read a cache of their own."""
    from ray.cluster_utils import Cluster

    day, history, live = _data(tmp_path, 30)
    # the settings of the shared curves cache's key (--ticker and --shards): the one-node run
    # reads the day curves that the other CLI tests' engines read
    common = ["--history", str(history), "--replay", str(live), "--date", day, "--k", "5",
              "--ticker", "000300", "--shards", "2", "--redis-url", redis_server.url,
              "--feed", "replay"]  # fmt: skip
    # addresses where nothing answers, tried while the one-node run goes (a Ray client waits
    # out its 30 s timeout; HOST:PORT is refused at once instead of Ray retrying for minutes)
    nobody = {"ray": f"ray://127.0.0.1:{free_port()}", "gcs": f"127.0.0.1:{free_port()}"}
    unreachable = {kind: _Engine(["run", *common, "--address", address, "--out",
                                  str(tmp_path / kind)], tmp_path, SIMSIGNAL_REDIS__PREFIX=kind)
                   for kind, address in nobody.items()}  # fmt: skip
    _run([*common, "--out", str(tmp_path / "one")], tmp_path, SIMSIGNAL_REDIS__PREFIX="one",
         **SHARED_CACHE)  # fmt: skip
    for kind, why in (("ray", "ray client connection timeout"), ("gcs", "nothing answers")):
        said = unreachable[kind]
        assert said.finish(seconds=120) == 2, said.out[-3000:]
        assert (f"cluster error: cannot join the Ray cluster at {nobody[kind]} "
                f"(cluster.address): {why}") in " ".join(said.out.split())  # fmt: skip
    client_port = free_port()
    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 2, "object_store_memory": 300 * MB,
                                      "ray_client_server_port": client_port})  # fmt: skip
    try:
        workers = [cluster.add_node(num_cpus=1, object_store_memory=300 * MB)]
        cluster.wait_for_nodes()
        cache = str(tmp_path / "cache")  # Spark in the client's loader writes it, the next reads
        client = _run([*common, "--address", f"ray://127.0.0.1:{client_port}", "--out",
                       str(tmp_path / "client")], tmp_path, SIMSIGNAL_REDIS__PREFIX="client",
                      SIMSIGNAL_HISTORY__CACHE_DIR=cache)  # fmt: skip
        assert "history loaded on the cluster" in client and "Java: on the cluster" in client
        assert "Spark 2 executor(s)" in client and "writing the day-curves cache" in client
        engine = _Engine(["run", *common, "--address", cluster.address, "--speed", "120",
                          "--out", str(tmp_path / "three")], tmp_path,
                         SIMSIGNAL_REDIS__PREFIX="three",
                         SIMSIGNAL_HISTORY__CACHE_DIR=cache)  # fmt: skip
        engine.wait_for("ready for the first bar", seconds=600)
        assert "Spark not needed" in engine.out
        nodes = store.hash("three:engine")["shard_nodes"].split(",")
        victim = next(w for w in workers if w.node_id in nodes)  # SPREAD: one is on the worker
        _until(lambda: len(store.entries("three:signals:000300")) >= 8 * 4, engine)
        cluster.remove_node(victim)
        code = engine.finish(seconds=600)
        assert code == 0, engine.out[-3000:]
        assert cluster.head_node is not None
        assert cluster.head_node.remaining_processes_alive()  # not shut down by the engine
        head = cluster.head_node.node_id  # where the driver attaches (Ray prefers the head)
        summary = json.loads((tmp_path / "three" / "summary.json").read_text())
    finally:
        cluster.shutdown()
    assert len(set(nodes)) == 2, nodes  # SPREAD: one shard per node
    assert summary["coordinator_node"] == head  # next to the driver (Redis is on loopback)
    moved = [i for i in summary["shard_info_end"] if i["node"] == victim.node_id]
    assert not moved, summary["shard_info_end"]  # none left on the removed node
    assert summary["restarts"] >= 1 or summary["coordinator_restarted"], summary
    one = _signals(store, "one")
    assert len(one) == 30 * 4
    for prefix in ("client", "three"):
        other = _signals(store, prefix)
        assert one.keys() == other.keys(), prefix
        for key, sig in one.items():  # whole signals, latency aside
            assert replace(other[key], latency_ms=0.0) == replace(sig, latency_ms=0.0), key


def _until(done: Callable[[], bool], engine: _Engine, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert engine.proc.poll() is None, engine.out[-3000:]
        assert time.monotonic() < deadline, engine.out[-3000:]
        time.sleep(0.1)
