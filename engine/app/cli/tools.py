"""`simsignal bench`, `health`, `dashboard` and `subscribe`: the engine seen from outside."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from simsignal.engine.app.cli.common import (
    SPILL_FILE,
    AddressOpt,
    ConfigOpt,
    RedisOpt,
    ShardsOpt,
    console,
    settings_from,
)


def bench(
    workload: Annotated[
        str, typer.Option(help="w1 (one index) | w2 (a market) | w3 (pooled)")
    ] = "w2",
    tickers: Annotated[int | None, typer.Option(help="tickers (default: w1 1, w2/w3 500)")] = None,
    years: Annotated[float, typer.Option(help="years of history per ticker")] = 10.0,
    minutes: Annotated[int, typer.Option(help="minutes of the live day to replay")] = 241,
    shards: ShardsOpt = None,
    all_algorithms: Annotated[
        bool, typer.Option("--all-algorithms", help="a second run with every algorithm")
    ] = False,
    data: Annotated[Path, typer.Option(help="cache for the generated workloads")] = Path(
        "data/bench"
    ),
    out: Annotated[Path, typer.Option(help="JSON, plot and engine logs")] = Path("out/bench"),
    doc: Annotated[
        Path | None, typer.Option(help="update this Markdown file (e.g. docs/benchmarks.md)")
    ] = None,
    nodes: Annotated[
        str | None,
        typer.Option(help="e.g. 1,2,3: one run per node count on a local multi-node Ray cluster"),
    ] = None,
    address: AddressOpt = None,
    cadence: Annotated[
        float,
        typer.Option(help="seconds between minutes, as a live feed (0: back to back)"),
    ] = 0.0,
) -> None:
    """Measure the engine as a user runs it, from a separate client through real Redis."""
    from simsignal.engine.app.benchmark.run import bench as run_bench  # noqa: PLC0415
    from simsignal.engine.app.benchmark.workloads import Workload  # noqa: PLC0415

    if workload not in ("w1", "w2", "w3"):
        raise typer.BadParameter(f"{workload!r}: use w1, w2 or w3", param_hint="--workload")
    n = tickers or (1 if workload == "w1" else 500)
    try:
        counts = [int(x) for x in nodes.split(",")] if nodes else None
    except ValueError:
        raise typer.BadParameter(
            f"{nodes!r}: node counts like 1,2,3", param_hint="--nodes"
        ) from None
    if counts and not all(1 <= c <= 8 for c in counts):
        raise typer.BadParameter(f"{nodes!r}: between 1 and 8 nodes", param_hint="--nodes")
    if not 0 <= cadence <= 120:
        raise typer.BadParameter(f"{cadence!r}: between 0 and 120 seconds",
                                 param_hint="--cadence")  # fmt: skip
    if counts and address:
        raise typer.BadParameter("--nodes starts its own clusters: not with --address",
                                 param_hint="--address")  # fmt: skip
    result = run_bench(
        Workload(workload, n, years), data=data, out=out, doc=doc, minutes=minutes,
        shards=shards or 2, all_algorithms=all_algorithms, say=console.print,
        command="simsignal " + " ".join(sys.argv[1:]), nodes=counts, address=address,
        cadence_s=cadence,
    )  # fmt: skip
    for label, r in result["runs"].items():
        console.print(
            f"{label}: minute batch p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"max {r['max_ms']:.1f} ms; cold start {r['cold_start_s']:.1f} s; "
            f"loader {r['bars_per_s']:,.0f} bars/s; idle {r['idle_cores']:.2f} cores"
        )
    console.print(f"wrote {out}/bench-{result['workload']['key']}.json and .png"
                  + (f", updated {doc}" if doc else ""))  # fmt: skip


def health(
    max_age: Annotated[
        float, typer.Option(help="seconds since the engine last wrote its figures")
    ] = 120.0,
    redis_url: RedisOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Exit 0 when the engine is up and wrote its figures lately (container health checks)."""
    from simsignal.config.settings import DEFAULT_REDIS_URL  # noqa: PLC0415
    from simsignal.engine.adapters.redis_store import RedisError, RedisStore  # noqa: PLC0415
    from simsignal.engine.core.keys import Keys  # noqa: PLC0415

    settings = settings_from(config, redis_url=redis_url)
    url = settings.redis.url.get_secret_value() if settings.redis.url else DEFAULT_REDIS_URL
    try:
        state = RedisStore.connect(url).hash(Keys(settings.redis.prefix).engine)
    except RedisError as err:
        console.print(f"unhealthy: Redis: {err}", highlight=False)
        raise typer.Exit(1) from None
    age = time.time() - float(state.get("health_at") or 0)
    if state.get("state") != "ready" or ("health_at" in state and age > max_age):
        console.print(f"unhealthy: state {state.get('state', 'unknown')!r}, figures {age:.0f} s "
                      "old", highlight=False)  # fmt: skip
        raise typer.Exit(1)
    console.print("healthy", highlight=False)


