"""The `simsignal` command line."""

from __future__ import annotations

import contextlib
import json
import os
import signal as signals_
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from simsignal.actors.cluster import LOOPBACK_ONLY
from simsignal.config.settings import Settings, describe, load_settings

# Local mode listens on loopback only: this must be set before anything imports Ray, and
# never when joining a cluster (its nodes must see this driver's real address).
if "--address" not in sys.argv and not os.environ.get("SIMSIGNAL_CLUSTER__ADDRESS"):
    os.environ.setdefault(*LOOPBACK_ONLY)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Live similar-history signals: Spark (RayDP) → Ray shard actors → Redis.",
)
console = Console()
DEMO_TICKER = "000300"  # the synthetic index of `simsignal demo`
SPILL_FILE = "spill.jsonl"  # under --out: commits Redis did not take (simsignal flush)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML file over config/default.toml")
]
RedisOpt = Annotated[str | None, typer.Option("--redis-url", help="redis:// or rediss:// URL")]
AlgoOpt = Annotated[str | None, typer.Option("--algorithms", help="comma list, e.g. sq,var")]
KOpt = Annotated[int | None, typer.Option("--k", help="neighbours per algorithm")]
ShardsOpt = Annotated[int | None, typer.Option("--shards", help="shard actors")]
ChannelsOpt = Annotated[
    str | None,
    typer.Option("--channels", help="curves and weights, e.g. price:1,volume:0.5,flow:0.5"),
]
BandOpt = Annotated[int | None, typer.Option("--dtw-band", help="dtw: Sakoe–Chiba radius")]
WindowOpt = Annotated[int | None, typer.Option("--motif-window", help="motif: window minutes")]
SpeedOpt = Annotated[
    float,
    typer.Option("--speed", help="0: as fast as possible; 1: real time; 60: a minute a second"),
]
ChartOpt = Annotated[
    int | None,
    typer.Option("--chart-minute", help="minute of the chart snapshot (default: mid-session)"),
]
OutOpt = Annotated[
    Path, typer.Option("--out", help="where similarity.png, summary.json and logs/ go")
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", help="show Ray's, Spark's and Java's logs (default: out/logs/)"),
]
TemplateOpt = Annotated[
    str | None, typer.Option("--template", help="cn | us | auto (the one the bars fit)")
]
MissingOpt = Annotated[
    int | None,
    typer.Option(
        "--max-missing",
        help="drop days missing more minute slots than this (default 12); shorter gaps are "
        "forward-filled",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="join a Ray cluster: auto, HOST:PORT, ray://HOST:10001"),
]
CalibrationOpt = Annotated[
    Path | None,
    typer.Option("--calibration", help="calibration.json from simsignal evaluate (up_prob)"),
]
GapOpt = Annotated[
    int | None,
    typer.Option(
        "--max-gap-days",
        help="drop a day whose previous trading day is more than this many business days back "
        "(default 4)",
    ),
]


