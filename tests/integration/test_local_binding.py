"""Local mode listens on loopback only: Ray, RayDP's JVMs and every metrics endpoint."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import psutil


def test_no_engine_process_listens_beyond_loopback(spark: Any) -> None:
    spark.range(10).count()  # Spark's executors are up and serving
    tree = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    listening = [c for c in psutil.net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN and c.pid in tree]  # fmt: skip
    names = {psutil.Process(c.pid).name() for c in listening}
    assert {"gcs_server", "raylet", "java"} <= names, names  # the servers were found at all

    def loopback(ip: str) -> bool:
        return ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback

    exposed = [(psutil.Process(c.pid).name(), c.laddr) for c in listening
               if not loopback(c.laddr.ip)]  # fmt: skip
    assert not exposed
