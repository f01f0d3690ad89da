"""The CLI as users run it: its own Ray + Spark in a subprocess, a real Redis, brute force."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.adapters.synthetic import make_history, to_seed_format
from simsignal.engine.core.algorithms import Params
from simsignal.engine.core.derived import Derived
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.templates import get_template
from tests.helpers import (
    assert_neighbors,
    brute_topk,
    curves_from_bars,
    published,
    reference_ranked,
)
from tests.unit.test_risk import _har_by_statsmodels

CN = get_template("cn")
ALGOS = ["sq", "var", "sq_norm", "var_norm"]
ALL = ["sq", "var", "sq_norm", "var_norm", "corr", "znorm", "dtw", "motif", "ensemble"]
# What a newcomer used to see from Ray, Spark and the JVMs; now in out/logs/engine.log.
NOISE = ("WARN", "StatusConsoleListener", "RejectedExecutionException", "Dataset job will hang",
         "core_worker", "Traceback")  # fmt: skip


def _simsignal(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if args[0] in ("run", "demo"):
        for noise in NOISE:
            assert noise not in proc.stdout + proc.stderr, (noise, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.mark.slow(seconds=50)
def test_run_on_seed_format_history_equals_brute_force(
    redis_server: object, store: RedisStore, seed_data: Path, tmp_path: Path
) -> None:
    """Seed-layout per-day files of 000001 before 2016-07-01, then the real day replayed."""
    bars = make_history(CN, years=135 / 243, ticker="000001", start="2016-01-04", seed=11)
    real = pd.read_csv(seed_data / "000001-20160702.csv", dtype={"ticker": str})
    bars = bars[bars["datetime"] < "2016-07-01"]
    scale = real["closePrice"].iloc[0] / bars["close"].iloc[-1]  # same level as the real index
    for col in ("open", "high", "low", "close"):
        bars[col] = (bars[col] * scale).round(3)
    hist_dir = tmp_path / "history"
    hist_dir.mkdir()
    seed_layout = to_seed_format(bars)
    for day, part in seed_layout.groupby("dataDate"):
        part.reset_index(drop=True).to_csv(hist_dir / f"000001-{day}.csv")  # with the index column
    url = redis_server.url  # type: ignore[attr-defined]
    out = _simsignal(
        [
            "run",
            "--history",
            str(hist_dir),
            "--feed",
            "replay",
            "--replay",
            str(seed_data / "000001-20160702.csv"),
            "--date",
            "2016-07-01",
            "--ticker",
            "000001",
            "--k",
            "10",
            "--shards",
            "2",
            "--algorithms",
            ",".join(ALL),
            "--redis-url",
            url,
            "--out",
            str(tmp_path / "out"),
        ],
        tmp_path,
    )
    assert "signals published" in out

    curves = curves_from_bars(bars, CN)
    keys = [(str(t), str(d)) for t, d in curves.index]
    hist = curves.to_numpy()
    x = real["closePrice"].to_numpy() / bars["close"].iloc[-1] - 1.0
    got = published(store, "000001")
    assert len(got) == 241 * len(ALL)
    for m in range(1, 242):
        for algo in ALGOS:  # the seed's four: an independent NumPy brute force
            want = brute_topk(algo, x[:m], hist[:, :m], keys, 10)
            sig = got[(m, algo)]
            assert [tuple(n[:2]) for n in sig.neighbors] == [w[:2] for w in want], (m, algo)
            np.testing.assert_allclose(
                [float(n[2]) for n in sig.neighbors], [w[2] for w in want], rtol=1e-9, atol=1e-15,
                err_msg=f"{m} {algo}",
            )  # fmt: skip
        for algo in ("corr", "znorm", "dtw", "motif"):  # batch recompute (itself checked vs naive)
            ref = reference_ranked(algo, Params(), x[:m], hist)
            ref = ref.min(axis=0) if algo == "motif" else ref
            assert_neighbors(got[(m, algo)], ref, keys, 10, f"{algo} m={m}")
        assert got[(m, "ensemble")].k > 0
    assert (tmp_path / "out" / "similarity.png").stat().st_size > 10_000

    # the rest-of-day risk, one entry a minute: the days are dealt to both shards here (one
    # ticker), so the model is fitted on the driver from all of them, equal to statsmodels
    risk = {int(e.fields["minute"]): Derived.from_fields(e.fields)
            for e in store.entries(Keys().risk("000001"))}  # fmt: skip
    assert sorted(risk) == list(range(1, 242))
    assert risk[241].algo == "closed" and risk[241].values["rv"] == 0.0
    for m in (2, 30, 120, 240):
        risk_want = _har_by_statsmodels(hist.astype(np.float32), x, m)
        assert risk[m].algo == "har_x" and risk[m].values == pytest.approx(risk_want, rel=1e-5), m


def test_subscribe_stops_at_count_and_says_what_it_reads(
    redis_server: object, store: RedisStore, tmp_path: Path
) -> None:
    import redis

    from simsignal.engine.adapters.publish import SignalPublisher
    from simsignal.engine.core.keys import Keys
    from tests.unit.test_messages import _signal

    sigs = [_signal(minute=m, bar_epoch_ms=1714095000000 + 60000 * m) for m in range(1, 21)]
    url = redis_server.url  # type: ignore[attr-defined]
    publisher = SignalPublisher(store, Keys(), 1000)
    assert publisher.publish(sigs[:2]) == 2
    # A foreign entry between minutes 2 and 3 (another writer, or a cut-short entry).
    foreign: dict[Any, Any] = {"minute": "x", "[/x]": "[bold]"}
    redis.Redis.from_url(url).xadd("simsignal:signals:000300", foreign, id="1714095150000-0")
    assert publisher.publish(sigs[2:]) == 18
    done = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", "subscribe", "000300", "--from-start",
         "--count", "8", "--redis-url", url], capture_output=True, text=True, timeout=120,
        check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stderr.strip().splitlines()
    assert said[0].startswith(f"reading simsignal:signals:000300 at {url}")
    assert "stopping after 8" in said[0]
    assert "skipped 1 entry that was not a signal" in done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 8 and all(line.startswith("000300 2024-04-26") for line in lines)
    assert [int(line.split("m=")[1].split()[0]) for line in lines] == list(range(1, 9))
    # The entries of another kind: the portfolio's rebalance, whatever the ticker named.
    from simsignal.engine.core.derived import Derived

    moved = Derived("rebalance", "", "2024-04-26", 3, "09:33", "sq", 1714095180000,
                    {"weights": {"000300": 0.25}, "cash": 0.75})  # fmt: skip
    publisher.publish([moved])
    done = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", "subscribe", "000300", "--kind",
         "rebalance", "--from-start", "--count", "1", "--redis-url", url], capture_output=True,
        text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.startswith(f"reading simsignal:rebalance at {url}")
    assert done.stdout.strip() == (
        'rebalance portfolio 2024-04-26 09:33 m=  3 sq       {"weights": {"000300": 0.25}, '
        '"cash": 0.75}'
    )
