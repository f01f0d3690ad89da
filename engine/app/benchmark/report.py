"""The benchmark's outputs: JSON, a plot, and docs/benchmarks.md, all from one result dict."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any

import numpy as np


def percentiles(ms: list[float]) -> dict[str, float]:
    """p50 / p99 / max / mean of a list of milliseconds."""
    a = np.asarray(ms if ms else [np.nan])
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(np.max(a)),
        "mean_ms": float(np.mean(a)),
        "n": len(ms),
    }


def machine() -> str:
    """The machine the figures come from."""
    import os  # noqa: PLC0415

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.node()}: {os.cpu_count()} cores, {mem:.0f} GiB, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    )


def write_json(result: dict[str, Any], path: Path) -> None:
    """The whole result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))


def write_plot(result: dict[str, Any], path: Path) -> None:
    """Per-minute batch latency over the replayed minutes, with p50 and p99 lines."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(9, 4))
    for label, run in result["runs"].items():
        ms = run["minute_ms"]
        ax.plot(
            range(1, len(ms) + 1),
            ms,
            lw=0.8,
            label=f"{label} (p50 {run['p50_ms']:.1f}, p99 {run['p99_ms']:.1f} ms)",
        )
    ax.set_xlabel("minute of the replayed day")
    ax.set_ylabel("bars written → all signals in Redis (ms)")
    ax.set_yscale("log")
    ax.set_title(f"simsignal bench {result['workload']['key']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _memory_lines(shards: list[dict[str, int]], days: float = 0.0) -> list[str]:
    """The shards' own account of their memory at the end of the run.

    Private memory (USS) where the engine reported it; resident memory (RSS, which also
    counts shared pages) from engines that reported only that.
    """
    if not shards:
        return []
    kind = "uss" if "uss" in shards[0] else "rss"
    mib = {k: sum(sh[k] for sh in shards) / 2**20 for k in shards[0]}
    ratio = mib["added"] / mib["curves"] if mib["curves"] else 0.0
    label = "private memory, USS" if kind == "uss" else "resident memory, RSS"
    return [
        f"- Shard memory at the end, summed over shards ({label}): {mib[kind]:.0f} MiB, of "
        f"which libraries before loading {mib[kind + '_start']:.0f} MiB and curves "
        f"{mib['curves']:.0f} MiB (running state {mib['state']:.0f} MiB). Added on top of the "
        f"libraries and the curves (running state, compiled kernels, what loading left "
        f"behind): {mib['added']:.0f} MiB = **{ratio:.2f}× the curves**. The object store "
        f"keeps one more copy of the curves in use, for restarts."
    ] + ([
        f"- Per million day curves (cn session, price channel): **"
        f"{(mib[kind] - mib[kind + '_start']) / days * 1e6 / 1024:.2f} GiB** of shard memory "
        f"above the libraries ({days:,.0f} days here), plus "
        f"{mib['curves'] / days * 1e6 / 1024:.2f} GiB in the object store."
    ] if days else [])  # fmt: skip


def _idle(cores: float) -> str:
    return "not measured" if math.isnan(cores) else f"{cores:.2f}"


def markdown_section(result: dict[str, Any]) -> str:
    """One workload's section of docs/benchmarks.md."""
    w = result["workload"]
    lines = [
        f"## {w['key']}",
        "",
        f"`{result['command']}` on {result['machine']}, {result['when']}.",
        "",
        f"{w['tickers']} ticker(s) × {w['years']:g} years: {result['history_bars']:,} history "
        f"bars; {result['minutes']} minutes replayed, every ticker's bar of a minute written "
        "to Redis at once, "
        + (
            f"a minute every {result['cadence_s']:g} s (a live feed's pace: the engine idles "
            "between minutes)."
            if result.get("cadence_s")
            else "each as soon as the last one's signals were in (back to back)."
        ),
        "",
        "| run | minute batch p50 | p99 | max | signals | cold start | idle CPU (cores) "
        "| Redis commands per entry |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, r in result["runs"].items():
        lines.append(
            f"| {label} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | "
            f"{r['max_ms']:.1f} ms | {r['signals']:,} | {r['cold_start_s']:.1f} s | "
            f"{_idle(r['idle_cores'])} | {_per_entry(r)} |"
        )
    first = next(iter(result["runs"].values()))
    if first.get("redis_calls"):
        calls = ", ".join(f"{n.upper()} {c:,}" for n, c in first["redis_calls"].items())
        lines += ["", f"- Redis commands the engine ran while fed (`INFO commandstats`, the "
                      f"feed's own bars left out), for {first['entries']:,} entries published "
                      f"(signals and derived): {calls}."]  # fmt: skip
    lines += [
        "",
        f"- Warm start (the same history and settings again: day curves from the cache, no "
        f"Spark): **{result['warm_start_s']:.1f} s** "
        f"(cache hit: {result['warm_start_cache_hit']}).",
        f"- Loader: {first['rows_read']:,.0f} bars in {first['load_s']:.1f} s = "
        f"**{first['bars_per_s']:,.0f} bars/s** (bar-level work in Spark on every core).",
        f"- Shards: {first['curves_mib']:.1f} MiB of float32 curves; the shard processes' "
        + (
            f"resident memory {first['shard_rss_mib']:.0f} MiB (interpreter, NumPy, numba and "
            "Ray included)."
            if first["shard_rss_mib"]
            else "resident memory not measured "
            "(their processes are on the cluster, not under this one)."
        ),
        *_memory_lines(first.get("shard_memory", []), first.get("days", 0.0)),
    ]
    for name, b in result.get("baselines", {}).items():
        ratio = b["ratio_p50"]
        verdict = f"{ratio:.1f}× faster" if ratio >= 1 else f"**{1 / ratio:.1f}× slower**"
        lines.append(
            f"- Baseline `{name}` (scoring only, in this process: no forecasts, no Redis): "
            f"p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms per minute batch. The "
            f"engine's p50, bar written to signals readable, is {verdict}."
        )
    if result.get("nodes"):
        lines.append(
            "- Each run joined a `ray.cluster_utils.Cluster` of that many nodes on this one "
            "machine with `--address` (the head keeps 1 CPU and each worker has 1; one node has "
            "every core); the shards sit on different nodes when there are two or more. The "
            "nodes share this machine's cores, so the rows show what spreading over nodes "
            "costs, not added capacity. The first run loads with Spark; the others read the "
            "day-curves cache."
        )
    if result.get("address"):
        lines.append(
            f"- Every run joined the existing cluster at `{result['address']}`; idle CPU and the "
            "shards' resident memory are measured only on a cluster this process starts."
        )
    lines += ["", f"![{w['key']}]({result['plot_name']})", ""]
    return "\n".join(lines)


def _per_entry(run: dict[str, Any]) -> str:
    """Commands per published entry, or a dash for a run that predates the count."""
    n = run.get("calls_per_entry")
    return "–" if n is None or math.isnan(n) else f"{n:.2f}"


def update_doc(doc: Path, result: dict[str, Any]) -> None:
    """Replace (or add) this workload's section in docs/benchmarks.md, keeping the others."""
    head = (
        "# Benchmarks\n\nMade by `simsignal bench` (see docs/cli.md). Times are measured on "
        "the machine named in each section, never asserted in tests.\n"
    )
    text = doc.read_text() if doc.is_file() else head
    key = result["workload"]["key"]
    parts = text.split("\n## ")
    kept = [p for p in parts[1:] if p.split("\n", 1)[0].strip() != key]  # its own heading only
    body = "\n## ".join([parts[0].rstrip() + "\n", *kept]).rstrip()
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(body + "\n\n" + markdown_section(result))
