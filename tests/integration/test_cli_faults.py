"""The CLI on an operator's worst day: Redis lost for good, bad history, hostile text.

Each engine here is `simsignal run` in a subprocess with its own Ray (and Spark on the first
start), against a real redis-server that the test stops and starts.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from rich.console import Console

from simsignal.engine.adapters.redis_server import RedisServer, free_port
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.adapters.synthetic import make_history
from simsignal.engine.app.live_view import LiveTable
from simsignal.engine.core.templates import get_template

CN = get_template("cn")
ALGOS = 4  # the default algorithms


# One history for the engines these tests start, written once per run, and one day-curves
# cache beside it: the first engine loads it through Spark, the later ones from the cache
# (a Spark load is about 20 s of each start). Under the run's Ray folder: gone after a pass.
SHARED = Path(os.environ.get("RAY_TMPDIR") or tempfile.mkdtemp()) / "shared-history"
SHARED_CACHE = {"SIMSIGNAL_HISTORY__CACHE_DIR": str(SHARED / "curves")}


def _data(tmp_path: Path, live_minutes: int, shared: bool = True) -> tuple[str, Path, Path]:
    """40 days of one index before the session date, and that day's first minutes.

    `shared`: the run's one history file (its curves cached across engines); else a copy of
    this test's own, for a test that must see Spark load it.
    """
    bars = make_history(CN, years=40 / 243, ticker="000300", seed=5)
    day = bars["datetime"].str[:10].iloc[-1]
    history, live = (SHARED if shared else tmp_path) / "h.parquet", tmp_path / "live.parquet"
    if not history.is_file():  # written whole, then renamed: tests may run side by side
        history.parent.mkdir(parents=True, exist_ok=True)
        part = history.with_name(f"{history.name}.{os.getpid()}")
        bars[~bars["datetime"].str.startswith(day)].to_parquet(part)
        with contextlib.suppress(FileExistsError):  # the first one stays (its curves cached)
            os.link(part, history)
        part.unlink()
    bars[bars["datetime"].str.startswith(day)].head(live_minutes).to_parquet(live)
    return day, history, live


class _Engine:
    """`simsignal <args>` in a subprocess; its output is collected line by line as it comes."""

    program: ClassVar[list[str]] = [sys.executable, "-m", "simsignal.engine.app.cli"]
    base: ClassVar[dict[str, str] | None] = None  # a wheel's environment instead of ours

    def __init__(self, args: list[str], cwd: Path, **env: str) -> None:
        self.proc = subprocess.Popen(
            [*self.program, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={**(os.environ if self.base is None else self.base), "COLUMNS": "160",
                            **({} if self.base else SHARED_CACHE), **env},
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, seconds: float = 300.0) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.out:
            assert self.proc.poll() is None or text in self.out, self.out[-3000:]
            assert time.monotonic() < deadline, f"no {text!r} in time: {self.out[-3000:]}"
            time.sleep(0.1)

    def finish(self, seconds: float = 300.0) -> int:
        try:
            code = self.proc.wait(timeout=seconds)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(timeout=10)
        return code


@pytest.mark.slow(seconds=25)
def test_redis_lost_for_good_exits_1_and_simsignal_flush_publishes_the_rest(
    tmp_path: Path,
) -> None:
    """Redis stops for good in the middle of a replay: the run keeps every signal it could not
    publish in OUT/spill.jsonl, says how many, and exits 1; `simsignal flush` then publishes
    them into the restarted server, and the stream holds every minute exactly once."""
    day, history, live = _data(tmp_path, 40)
    port, data_dir = free_port(), tmp_path / "redis"
    data_dir.mkdir()
    server = RedisServer(port=port, data_dir=str(data_dir))
    out = tmp_path / "out"
    engine = _Engine(["run", "--history", str(history), "--feed", "replay", "--replay", str(live),
                      "--date", day, "--ticker", "000300", "--k", "5", "--speed", "240",
                      "--redis-url", server.url, "--out", str(out)], tmp_path,
                     SIMSIGNAL_REDIS__DRAIN_SECONDS="2")  # fmt: skip
    try:
        engine.wait_for("ready for the first bar")
        there, deadline = RedisStore.connect(server.url), time.monotonic() + 120
        while there.length("simsignal:signals:000300") < 12 * ALGOS:  # 12 of the 40 minutes
            assert time.monotonic() < deadline and engine.proc.poll() is None, engine.out[-3000:]
            time.sleep(0.02)
        server.stop()
        code = engine.finish()
    finally:
        server.stop()
    assert code == 1, engine.out[-3000:]
    assert "could not be published" in engine.out and "simsignal flush" in engine.out
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["spilled"] < 40 * ALGOS
    assert summary["published"] + summary["spilled"] == 40 * ALGOS
    spill = out / "spill.jsonl"
    assert spill.is_file()

    server = RedisServer(port=port, data_dir=str(data_dir))  # back, with what it had (AOF)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "simsignal.engine.app.cli", "flush", "--spill", str(spill),
             "--redis-url", server.url], capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"published {summary['spilled']} new signal(s)" in done.stdout
        entries = RedisStore.connect(server.url).entries("simsignal:signals:000300")
        pairs = {(e.fields["minute"], e.fields["algo"]) for e in entries}
        assert len(entries) == len(pairs) == 40 * ALGOS
    finally:
        server.stop()


@pytest.mark.slow(seconds=20)
def test_following_redis_that_went_away_says_so_and_stops_on_sigterm(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    day, history, _ = _data(tmp_path, 5)
    port = free_port()
    server = RedisServer(port=port)
    args = ["run", "--history", str(history), "--feed", "redis", "--date", day,
            "--ticker", "000300", "--k", "5", "--redis-url", server.url,
            "--out", str(tmp_path / "out")]  # fmt: skip
    engine = _Engine(args, tmp_path, SIMSIGNAL_REDIS__DRAIN_SECONDS="1")
    try:
        engine.wait_for("Ctrl-C to stop")
        server.stop()
        engine.wait_for("Redis has been failing for", seconds=60)
        assert "no Redis server answers" not in engine.out  # the reason is Redis's own error
        t0 = time.monotonic()
        engine.proc.send_signal(signal.SIGTERM)
        code = engine.finish(seconds=120)
        assert time.monotonic() - t0 < 60
    finally:
        server.stop()
    assert code == 0, engine.out[-3000:]  # nothing was pending: nothing lost
    assert "stopped after 0 bars" in engine.out


@pytest.mark.slow(seconds=30)
def test_a_date_before_all_history_is_one_line_and_exit_2(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Parquet's statistics tell before Ray starts (a CSV history is refused after loading)."""
    _, history, live = _data(tmp_path, 5)
    done = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", "run", "--history", str(history),
         "--feed", "replay", "--replay", str(live), "--date", "2001-01-04", "--redis-url",
         redis_server.url], capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    first = min(pd.read_parquet(history, columns=["datetime"])["datetime"].str[:10])
    assert (f"history error: no usable history day before 2001-01-04 in {history} (its first "
            f"bar is on {first})") in " ".join(done.stdout.split())  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr and "Ray up" not in done.stdout