def dashboard(
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8050)")] = None,
    redis_url: RedisOpt = None,
    config: ConfigOpt = None,
) -> None:
    """A read-only web page of the live signals, fed from Redis (server-sent events)."""
    import uvicorn  # noqa: PLC0415

    from simsignal.config.settings import DEFAULT_REDIS_URL  # noqa: PLC0415
    from simsignal.engine.adapters.redis_connect import masked  # noqa: PLC0415
    from simsignal.engine.adapters.redis_store import probe  # noqa: PLC0415
    from simsignal.engine.app.dashboard.app import make_app  # noqa: PLC0415

    settings = settings_from(config, redis_url=redis_url)
    url = settings.redis.url.get_secret_value() if settings.redis.url else DEFAULT_REDIS_URL
    problem = probe(url, timeout=2.0)
    if problem:
        console.print(f"[red]redis error:[/] Redis at {masked(url)}: {problem}", highlight=False)
        raise typer.Exit(2)
    where = f"http://{host or settings.dashboard.host}:{port or settings.dashboard.port}/"
    console.print(f"dashboard at {where} reading {masked(url)} (read-only; Ctrl-C to stop)",
                  highlight=False)  # fmt: skip
    uvicorn.run(make_app(url, settings.redis.prefix), host=host or settings.dashboard.host,
                port=port or settings.dashboard.port, log_level="warning")  # fmt: skip


