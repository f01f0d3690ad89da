"""From the k nearest days to a forecast of the rest of today."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True, slots=True)
class Forecast:
    """What the neighbours say about today's close, as ratios to the previous close."""

    pred_close: float  # similarity-weighted mean of the neighbours' closes, continued from now
    pred_close_mean: float  # the seed's form: plain mean of the neighbours' own close ratios
    pred_move: float  # pred_close relative to now: (1 + pred_close) / (1 + x_now) − 1
    up_prob: float  # calibrated when a calibration is loaded; else equal to up_prob_raw
    q10: float
    q50: float
    q90: float
    dispersion: float  # standard deviation of the continued closes
    up_prob_raw: float  # weighted share of neighbours that rose from now to the close (ties: ½)


def similarity_weights(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse-distance weights, scale-free: w ∝ 1 / (s + ε), ε = 1e-3·mean(s) (+tiny).

    Scores of different algorithms live on different scales; ε tied to their mean keeps a
    perfect match (s = 0) from taking all the weight while staying invariant to units.
    """
    s = np.maximum(np.asarray(scores, np.float64), 0.0)
    eps = 1e-3 * float(s.mean()) + 1e-300
    w = 1.0 / (s + eps)
    return w / w.sum()


# The one home of the continuation rule. Levels are ratios to the previous close (spreads, for
# pairs, are differences of such ratios, so they move additively).
def continued(
    x_now: ArrayLike, y_now: ArrayLike, y_then: ArrayLike, additive: bool = False
) -> NDArray[np.float64]:
    """A neighbour's move from its `y_now` to `y_then`, applied to today's level `x_now`.

    (1 + x_now)·(1 + y_then)/(1 + y_now) − 1; a spread: x_now + (y_then − y_now).
    """
    x, now, then = (np.asarray(v, np.float64) for v in (x_now, y_now, y_then))
    return np.asarray(
        x + (then - now) if additive else (1.0 + x) * (1.0 + then) / (1.0 + now) - 1.0
    )


def move(level_from: ArrayLike, level_to: ArrayLike, additive: bool = False) -> NDArray[np.float64]:
    """The move from one level to another: (1 + to)/(1 + from) − 1; a spread: to − from."""
    a, b = np.asarray(level_from, np.float64), np.asarray(level_to, np.float64)
    return np.asarray(b - a if additive else (1.0 + b) / (1.0 + a) - 1.0)


def continued_closes(
    x_now: float, y_now: NDArray[np.floating], y_end: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Each neighbour's move from this minute to its close, applied to today's level now."""
    return continued(x_now, y_now, y_end)


def rose(y_now: NDArray[np.floating], y_end: NDArray[np.floating]) -> NDArray[np.float64]:
    """1 for a neighbour that rose from now to its close, 0 if it fell, ½ if unchanged.

    Why ½: unchanged prices are common near the close (and every neighbour is unchanged at
    the last minute); counting them as "not up" pulled up_prob towards 0 there.
    """
    now, end = np.asarray(y_now, np.float64), np.asarray(y_end, np.float64)
    return np.where(end > now, 1.0, np.where(end == now, 0.5, 0.0))


def forecast(
    x_now: float,
    scores: NDArray[np.float64],
    y_now: NDArray[np.floating],
    y_end: NDArray[np.floating],
) -> Forecast:
    """Forecast from neighbours' scores, their ratio at this minute and at their close."""
    if len(scores) == 0:
        raise ValueError("forecast needs at least one neighbour")
    many = forecast_many(np.array([x_now]), np.asarray(scores)[None, :],
                         np.asarray(y_now)[None, :], np.asarray(y_end)[None, :])  # fmt: skip
    return many[0]


def forecast_many(
    x_now: NDArray[np.float64],
    scores: NDArray[np.float64],
    y_now: NDArray[np.floating],
    y_end: NDArray[np.floating],
    additive: bool = False,
) -> list[Forecast]:
    """`forecast` for many queries at once: one row per query, one column per neighbour.

    Every reduction runs along a row, so a query's forecast does not depend on which others
    share its batch. `additive`: the curves are spreads (pairs), continued as
    x_now + (y_end − y_now), and pred_move is a difference, pred_close − x_now.
    """
    s = np.maximum(np.asarray(scores, np.float64), 0.0)
    w = 1.0 / (s + 1e-3 * s.mean(axis=1, keepdims=True) + 1e-300)
    w /= w.sum(axis=1, keepdims=True)
    x = np.asarray(x_now, np.float64)[:, None]
    now, end = np.asarray(y_now, np.float64), np.asarray(y_end, np.float64)
    closes = continued(x, now, end, additive)
    pred = (w * closes).sum(axis=1)
    moved = move(x[:, 0], pred, additive)
    up = (w * rose(now, end)).sum(axis=1)
    q10, q50, q90 = np.quantile(closes, [0.1, 0.5, 0.9], axis=1)
    columns = (pred, end.mean(axis=1), moved, up, q10, q50, q90, closes.std(axis=1), up)
    return [Forecast(*row) for row in np.column_stack(columns).tolist()]  # tolist: plain floats


def forecast_path(
    x_now: float, now_slot: int, curves: NDArray[np.floating], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Weighted mean path of the neighbours' continuations from `now_slot` to the close."""
    c = np.asarray(curves, np.float64)
    return np.asarray(weights @ continued(x_now, c[:, [now_slot]], c[:, now_slot:]), np.float64)


def ensemble_weights(dispersion: NDArray[np.float64]) -> NDArray[np.float64]:
    """The ensemble's weights along the last axis: w_a ∝ 1 / (dispersion_a² + ε) (see below)."""
    var = np.asarray(dispersion, np.float64) ** 2
    w = 1.0 / (var + 1e-3 * var.mean(axis=-1, keepdims=True) + 1e-300)
    return np.asarray(w / w.sum(axis=-1, keepdims=True))


def ensemble(
    forecasts: list[Forecast], x_now: float, additive: bool = False
) -> tuple[Forecast, NDArray[np.float64]]:
    """Combine the algorithms' forecasts; returns the forecast and each algorithm's weight.

    Rule: precision weighting, w_a ∝ 1 / (dispersion_a² + ε) with ε = 10⁻³·mean(dispersion²)
    (+tiny), so an algorithm whose neighbours agree counts more. pred_close, up_prob and the
    quantiles are w-weighted means; dispersion is √(Σ w·dispersion²); pred_close_mean is the
    plain mean of the algorithms' own; up_prob_raw mixes the algorithms' raw shares.
    """
    if not forecasts:
        raise ValueError("ensemble needs at least one forecast")
    var = np.array([f.dispersion**2 for f in forecasts])
    w = ensemble_weights(np.array([f.dispersion for f in forecasts]))

    def mix(field: str) -> float:
        return float(w @ np.array([getattr(f, field) for f in forecasts]))

    pred = mix("pred_close")
    combined = Forecast(
        pred_close=pred,
        pred_close_mean=float(np.mean([f.pred_close_mean for f in forecasts])),
        pred_move=float(move(x_now, pred, additive)),
        up_prob=mix("up_prob"),
        q10=mix("q10"),
        q50=mix("q50"),
        q90=mix("q90"),
        dispersion=float(np.sqrt(w @ var)),
        up_prob_raw=mix("up_prob_raw"),
    )
    return combined, w


def ensemble_columns(
    x_now: NDArray[np.float64], dispersion: NDArray[np.float64],
    fields: dict[str, NDArray[np.float64]], additive: bool = False,
) -> dict[str, NDArray[np.float64]]:  # fmt: skip
    """`ensemble` for many queries at once, as columns ([queries, algorithms] in, [queries] out).

    Each of `fields` (pred_close among them) is w-mixed as `ensemble` mixes it; pred_move
    follows from pred_close and dispersion is √(Σ w·dispersion²), by the same weights.
    """
    w = ensemble_weights(dispersion)
    out = {name: np.asarray(np.sum(w * v, axis=1)) for name, v in fields.items()}
    out["pred_move"] = move(x_now, out["pred_close"], additive)
    out["dispersion"] = np.sqrt(np.sum(w * np.asarray(dispersion, np.float64) ** 2, axis=1))
    return out
