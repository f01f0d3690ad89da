"""Direct links: each minute's fan-out over a socket to every shard, beside Ray.

Why: a Ray Compiled Graph's readers spin while they wait (two idle shards kept ~2 cores
busy), so an idle engine had to tear its graph down and serve the next bar by classic calls,
2–5 ms a round. A shard that blocks on its own socket uses no CPU while it waits and answers a
round faster than either (measured here, two shards, one update: p50 0.28 ms against 0.65 ms
for the compiled graph and 1.97 ms for classic calls).

`multiprocessing.connection` (the standard library) carries length-prefixed pickles over TCP
and runs an HMAC challenge on the run's secret before anything is unpickled. Each shard
listens on its node's address; the coordinator sends a batch to every shard, then reads the
replies in order. Any failure (a shard died, a node went away, an error, no reply in time)
raises `LinkDown`: the fan-out closes the links, redoes the batch on classic Ray calls (which
restore a restarted shard) and connects again.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from multiprocessing.reduction import ForkingPickler
from typing import Any

log = logging.getLogger(__name__)
Address = tuple[str, int]


class LinkDown(RuntimeError):
    """A direct link failed: the batch must be redone on classic calls."""


class ShardServer:
    """A shard's end: answers every batch that arrives on a link with `step(batch, epoch)`.

    One thread accepts; each link is served by a thread of its own, so a coordinator that
    went away without closing its link cannot keep the next one from connecting. `epoch()`
    is read when a link opens and handed to every `step` on it: the shard refuses a batch
    from a link opened before its queries were last reset (a dead coordinator's batch must
    not land on the state its successor rebuilt). `step` serialises the shard's work.
    """

    def __init__(
        self, step: Callable[[Any, int], Any], epoch: Callable[[], int], host: str,
        authkey: bytes,
    ) -> None:  # fmt: skip
        self._step, self._epoch, self._authkey = step, epoch, authkey
        self._socket = socket.create_server((host, 0))
        self.address: Address = self._socket.getsockname()[:2]
        threading.Thread(target=self._accept, name="direct-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._socket.accept()
            except OSError:  # closed
                return
            link = Connection(sock.detach())
            _no_delay(link)
            threading.Thread(target=self._serve, args=(link,), name="direct-link",
                             daemon=True).start()  # fmt: skip

    def _serve(self, link: Connection) -> None:
        with link:
            try:
                deliver_challenge(link, self._authkey)  # the listener's side of the handshake
                answer_challenge(link, self._authkey)
                epoch = self._epoch()
                while True:
                    batch = link.recv()
                    try:
                        reply: tuple[str, Any] = ("ok", self._step(batch, epoch))
                    except Exception as err:  # the coordinator decides; the shard goes on
                        reply = ("error", f"{type(err).__name__}: {err}")
                    link.send(reply)
            except AuthenticationError:
                log.warning("a direct link with the wrong secret was refused")
            except (EOFError, OSError):
                pass  # the coordinator closed the link or went away

    def close(self) -> None:
        """Stop accepting links (shutdown wakes the thread blocked in accept)."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()


class DirectLinks:
    """The coordinator's end: one link per shard, in the shards' order."""

    def __init__(
        self, addresses: list[Address], authkey: bytes, reply_timeout_s: float,
        connect_timeout_s: float = 10.0,
    ) -> None:  # fmt: skip
        self.timeout = reply_timeout_s
        self.links: list[Connection] = []
        for host, port in addresses:
            try:
                sock = socket.create_connection((host, port), timeout=connect_timeout_s)
                sock.settimeout(None)  # the link itself blocks; `round` bounds the wait
                link = Connection(sock.detach())
                self.links.append(link)
                answer_challenge(link, authkey)  # the connecting side of the handshake
                deliver_challenge(link, authkey)
            except (OSError, AuthenticationError, EOFError) as err:
                self.close()
                raise LinkDown(f"cannot open a direct link to the shard at {host}:{port} "
                               f"(engine.direct_links): {err}") from None  # fmt: skip
            _no_delay(link)

    def round(self, batch: Any) -> list[Any]:
        """Send `batch` to every shard (pickled once), then each shard's reply."""
        message = bytes(ForkingPickler.dumps(batch))
        try:
            for link in self.links:
                link.send_bytes(message)
            replies = []
            for i, link in enumerate(self.links):
                if not link.poll(self.timeout):
                    raise LinkDown(f"shard {i} sent no reply in {self.timeout:g} s")
                status, value = link.recv()
                if status != "ok":
                    raise LinkDown(f"shard {i}: {value}")
                replies.append(value)
            return replies
        except (OSError, EOFError) as err:
            raise LinkDown(f"{type(err).__name__}: {err}") from None

    def close(self) -> None:
        """Close every link (each shard then waits for the next one)."""
        for link in self.links:
            link.close()
        self.links = []


def _no_delay(link: Connection) -> None:
    """Send each message at once: a large one goes as two writes, which Nagle would hold."""
    view = socket.socket(fileno=link.fileno())
    view.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    view.detach()  # the descriptor stays the link's
