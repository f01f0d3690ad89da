"""The one place the settings tree becomes the components' frozen configs."""

from __future__ import annotations

from pathlib import Path

from simsignal.actors.coordinator import CoordinatorConfig
from simsignal.config.settings import Settings
from simsignal.engine.adapters.history.loaded import LoadedHistory
from simsignal.engine.core.calibration import Calibration
from simsignal.engine.core.pipeline.ports import PipelineConfig


def coordinator_config(
    s: Settings,
    history: LoadedHistory,
    date: str,
    tickers: list[str] | None,
    redis_url: str,
    chart_minute: int | None = None,
    run: str = "live",
    spill_path: str | None = None,
    authkey: bytes | None = None,
) -> CoordinatorConfig:
    """The coordinator's frozen config (and its pipeline's), from the settings and the history."""
    pipeline = PipelineConfig(
        algorithms=tuple(s.engine.algorithms),
        k=s.engine.k,
        template=history.template.name,
        date=date,
        last_close=history.last_close,
        tickers=frozenset(tickers) if tickers else None,
        usable=None if s.engine.pooled else frozenset(history.usable),
        max_gap_days=s.history.max_gap_days,
        max_move=s.input.max_move,
        max_prev_close_gap=s.input.max_prev_close_gap,
        channels=tuple(s.engine.channels),
        params=s.engine.params,
        calibration=(
            Calibration.load(Path(s.engine.calibration)).check_slots(history.slots)
            if s.engine.calibration
            else None
        ),
        timing=s.signals.rules()[0],
        rebalance=s.signals.rules()[1],
        derived_algo=s.signals.algo,
        pairs=s.signals.pairs,
        risk=s.signals.risk,
    )
    return CoordinatorConfig(
        pipeline=pipeline,
        redis_url=redis_url,
        prefix=s.redis.prefix,
        retention_days=s.redis.retention_days,
        chart_minute=chart_minute,
        authkey=authkey,
        batch_deadline_s=s.engine.batch_deadline_ms / 1e3,
        run=run,
        max_pending=s.redis.max_pending_signals,
        spill_path=spill_path,
        view_tickers=frozenset(s.dashboard.view_tickers),
    )
