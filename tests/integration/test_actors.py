"""Shard and coordinator actors on a real local Ray, publishing to a real Redis."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import ray

from simsignal.actors.coordinator import CoordinatorActor, CoordinatorConfig
from simsignal.actors.shard import ShardActor
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.algorithms import KNOWN, REGISTRY, Params
from simsignal.engine.core.channels import money_flow, volume_share
from simsignal.engine.core.forecast import Forecast, ensemble
from simsignal.engine.core.pipeline.ports import PipelineConfig
from simsignal.engine.core.templates import get_template
from tests.helpers import assert_neighbors, brute_topk, published, reference_ranked, signals_in

CN = get_template("cn")
ALGOS = ["sq", "var", "sq_norm", "var_norm"]
SEED = 424242


def _history(n_days: int, seed: int) -> tuple[list[Any], np.ndarray, list[tuple[str, str]]]:
    """Random-walk day curves (and volume/flow channels) for two tickers, as Arrow blocks."""
    rng = np.random.default_rng(seed)
    ratio = np.cumsum(rng.normal(0, 1e-3, (n_days, CN.slots)), axis=1).astype(np.float32)
    keys = sorted(
        dict.fromkeys(
            (
                "000300" if i % 3 else "600000",
                f"20{10 + i // 200:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}",
            )
            for i in range(n_days)
        )
    )
    ratio = ratio[: len(keys)]
    vol = rng.lognormal(0, 0.5, ratio.shape)
    flow = np.clip(np.cumsum(rng.normal(0, 0.1, ratio.shape), axis=1), -1, 1)
    table = pa.table(
        {
            "ticker": [k[0] for k in keys],
            "date": [k[1] for k in keys],
            "ratio": list(ratio),
            "prev_close": np.full(len(keys), 100.0),
            "shard": np.arange(len(keys)) % 2,
            "volume_share": list((vol / np.cumsum(vol, axis=1)).astype(np.float32)),
            "money_flow": list(flow.astype(np.float32)),
        }
    )
    half = len(keys) // 2
    return [ray.put(table.slice(0, half)), ray.put(table.slice(half))], ratio, keys


def _bars(n: int, seed: int, prev_close: float = 100.0) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    closes = prev_close * (1 + np.cumsum(rng.normal(0, 1e-3, n)))
    volumes = rng.integers(1, 100, n)
    return [
        {
            "ticker": "000300",
            "ts": f"2024-04-26T{CN.label(i)}:00",
            "open": f"{c:.4f}",
            "high": f"{c:.4f}",
            "low": f"{c:.4f}",
            "close": f"{c:.4f}",
            "volume": str(v),
        }
        for i, (c, v) in enumerate(zip(closes, volumes, strict=True))
    ]


def _engine(
    refs: list[Any],
    url: str,
    shards: int = 2,
    k: int = 5,
    algos: list[str] = ALGOS,
    params: Params = Params(),
    channels: dict[str, float] | None = None,
    direct: bool = True,
) -> tuple[list[Any], Any]:
    key = secrets.token_bytes(32) if direct else None
    sh = [
        ShardActor.remote(i, refs, CN.slots, algos, k, False, params, channels, authkey=key)
        for i in range(shards)
    ]
    pipeline = PipelineConfig(
        algorithms=tuple(algos), k=k, template="cn", date="2024-04-26",
        last_close={"000300": ("2024-04-25", 100.0), "600000": ("2024-04-25", 10.0)},
        channels=tuple(channels or {"price": 1.0}), params=params,
    )  # fmt: skip
    co = CoordinatorActor.remote(sh, CoordinatorConfig(pipeline, redis_url=url, authkey=key))
    assert ray.get(co.connect.remote()) is direct
    return sh, co


def test_signals_equal_brute_force(ray_cluster: None, redis_server: Any, store: RedisStore) -> None:
    refs, ratio, keys = _history(300, SEED)
    _, co = _engine(refs, redis_server.url)
    bars = _bars(60, SEED + 1)
    for raw in bars:
        row = ray.get(co.on_bar.remote(raw))
        assert "rejected" not in row
    got = published(store, "000300")
    assert len(got) == 60 * len(ALGOS)
    mine = [i for i, k in enumerate(keys) if k[0] == "000300"]
    xs = np.array([float(b["close"]) for b in bars]) / 100.0 - 1
    for m in range(1, 61):
        for algo in ALGOS:
            want = brute_topk(algo, xs[:m], ratio[mine, :m], [keys[i] for i in mine], 5)
            sig = got[(m, algo)]
            assert [tuple(n[:2]) for n in sig.neighbors] == [w[:2] for w in want], (m, algo)
            np.testing.assert_allclose(
                [float(n[2]) for n in sig.neighbors],
                [float(w[2]) for w in want],
                rtol=1e-9,
                atol=1e-15,
            )
            assert sig.k == 5 and sig.slot == CN.label(m - 1)


def test_bad_bars_are_dead_lettered_and_the_engine_goes_on(
    ray_cluster: None, redis_server: Any, store: RedisStore
) -> None:
    refs, _, _ = _history(60, SEED)
    _, co = _engine(refs, redis_server.url)
    bars = _bars(5, SEED)
    bad = [
        {**bars[1], "close": "nan"},
        {"json": "{garbage"},
        {**bars[1], "ticker": "XXXX"},
        {k: v for k, v in bars[1].items() if k != "close"},
    ]
    feed = [bars[0], *bad, bars[1], bars[1], bars[3], bars[2], bars[4]]
    replies = [ray.get(co.on_bar.remote(raw)) for raw in feed]
    rejected = [r["rejected"] for r in replies if "rejected" in r]
    assert len(rejected) == 6
    assert "close='nan': not a plain decimal number" in rejected[0]
    assert "duplicate minute" in rejected[4] and "out of order" in rejected[5]
    stats = ray.get(co.stats.remote())
    assert stats.accepted == 4 and sum(stats.rejected.values()) == 6
    assert store.length("simsignal:deadletter") == 6
    minutes = sorted({s.minute for s in published(store, "000300").values()})
    assert minutes == [1, 2, 3, 4, 5]  # the gap at 09:32 was filled when 09:33 came


@pytest.mark.parametrize("direct", [True, False], ids=["direct-links", "classic"])
def test_a_killed_shard_recovers_with_identical_signals(
    ray_cluster: None, redis_server: Any, store: RedisStore, direct: bool
) -> None:
    """The clean run uses the other path, so both paths also agree with each other."""
    refs, _, _ = _history(200, SEED + 7)
    bars = _bars(30, SEED + 8)
    _, co = _engine(refs, redis_server.url, direct=not direct)
    for raw in bars:
        ray.get(co.on_bar.remote(raw))
    ray.get(co.close.remote())
    clean = published(store, "000300")
    store.flushdb()

    shards, co = _engine(refs, redis_server.url, direct=direct)
    for i, raw in enumerate(bars):
        if i == 12:
            ray.kill(shards[1], no_restart=False)
            time.sleep(0.5)
        ray.get(co.on_bar.remote(raw))
    faulted = published(store, "000300")
    stats = ray.get(co.stats.remote())
    assert stats.restarts >= 1
    if direct:  # the links were opened again to the restarted shard and are in use
        assert stats.reconnects >= 1 and stats.direct_links
    ray.get(co.close.remote())
    assert faulted.keys() == clean.keys()
    for key, sig in clean.items():
        assert faulted[key].neighbors == sig.neighbors, key
        assert faulted[key].pred_close == pytest.approx(sig.pred_close, rel=1e-12)


def test_all_algorithms_and_channels_equal_recompute(
    ray_cluster: None, redis_server: Any, store: RedisStore
) -> None:
    """Eight algorithms + ensemble, three weighted channels, two shards vs one process."""
    refs, _, _ = _history(160, SEED + 3)
    full = pa.concat_tables(ray.get(refs))
    keys = list(zip(full["ticker"].to_pylist(), full["date"].to_pylist(), strict=True))
    curves = {
        c: np.stack(full[col].to_numpy(zero_copy_only=False))
        for c, col in (("price", "ratio"), ("volume", "volume_share"), ("flow", "money_flow"))
    }
    weights = {"price": 1.0, "volume": 0.5, "flow": 0.25}
    params = Params(dtw_band=3, motif_window=10)
    _, co = _engine(refs, redis_server.url, algos=list(KNOWN), params=params, channels=weights)
    bars = _bars(30, SEED + 4)
    for raw in bars:
        assert "rejected" not in ray.get(co.on_bar.remote(raw))
    got = published(store, "000300")
    assert len(got) == 30 * len(KNOWN)

    closes = np.array([[float(b["close"]) for b in bars]])
    vols = np.array([[float(b["volume"]) for b in bars]])
    today = {
        "price": closes[0] / 100.0 - 1,
        "volume": volume_share(vols)[0],
        "flow": money_flow(closes, np.array([100.0]), closes * vols)[0],
    }
    mine = [i for i, key in enumerate(keys) if key[0] == "000300"]
    for m in range(1, 31):
        made = []
        for name in REGISTRY:
            ref = np.sum(
                [
                    w * reference_ranked(name, params, today[c][:m], curves[c][mine])
                    for c, w in weights.items()
                ],
                axis=0,
            )
            if name == "motif":
                ref = ref.min(axis=0)
            sig = got[(m, name)]
            assert_neighbors(sig, ref, [keys[i] for i in mine], 5, f"{name} m={m}")
            if name == "motif":
                assert all(len(n) == 4 and ":" in str(n[2]) for n in sig.neighbors)
            made.append(Forecast(sig.pred_close, sig.pred_close_mean, sig.pred_move, sig.up_prob,
                                 sig.q10, sig.q50, sig.q90, sig.dispersion,
                                 sig.up_prob_raw))  # fmt: skip
        combined, _ = ensemble(made, float(today["price"][m - 1]))
        ens = got[(m, "ensemble")]
        assert ens.pred_close == pytest.approx(combined.pred_close, rel=1e-12)
        assert ens.up_prob == pytest.approx(combined.up_prob, rel=1e-12)
        assert 0 < ens.k <= 5 * len(REGISTRY)


def test_redis_outage_buffers_signals_in_order(ray_cluster: None) -> None:
    """Redis down for three minutes: their signals are kept and published, in order, once."""
    from simsignal.engine.adapters.redis_server import RedisServer, free_port

    port = free_port()
    server = RedisServer(port=port)
    refs, _, _ = _history(80, SEED + 9)
    bars = _bars(10, SEED + 10)
    _, co = _engine(refs, server.url)
    try:
        for raw in bars[:4]:
            ray.get(co.on_bar.remote(raw))
        server.stop()
        for raw in bars[4:7]:
            assert "rejected" not in ray.get(co.on_bar.remote(raw))
        assert ray.get(co.stats.remote()).pending == 3 * len(ALGOS)
        server = RedisServer(port=port)  # back, empty (no persistence in tests)
        for raw in bars[7:]:
            ray.get(co.on_bar.remote(raw))
        assert ray.get(co.flush.remote()) == 0
        got = signals_in(RedisStore.connect(server.url), "000300")
        assert [(s.minute, s.algo) for s in got] == [(m, a) for m in range(5, 11) for a in ALGOS]
    finally:
        ray.get(co.close.remote())
        server.stop()


def test_each_node_says_which_history_paths_it_cannot_read(
    ray_cluster: None, tmp_path: Path
) -> None:
    """The check behind refusing driver-only history on a cluster, run as Ray tasks on the
    node: a missing file and one of another size than the driver saw are named, and the
    refusal names the path and the node."""
    from simsignal.actors.shared_paths import check_visible, refusal, unseen_by_node

    here = tmp_path / "h.parquet"
    here.write_bytes(b"x" * 100)
    gone = str(tmp_path / "only-on-the-driver.parquet")
    unseen = unseen_by_node([(str(here), 100), (str(here), 99), (gone, 10)])
    assert list(unseen.values()) == [[str(here), gone]]
    node = ray.get_runtime_context().get_node_id()
    assert node[:8] in next(iter(unseen))
    check_visible([here])  # readable everywhere: no error
    said = str(refusal(unseen))
    assert said.startswith(f"history path {here} and 1 more is not readable on node ")
    assert node[:8] in said and "shared path" in said


def test_what_the_cluster_cannot_place_is_a_cluster_error(ray_cluster: None) -> None:
    """Shards asking for more CPUs than the cluster has, a layout the live nodes cannot hold
    and Spark executors asking for more memory than any node has: each a ClusterTooSmall
    naming the setting (the CLI prints it as `cluster error:`), and nothing left reserved."""
    from ray.util import placement_group_table

    from simsignal.actors.cluster import _executor_group
    from simsignal.actors.placement import ClusterTooSmall, Layout, cpu_nodes, spread_group

    def held() -> set[str]:
        return {i for i, g in placement_group_table().items() if g["state"] != "REMOVED"}

    before, nodes = held(), cpu_nodes()
    assert sum(n.cpus for n in nodes) == 2  # the session's local Ray
    greedy = Layout.of([n.cpus for n in nodes], joined=False, shards=3, shard_cpus=1.0)
    with pytest.raises(ClusterTooSmall, match=r"3 shards × 1 CPU \(cluster\.shard_cpus\) need 3"):
        spread_group(greedy)
    stale = Layout.of([2.0, 2.0], joined=True, shards=4, shard_cpus=1.0)  # a node has gone
    with pytest.raises(ClusterTooSmall, match=r"could not be placed in 1 s"):
        spread_group(stale, timeout_s=1.0)
    with pytest.raises(ClusterTooSmall, match=r"2 Spark executors × 9999g \(cluster\.executors"):
        _executor_group(2, "9999g", timeout_s=1.0)
    assert held() == before
