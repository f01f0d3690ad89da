"""`simsignal demo` and `simsignal run`: start the engine, feed it a day, report."""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer

from simsignal.actors.engine_handle import EngineHandle
from simsignal.config.settings import Settings
from simsignal.engine.app.cli.common import (
    DEMO_TICKER,
    SPILL_FILE,
    AddressOpt,
    AlgoOpt,
    BandOpt,
    CalibrationOpt,
    ChannelsOpt,
    ChartOpt,
    ConfigOpt,
    GapOpt,
    KOpt,
    MissingOpt,
    OutOpt,
    RedisOpt,
    ShardsOpt,
    SpeedOpt,
    TemplateOpt,
    VerboseOpt,
    WindowOpt,
    console,
    engine_output,
    exit_if_lost,
    say,
    settings_from,
)
from simsignal.engine.app.cli.follow import follow_redis
from simsignal.engine.app.cli.reporting import engine_state, write_summary


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

    settings = settings_from(
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
    replay_and_report(settings, [str(history)], replay, date, None, speed, out, chart_minute,
                       verbose, with_dashboard)  # fmt: skip


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
    settings = settings_from(
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
        replay_and_report(settings, paths, replay, date, ticker, speed, out, chart_minute, verbose)
    elif feed == "redis":
        logs = None if verbose else out / "logs" / "engine.log"
        with engine_output(logs):
            follow_redis(settings, paths, date or time.strftime("%Y-%m-%d"), ticker, out)
    else:
        raise typer.BadParameter(f"{feed!r}: use replay or redis", param_hint="--feed")


def replay_and_report(
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
    date = date or first_date(rows, settings.history.template)
    wall0 = time.perf_counter()
    session = Session(settings, console)
    logs = None if verbose else out / "logs" / "engine.log"
    with engine_output(logs):
        try:
            run = f"replay-{uuid.uuid4().hex[:12]}"
            session.start(history, date, tickers, chart_minute, run, out / SPILL_FILE)
            assert session.history is not None
            template = session.history.template
            console.print(load_table(session.history.report))
            console.print(ticker_table(session.history.report))
            engine_state(session, settings, state="ready", date=date)  # before it says so
            console.print(
                f"[green]✓[/] ready for the first bar: cold start {session.cold_start_s:.1f}s, "
                f"{len(session.shards)} shard(s) holding "
                f"{sum(i.days for i in session.shard_info):,} days"
            )
            live_ticker = tickers[0] if tickers else (rows[0].get("ticker", "?") if rows else "?")
            if with_dashboard:
                page = serve_dashboard(session.redis_url, settings, live_ticker)
                console.print(f"[green]✓[/] dashboard at [bold]{page}[/]", highlight=False)
            replay0 = time.perf_counter()
            assert session.coordinator is not None, "the session is started"
            engine = EngineHandle(session.coordinator, say)
            with LiveTable(console, live_ticker) as view:
                for batch in minute_batches(paced(iter(enumerate(rows)), speed)):
                    raws, receipts = [r for _, r in batch], [str(i) for i, _ in batch]
                    replies = engine.on_bars(raws, "replay", receipts)
                    for raw, row in zip(raws, replies, strict=True):
                        if raw.get("ticker") == live_ticker or "rejected" in row:
                            view.add(row)
            replay_s = time.perf_counter() - replay0
            engine_state(session, settings, state="stopped", bars_handled=len(rows))
            lost = engine.drain(settings.redis.drain_seconds)
            stats = engine.stats()
            chart = engine.chart_data(live_ticker)
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
                f"{sum(i.days for i in session.shard_info):,} days, "
                f"{sum(i.bytes for i in session.shard_info) / 2**20:.1f} MiB of float32 curves"
                + ("; per-minute fan-out: direct links" if session.direct else ""),
                "replay": f"{len(rows)} bars in {replay_s:.1f} s",
                "chart": f"{chart_path} and {chart_path.with_name('fitting.png')}"
                if chart_path
                else "(no snapshot: fewer minutes than --chart-minute)",
                "wall time": f"{time.perf_counter() - wall0:.1f} s",
            }
            console.print(summary_table(stats, info))
            write_summary(out, session, stats, date=date, ticker=live_ticker,
                           wall_s=time.perf_counter() - wall0)  # fmt: skip
            if with_dashboard:
                wait_for_interrupt(f"the dashboard stays at {page} until Ctrl-C")
        finally:
            session.close()
    exit_if_lost(lost, stats)


def wait_for_interrupt(message: str) -> None:
    """Keep the process (and the dashboard it serves) up until Ctrl-C."""
    console.print(message, highlight=False)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(1.0)


def first_date(rows: list[dict[str, str]], template: str) -> str:
    """The session date of a replay file: its first bar's, in exchange-local time."""
    from simsignal.engine.core.bars import BadBar, local_time  # noqa: PLC0415
    from simsignal.engine.core.templates import TEMPLATES  # noqa: PLC0415

    zone = TEMPLATES[template].zone if template in TEMPLATES else None
    try:
        return local_time(rows[0].get("ts", ""), zone).date().isoformat()
    except BadBar:
        return rows[0].get("ts", "")[:10]


def serve_dashboard(url: str, settings: Settings, ticker: str) -> str:
    """The dashboard in a thread of this process (the demo's --dashboard); returns its URL."""
    import threading  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    from simsignal.engine.app.dashboard.app import make_app  # noqa: PLC0415

    d = settings.dashboard
    server = uvicorn.Server(uvicorn.Config(make_app(url, settings.redis.prefix), host=d.host,
                                           port=d.port, log_level="warning"))  # fmt: skip
    threading.Thread(target=server.run, name="dashboard", daemon=True).start()
    return f"http://{d.host}:{d.port}/?ticker={ticker}"
