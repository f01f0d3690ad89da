"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright).

A day is fed bar by bar into a running engine (`simsignal run --feed redis`); the page must
show each new minute and its latest `pred_close` within a second of the signal reaching Redis.
The same engine then takes bad bars, an idle spell and the rest of the day, and stops on SIGINT.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simsignal.engine.adapters.redis_server import RedisServer, free_port
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.core.kinds import KINDS, Payload
from simsignal.engine.core.signals import Signal
from tests.integration.test_cli_e2e import ALGOS
from tests.integration.test_cli_faults import _data, _Engine

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "out" / "screenshots"  # one from every run (docs/dashboard.png: by hand)


def _wait_http(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.2)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing (a browser is not on PyPI, and
    Playwright's own download site is not reachable here), as `.ci/run` does."""
    found = shutil.which("chromium")
    if found:
        return found
    print("\ninstalling Debian's chromium for the dashboard's browser test…", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode:
            why = done.stderr.strip()[-300:]
            raise RuntimeError(f"{' '.join(command)} failed ({why}): install Debian's chromium "
                               "to run the dashboard's browser test")  # fmt: skip
    return shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.slow(seconds=25)
def test_a_followed_day_shows_on_the_page_parks_bad_bars_and_stops_on_sigint(
    redis_server: RedisServer, store: RedisStore, tmp_path: Path, chromium: str
) -> None:
    """One engine following Redis serves both sides of a live day.

    The page: the first minutes, fed bar by bar, each show with their latest `pred_close`
    within a second of the signal reaching Redis. The feed: a garbage entry and a bar sent
    twice are refused and parked, the bar after an idle spell is served on the same direct
    links, the rest of the day comes back to back, and SIGINT stops the engine cleanly.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    day, history, live = _data(tmp_path, 30)  # the run's shared history and curves cache
    bars, paced = pd.read_parquet(live), 8  # the first 8 minutes checked on the page
    url = redis_server.url
    args = ["run", "--history", str(history), "--feed", "redis", "--date", day,
            "--ticker", "000300", "--k", "5", "--redis-url", url,
            "--out", str(tmp_path / "out")]  # fmt: skip
    engine = _Engine(args, tmp_path, SIMSIGNAL_DASHBOARD__VIEW_TICKERS='["000300"]')
    port = free_port()
    page_server = subprocess.Popen(
        [sys.executable, "-m", "simsignal.engine.app.cli", "dashboard", "--port", str(port),
         "--redis-url", url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip

    def fields(bar: Any) -> dict[str, str]:
        return {"ticker": "000300", "ts": bar.datetime.replace(" ", "T"), "open": str(bar.open),
                "high": str(bar.high), "low": str(bar.low), "close": str(bar.close),
                "volume": str(bar.volume)}  # fmt: skip

    def signals_reach(n: int, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while store.length("simsignal:signals:000300") < n:
            assert time.monotonic() < deadline and engine.proc.poll() is None, engine.out[-3000:]
            time.sleep(0.005)

    try:
        engine.wait_for("Ctrl-C to stop")
        _wait_http(f"http://127.0.0.1:{port}/")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            said: list[str] = []  # the page's console and errors, for a failure's message
            page.on("console", lambda msg: said.append(f"console: {msg.text}"))
            page.on("pageerror", lambda err: said.append(f"error: {err}"))
            page.goto(f"http://127.0.0.1:{port}/?ticker=000300")
            page.wait_for_selector("#ticker option[value='000300']", state="attached")
            lags = []
            for m, bar in enumerate(bars.head(paced).itertuples(), start=1):
                store.add("simsignal:bars:000300", fields(bar))
                signals_reach(len(ALGOS) * m)
                arrived = time.monotonic()
                newest = [Signal.from_fields(e.fields)
                          for e in store.entries("simsignal:signals:000300")][-4:]  # fmt: skip
                sq = next(s for s in newest if s.algo == "sq")
                assert sq.minute == m
                shows = (
                    "([m, p]) => document.getElementById('minute').dataset.value === m &&"
                    " Number(document.getElementById('pred-close').dataset.value) === p &&"
                    " document.getElementById('latest-sq')?.dataset.minute === m"
                )
                try:
                    page.wait_for_function(shows, arg=[str(m), sq.pred_close], timeout=1000)
                except PlaywrightTimeout:
                    seen = page.evaluate(
                        "() => [document.getElementById('minute').dataset.value,"
                        " document.getElementById('pred-close').dataset.value]"
                    )
                    raise AssertionError(
                        f"minute {m} ({sq.pred_close!r}) not shown within 1 s:"
                        f" the page shows {seen}; {said[-5:]}"
                    ) from None
                lags.append(time.monotonic() - arrived)
                shown = page.inner_text("#pred-close")
                assert shown == f"{sq.pred_close * 100:+.3f}%"
            derived = [name for name, kind in KINDS.items() if kind.payload is Payload.DERIVED]
            page.wait_for_function(  # every derived kind, at the last minute, beside the signals
                "([kinds, m]) => kinds.every(k =>"
                " document.getElementById('derived-' + k)?.dataset.minute === m)",
                arg=[derived, str(paced)], timeout=1000,
            )  # fmt: skip
            assert page.locator("#chart canvas").count() == 1
            assert "minutes" in page.inner_text("#health")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            browser.close()
        print(f"\ndashboard lag after each signal: max {max(lags) * 1e3:.0f} ms", file=sys.stderr)
        assert (tmp_path / "dashboard.png").stat().st_size > 20_000
        # refused and parked: an entry that is not a bar, and the last bar sent again
        store.add("simsignal:bars:000300", {"json": "{garbage"})
        store.add("simsignal:bars:000300", fields(next(bars.iloc[paced - 1 :].itertuples())))
        time.sleep(2.0)  # idle past idle_after_s: the links stay open, nothing spins
        for bar in bars.iloc[paced:].itertuples():
            store.add("simsignal:bars:000300", fields(bar))
        signals_reach(len(bars) * len(ALGOS), seconds=240)
        engine.proc.send_signal(signal.SIGINT)
        code = engine.finish(seconds=120)
    finally:
        page_server.kill()
        if engine.proc.poll() is None:
            engine.proc.send_signal(signal.SIGINT)
            engine.finish(seconds=120)
    assert code == 0, engine.out[-3000:]
    assert f"stopped after {len(bars) + 2} bars" in engine.out
    assert store.length("simsignal:signals:000300") == len(bars) * len(ALGOS)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["bars_handled"] == len(bars) + 2 and summary["accepted"] == len(bars)
    assert summary["direct_links"] and summary["reconnects"] == 0  # one set of links all day
    kept = summary["load"]["per_ticker"]["000300"]["days_kept"]
    assert kept == 38  # 39 history days but the first (no previous close)
    assert store.length("simsignal:deadletter") == 2


def test_the_page_loads_nothing_from_the_internet() -> None:
    """The chart library is bundled (uPlot, MIT, with its licence); no CDN, no remote URL."""
    static = ROOT / "engine" / "app" / "dashboard" / "static"
    for name in ("index.html", "dashboard.js"):
        text = (static / name).read_text()
        assert "http://" not in text and "https://" not in text, name
    assert "MIT License" in (static / "uPlot-LICENSE.txt").read_text()


@pytest.mark.parametrize("host", ["127.0.0.1"])
def test_the_dashboard_binds_to_loopback_by_default(host: str) -> None:
    from simsignal.config.settings import load_settings

    assert load_settings().dashboard.host == host


@pytest.mark.slow(seconds=5)
def test_the_page_says_when_redis_is_away_and_goes_on_when_it_is_back(
    tmp_path: Path, chromium: str
) -> None:
    """Redis stops under an open page: the page says "Redis unreachable" with Redis's own
    reason (not a stale table), and shows the ticker's signals again once Redis is back."""
    from playwright.sync_api import sync_playwright

    port, data_dir = free_port(), tmp_path / "redis"
    data_dir.mkdir()
    server = RedisServer(port=port, data_dir=str(data_dir))
    page_port = free_port()
    page_server = subprocess.Popen(
        [sys.executable, "-m", "simsignal.engine.app.cli", "dashboard", "--port", str(page_port),
         "--redis-url", server.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    latest = {"sq": '{"minute": 7, "slot": "09:37", "pred_close": 0.001, "k": 5}'}
    try:
        RedisStore.connect(server.url).set_hash("simsignal:latest:000300", latest)
        _wait_http(f"http://127.0.0.1:{page_port}/")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{page_port}/?ticker=000300")
            page.wait_for_selector("#latest-sq", timeout=10_000)
            server.stop()
            page.wait_for_function(
                "() => document.getElementById('health').dataset.state === 'redis-away'",
                timeout=60_000,
            )
            said = page.inner_text("#health")
            assert said.startswith("Redis unreachable: Redis:"), said
            assert page.get_attribute("#health", "class") == "bad"
            server = RedisServer(port=port, data_dir=str(data_dir))  # back, with its AOF
            page.wait_for_function(
                "() => document.getElementById('health').dataset.state === 'ok'", timeout=60_000
            )
            assert page.get_attribute("#latest-sq", "data-minute") == "7"
            browser.close()
    finally:
        page_server.kill()
        server.stop()
