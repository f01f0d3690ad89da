"""Which session template fits the bars: checked before loading, so a wrong one cannot pass.

Why: US bars loaded with the `cn` template ran to exit 0 with plausible signals, a 15:00
previous close and stream IDs in Shanghai time. The fit is read off how many bars fall at
each minute of the day (exchange-local): a template fits when most bars are at its minutes,
almost none in its break (cn's lunch), and nearly every one of its minutes has bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simsignal.engine.core.templates import TEMPLATES, SessionTemplate

MIN_INSIDE = 0.5  # "most bars outside the session" is a mismatch (pre/post-market are thin)
MAX_IN_BREAK = 0.01  # real data has next to no bars in a session's break
MIN_COVERAGE = 0.9  # a session minute that never has a bar means another session


class TemplateMismatchError(ValueError):
    """The bars do not fit the chosen template; names the one that does, if any."""


@dataclass(frozen=True)
class TemplateFit:
    """How the bars' minutes of day sit against one template."""

    name: str
    bars: int
    inside: float  # share of bars at one of the template's minutes
    in_break: float  # share of bars between its first and last minute but not in it
    coverage: float  # share of its minutes with at least one bar

    @property
    def fits(self) -> bool:
        """All three thresholds hold."""
        return (
            self.inside >= MIN_INSIDE
            and self.in_break <= MAX_IN_BREAK
            and self.coverage >= MIN_COVERAGE
        )

    def describe(self) -> str:
        """One line for errors and the load report."""
        return (
            f"{self.name}: {self.inside:.0%} of {self.bars:,} bars in its session, "
            f"{self.in_break:.1%} in its break, {self.coverage:.0%} of its minutes seen"
        )


def fit(counts: Mapping[int, int], template: SessionTemplate) -> TemplateFit:
    """Score bars per minute of day (`counts`) against one template."""
    total = sum(counts.values())
    session = set(template.minutes)
    first, last = template.minutes[0], template.minutes[-1]
    inside = sum(n for m, n in counts.items() if m in session)
    gap = sum(n for m, n in counts.items() if first < m < last and m not in session)
    seen = sum(1 for m in session if counts.get(m, 0) > 0)
    return TemplateFit(
        template.name,
        total,
        inside / total if total else 0.0,
        gap / total if total else 0.0,
        seen / len(session),
    )


_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


def minute_counts(times: Sequence[str], zone: str) -> dict[int, int]:
    """Bars per minute of day in `zone`: naive times as they are, offset times converted."""
    text = pd.Series(list(times), dtype="string").str.strip().str.replace("T", " ", regex=False)
    aware = text.str.contains(_OFFSET, regex=True, na=False)
    naive = pd.to_datetime(text[~aware], errors="coerce", format="ISO8601")
    local = pd.to_datetime(text[aware], errors="coerce", format="ISO8601", utc=True)
    minutes = [
        (t.dt.hour * 60 + t.dt.minute).dropna().to_numpy(dtype=np.int64)
        for t in (naive, local.dt.tz_convert(zone))
    ]
    values, counts = np.unique(np.concatenate(minutes), return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def choose_for(times: Sequence[str], wanted: str) -> tuple[SessionTemplate, list[TemplateFit]]:
    """`choose` on bar times (strings as in the files)."""
    return choose({n: minute_counts(times, t.timezone) for n, t in TEMPLATES.items()}, wanted)


def choose(
    counts_by_zone: Mapping[str, Mapping[int, int]], wanted: str
) -> tuple[SessionTemplate, list[TemplateFit]]:
    """The template to use: `wanted`, checked, or the best fitting one when it is `auto`.

    `counts_by_zone` maps a template name to its bars-per-minute counts in that template's
    time zone (bars with an explicit UTC offset land differently in each).
    """
    fits = [fit(counts_by_zone[name], t) for name, t in TEMPLATES.items() if name in counts_by_zone]
    good = sorted((f for f in fits if f.fits), key=lambda f: (-f.coverage * f.inside, f.name))
    if wanted == "auto":
        if not good:
            raise TemplateMismatchError(
                "no session template fits these bars (" + "; ".join(f.describe() for f in fits)
                + "): check the times are exchange-local or carry a UTC offset"
            )  # fmt: skip
        return TEMPLATES[good[0].name], fits
    mine = next(f for f in fits if f.name == wanted)
    if not mine.fits:
        hint = (
            f"use --template {good[0].name} ({good[0].describe()})"
            if good
            else "no known template fits either"
        )
        raise TemplateMismatchError(
            f"--template {wanted} does not fit these bars ({mine.describe()}); {hint}"
        )
    return TEMPLATES[wanted], fits
