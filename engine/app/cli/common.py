"""What every `simsignal` command shares: the app, console, options, settings and errors.

The errors' one place: an engine error of any layer becomes one line and an exit code here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from simsignal.actors.cluster import LOOPBACK_ONLY
from simsignal.actors.replies import RunStats
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


def say(line: str) -> None:
    """A line for the operator (rich markup, no guessing of highlights)."""
    console.print(line, highlight=False)


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


def settings_from(  # noqa: D103 - the flags' settings; an error is one line and exit 2
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


@contextlib.contextmanager
def engine_output(logs: Path | None) -> Iterator[None]:
    """Ray's, Spark's and the JVMs' output to `logs` (None: on the console)."""
    from rich.text import Text  # noqa: PLC0415

    from simsignal.actors.cluster import ClusterUnreachable  # noqa: PLC0415
    from simsignal.actors.direct import LinkDown  # noqa: PLC0415
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
        console.print(Text("history error: ", style="red") + Text(message(err)),
                      highlight=False)  # fmt: skip
        raise typer.Exit(2) from None
    except CalibrationError as err:
        console.print(Text("calibration error: ", style="red") + Text(str(err)), highlight=False)
        raise typer.Exit(2) from None
    except ConnectionError as err:  # the Redis URL given does not work (resolve_redis says why)
        console.print(Text("redis error: ", style="red") + Text(str(err)), highlight=False)
        raise typer.Exit(2) from None
    except (ClusterTooSmall, ClusterUnreachable, HistoryNotShared, LinkDown) as err:
        console.print(Text("cluster error: ", style="red") + Text(message(err)),
                      highlight=False)  # fmt: skip
        raise typer.Exit(2) from None
    except ShardLost as err:  # the batch in flight stays unacknowledged; signals may be missing
        console.print(
            Text("engine stopped: ", style="red")
            + Text(message(err))
            + Text(" — see docs/operating.md, 'Scaling out' (losing a node)"),
            highlight=False,
        )
        raise typer.Exit(1) from None


def message(err: Exception) -> str:
    """An error's own message: an error raised in an actor arrives wrapped in its traceback."""
    return str(getattr(err, "cause", None) or err)


def exit_if_lost(lost: int, stats: RunStats) -> None:
    """A run whose signals did not all reach Redis does not exit 0 (exit code 1)."""
    refused = stats.refused_backfill
    if refused:
        console.print(
            f"[red]{len(refused)} signal(s) refused as a back-fill[/]: their stream already holds "
            f"a later minute (e.g. {refused[0]}). Use another --redis-url or prefix for old dates.",
            highlight=False,
        )
    if lost or refused:
        raise typer.Exit(1)
