"""`simsignal evaluate` and `simsignal chart`: the history as the engine saw it, in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from simsignal.config.settings import Settings
from simsignal.engine.app.cli.common import (
    AlgoOpt,
    ConfigOpt,
    GapOpt,
    KOpt,
    MissingOpt,
    TemplateOpt,
    VerboseOpt,
    console,
    engine_output,
    settings_from,
)


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
    on: Annotated[
        str,
        typer.Option(
            "--on",
            help="where the walk runs: shards (a market, on the shard actors),"
            " process (here, through the live minute pipeline) or auto (shards for "
            "2+ tickers)",
        ),
    ] = "auto",
    config: ConfigOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Walk-forward evaluation: every test day forecast from earlier days only, honestly scored."""
    from datetime import date, timedelta  # noqa: PLC0415

    from simsignal.actors.session import Session  # noqa: PLC0415
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
    settings = settings_from(config, algorithms=algorithms, k=k, template=template,
                         max_missing=max_missing, max_gap_days=max_gap_days,
                         pairs=pair)  # fmt: skip
    try:
        checkpoints(at, 390)  # the longest session: checked again against the template's
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--at") from None
    if set(settings.engine.channels) != {"price"}:
        console.print("note: evaluate scores the price channel only; other channels are ignored")
    if on not in ("auto", "shards", "process"):
        raise typer.BadParameter(f"{on!r} is not auto, shards or process", param_hint="--on")
    if on == "shards" and (settings.engine.pooled or settings.signals.pairs or at == "all"):
        raise typer.BadParameter("pooled runs, pairs and --at all are evaluated in one process",
                                 param_hint="--on")  # fmt: skip
    before = (days["--to"] + timedelta(days=1)).isoformat()
    paths = {"json": json_path or out / "evaluation.json",
             "html": html_path or out / "evaluation.html",
             "calibration": calibration_path or out / "calibration.json"}  # fmt: skip
    if plots:
        paths["plots"] = plots
    sig = settings.signals
    rules = (TimingRule(sig.prob_margin, sig.min_edge), RebalanceRule(sig.cap, sig.max_turnover))
    logs = None if verbose else out / "logs" / "engine.log"
    with engine_output(logs):
        session = Session(settings, console)
        try:
            session.load([*history, *(more_history or [])], before, ticker)
            assert session.history is not None
            slots_template, curves = session.history.template, session.curves()
            try:
                minutes = checkpoints(at, slots_template.slots)
            except ValueError as err:
                raise typer.BadParameter(str(err), param_hint="--at") from None
            walk = WalkConfig(tuple(settings.engine.algorithms), settings.engine.k,
                              slots_template, settings.engine.pooled, settings.engine.params,
                              minutes, settings.input.max_move, sig.pairs)  # fmt: skip
            if _on_shards(on, walk, session, curves):
                session.start_shards()
            else:
                session.close()  # the walk runs here: Ray and Spark are not needed any more
            evaluate_and_write(console, curves, walk, start, end, ticker, cost_bps, paths,
                               *rules, shards=session.shards)  # fmt: skip
        except ValueError as err:
            console.print(f"[red]evaluate:[/] {err}", highlight=False)
            raise typer.Exit(2) from None
        finally:
            session.close()


def _on_shards(on: str, walk: Any, session: Any, curves: Any) -> bool:
    """Where the walk runs: on the shard actors for a market (`--on auto`), else here.

    The shards search each ticker's own days, so they need every ticker's days on one shard:
    not so for pooled runs, pairs, `--at all`, or fewer tickers than shards (days dealt out).
    """
    if on == "process":
        return False
    fits = not (walk.pooled or walk.pairs or walk.checkpoints is None)
    by_day = session.history.report.by_day
    if on == "shards" and by_day:
        raise ValueError("fewer tickers than shards: their days are dealt out to several "
                         "shards, so the walk runs in one process (--on process)")  # fmt: skip
    return fits and not by_day and (on == "shards" or len(set(curves.tickers.tolist())) > 1)


def curves_in_process(
    settings: Settings, paths: list[str], before: str, tickers: list[str] | None, out: Path,
    verbose: bool,
) -> tuple[Any, Any]:  # fmt: skip
    """History strictly before `before`, loaded as `run` loads it, as day curves in this process.

    Ray and Spark stop once the curves are here: evaluate and chart need neither afterwards.
    """
    from simsignal.actors.session import Session  # noqa: PLC0415

    logs = None if verbose else out / "logs" / "engine.log"
    with engine_output(logs):
        session = Session(settings, console)
        try:
            session.load(paths, before, tickers)
            assert session.history is not None
            return session.curves(), session.history.template
        finally:
            session.close()


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
    settings = settings_from(config, algorithms=algorithms, k=k, template=template)
    tickers = [ticker] if ticker else None
    curves, tpl = curves_in_process(
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
