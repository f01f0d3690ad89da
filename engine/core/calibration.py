"""A fitted calibration, as a live run applies it (fitted by `simsignal evaluate`).

up_prob: p = b + λ·(raw − b): b is the share of history days that rose from this minute to
the close (per ticker, "*" for any other), λ the algorithm's weight (evaluation/calibration.py).
The band: [q10, q90] keeps its centre and its half-width is scaled by the algorithm's `band`
factor, so that it held 80 % of the closes on the days evaluated (evaluation/band.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT = 1


class CalibrationError(ValueError):
    """A calibration file that cannot be used (unreadable, another format or session)."""


@dataclass
class Calibration:
    """What a live run needs to calibrate up_prob: λ per algorithm and the base rates."""

    weights: dict[str, float]
    base_up: dict[str, list[float]]  # ticker (or "*" for any other) → share up, per minute
    fitted_on: dict[str, str | int] = field(default_factory=dict)
    format: int = FORMAT
    band: dict[str, float] = field(default_factory=dict)  # algorithm → half-width factor

    def q10_q90(self, algo: str, q10: float, q90: float) -> tuple[float, float]:
        """The band widened or narrowed about its centre (as it is when the algo is unknown)."""
        scale = self.band.get(algo)
        if scale is None:
            return q10, q90
        centre, half = (q10 + q90) / 2, (q90 - q10) / 2
        return centre - scale * half, centre + scale * half

    def up_prob(self, algo: str, ticker: str, minute: int, raw: float) -> float:
        """The calibrated probability of a rise to the close (raw when the algo is unknown)."""
        lam = self.weights.get(algo)
        base = self.base_up.get(ticker) or self.base_up.get("*")
        if lam is None or base is None:
            return raw
        b = base[min(minute, len(base)) - 1]
        return b + lam * (raw - b)

    def save(self, path: Path) -> Path:
        """Write as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read a file `save` wrote; a clear error for anything else."""
        try:
            raw = json.loads(Path(path).read_text())
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
            made = cls(**raw)
            for algo, lam in made.weights.items():
                if not 0.0 <= float(lam) <= 1.0:
                    raise ValueError(f"weight of {algo!r} is {lam!r}, not in [0, 1]")
            for ticker, base in made.base_up.items():
                if not all(0.0 <= float(b) <= 1.0 for b in base):
                    raise ValueError(f"base rates of {ticker!r} are not all in [0, 1]")
            for algo, scale in made.band.items():
                if not 0.0 < float(scale) < 1e6:
                    raise ValueError(f"band factor of {algo!r} is {scale!r}, not above 0")
            return made
        except (OSError, ValueError, TypeError) as err:
            raise CalibrationError(f"calibration file {path}: {err}") from err

    def check_slots(self, slots: int) -> Calibration:
        """Refuse a calibration fitted on a session with another number of minutes."""
        for ticker, base in self.base_up.items():
            if len(base) != slots:
                raise CalibrationError(f"calibration base rates of {ticker!r} have {len(base)} "
                                       f"minutes; this session has {slots}")  # fmt: skip
        return self
