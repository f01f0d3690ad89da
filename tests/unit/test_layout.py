"""How a run sizes its shards and Spark executors from the nodes it finds."""

from __future__ import annotations

import os

import pytest

from simsignal.actors.placement import MAX_AUTO_SHARDS, Layout


def test_on_one_machine_a_shard_per_cpu_and_one_executor_with_every_core() -> None:
    one = Layout.of([2.0], joined=False, shards="auto")
    assert (one.shards, one.shard_cpus, one.executors) == (2, 1.0, 1)
    assert one.executor_cores == (os.cpu_count() or 1)


def test_on_a_cluster_one_executor_per_node_with_the_smallest_nodes_cores() -> None:
    three = Layout.of([1.0, 4.0, 2.0], joined=True, shards="auto")
    assert (three.nodes, three.cpus, three.shards) == (3, 7.0, 7)
    assert (three.executors, three.executor_cores, three.shard_cpus) == (3, 1, 1.0)


@pytest.mark.parametrize(
    ("cpus", "shards", "per_shard"),
    [(2.0, 4, 0.5), (3.0, 2, 1.0), (2.0, 3, 0.66), (1.0, 300, 0.0033), (0.5, 5000, 0.0001)],
)
def test_more_shards_than_cpus_share_them_and_never_ask_for_more(
    cpus: float, shards: int, per_shard: float
) -> None:
    layout = Layout.of([cpus], joined=False, shards=shards)
    assert layout.shard_cpus == per_shard
    assert layout.shards * layout.shard_cpus <= cpus


def test_settings_win_and_auto_shards_are_capped() -> None:
    big = Layout.of([64.0] * 4, joined=True, shards="auto")
    assert big.shards == MAX_AUTO_SHARDS
    set_ = Layout.of([8.0, 8.0], joined=True, shards=3, shard_cpus=2.0, executors=5,
                     executor_cores=4)  # fmt: skip
    assert (set_.shards, set_.shard_cpus, set_.executors, set_.executor_cores) == (3, 2.0, 5, 4)
    assert (
        "3 shard(s) × 2 CPU" in set_.describe() and "5 executor(s) × 4 core(s)" in set_.describe()
    )


def test_more_shards_than_ray_can_split_the_cpus_for_are_refused() -> None:
    from simsignal.actors.placement import ClusterTooSmall

    with pytest.raises(ClusterTooSmall, match=r"9000 shards \(engine.shards\) cannot share 0.5"):
        Layout.of([0.5], joined=False, shards=9000)
