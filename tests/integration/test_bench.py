"""`simsignal bench` at a tiny size: it runs end to end and reports what it measured.

Times are never asserted; the counts and the files are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow(seconds=70)
def test_bench_runs_a_tiny_market(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "benchmarks.md"
    proc = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", "bench", "--workload", "w2",
         "--tickers", "3", "--years", "0.1", "--minutes", "6", "--cadence", "0.5", "--data",
         str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--doc", str(doc)],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "150"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [report] = (tmp_path / "out").glob("bench-w2-3x0.1y-cn-every0.5s.json")
    result = json.loads(report.read_text())
    run = result["runs"]["seed four"]
    assert run["signals"] == 3 * 6 * 4 and len(run["minute_ms"]) == 6
    # paced as a live feed: minute i is due 0.5·i s after the start (or when the last is done)
    assert result["cadence_s"] == 0.5 and len(run["written_s"]) == 6
    assert all(at >= 0.5 * i for i, at in enumerate(run["written_s"], start=1))
    assert run["rows_read"] == result["history_bars"] > 0 and run["cold_start_s"] > 0
    assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
    # the engine's Redis commands: an XADD per entry (signals + timing + risk + rebalance),
    # an EVALSHA per commit at most per minute, one HSET per ticker's latest hash at least
    calls, entries = run["redis_calls"], 3 * 6 * 4 + 3 * 6 + 3 * 6 + 6
    assert run["entries"] == entries and calls["xadd"] >= entries
    assert 1 <= calls["evalsha"] <= 6 and calls["hset"] >= 3
    assert run["calls_per_entry"] == sum(calls.values()) / entries
    assert not run["cache_hit"] and result["warm_start_cache_hit"] and result["warm_start_s"] > 0
    assert result["baselines"]["numpy_recompute"]["n"] > 0
    assert (tmp_path / "out" / "bench-w2-3x0.1y-cn-every0.5s.png").stat().st_size > 5_000
    text = doc.read_text()
    assert "## w2-3x0.1y-cn-every0.5s" in text and "minute batch p50" in text
    assert "a minute every 0.5 s" in text
