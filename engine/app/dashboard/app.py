"""The dashboard's web app: one page, a JSON state per ticker, and server-sent events.

Everything it shows comes from Redis, never from the engine's memory: the latest entry of
every kind (`engine/core/kinds.py`) about the subject on display, a ticker or a pair (its
signals per algorithm, its timing and risk, the portfolio's rebalance), what the engine draws for it
(`{prefix}:view:{ticker}`: today's line, the neighbours' curves, the forecast path and band)
and the engine's health (`{prefix}:engine`). Each entry announced for the subject (any kind's
channel) or view (`{prefix}:views`) pushes a fresh state to the page. It writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from simsignal.engine.adapters.redis_store import RedisError, RedisStore
from simsignal.engine.core.announce import announced
from simsignal.engine.core.keys import Keys
from simsignal.engine.core.kinds import KINDS, Payload, of_signal

STATIC = Path(__file__).with_name("static")
HEARTBEAT_S = 15.0  # an SSE comment this often keeps proxies from closing an idle stream
RETRY_S = 1.0  # while Redis is away, the page hears so this often


def state_of(store: RedisStore, keys: Keys, ticker: str) -> dict[str, Any]:
    """What the page shows for one ticker (or pair `A~B`), read from Redis now.

    `latest`: its signals per algorithm (kind `signal`, or `pair`); `derived`: the newest
    entry of each derived kind about it (its `timing` and `risk`, the portfolio's `rebalance`).
    """
    view = store.get(keys.view(ticker))
    own = of_signal(ticker)
    latest = {algo: orjson.loads(p) for algo, p in store.hash(own.latest(keys, ticker)).items()}
    derived: dict[str, Any] = {}
    for kind in KINDS.values():
        if kind.payload is Payload.DERIVED:
            payload = store.field(kind.latest(keys, ticker), kind.latest_field(ticker))
            if payload is not None:
                derived[kind.name] = orjson.loads(payload)
    return {"ticker": ticker, "kind": own.name, "view": orjson.loads(view) if view else None,
            "latest": latest, "derived": derived, "health": store.hash(keys.engine)}  # fmt: skip


def subjects(store: RedisStore, keys: Keys) -> list[str]:
    """Every ticker and pair with a signal stream: what the page offers to watch."""
    names: list[str] = []
    for kind in KINDS.values():
        if kind.payload is Payload.SIGNAL:
            head = kind.stream(keys, "")
            names += [s.removeprefix(head) for s in store.streams_matching(kind.stream(keys, "*"))]
    return names


def make_app(url: str, prefix: str = "simsignal") -> Starlette:
    """The app for the Redis at `url` (one connection pool, shared by every request)."""
    keys, store = Keys(prefix), RedisStore.connect(url)

    async def index(_: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def tickers(_: Request) -> Response:
        try:
            names = await asyncio.to_thread(subjects, store, keys)
        except RedisError as err:
            return JSONResponse({"error": f"Redis: {err}", "tickers": []}, status_code=503)
        return JSONResponse({"tickers": names})

    async def state(request: Request) -> Response:
        ticker = request.query_params.get("ticker", "")
        try:
            return JSONResponse(await asyncio.to_thread(state_of, store, keys, ticker))
        except RedisError as err:
            return JSONResponse({"error": f"Redis: {err}"}, status_code=503)

    async def events(request: Request) -> Response:
        ticker = request.query_params.get("ticker", "")
        return StreamingResponse(_pushes(request, store, keys, ticker),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})  # fmt: skip

    routes = [
        Route("/", index),
        Route("/api/tickers", tickers),
        Route("/api/state", state),
        Route("/api/events", events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)


async def _pushes(request: Request, store: RedisStore, keys: Keys, ticker: str
                  ) -> AsyncIterator[str]:  # fmt: skip
    """The ticker's state now, then again each time one of its signals is announced.

    While Redis cannot be read the page gets `{"error": …}` once a second, and the state
    again as soon as Redis answers: the page says which, instead of going quiet.
    """
    while not await request.is_disconnected():
        try:
            async for event in _announced(request, store, keys, ticker):
                yield event
            return
        except RedisError as err:
            yield _event({"ticker": ticker, "error": f"Redis: {err}"})
            await asyncio.sleep(RETRY_S)


async def _announced(request: Request, store: RedisStore, keys: Keys, ticker: str
                     ) -> AsyncIterator[str]:  # fmt: skip
    yield _event(await asyncio.to_thread(state_of, store, keys, ticker))
    quiet = 0.0
    channels = dict.fromkeys(kind.channel(keys) for kind in KINDS.values())
    with store.subscription(*channels, keys.views) as sub:
        while not await request.is_disconnected():
            message = await asyncio.to_thread(store.next_message, sub, 1.0)
            if message is None:
                quiet += 1.0
                if quiet >= HEARTBEAT_S:
                    quiet = 0.0
                    yield ": still here\n\n"
                continue
            try:
                mine = any(e.get("ticker") == ticker for e in announced(message))
            except orjson.JSONDecodeError:
                mine = False  # not a signal: not for this page
            if mine:
                yield _event(await asyncio.to_thread(state_of, store, keys, ticker))


def _event(payload: dict[str, Any]) -> str:
    return f"data: {orjson.dumps(payload).decode()}\n\n"
