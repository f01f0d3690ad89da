"""Direct links between threads of this process: real sockets, no Ray."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import numpy as np
import pytest

from simsignal.actors.direct import DirectLinks, LinkDown, ShardServer

KEY = secrets.token_bytes(32)


class _Shard:
    """Answers a batch with each update's doubled values; counts its resets (the epoch)."""

    def __init__(self) -> None:
        self.epoch, self.steps = 0, 0
        self.lock = threading.Lock()

    def step(self, batch: list[Any], epoch: int) -> list[Any]:
        with self.lock:
            if epoch != self.epoch:
                raise RuntimeError("reset since this link opened")
            if batch == ["boom"]:
                raise ValueError("a bad batch")
            self.steps += 1
            return [np.asarray(values) * 2 for _, _, values in batch]


def _served(shard: _Shard, key: bytes = KEY) -> ShardServer:
    return ShardServer(shard.step, lambda: shard.epoch, "127.0.0.1", key)


def test_a_round_reaches_every_shard_and_returns_their_replies_in_order() -> None:
    shards = [_Shard(), _Shard()]
    servers = [_served(s) for s in shards]
    links = DirectLinks([s.address for s in servers], KEY, 10.0)
    batch = [("000300", 1, (0.5,)), ("600000", 1, (1.5,))]
    replies = links.round(batch)
    assert len(replies) == 2 and all(s.steps == 1 for s in shards)
    for reply in replies:
        np.testing.assert_array_equal(np.stack(reply), [[1.0], [3.0]])
    assert links.round([]) == [[], []]  # an empty batch, as at start
    links.close()


def test_an_error_a_wrong_secret_and_a_closed_shard_are_each_a_link_down() -> None:
    shard = _Shard()
    server = _served(shard)
    links = DirectLinks([server.address], KEY, 10.0)
    with pytest.raises(LinkDown, match=r"shard 0: ValueError: a bad batch"):
        links.round(["boom"])
    assert links.round([("t", 1, (1.0,))])[0][0] == 2.0  # the link still serves
    with pytest.raises(LinkDown, match=r"cannot open a direct link to the shard at 127\.0\.0\.1"):
        DirectLinks([server.address], secrets.token_bytes(32), 10.0)
    links.close()
    server.close()
    with pytest.raises(LinkDown, match="cannot open a direct link"):
        DirectLinks([server.address], KEY, 10.0)


def test_a_link_opened_before_a_reset_is_refused_and_a_new_one_serves() -> None:
    """A dead coordinator's batch must not land on the state its successor rebuilt."""
    shard = _Shard()
    server = _served(shard)
    old = DirectLinks([server.address], KEY, 10.0)
    old.round([])
    shard.epoch += 1  # the shard's queries were reset
    with pytest.raises(LinkDown, match="reset since this link opened"):
        old.round([("t", 1, (1.0,))])
    new = DirectLinks([server.address], KEY, 10.0)
    assert new.round([("t", 1, (1.0,))])[0][0] == 2.0
    assert shard.steps == 2  # the empty batch and the new link's: none from the stale link
    old.close()
    new.close()


def test_no_reply_in_time_is_a_link_down() -> None:
    shard = _Shard()
    server = _served(shard)
    links = DirectLinks([server.address], KEY, 0.2)
    busy = pytest.raises(LinkDown, match=r"shard 0 sent no reply in 0.2 s")
    with shard.lock, busy:  # the shard is busy past the timeout
        links.round([("t", 1, (1.0,))])
    links.close()
