"""Merging the shards' top-k lists column-wise: arrays in, arrays out, no per-row objects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from simsignal.engine.core.shard_state import Candidates, Names


@dataclass(frozen=True)
class Matches:
    """The global top-k of one (ticker, minute, algorithm), best first, as columns."""

    scores: NDArray[np.float64]
    tickers: Names
    dates: Names
    ends: NDArray[np.intp]  # slot where each match ends
    y_now: NDArray[np.float32]
    y_end: NDArray[np.float32]
    shards: NDArray[np.intp]  # which shard holds the day, and at which row
    rows: NDArray[np.intp]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def neighbors(self, labels: list[str] | None = None) -> tuple[tuple[str | float, ...], ...]:
        """`[ticker, date, score]` rows, or `[ticker, date, slot, score]` with slot labels."""
        t, d, s = self.tickers.tolist(), self.dates.tolist(), self.scores.tolist()
        if labels is None:
            return tuple(zip(t, d, s, strict=True))
        return tuple(zip(t, d, labels, s, strict=True))


def merge_candidates(answers: list[Candidates | None], k: int) -> Matches:
    """The k best of all shards' candidates by (score, ticker, date): the global tie rule.

    `answers[i]` is shard i's list, None when it holds no day for this query.
    """
    held = [i for i, p in enumerate(answers) if p is not None and len(p.scores)]
    if len(held) == 1:  # one shard holds the ticker (own history): its list is already ranked
        only = answers[held[0]]
        assert only is not None
        return _as_matches(only, held[0], k)
    owner = [i for i, p in enumerate(answers) if p is not None]
    parts = [p for p in answers if p is not None]
    if not parts:
        return _as_matches(_NONE, 0, k)
    scores = np.concatenate([p.scores for p in parts]).astype(np.float64, copy=False)
    tickers = np.concatenate([p.tickers for p in parts])
    dates = np.concatenate([p.dates for p in parts])
    order = np.lexsort((dates, tickers, scores))[:k]
    shard = np.concatenate(
        [np.full(len(p.scores), i, np.intp) for i, p in zip(owner, parts, strict=True)]
    )
    return Matches(
        scores=scores[order],
        tickers=tickers[order],
        dates=dates[order],
        ends=np.concatenate([p.ends for p in parts]).astype(np.intp, copy=False)[order],
        y_now=np.concatenate([p.y_now for p in parts])[order],
        y_end=np.concatenate([p.y_end for p in parts])[order],
        shards=shard[order],
        rows=np.concatenate([p.rows for p in parts]).astype(np.intp, copy=False)[order],
    )


_E = np.zeros(0, np.intp)
_NONE = Candidates(np.zeros(0), _E, _E, np.zeros(0, object), np.zeros(0, object),
                   np.zeros(0, np.float32), np.zeros(0, np.float32))  # fmt: skip


def _as_matches(p: Candidates, shard: int, k: int) -> Matches:
    """One shard's list as it stands: ranked by (score, row), rows sorted by (ticker, date)."""
    return Matches(
        scores=p.scores[:k].astype(np.float64, copy=False),
        tickers=p.tickers[:k],
        dates=p.dates[:k],
        ends=p.ends[:k].astype(np.intp, copy=False),
        y_now=p.y_now[:k],
        y_end=p.y_end[:k],
        shards=np.full(min(k, len(p.scores)), shard, np.intp),
        rows=p.rows[:k].astype(np.intp, copy=False),
    )
