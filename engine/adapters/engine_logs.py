"""Where Ray's, Spark's and the JVMs' own output goes: a log file, unless asked to show it.

Why at the file-descriptor level: the noise comes from C++ (Ray's core worker), Java (log4j
on stdout, Spark's shutdown on stderr) and Python's logging alike, and every child process
inherits the descriptors. The CLI's own output keeps a copy of the original stdout.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def engine_output_to(path: Path | None) -> Iterator[Path | None]:
    """Send fds 1 and 2 (and so every child's) to `path`; `sys.stdout` stays on the console.

    None leaves everything alone (--verbose).
    """
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    console, sys.stdout = sys.stdout, os.fdopen(os.dup(saved[1]), "w", buffering=1)
    with path.open("ab") as log:
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)
    try:
        yield path
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        sys.stdout.close()
        sys.stdout = console
