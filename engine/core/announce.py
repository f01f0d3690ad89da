"""What a kind's channel says (contract v4): one message per commit, listing what it wrote.

Schema 3 announced every entry on its own, one PUBLISH each: a third of the three commands
every signal cost, and at market scale more than the signal. From schema 4 a commit announces
its new entries once per channel, `{"v": 4, "entries": [...]}`, each element the entry's JSON as
its latest hash holds it (native types, no neighbours, `id`: the stream entry that has them).
A commit of more than `ANNOUNCE_CHUNK` entries on a channel (a backlog sent after an outage) is
announced in several such messages, so that no message outgrows a subscriber's buffer.

Pub/sub is fire and forget: a reader that must not miss an entry reads the streams
(`SignalReader`); the announcement says when to look and what is new.
"""

from __future__ import annotations

from typing import Any

import orjson

from simsignal.engine.core.signals import SCHEMA_VERSION

ANNOUNCE_VERSION = SCHEMA_VERSION  # the contract's one version: entries and announcements
ANNOUNCE_CHUNK = 1000  # entries per message at most (~0.5 MB of signals)


def announced(message: str | bytes) -> list[dict[str, Any]]:
    """The entries a channel message announces: a schema-4 batch, or one schema-3 entry.

    Also reads the views channel's `{"ticker", "minute"}` notes (as one entry). Raises
    `orjson.JSONDecodeError` on text that is not JSON; anything else that is not an object
    announces nothing.
    """
    obj = orjson.loads(message)
    if not isinstance(obj, dict):
        return []
    entries = obj.get("entries")
    if isinstance(entries, list):
        return [e for e in entries if isinstance(e, dict)]
    return [obj]
