"""What a run leaves behind for others: `OUT/summary.json` and the `{prefix}:engine` hash."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from simsignal.actors.replies import RunStats


def write_summary(out: Path, session: Any, stats: RunStats, **extra: Any) -> None:
    """`OUT/summary.json`: the run's counts, start-up figures and load report (both feeds)."""
    import dataclasses  # noqa: PLC0415

    from simsignal.actors import cluster  # noqa: PLC0415
    from simsignal.engine.adapters.redis_connect import masked  # noqa: PLC0415

    report = stats.report()
    report.update(session.status(), redis_url=masked(session.redis_url), **extra)
    report["load"] = dataclasses.asdict(session.history.report)
    report["shard_memory"] = session.shard_memory()
    # each shard's days, bytes and Ray node at start, and at the end (a shard may have moved)
    report["shard_info"] = [dataclasses.asdict(i) for i in session.shard_info]
    report["shard_info_end"] = [dataclasses.asdict(i) for i in session.shards_now()]
    report["java_copies_removed"] = list(cluster.REMOVED_JAVA_COPIES)  # Ray's, in /tmp/ray
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(report, indent=2))


def engine_state(session: Any, settings: Any, **fields: Any) -> None:
    """`{prefix}:engine`: ready (with the start-up figures and the shards' nodes) or stopped."""
    from simsignal.engine.adapters.redis_store import RedisError, RedisStore  # noqa: PLC0415
    from simsignal.engine.core.keys import Keys  # noqa: PLC0415

    if fields.get("state") == "ready":
        fields = {**session.status(), **fields}
    status = RedisStore.connect(session.redis_url)
    with contextlib.suppress(RedisError):
        status.set_hash(Keys(settings.redis.prefix).engine, fields)
    status.close()
