"""The seed's chart: today's line, the k neighbours, the fitted mean, the spread, "now"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from simsignal.engine.core.forecast import continued, forecast_path
from simsignal.engine.core.templates import SessionTemplate


def draw_similarity(
    data: dict[str, Any], template: SessionTemplate, ticker: str, date: str, path: Path
) -> Path:
    """Write similarity.png from a coordinator chart snapshot."""
    curves = np.asarray(data["curves"], np.float64) * 100
    today = np.asarray(data["today"], np.float64) * 100
    m = int(data["minute"])
    now = m - 1
    w = np.asarray(data["weights"])
    x_now = float(data["x"][-1])
    fitted = forecast_path(x_now, now, curves / 100, w) * 100
    paths = continued(x_now, curves[:, [now]] / 100, curves[:, now:] / 100)
    lo, hi = np.quantile(paths * 100, [0.1, 0.9], axis=0)
    slots = np.arange(template.slots)

    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    for c in curves:
        ax.plot(slots, c, color="0.6", lw=0.6, alpha=0.5)
    ax.plot([], [], color="0.6", lw=0.6, label=f"{len(curves)} most similar days ({data['algo']})")
    ax.fill_between(slots[now:], lo, hi, color="tab:orange", alpha=0.2, label="neighbours q10–q90")
    ax.plot(slots[now:], fitted, color="tab:orange", lw=2.2, label="forecast (weighted mean)")
    ax.plot(slots[: now + 1], today[: now + 1], color="tab:blue", lw=2.2, label="today so far")
    if len(today) > m:
        ax.plot(
            slots[now:], today[now:], color="tab:blue", lw=1, ls=":", label="today, later (actual)"
        )
    ax.axvline(now, color="k", ls="--", lw=1)
    ax.text(now, ax.get_ylim()[1], f" now {template.label(now)}", va="top")
    title = f"{ticker} {date}: similar history days at minute {m}"
    return _finish(fig, ax, template, "% vs previous close", title, path)


def draw_fitting(
    data: dict[str, Any], template: SessionTemplate, ticker: str, date: str, path: Path
) -> Path:
    """Write fitting.png: the predicted close at every minute against the realised close.

    The seed's "prediction close index change percent": each minute's forecast of where the
    day closes (with the neighbours' q10–q90), today's line, and the close it really made.
    """
    fit = data["fitting"]
    minutes = np.asarray(fit["minute"], np.float64)
    slots = minutes - 1
    today = np.asarray(data["today"], np.float64) * 100
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    ax.fill_between(slots, np.asarray(fit["q10"]) * 100, np.asarray(fit["q90"]) * 100,
                    color="tab:orange", alpha=0.2, label="neighbours' close q10–q90")  # fmt: skip
    ax.plot(slots, np.asarray(fit["pred_close"]) * 100, color="tab:orange", lw=2,
            label=f"predicted close at each minute ({data['algo']})")  # fmt: skip
    ax.plot(np.arange(len(today)), today, color="tab:blue", lw=1.2, label="today")
    if len(today) == template.slots:
        ax.axhline(today[-1], color="k", ls="--", lw=1,
                   label=f"realised close {today[-1]:+.2f}%")  # fmt: skip
    title = f"{ticker} {date}: predicted close change, minute by minute"
    return _finish(fig, ax, template, "close change, % vs previous close", title, path)


def _finish(
    fig: Any, ax: Any, template: SessionTemplate, ylabel: str, title: str, path: Path
) -> Path:
    """Session times on the x axis, labels, grid and legend; written to `path`."""
    ticks = np.linspace(0, template.slots - 1, 9).round().astype(int)
    ax.set_xticks(ticks, [template.label(int(t)) for t in ticks])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