def _settings(
    config: Path | None,
    *,
    redis_url: str | None = None,
    algorithms: str | None = None,
    k: int | None = None,
    shards: int | None = None,
    template: str | None = None,
    channels: str | None = None,
    dtw_band: int | None = None,
    motif_window: int | None = None,
    max_missing: int | None = None,
    max_gap_days: int | None = None,
    address: str | None = None,
    calibration: Path | None = None,
    pairs: list[str] | None = None,
) -> Settings:
    engine = {"algorithms": algorithms, "k": k, "shards": shards, "channels": channels,
              "dtw_band": dtw_band, "motif_window": motif_window,
              "calibration": str(calibration) if calibration else None}  # fmt: skip
    history = {"template": template, "max_missing_slots": max_missing,
               "max_gap_days": max_gap_days}  # fmt: skip
    try:
        signals = {"pairs": ",".join(pairs) if pairs else None}
        settings = load_settings(config, redis={"url": redis_url}, engine=engine,
                                 history=history, cluster={"address": address},
                                 signals=signals)  # fmt: skip
        if settings.engine.calibration:  # read now: a bad file fails before Ray starts
            from simsignal.engine.core.calibration import Calibration  # noqa: PLC0415

            Calibration.load(Path(settings.engine.calibration))
        return settings
    except ValidationError as err:
        console.print(Text("configuration error: ", style="red") + Text(describe(err)),
                      highlight=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(2) from None
    except (ValueError, FileNotFoundError) as err:
        console.print(Text("configuration error: ", style="red") + Text(str(err)),
                      highlight=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(2) from None


def _replay_and_report(
    settings: Settings,
    history: list[str],
    replay: Path,
    date: str | None,
    tickers: list[str] | None,
    speed: float,
    out: Path,
    chart_minute: int | None,
    verbose: bool = False,
    with_dashboard: bool = False,
) -> None:
    """Shared by demo and run: start, replay one day (default date: its first bar's), chart."""
    from simsignal.actors.session import Session  # noqa: PLC0415
    from simsignal.engine.adapters.feeds import minute_batches, paced, replay_rows  # noqa: PLC0415
    from simsignal.engine.adapters.redis_connect import masked  # noqa: PLC0415
    from simsignal.engine.app.chart import draw_fitting, draw_similarity  # noqa: PLC0415
    from simsignal.engine.app.live_view import (  # noqa: PLC0415
        LiveTable,
        load_table,
        summary_table,
        ticker_table,
    )

    if not replay.is_file():
        raise typer.BadParameter(f"{replay}: no such file", param_hint="--replay")
    rows = list(replay_rows(replay))  # read (and check the columns) before the cluster starts
    if not rows:
        raise typer.BadParameter(f"{replay} has no bars", param_hint="--replay")
    date = date or _first_date(rows, settings.history.template)
    wall0 = time.perf_counter()
    session = Session(settings, console)
    logs = None if verbose else out / "logs" / "engine.log"
    with _engine_output(logs):
        try:
            run = f"replay-{uuid.uuid4().hex[:12]}"
            session.start(history, date, tickers, chart_minute, run, out / SPILL_FILE)
            assert session.history is not None
            template = session.history.template
            console.print(load_table(session.history.report))
            console.print(ticker_table(session.history.report))
            _engine_state(session, settings, state="ready", date=date)  # before it says so
            console.print(
                f"[green]✓[/] ready for the first bar: cold start {session.cold_start_s:.1f}s, "
                f"{len(session.shards)} shard(s) holding "
                f"{sum(i['days'] for i in session.shard_info):,} days"
            )
            live_ticker = tickers[0] if tickers else (rows[0].get("ticker", "?") if rows else "?")
            if with_dashboard:
                page = _serve_dashboard(session.redis_url, settings, live_ticker)
                console.print(f"[green]✓[/] dashboard at [bold]{page}[/]", highlight=False)
            replay0 = time.perf_counter()
            coordinator = session.coordinator
            with LiveTable(console, live_ticker) as view:
                for batch in minute_batches(paced(iter(enumerate(rows)), speed)):
                    raws, receipts = [r for _, r in batch], [str(i) for i, _ in batch]
                    replies = _resilient(coordinator.on_bars, raws, "replay", receipts)
                    for raw, row in zip(raws, replies, strict=True):
                        if raw.get("ticker") == live_ticker or "rejected" in row:
                            view.add(row)
            replay_s = time.perf_counter() - replay0
            _engine_state(session, settings, state="stopped", bars_handled=len(rows))
            lost = _drain(coordinator, settings.redis.drain_seconds)
            stats = _resilient(coordinator.stats)
            chart = _resilient(coordinator.chart_data, live_ticker)
            out.mkdir(parents=True, exist_ok=True)
            chart_path = (
                draw_similarity(chart, template, live_ticker, date, out / "similarity.png")
                if chart
                else None
            )
            if chart:
                draw_fitting(chart, template, live_ticker, date, out / "fitting.png")
            prefix = settings.redis.prefix
            info = {
                "redis": masked(session.redis_url)
                + ("  (embedded: stops with this run)" if session.embedded else ""),
                "keys": f"{prefix}:signals:{live_ticker} (stream), "
                f"{prefix}:latest:{live_ticker} (hash), {prefix}:signals (pub/sub), "
                f"{prefix}:deadletter",
                "algorithms": ", ".join(settings.engine.algorithms)
                + f"  (k = {settings.engine.k})",
                "cold start": f"{session.cold_start_s:.1f} s (Ray up, history loaded and "
                + (
                    "sharded from the day-curves cache)"
                    if session.history.cached
                    else "sharded by Spark)"
                ),
                "shards": f"{len(session.shard_info)} holding "
                f"{sum(i['days'] for i in session.shard_info):,} days, "
                f"{sum(i['bytes'] for i in session.shard_info) / 2**20:.1f} MiB of float32 curves"
                + ("; per-minute fan-out: Ray Compiled Graph" if session.compiled else ""),
                "replay": f"{len(rows)} bars in {replay_s:.1f} s",
                "chart": f"{chart_path} and {chart_path.with_name('fitting.png')}"
                if chart_path
                else "(no snapshot: fewer minutes than --chart-minute)",
                "wall time": f"{time.perf_counter() - wall0:.1f} s",
            }
            console.print(summary_table(stats, info))
            _write_summary(out, session, stats, date=date, ticker=live_ticker,
                           wall_s=time.perf_counter() - wall0)  # fmt: skip
            if with_dashboard:
                _wait_for_interrupt(f"the dashboard stays at {page} until Ctrl-C")
        finally:
            session.close()
    _exit_if_lost(lost, stats)


def _wait_for_interrupt(message: str) -> None:
    console.print(message, highlight=False)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(1.0)


def _write_summary(out: Path, session: Any, stats: dict[str, Any], **extra: Any) -> None:
    """`OUT/summary.json`: the run's counts, start-up figures and load report (both feeds)."""
    import dataclasses  # noqa: PLC0415

    from simsignal.engine.adapters.redis_connect import masked  # noqa: PLC0415

    report = {k: v for k, v in stats.items() if k != "latencies_ms"}
    report.update(session.status(), redis_url=masked(session.redis_url), **extra)
    report["load"] = dataclasses.asdict(session.history.report)
    report["shard_memory"] = session.shard_memory()
    report["shard_info"] = session.shard_info  # each shard's days, bytes and Ray node at start
    report["shard_info_end"] = session.shards_now()  # …and at the end (a shard may have moved)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(report, indent=2))


def _first_date(rows: list[dict[str, str]], template: str) -> str:
    """The session date of a replay file: its first bar's, in exchange-local time."""
    from simsignal.engine.core.bars import BadBar, local_time  # noqa: PLC0415
    from simsignal.engine.core.templates import TEMPLATES  # noqa: PLC0415

    zone = TEMPLATES[template].zone if template in TEMPLATES else None
    try:
        return local_time(rows[0].get("ts", ""), zone).date().isoformat()
    except BadBar:
        return rows[0].get("ts", "")[:10]


@contextlib.contextmanager
def _engine_output(logs: Path | None) -> Iterator[None]:
    """Ray's, Spark's and the JVMs' output to `logs` (None: on the console)."""
    from rich.text import Text  # noqa: PLC0415

    from simsignal.actors.cluster import ClusterUnreachable  # noqa: PLC0415
    from simsignal.actors.fanout import ShardLost  # noqa: PLC0415
    from simsignal.actors.placement import ClusterTooSmall  # noqa: PLC0415
    from simsignal.actors.shared_paths import HistoryNotShared  # noqa: PLC0415
    from simsignal.engine.adapters.engine_logs import engine_output_to  # noqa: PLC0415
    from simsignal.engine.adapters.history.formats import MissingColumnError, NoHistoryError  # noqa: PLC0415
    from simsignal.engine.adapters.history.template_fit import TemplateMismatchError  # noqa: PLC0415
    from simsignal.engine.core.calibration import CalibrationError  # noqa: PLC0415

    if logs is not None:
        console.print(f"Ray, Spark and Java logs: {logs} (--verbose shows them here)")
    try:
        with engine_output_to(logs):
            yield
    except (TemplateMismatchError, MissingColumnError, NoHistoryError, FileNotFoundError) as err:
        console.print(Text("history error: ", style="red") + Text(_message(err)),
                      highlight=False)  # fmt: skip
        raise typer.Exit(2) from None
    except CalibrationError as err:
        console.print(Text("calibration error: ", style="red") + Text(str(err)), highlight=False)
        raise typer.Exit(2) from None
    except ConnectionError as err:  # the Redis URL given does not work (resolve_redis says why)
        console.print(Text("redis error: ", style="red") + Text(str(err)), highlight=False)
        raise typer.Exit(2) from None
    except (ClusterTooSmall, ClusterUnreachable, HistoryNotShared) as err:
        console.print(Text("cluster error: ", style="red") + Text(_message(err)),
                      highlight=False)  # fmt: skip
        raise typer.Exit(2) from None
    except ShardLost as err:  # the batch in flight stays unacknowledged; signals may be missing
        console.print(
            Text("engine stopped: ", style="red")
            + Text(_message(err))
            + Text(" — see README 'Scaling out' (losing a node)"),
            highlight=False,
        )
        raise typer.Exit(1) from None


def _engine_state(session: Any, settings: Any, **fields: Any) -> None:
    """`{prefix}:engine`: ready (with the start-up figures and the shards' nodes) or stopped."""
    from simsignal.engine.adapters.redis_store import RedisError, RedisStore  # noqa: PLC0415
    from simsignal.engine.core.keys import Keys  # noqa: PLC0415

    if fields.get("state") == "ready":
        fields = {**session.status(), **fields}
    status = RedisStore.connect(session.redis_url)
    with contextlib.suppress(RedisError):
        status.set_hash(Keys(settings.redis.prefix).engine, fields)
    status.close()


def _message(err: Exception) -> str:
    """An error's own message: an error raised in an actor arrives wrapped in its traceback."""
    return str(getattr(err, "cause", None) or err)


def _drain(coordinator: Any, seconds: float = 30.0) -> int:
    """Retry what Redis has not taken yet, for a while; then spill it. Returns signals not in Redis.

    Nothing is dropped: what stays unpublished goes to the spill file, which `simsignal
    flush` (or the next run) publishes.
    """
    deadline = time.monotonic() + seconds
    pending = _resilient(coordinator.flush)
    if pending:
        with console.status(f"Redis is unreachable: {pending} signal(s) buffered, retrying…"):
            while pending and time.monotonic() < deadline:
                time.sleep(1.0)
                pending = _resilient(coordinator.flush)
    spilled = _resilient(coordinator.spill)
    if spilled["spilled_total"]:
        console.print(
            f"[red]{spilled['spilled_total']} signal(s) could not be published[/]: Redis stayed "
            f"unreachable. They are kept in {spilled['path']}; `simsignal flush --spill "
            f"{spilled['path']}` (or the next run) publishes them.",
            highlight=False,
        )
    return int(spilled["spilled_total"]) + int(spilled["pending"])


def _exit_if_lost(lost: int, stats: dict[str, Any]) -> None:
    """A run whose signals did not all reach Redis does not exit 0 (exit code 1)."""
    refused = stats.get("refused_backfill") or []
    if refused:
        console.print(
            f"[red]{len(refused)} signal(s) refused as a back-fill[/]: their stream already holds "
            f"a later minute (e.g. {refused[0]}). Use another --redis-url or prefix for old dates.",
            highlight=False,
        )
    if lost or refused:
        raise typer.Exit(1)


def _resilient(method: Any, *args: Any, seconds: float = 120.0) -> Any:
    """`ray.get(method.remote(*args))`, sent again while Ray restarts a coordinator that died.

    Safe to repeat: a restarted coordinator resumes from its journal, and a batch sent again
    skips the bars the journal already holds.
    """
    import ray  # noqa: PLC0415
    from ray.exceptions import ActorUnavailableError, RayActorError  # noqa: PLC0415

    deadline, told = time.monotonic() + seconds, False
    while True:
        try:
            return ray.get(method.remote(*args))
        except (RayActorError, ActorUnavailableError) as err:
            if time.monotonic() > deadline:  # restarts used up, or it cannot start again
                raise err from None
            if not told:
                console.print("[yellow]the coordinator died: Ray is restarting it, and it "
                              "resumes from the journal[/]")  # fmt: skip
                told = True
            time.sleep(0.5)


@app.command()
def demo(
    years: Annotated[float, typer.Option(help="years of synthetic history")] = 10.0,
    speed: SpeedOpt = 0.0,
    data: Annotated[Path, typer.Option(help="cache for the synthetic data")] = Path("data"),
    out: OutOpt = Path("out"),
    redis_url: RedisOpt = None,
    algorithms: AlgoOpt = None,
    k: KOpt = None,
    shards: ShardsOpt = None,
    channels: ChannelsOpt = None,
    dtw_band: BandOpt = None,
    motif_window: WindowOpt = None,
    chart_minute: ChartOpt = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
    with_dashboard: Annotated[
        bool, typer.Option("--dashboard", help="serve the dashboard and print its URL")
    ] = False,
    address: AddressOpt = None,
) -> None:
    """Synthetic index history → RayDP → shards; replay the held-back day; chart and summary."""
    from simsignal.engine.adapters.synthetic import write_demo_data  # noqa: PLC0415
    from simsignal.engine.core.templates import get_template  # noqa: PLC0415

    settings = _settings(
        config, redis_url=redis_url, algorithms=algorithms, k=k, shards=shards,
        channels=channels, dtw_band=dtw_band, motif_window=motif_window, address=address,
    )  # fmt: skip
    template = get_template(
        "cn" if settings.history.template == "auto" else settings.history.template
    )
    with console.status(
        f"making {years:g} years of synthetic {template.name} minute bars (cached)…"
    ):
        history, replay, date = write_demo_data(data, template, years)
    console.print(f"[green]✓[/] synthetic history {history} (replay day {date}: {replay})")
    if with_dashboard:  # the engine draws the demo's ticker for the page
        views = (*settings.dashboard.view_tickers, DEMO_TICKER)
        settings = settings.model_copy(
            update={"dashboard": settings.dashboard.model_copy(update={"view_tickers": views})}
        )
    _replay_and_report(settings, [str(history)], replay, date, None, speed, out, chart_minute,
                       verbose, with_dashboard)  # fmt: skip


@app.command()
def run(
    history: Annotated[
        list[str], typer.Option("--history", help="CSV/Parquet files, globs or directories")
    ],
    more_history: Annotated[
        list[str] | None, typer.Argument(help="more history paths", show_default=False)
    ] = None,
    feed: Annotated[str, typer.Option(help="replay | redis")] = "replay",
    replay: Annotated[Path | None, typer.Option(help="the day to replay (feed replay)")] = None,
    date: Annotated[
        str | None, typer.Option(help="session date YYYY-MM-DD; history is what came before")
    ] = None,
    ticker: Annotated[list[str] | None, typer.Option(help="only this ticker (repeatable)")] = None,
    template: TemplateOpt = None,
    max_missing: MissingOpt = None,
    max_gap_days: GapOpt = None,
    speed: SpeedOpt = 0.0,
    algorithms: AlgoOpt = None,
    k: KOpt = None,
    shards: ShardsOpt = None,
    channels: ChannelsOpt = None,
    dtw_band: BandOpt = None,
    motif_window: WindowOpt = None,
    redis_url: RedisOpt = None,
    chart_minute: ChartOpt = None,
    out: OutOpt = Path("out"),
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
    address: AddressOpt = None,
    calibration: CalibrationOpt = None,
    pair: Annotated[
        list[str] | None,
        typer.Option(help="pair trading: the spread A~B (repeatable; signals.pairs)"),
    ] = None,
) -> None:
    """Load history before --date; replay a day (--feed replay) or follow Redis (--feed redis)."""
    settings = _settings(
        config,
        calibration=calibration,
        pairs=pair,
        redis_url=redis_url,
        algorithms=algorithms,
        k=k,
        shards=shards,
        template=template,
        channels=channels,
        dtw_band=dtw_band,
        motif_window=motif_window,
        max_missing=max_missing,
        max_gap_days=max_gap_days,
        address=address,
    )
    paths = [*history, *(more_history or [])]
    if feed == "replay":
        if replay is None:
            raise typer.BadParameter("--feed replay needs --replay PATH", param_hint="--replay")
        _replay_and_report(settings, paths, replay, date, ticker, speed, out, chart_minute, verbose)
    elif feed == "redis":
        logs = None if verbose else out / "logs" / "engine.log"
        with _engine_output(logs):
            _follow_redis(settings, paths, date or time.strftime("%Y-%m-%d"), ticker, out)
    else:
        raise typer.BadParameter(f"{feed!r}: use replay or redis", param_hint="--feed")


def _follow_redis(
    settings: Settings, history: list[str], date: str, tickers: list[str] | None, out: Path
) -> None:
    """Wait on the bar streams until SIGINT/SIGTERM, then shut down cleanly."""
    from simsignal.actors.session import Session  # noqa: PLC0415
    from simsignal.engine.adapters.redis_connect import masked  # noqa: PLC0415
    from simsignal.engine.app.live_view import load_table, summary_table, ticker_table  # noqa: PLC0415

    session = Session(settings, console)
    try:
        session.start(history, date, tickers, spill=out / SPILL_FILE)
        assert session.history is not None
        console.print(load_table(session.history.report))
        console.print(ticker_table(session.history.report))
        names = tickers or sorted(session.history.last_close)
        keys = ", ".join(f"{settings.redis.prefix}:bars:{t}" for t in names[:5])
        console.print(
            f"[green]✓[/] cold start {session.cold_start_s:.1f}s; reading {keys}"
            f"{' …' if len(names) > 5 else ''} (Ctrl-C to stop)"
        )
        coordinator = session.coordinator

        def stop(*_: Any) -> None:
            coordinator.stop.remote()

        signals_.signal(signals_.SIGINT, stop)
        signals_.signal(signals_.SIGTERM, stop)
        _engine_state(session, settings, state="ready", date=date)
        handled = _follow(coordinator, names)
        lost = _drain(coordinator, settings.redis.drain_seconds)
        _engine_state(session, settings, state="stopped", bars_handled=handled)
        console.print(f"stopped after {handled} bars")
        stats = _resilient(coordinator.stats)
        console.print(summary_table(stats, {"redis": masked(session.redis_url), "date": date}))
        _write_summary(out, session, stats, date=date, bars_handled=handled)
    finally:
        session.close()
    _exit_if_lost(lost, stats)


def _follow(coordinator: Any, names: list[str], every_s: float = 30.0) -> int:
    """Run the feed loop until it returns; say so while Redis fails; rerun it after a restart."""
    import ray  # noqa: PLC0415
    from ray.exceptions import RayActorError  # noqa: PLC0415

    handled, said = 0, 0.0
    loop = coordinator.run_redis_feed.remote(names)
    while True:
        try:
            done, _ = ray.wait([loop], timeout=5.0)
            if done:
                return handled + int(ray.get(loop))
            health = ray.get(coordinator.health.remote(), timeout=30)
        except RayActorError:
            console.print("[yellow]the coordinator died: Ray restarted it; it resumes from the "
                          "journal and the consumer group[/]")  # fmt: skip
            time.sleep(1.0)
            loop = coordinator.run_redis_feed.remote(names)
            continue
        except ray.exceptions.GetTimeoutError:
            continue
        if health["failing_s"] > 5 and time.monotonic() - said > every_s:
            said = time.monotonic()
            console.print(
                f"[red]Redis has been failing for {health['failing_s']:.0f} s[/] "
                f"({health['last_error']}): {health['pending']:,} signal(s) held in memory "
                f"(limit {health['max_pending']:,}, then spilled to {health['spill']}), "
                f"{health['spilled']:,} spilled so far",
                highlight=False, markup=True,
            )  # fmt: skip


@app.command()
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

    settings = _settings(config, redis_url=redis_url)
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


@app.command()
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
    if counts and address:
        raise typer.BadParameter("--nodes starts its own clusters: not with --address",
                                 param_hint="--address")  # fmt: skip
    result = run_bench(
        Workload(workload, n, years), data=data, out=out, doc=doc, minutes=minutes,
        shards=shards or 2, all_algorithms=all_algorithms, say=console.print,
        command="simsignal " + " ".join(sys.argv[1:]), nodes=counts, address=address,
    )  # fmt: skip
    for label, r in result["runs"].items():
        console.print(
            f"{label}: minute batch p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"max {r['max_ms']:.1f} ms; cold start {r['cold_start_s']:.1f} s; "
            f"loader {r['bars_per_s']:,.0f} bars/s; idle {r['idle_cores']:.2f} cores"
        )
    console.print(f"wrote {out}/bench-{result['workload']['key']}.json and .png"
                  + (f", updated {doc}" if doc else ""))  # fmt: skip


@app.command()
def evaluate(
    history: Annotated[
        list[str], typer.Option("--history", help="CSV/Parquet files, globs or directories")
    ],
    start: Annotated[str, typer.Option("--from", help="first test day YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="last test day YYYY-MM-DD")],
    more_history: Annotated[
        list[str] | None, typer.Argument(help="more history paths", show_default=False)
    ] = None,
    ticker: Annotated[list[str] | None, typer.Option(help="only this ticker (repeatable)")] = None,
    template: TemplateOpt = None,
    at: Annotated[
        str, typer.Option("--at", help="checkpoint minutes, comma separated, or 'all'")
    ] = "30,60,120,180",
    algorithms: AlgoOpt = None,
    k: KOpt = None,
    cost_bps: Annotated[
        float, typer.Option("--cost-bps", help="cost per trade and side, basis points")
    ] = 1.0,
    out: Annotated[Path, typer.Option("--out", help="default folder of the three files")] = Path(
        "out"
    ),
    json_path: Annotated[
        Path | None, typer.Option("--json", help="the report (default OUT/evaluation.json)")
    ] = None,
    html_path: Annotated[
        Path | None, typer.Option("--html", help="the plots (default OUT/evaluation.html)")
    ] = None,
    calibration_path: Annotated[
        Path | None,
        typer.Option("--calibration", help="fitted up_prob calibration (OUT/calibration.json)"),
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="also write the four plots as PNGs here")
    ] = None,
    pair: Annotated[
        list[str] | None, typer.Option(help="also score the spread A~B (repeatable)")
    ] = None,
    max_missing: MissingOpt = None,
    max_gap_days: GapOpt = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Walk-forward evaluation: every test day forecast from earlier days only, honestly scored."""
    from datetime import date, timedelta  # noqa: PLC0415

    from simsignal.engine.app.evaluation.console import evaluate_and_write  # noqa: PLC0415
    from simsignal.engine.app.evaluation.report import checkpoints  # noqa: PLC0415
    from simsignal.engine.app.evaluation.walk_forward import WalkConfig  # noqa: PLC0415
    from simsignal.engine.core.derived import RebalanceRule, TimingRule  # noqa: PLC0415

    days = {}
    for flag, value in (("--from", start), ("--to", end)):
        try:
            days[flag] = date.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not a date YYYY-MM-DD", param_hint=flag
            ) from None
    if days["--from"] > days["--to"]:
        raise typer.BadParameter(f"--from {start} is after --to {end}", param_hint="--from")
    settings = _settings(config, algorithms=algorithms, k=k, template=template,
                         max_missing=max_missing, max_gap_days=max_gap_days,
                         pairs=pair)  # fmt: skip
    try:
        checkpoints(at, 390)  # the longest session: checked again against the template's
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--at") from None
    if set(settings.engine.channels) != {"price"}:
        console.print("note: evaluate scores the price channel only; other channels are ignored")
    before = (days["--to"] + timedelta(days=1)).isoformat()
    curves, slots_template = _curves_in_process(
        settings, [*history, *(more_history or [])], before, ticker, out, verbose
    )
    try:
        minutes = checkpoints(at, slots_template.slots)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--at") from None
    walk = WalkConfig(tuple(settings.engine.algorithms), settings.engine.k, slots_template,
                      settings.engine.pooled, settings.engine.params, minutes,
                      settings.input.max_move, settings.signals.pairs)  # fmt: skip
    paths = {"json": json_path or out / "evaluation.json",
             "html": html_path or out / "evaluation.html",
             "calibration": calibration_path or out / "calibration.json"}  # fmt: skip
    if plots:
        paths["plots"] = plots
    try:
        sig = settings.signals
        rules = (
            TimingRule(sig.prob_margin, sig.min_edge),
            RebalanceRule(sig.cap, sig.max_turnover),
        )
        evaluate_and_write(console, curves, walk, start, end, ticker, cost_bps, paths, *rules)
    except ValueError as err:
        console.print(f"[red]evaluate:[/] {err}", highlight=False)
        raise typer.Exit(2) from None


def _curves_in_process(
    settings: Settings, paths: list[str], before: str, tickers: list[str] | None, out: Path,
    verbose: bool,
) -> tuple[Any, Any]:  # fmt: skip
    """History strictly before `before`, loaded as `run` loads it, as day curves in this process.

    Ray and Spark stop once the curves are here: evaluate and chart need neither afterwards.
    """
    from simsignal.actors.session import Session  # noqa: PLC0415

    logs = None if verbose else out / "logs" / "engine.log"
    with _engine_output(logs):
        session = Session(settings, console)
        try:
            session.load(paths, before, tickers)
            assert session.history is not None
            return session.curves(), session.history.template
        finally:
            session.close()


@app.command()
def chart(
    history: Annotated[
        list[str], typer.Option("--history", help="CSV/Parquet files, globs or directories")
    ],
    day: Annotated[str, typer.Option("--date", help="the past day to draw, YYYY-MM-DD")],
    more_history: Annotated[
        list[str] | None, typer.Argument(help="more history paths", show_default=False)
    ] = None,
    ticker: Annotated[
        str | None, typer.Option(help="the ticker (default: the first in the history)")
    ] = None,
    minute: Annotated[
        int | None, typer.Option(help="minute of similarity.png (default: mid-session)")
    ] = None,
    template: TemplateOpt = None,
    algorithms: AlgoOpt = None,
    k: KOpt = None,
    out: Annotated[Path, typer.Option("--out", help="where the two PNGs go")] = Path("out"),
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Draw a past day as the engine saw it: similarity.png (one minute) and fitting.png (all)."""
    from datetime import date, timedelta  # noqa: PLC0415

    from simsignal.engine.app.chart import draw_fitting, draw_similarity  # noqa: PLC0415
    from simsignal.engine.app.evaluation.walk_forward import WalkConfig, day_chart  # noqa: PLC0415

    try:
        before = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    except ValueError:
        raise typer.BadParameter(f"{day!r} is not a date YYYY-MM-DD", param_hint="--date") from None
    settings = _settings(config, algorithms=algorithms, k=k, template=template)
    tickers = [ticker] if ticker else None
    curves, tpl = _curves_in_process(
        settings, [*history, *(more_history or [])], before, tickers, out, verbose
    )
    name = ticker or str(curves.tickers[0])
    at = minute or tpl.slots // 2
    if not 1 <= at <= tpl.slots:
        raise typer.BadParameter(f"{at} is outside 1..{tpl.slots}", param_hint="--minute")
    walk = WalkConfig(tuple(settings.engine.algorithms), settings.engine.k, tpl,
                      settings.engine.pooled, settings.engine.params)  # fmt: skip
    try:
        data = day_chart(curves, walk, day, name, at)
    except ValueError as err:
        console.print(f"[red]chart:[/] {err}", highlight=False)
        raise typer.Exit(2) from None
    paths = (draw_similarity(data, tpl, name, day, out / "similarity.png"),
             draw_fitting(data, tpl, name, day, out / "fitting.png"))  # fmt: skip
    console.print(f"[green]✓[/] wrote {paths[0]} and {paths[1]}")


@app.command()
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

    settings = _settings(config, redis_url=redis_url)
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


@app.command()
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

    settings = _settings(config, redis_url=redis_url)
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


def _serve_dashboard(url: str, settings: Settings, ticker: str) -> str:
    """The dashboard in a thread of this process (the demo's --dashboard); returns its URL."""
    import threading  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    from simsignal.engine.app.dashboard.app import make_app  # noqa: PLC0415

    d = settings.dashboard
    server = uvicorn.Server(uvicorn.Config(make_app(url, settings.redis.prefix), host=d.host,
                                           port=d.port, log_level="warning"))  # fmt: skip
    threading.Thread(target=server.run, name="dashboard", daemon=True).start()
    return f"http://{d.host}:{d.port}/?ticker={ticker}"


@app.command()
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
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    redis_url: RedisOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print signals as they arrive (with --group, each is acknowledged once printed)."""
    from simsignal.config.settings import DEFAULT_REDIS_URL  # noqa: PLC0415
    from simsignal.engine.adapters.redis_connect import masked  # noqa: PLC0415
    from simsignal.engine.adapters.subscriber import SignalReader  # noqa: PLC0415
    from simsignal.engine.core.signals import Signal  # noqa: PLC0415

    if not tickers and not all_tickers:
        raise typer.BadParameter("name a ticker or give --all", param_hint="TICKER")
    settings = _settings(config, redis_url=redis_url)
    url = settings.redis.url.get_secret_value() if settings.redis.url else DEFAULT_REDIS_URL
    err = Console(stderr=True)
    reader = SignalReader(
        url, None if all_tickers else tickers, algos=algo, group=group, consumer=consumer,
        from_start=from_start, prefix=settings.redis.prefix,
        say=lambda msg: err.print(f"[yellow]{masked(url)}:[/] {msg}", highlight=False),
    )  # fmt: skip
    prefix = settings.redis.prefix
    streams = f"{prefix}:signals:*" if all_tickers else ", ".join(
        f"{prefix}:signals:{t}" for t in tickers or [])  # fmt: skip
    err.print(
        f"reading {streams} at {masked(url)} ("
        + (f"group {group} as {consumer}, " if group else "")
        + ("from the first entry" if from_start else "new signals only")
        + (f", algorithms {', '.join(algo)}" if algo else "")
        + (f", stopping after {count}" if count else "") + "; Ctrl-C to stop)",
        highlight=False, soft_wrap=True,
    )  # fmt: skip

    def show(sig: Signal) -> None:
        if as_json:
            print(sig.to_json(), flush=True)
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


if __name__ == "__main__":
    app()
