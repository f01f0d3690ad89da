"""Signal kinds as data: what each kind is about, what it carries, and where Redis keeps it.

A kind is one registry entry: its subject (a ticker, a pair `A~B`, the portfolio), its payload
(a `Signal`'s fields, or a `Derived` entry's), whether the run's counters count it as a signal,
and one naming rule for its stream, its latest hash and its announcement channel. Everything
that publishes or counts an entry asks its kind here, never a key's spelling; adding a kind
is one entry below (and the conformance test over `KINDS` says what else must know it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from simsignal.engine.core.keys import Keys
from simsignal.engine.core.pairs import is_pair


class Subject(StrEnum):
    """What an entry is about."""

    TICKER = "ticker"
    PAIR = "pair"  # a spread `A~B`
    PORTFOLIO = "portfolio"  # the live tickers together


class Payload(StrEnum):
    """What an entry carries."""

    SIGNAL = "signal"  # the Signal fields (engine/core/signals.py)
    DERIVED = "derived"  # a Derived entry (engine/core/derived.py)


KeyRule = Callable[[Keys, str], str]  # (keys, subject name) → a Redis key or channel


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of published entry and its naming rule."""

    name: str
    subject: Subject
    payload: Payload
    counted: bool  # a signal in the run's counters (else a derived entry)
    stream_of: KeyRule
    latest_of: KeyRule
    channel_of: KeyRule

    def stream(self, keys: Keys, subject: str = "") -> str:
        """The stream of this kind's entries about `subject` ("" for the portfolio)."""
        return self.stream_of(keys, subject)

    def latest(self, keys: Keys, subject: str = "") -> str:
        """The hash holding the newest entry (per algorithm, per ticker or `portfolio`)."""
        return self.latest_of(keys, subject)

    def channel(self, keys: Keys, subject: str = "") -> str:
        """The pub/sub channel announcing this kind's entries."""
        return self.channel_of(keys, subject)

    def latest_field(self, subject: str) -> str:
        """A derived entry's field in its latest hash: the subject, or `portfolio`."""
        return "portfolio" if self.subject is Subject.PORTFOLIO else subject


SIGNAL = Kind("signal", Subject.TICKER, Payload.SIGNAL, True,
              Keys.signals, Keys.latest, lambda k, _: k.channel)  # fmt: skip
PAIR = Kind("pair", Subject.PAIR, Payload.SIGNAL, False,
            Keys.pair, Keys.pair_latest, lambda k, _: k.pair_channel)  # fmt: skip
TIMING = Kind("timing", Subject.TICKER, Payload.DERIVED, False,
              Keys.timing, lambda k, _: k.timing_latest, lambda k, _: k.timing_channel)  # fmt: skip
REBALANCE = Kind("rebalance", Subject.PORTFOLIO, Payload.DERIVED, False,
                 lambda k, _: k.rebalance, lambda k, _: k.rebalance_latest,
                 lambda k, _: k.rebalance_channel)  # fmt: skip

RISK = Kind("risk", Subject.TICKER, Payload.DERIVED, False,
            Keys.risk, lambda k, _: k.risk_latest, lambda k, _: k.risk_channel)  # fmt: skip

KINDS: dict[str, Kind] = {k.name: k for k in (SIGNAL, PAIR, TIMING, REBALANCE, RISK)}


def of_signal(ticker: str) -> Kind:
    """A forecast's kind from its query name: a pair's spread (`A~B`) or a ticker's."""
    return PAIR if is_pair(ticker) else SIGNAL
