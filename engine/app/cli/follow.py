"""`simsignal run --feed redis` (follow the bar streams until stopped) and `simsignal flush`."""

from __future__ import annotations

import signal as signals_
from pathlib import Path
from typing import Any

from simsignal.actors.engine_handle import EngineHandle
from simsignal.config.settings import Settings
from simsignal.engine.app.cli.common import (
    SPILL_FILE,
    console,
    exit_if_lost,
    say,
)
from simsignal.engine.app.cli.reporting import engine_state, write_summary


def follow_redis(
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
        assert session.coordinator is not None, "the session is started"
        engine = EngineHandle(session.coordinator, say)

        def stop(*_: Any) -> None:
            engine.stop()

        signals_.signal(signals_.SIGINT, stop)
        signals_.signal(signals_.SIGTERM, stop)
        engine_state(session, settings, state="ready", date=date)
        handled = engine.follow(names)
        lost = engine.drain(settings.redis.drain_seconds)
        engine_state(session, settings, state="stopped", bars_handled=handled)
        console.print(f"stopped after {handled} bars")
        stats = engine.stats()
        console.print(summary_table(stats, {"redis": masked(session.redis_url), "date": date}))
        write_summary(out, session, stats, date=date, bars_handled=handled)
    finally:
        session.close()
    exit_if_lost(lost, stats)
