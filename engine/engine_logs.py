"""Where Ray's, Spark's and the JVMs' own output goes: a log file, unless asked to show it.

Why at the file-descriptor level: the noise comes from C++ (Ray's core worker), Java (log4j,
Spark's shutdown) and Python's logging alike, and every child process inherits stderr. The
CLI's own output goes to stdout (rich), so it stays on the console.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def stderr_to(path: Path | None) -> Iterator[Path | None]:
    """Send this process's stderr, and its children's, to `path` (None: leave it alone)."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield path
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