def subscribe(
    tickers: Annotated[
        list[str] | None, typer.Argument(help="tickers whose signals to follow", show_default=False)
    ] = None,
    all_tickers: Annotated[
        bool, typer.Option("--all", help="every ticker, including streams that appear later")
    ] = False,
    algo: Annotated[
        list[str] | None, typer.Option("--algo", help="only this algorithm (repeatable)")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="consumer group: resume where it left off, share work")
    ] = None,
    consumer: Annotated[str, typer.Option(help="this reader's name in the group")] = "cli",
    from_start: Annotated[
        bool, typer.Option(help="from the first entry (a new group too), not new signals only")
    ] = False,
    count: Annotated[int, typer.Option(help="stop after this many signals (0: never)")] = 0,
    kind: Annotated[
        str, typer.Option("--kind", help="what to read: signal, pair, timing, rebalance or risk")
    ] = "signal",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    redis_url: RedisOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print signals (or other kinds) as they arrive; with --group, each is acknowledged."""
    from simsignal.config.settings import DEFAULT_REDIS_URL  # noqa: PLC0415
    from simsignal.engine.adapters.redis_connect import masked  # noqa: PLC0415
    from simsignal.engine.adapters.subscriber import reader_for  # noqa: PLC0415
    from simsignal.engine.core.derived import Derived  # noqa: PLC0415
    from simsignal.engine.core.keys import Keys  # noqa: PLC0415
    from simsignal.engine.core.kinds import KINDS  # noqa: PLC0415
    from simsignal.engine.core.signals import Signal  # noqa: PLC0415

    if not tickers and not all_tickers:
        raise typer.BadParameter("name a ticker or give --all", param_hint="TICKER")
    if kind not in KINDS:
        raise typer.BadParameter(f"{kind!r}: choose from {', '.join(KINDS)}", param_hint="--kind")
    settings = settings_from(config, redis_url=redis_url)
    url = settings.redis.url.get_secret_value() if settings.redis.url else DEFAULT_REDIS_URL
    err = Console(stderr=True)
    reader = reader_for(kind)(
        url, None if all_tickers else tickers, algos=algo, group=group, consumer=consumer,
        from_start=from_start, prefix=settings.redis.prefix, kinds=[kind],
        say=lambda msg: err.print(f"[yellow]{masked(url)}:[/] {msg}", highlight=False),
    )  # fmt: skip
    keys = Keys(settings.redis.prefix)
    streams = ", ".join(dict.fromkeys(
        KINDS[kind].stream(keys, "*" if all_tickers else t) for t in tickers or [""]
    ))  # fmt: skip
    err.print(
        f"reading {streams} at {masked(url)} ("
        + (f"group {group} as {consumer}, " if group else "")
        + ("from the first entry" if from_start else "new signals only")
        + (f", algorithms {', '.join(algo)}" if algo else "")
        + (f", stopping after {count}" if count else "") + "; Ctrl-C to stop)",
        highlight=False, soft_wrap=True,
    )  # fmt: skip

    def show(sig: Signal | Derived) -> None:
        if as_json:
            print(sig.to_json(), flush=True)
        elif not isinstance(sig, Signal):  # a derived kind: its payload as JSON
            print(f"{sig.kind} {sig.ticker or 'portfolio'} {sig.date} {sig.slot} m={sig.minute:>3}"
                  f" {sig.algo:<8} {json.dumps(sig.values)}", flush=True)  # fmt: skip
        else:
            print(f"{sig.ticker} {sig.date} {sig.slot} m={sig.minute:>3} {sig.algo:<8} "
                  f"pred_close {sig.pred_close:+.3%} up {sig.up_prob:.3%} "
                  f"latency {sig.latency_ms} ms", flush=True)  # fmt: skip

    try:
        reader.handle(show, limit=count or None)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    if reader.skipped:
        what = "entry that was not a signal" if reader.skipped == 1 else "entries that were not"
        err.print(f"skipped {reader.skipped} {what}" + ("" if reader.skipped == 1 else " signals"),
                  highlight=False)  # fmt: skip


def flush(
    spill: Annotated[
        Path, typer.Option(help="the spill file a run wrote (its --out folder)")
    ] = Path("out") / SPILL_FILE,
    redis_url: RedisOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Publish what a run could not (its spill file), idempotently; exit 1 if Redis fails."""
    from simsignal.config.settings import DEFAULT_REDIS_URL  # noqa: PLC0415
    from simsignal.engine.adapters.publish import SignalPublisher  # noqa: PLC0415
    from simsignal.engine.adapters.redis_connect import masked  # noqa: PLC0415
    from simsignal.engine.adapters.redis_store import RedisStore  # noqa: PLC0415
    from simsignal.engine.core.keys import Keys  # noqa: PLC0415

    settings = settings_from(config, redis_url=redis_url)
    if not spill.is_file():
        console.print(f"nothing to flush: {spill} does not exist", highlight=False)
        return
    url = settings.redis.url.get_secret_value() if settings.redis.url else DEFAULT_REDIS_URL
    lines = sum(1 for _ in spill.open("rb"))
    console.print(f"publishing {lines:,} batch(es) from {spill} to {masked(url)}", highlight=False)
    pub = SignalPublisher(RedisStore.connect(url), Keys(settings.redis.prefix),
                          settings.redis.retention_days, spill=spill)  # fmt: skip
    pub.flush()  # on a Redis error it keeps the file and says why in last_error
    if spill.exists():
        console.print(f"[red]Redis did not take them[/] ({pub.last_error}); {spill} is kept",
                      highlight=False)  # fmt: skip
        raise typer.Exit(1)
    refused = f", {len(pub.refused)} refused as back-fills" if pub.refused else ""
    console.print(f"published {pub.published:,} new signal(s), {pub.repeats:,} already there"
                  f"{refused}")  # fmt: skip
    if pub.refused:
        raise typer.Exit(1)
