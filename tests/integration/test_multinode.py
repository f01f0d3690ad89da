"""The engine on a Ray cluster it did not start: three nodes on this machine
(`ray.cluster_utils.Cluster`), joined with `simsignal run --address`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simsignal.engine.redis_server import RedisServer
from simsignal.engine.redis_store import RedisStore
from simsignal.engine.signals import Signal
from tests.integration.test_cli_faults import _data

MB = 2**20


def _run(args: list[str], cwd: Path, **env: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.cli", "run", *args], cwd=cwd,
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "COLUMNS": "150", **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _signals(store: RedisStore, prefix: str) -> dict[str, Signal]:
    entries = store.entries(f"{prefix}:signals:000300")
    return {e.id: Signal.from_fields(e.fields) for e in entries}


@pytest.mark.slow
def test_a_three_node_cluster_runs_the_engine_unchanged(
    redis_server: RedisServer, store: RedisStore, tmp_path: Path
) -> None:
    """Same replay, one private local Ray vs three nodes: the same signals; the two shards on
    two nodes; and the cluster is still up after the engine has gone."""
    from ray.cluster_utils import Cluster

    day, history, live = _data(tmp_path, 30)
    common = ["--history", str(history), "--feed", "replay", "--replay", str(live), "--date",
              day, "--k", "5", "--shards", "2", "--redis-url", redis_server.url]  # fmt: skip
    _run([*common, "--out", str(tmp_path / "one")], tmp_path, SIMSIGNAL_REDIS__PREFIX="one",
         SIMSIGNAL_HISTORY__CACHE_DIR="")  # fmt: skip
    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 1, "object_store_memory": 300 * MB})  # fmt: skip
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, object_store_memory=300 * MB)
        cluster.wait_for_nodes()
        joined = [*common, "--address", cluster.address, "--out", str(tmp_path / "three")]
        _run(joined, tmp_path, SIMSIGNAL_REDIS__PREFIX="three", SIMSIGNAL_HISTORY__CACHE_DIR="")
        assert cluster.head_node is not None
        assert cluster.head_node.remaining_processes_alive()  # not shut down by the engine
        summary = json.loads((tmp_path / "three" / "summary.json").read_text())
    finally:
        cluster.shutdown()
    nodes = {s["node"] for s in summary["shard_info"]}
    assert len(nodes) == 2, summary["shard_info"]  # SPREAD: one shard per node
    one, three = _signals(store, "one"), _signals(store, "three")
    assert one.keys() == three.keys() and len(one) == 30 * 4
    for key, sig in one.items():
        assert (three[key].neighbors, three[key].pred_close) == (sig.neighbors, sig.pred_close)
