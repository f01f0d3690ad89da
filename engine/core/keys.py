"""Redis key names of the contract in DESIGN.md, all under one configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """`simsignal:*` names; the prefix comes from settings."""

    prefix: str = "simsignal"

    def bars(self, ticker: str) -> str:
        """Input stream of one ticker's bars."""
        return f"{self.prefix}:bars:{ticker}"

    def signals(self, ticker: str) -> str:
        """Output stream of one ticker's signals."""
        return f"{self.prefix}:signals:{ticker}"

    def latest(self, ticker: str) -> str:
        """Hash: algo → newest signal (JSON)."""
        return f"{self.prefix}:latest:{ticker}"

    @property
    def channel(self) -> str:
        """Pub/sub channel carrying every signal as JSON."""
        return f"{self.prefix}:signals"

    @property
    def deadletter(self) -> str:
        """Stream of rejected input with the reason."""
        return f"{self.prefix}:deadletter"

    @property
    def engine(self) -> str:
        """Hash: the running engine's state and start-up figures (health, benchmarks)."""
        return f"{self.prefix}:engine"

    @property
    def group(self) -> str:
        """The engine's consumer group on every bar stream."""
        return f"{self.prefix}-engine"

    def journal(self, date: str, run: str) -> str:
        """Stream: one entry per handled batch of a session (what a restart rebuilds from)."""
        return f"{self.prefix}:journal:{date}:{run}"

    def counts(self, date: str, run: str) -> str:
        """Hash: what a run's commits really did (published, derived, repeats, dead, batches)."""
        return f"{self.prefix}:counts:{date}:{run}"

    def view(self, ticker: str) -> str:
        """JSON: what the dashboard draws for a ticker on display (today, neighbours' curves)."""
        return f"{self.prefix}:view:{ticker}"

    @property
    def views(self) -> str:
        """Pub/sub channel: `{"ticker": …, "minute": …}` each time a view is written."""
        return f"{self.prefix}:views"

    def timing(self, ticker: str) -> str:
        """Stream: the ticker timing signal (position −1/0/+1) per minute."""
        return f"{self.prefix}:timing:{ticker}"

    @property
    def timing_latest(self) -> str:
        """Hash: ticker → newest timing entry (JSON)."""
        return f"{self.prefix}:timing-latest"

    @property
    def timing_channel(self) -> str:
        """Pub/sub channel announcing every timing entry."""
        return f"{self.prefix}:timing"

    @property
    def rebalance(self) -> str:
        """Stream: the portfolio's target weights, once a minute."""
        return f"{self.prefix}:rebalance"

    @property
    def rebalance_latest(self) -> str:
        """Hash: "portfolio" → newest rebalance entry (JSON)."""
        return f"{self.prefix}:rebalance-latest"

    @property
    def rebalance_channel(self) -> str:
        """Pub/sub channel announcing every rebalance entry."""
        return f"{self.prefix}:rebalance-updates"

    def risk(self, ticker: str) -> str:
        """Stream: a ticker's rest-of-day risk forecast (volatility and range left) per minute."""
        return f"{self.prefix}:risk:{ticker}"

    @property
    def risk_latest(self) -> str:
        """Hash: ticker → newest risk entry (JSON)."""
        return f"{self.prefix}:risk-latest"

    @property
    def risk_channel(self) -> str:
        """Pub/sub channel announcing every risk entry."""
        return f"{self.prefix}:risk"

    def pair(self, name: str) -> str:
        """Stream: a pair's spread signals (`A~B`), one entry per minute and algorithm."""
        return f"{self.prefix}:pair:{name}"

    def pair_latest(self, name: str) -> str:
        """Hash: algo → newest pair signal (JSON)."""
        return f"{self.prefix}:pair-latest:{name}"

    @property
    def pair_channel(self) -> str:
        """Pub/sub channel announcing every pair signal."""
        return f"{self.prefix}:pairs"
