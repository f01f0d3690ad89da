"""`simsignal bench` writes its section of docs/benchmarks.md and leaves the others alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simsignal.engine.app.benchmark.report import update_doc


def _result(key: str, p50: float) -> dict[str, Any]:
    run = {"p50_ms": p50, "p99_ms": 2 * p50, "max_ms": 3 * p50, "signals": 10,
           "cold_start_s": 1.0, "idle_cores": 0.05, "rows_read": 100.0, "load_s": 1.0,
           "bars_per_s": 100.0, "curves_mib": 1.0, "shard_rss_mib": 0.0,
           "redis_calls": {"xadd": 12, "evalsha": 2}, "entries": 10, "calls_per_entry": 1.4,
           }  # fmt: skip
    return {"workload": {"key": key, "tickers": 1, "years": 1.0}, "command": "simsignal bench",
            "machine": "here", "when": "now", "history_bars": 100, "minutes": 2,
            "cadence_s": 0.0, "runs": {"seed four": run}, "baselines": {},
            "warm_start_s": 1.0, "warm_start_cache_hit": True, "plot_name": f"{key}.png",
            }  # fmt: skip


def test_a_workload_replaces_its_own_section_only(tmp_path: Path) -> None:
    """`w2-…-cn` must not swallow `w2-…-cn-every3s`, whose name starts with it."""
    doc = tmp_path / "benchmarks.md"
    for key, p50 in (("w2-5x1y-cn", 10.0), ("w2-5x1y-cn-every3s", 20.0), ("w2-5x1y-cn", 30.0)):
        update_doc(doc, _result(key, p50))
    text = doc.read_text()
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads == ["## w2-5x1y-cn-every3s", "## w2-5x1y-cn"]
    assert "| 30.0 ms |" in text and "| 20.0 ms |" in text and "| 10.0 ms |" not in text
    assert "| 1.40 |" in text and "XADD 12, EVALSHA 2" in text
