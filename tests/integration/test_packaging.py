"""The wheel a user installs, and the demo it runs: one distinct import package, defaults
inside, the locked runtime in a new virtualenv, and every minute of every algorithm published.

One test, because the README's first command is both: the demo from the wheel (with the
dashboard and an asyncio reader following it) is the demo test, and a second demo in the same
folder from the checkout checks that the cached data is reused and nothing is published twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest

from simsignal.actors.cluster import _java_library_copies
from simsignal.engine.adapters.redis_server import RedisServer, free_port
from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.adapters.subscriber import SignalReader
from tests.integration.test_cli_e2e import ALGOS, NOISE, _simsignal
from tests.integration.test_cli_faults import _Engine

ROOT = Path(__file__).resolve().parents[2]


def _user_env() -> dict[str, str]:
    """This environment as a user's shell would have it: no dev checkout on the path, and
    bytecode written (these machines set PYTHONDONTWRITEBYTECODE; a user's rarely does)."""
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in os.environ.items() if k not in dropped}


def _wheel_in_a_new_venv(tmp_path: Path) -> Path:
    """Build the wheel from a copy of the checkout, check what is in it, and install it with
    the locked runtime into a new virtualenv (the README's route for users); its bin folder."""
    dist, target = tmp_path / "dist", tmp_path / "venv"
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "out", "build", "dist", "*_cache", "__pycache__"))  # fmt: skip
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(source)], check=True)
    [wheel] = dist.glob("simsignal-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "simsignal",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    for inside in ("simsignal/config/default.toml", "simsignal/config/settings.py",
                   "simsignal/engine/app/cli/__init__.py", "simsignal/engine/core/commit.py",
                   "simsignal/engine/adapters/redis_store.py", "simsignal/actors/session.py",
                   "simsignal/engine/app/dashboard/static/index.html"):  # every layer  # fmt: skip
        assert inside in names, inside
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    venv_pip = [str(target / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    # The same hashed pins as `pip install --require-hashes -r requirements/main.txt`, by the
    # installer CI uses (its cache holds them after CI's own install), and compiled as pip
    # does by default: left to the first import, the demo's Ray processes, started side by
    # side, each compiled the same modules (~40 CPU-s more than the 29 compiling takes).
    uv = [str(Path(sys.executable).with_name("uv")), "pip", "install", "--quiet",
          "--compile-bytecode", "--python", str(target / "bin" / "python")]  # fmt: skip
    runtime = ["--require-hashes", "--index-strategy", "unsafe-best-match", "-r",
               str(ROOT / "requirements" / "main.txt")]  # fmt: skip
    # From uv's cache, which the dev install filled: online, uv finds the index's answer for
    # pyspark's 317 MB source "modified" (no cache validators here), fetches and builds it
    # again (16 s vs 0.5 s). Online only when the cache lacks a pin (a pip-made dev venv).
    if subprocess.run([*uv, "--offline", *runtime], env=_user_env(), check=False).returncode:
        subprocess.run([*uv, *runtime], env=_user_env(), check=True)
    subprocess.run([*uv, "--no-deps", str(wheel)], env=_user_env(), check=True)
    listed = subprocess.run([*venv_pip, "list", "--format=freeze"], capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    assert "pytest" not in listed and "hypothesis" not in listed  # nothing of the dev venv
    return target / "bin"


@pytest.mark.slow(seconds=125)
def test_the_wheel_in_a_new_virtualenv_runs_the_demo_and_publishes_every_minute(
    redis_server: RedisServer, store: RedisStore, tmp_path: Path
) -> None:
    """`simsignal demo --dashboard` from the wheel: the page is served beside the demo and
    stays up after it; an asyncio reader follows the replay (at --speed 0) and has heard
    every signal, in order, by the time the demo waits for Ctrl-C."""
    bin_dir, work = _wheel_in_a_new_venv(tmp_path), tmp_path / "elsewhere"
    work.mkdir()
    env = _user_env()
    where = subprocess.run(
        [str(bin_dir / "python"), "-c",
         "import simsignal.config.settings as s; print(s.DEFAULT_CONFIG)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(bin_dir.parent)) and Path(where).is_file()

    class _Wheel(_Engine):  # the wheel's own `simsignal`, in its environment
        program: ClassVar[list[str]] = [str(bin_dir / "simsignal")]
        base: ClassVar[dict[str, str] | None] = env

    url = redis_server.url
    reader = SignalReader(url, ["000300"], group="watch", from_start=True, block_ms=200)
    heard: list[tuple[str, str]] = []

    async def follow() -> None:
        async for sig in reader.aiter():
            heard.append((str(sig.minute), sig.algo))

    follower = threading.Thread(target=asyncio.run, args=(follow(),), daemon=True)
    follower.start()
    java_copies = {str(p) for p in _java_library_copies()}  # before: not the demo's
    port = free_port()
    try:
        demo = _Wheel(
            ["demo", "--redis-url", url, "--dashboard"], work, SIMSIGNAL_DASHBOARD__PORT=str(port)
        )
        demo.wait_for("stays at")
        ended = time.monotonic()
        assert f"dashboard at http://127.0.0.1:{port}/?ticker=000300" in demo.out
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state?ticker=000300") as got:
            state = json.loads(got.read())
        assert state["view"]["minute"] == 241 and len(state["latest"]) == len(ALGOS)
        assert set(state["derived"]) == {"timing", "rebalance", "risk"}
        assert state["derived"]["risk"]["minute"] == 241  # the last minute: nothing left
        assert (
            state["derived"]["risk"]["rv"] == 0.0 and state["derived"]["risk"]["algo"] == "closed"
        )
        demo.proc.send_signal(signal.SIGINT)
        assert demo.finish(seconds=120) == 0, demo.out[-3000:]
        while len(heard) < 241 * len(ALGOS) and time.monotonic() - ended < 5:
            time.sleep(0.05)
    finally:
        reader.stop()
        follower.join(timeout=10)
    for noise in NOISE:  # Ray's, Spark's and the JVMs' chatter goes to out/logs/engine.log
        assert noise not in demo.out, (noise, demo.out)
    entries = store.entries("simsignal:signals:000300")
    assert heard == [(e.fields["minute"], e.fields["algo"]) for e in entries]  # all, in order
    pairs = {(e.fields["minute"], e.fields["algo"]) for e in entries}
    assert len(entries) == len(pairs) == 241 * len(ALGOS)
    assert len(store.hash("simsignal:latest:000300")) == len(ALGOS)
    assert (work / "out" / "similarity.png").stat().st_size > 10_000
    assert (work / "out" / "summary.json").is_file() and (work / "data").is_dir()
    assert "p99" in demo.out
    # Ray's Java driver copies its library to /tmp/ray/<epoch ms>/ at each Spark start: the
    # demo removed its own copies (others' may come and go: tests run side by side)
    removed = json.loads((work / "out" / "summary.json").read_text())["java_copies_removed"]
    assert "Spark on Ray up" in demo.out and removed
    assert not any(Path(p).exists() for p in removed) and not set(removed) & java_copies
    # Again, from the checkout, in the same folder: the cached data and day curves are
    # reused (no Spark), and the same signals are not added twice.
    again = _simsignal(["demo", "--redis-url", url], work)
    assert "Spark not needed" in again
    assert store.length("simsignal:signals:000300") == 241 * len(ALGOS)