def test_an_empty_history_folder_fails_before_ray_starts(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "live.csv").write_text("ticker,datetime,open,high,low,close,volume\n"
                                       "000300,2024-04-26 09:30:00,1,1,1,1,1\n")  # fmt: skip
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", "run", "--history",
         str(tmp_path / "empty"), "--feed", "replay", "--replay", str(tmp_path / "live.csv")],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "history error: no CSV or Parquet files" in done.stdout
    assert "Ray up" not in done.stdout and time.monotonic() - t0 < 30


def test_markup_in_a_rejected_value_is_printed_as_text() -> None:
    """`[/x]` would end a rich style that was never opened: printed as markup, it raises."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    with LiveTable(console, "000300") as view:
        view.add({"rejected": "close='[/x] [bold]': not a plain decimal number"})
    assert "close='[/x] [bold]'" in buffer.getvalue()


def test_a_redis_user_missing_a_command_is_one_line_and_nothing_is_read(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """An ACL user without XACK: `run --feed redis` refuses at start with one line naming
    the command, exit 2, before Ray starts; the bars waiting in Redis are not touched."""
    import redis

    _, history, _ = _data(tmp_path, 1)
    admin = redis.Redis.from_url(redis_server.url)
    admin.flushall()
    admin.xadd("simsignal:bars:000300", {"ticker": "000300", "close": "1"})
    admin.execute_command("ACL", "SETUSER", "noack", "reset", "on", ">pw", "~simsignal:*",
                          "&simsignal:*", "+@all", "-xack")  # fmt: skip
    url = f"redis://noack:pw@127.0.0.1:{redis_server.port}/0"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "simsignal.engine.app.cli", "run", "--history", str(history),
             "--feed", "redis", "--ticker", "000300", "--redis-url", url],
            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
            env={**os.environ, "COLUMNS": "400"},
        )  # fmt: skip
    finally:
        admin.acl_deluser("noack")
    out = done.stdout + done.stderr
    assert done.returncode == 2, out[-3000:]
    [line] = [x for x in out.splitlines() if "redis error" in x]
    assert "noack:***@" in line and "pw@" not in out
    assert "may not run XACK (NOPERM)" in line and "+xack" in line
    assert "Traceback" not in out and "Ray up" not in out
    assert admin.xinfo_groups("simsignal:bars:000300") == []  # no group made, nothing read


@pytest.mark.parametrize(
    ("env", "args", "line"),
    [
        ({"SIMSIGNAL_ENGINE__K": "0"}, [], "engine.k = '0': Input should be greater than 0"),
        ({}, ["--algorithms", "sq,nope"], "engine.algorithms = 'sq,nope': unknown algorithm(s)"),
        ({"SIMSIGNAL_ENGINE__BATCH_DEADLINE_MS": "-1"}, [],
         "engine.batch_deadline_ms = '-1': Input should be greater than 0"),
    ],
)  # fmt: skip
def test_a_configuration_error_is_one_line_with_the_setting_and_value(
    tmp_path: Path, env: dict[str, str], args: list[str], line: str
) -> None:
    """Pydantic's several lines and its link become `configuration error: setting = value: why`."""
    done = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", "run", "--history", str(tmp_path),
         "--replay", str(tmp_path / "x.csv"), *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "80", **env},
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    [said] = [x for x in done.stdout.splitlines() if x.strip()]
    assert said.startswith("configuration error: " + line), said
    assert "pydantic" not in done.stdout and "validation error" not in done.stdout


def test_a_missing_replay_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", "run", "--history", str(tmp_path),
         "--replay", str(tmp_path / "nope.csv")],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert "nope.csv: no such file" in done.stdout + done.stderr
