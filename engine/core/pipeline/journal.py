"""What one handled batch did, compact enough to write beside its signals.

The sink stores a `BatchRecord` in the same Redis transaction as the batch's signals and the
acknowledgement of its bars. A coordinator that starts again (after a crash, or a restart of
the engine on the same day) reads the day's records back and rebuilds today's curves from the
accepted bars alone: no bar is scored twice and none is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

# One accepted bar as the curves need it: ticker, slot, close, volume, amount, prev_close.
AcceptedBar = tuple[str, int, float, float, float, float]


@dataclass
class BatchRecord:
    """The accepted bars of a batch, every receipt it settled, and its rejection codes."""

    bars: list[AcceptedBar] = field(default_factory=list)
    receipts: list[tuple[str, str]] = field(default_factory=list)  # (source, receipt)
    rejected: list[str] = field(default_factory=list)  # BadBar.key per refused bar
    signals: int = 0

    def to_fields(self) -> dict[str, str]:
        """The journal entry's fields (JSON text)."""
        return {
            "bars": orjson.dumps(self.bars).decode(),
            "receipts": orjson.dumps(self.receipts).decode(),
            "rejected": orjson.dumps(self.rejected).decode(),
            "signals": str(self.signals),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> BatchRecord:
        """Parse a journal entry back (written by this module: trusted shape)."""
        return cls(
            bars=[(str(t), int(s), float(c), float(v), float(a), float(p))
                  for t, s, c, v, a, p in orjson.loads(fields.get("bars", "[]"))],
            receipts=[(str(a), str(b)) for a, b in orjson.loads(fields.get("receipts", "[]"))],
            rejected=[str(r) for r in orjson.loads(fields.get("rejected", "[]"))],
            signals=int(fields.get("signals", "0")),
        )  # fmt: skip
