"""`simsignal evaluate`, `chart` and `run --calibration` as users run them (Spark via RayDP).

The report's numbers are checked against a brute force built from the bar files with pandas;
the live signals' up_prob against the calibration file and history base rates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simsignal.engine.adapters.redis_store import RedisStore
from simsignal.engine.adapters.synthetic import make_history
from simsignal.engine.app.evaluation.evaluate import evaluate
from simsignal.engine.app.evaluation.walk_forward import WalkConfig
from simsignal.engine.core.curves import DayCurves
from simsignal.engine.core.templates import get_template
from tests.helpers import brute_topk, curves_from_bars, signals_in
from tests.integration.test_cli_faults import SHARED_CACHE
from tests.integration.test_cli_faults import _data as shared_data

CN = get_template("cn")
AT = (30, 120)


def _simsignal(args: list[str], cwd: Path, code: int = 0) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "simsignal.engine.app.cli", *args], cwd=cwd, capture_output=True,
        text=True, timeout=600, check=False, env={**os.environ, "COLUMNS": "160", **SHARED_CACHE},
    )  # fmt: skip
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _data(tmp_path: Path) -> tuple[pd.DataFrame, Path, Path, str]:
    """The run's shared history (40 days of one index; its day curves cached once for the
    CLI tests, whichever loads it first) and the whole day after it, to replay."""
    day, history, replay = shared_data(tmp_path, 241)
    return pd.read_parquet(history), history, replay, day


@pytest.mark.slow(seconds=45)
def test_evaluate_then_run_with_its_calibration_then_chart(
    redis_server: object, store: RedisStore, tmp_path: Path
) -> None:
    bars, history, replay, day = _data(tmp_path)
    curves = curves_from_bars(bars, CN)
    dates = sorted(curves.index.get_level_values("date").unique())
    start, end = dates[-30], dates[-1]
    out = _simsignal(["evaluate", "--history", str(history), "--from", start, "--to", end,
                      "--at", "30,120", "--algorithms", "sq,var,ensemble", "--k", "5",
                      "--ticker", "000300", "--out", "out"], tmp_path)  # fmt: skip
    assert "30 test days" in out and "Direction:" in out
    report = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert (
        report["version"] == 3
        and report["on"] == "process"
        and report["days"] == 30
        and report["checkpoints"] == [30, 120]
    )
    assert set(report["results"]) == {"sq", "var", "ensemble"}
    page = (tmp_path / "out" / "evaluation.html").read_text()
    assert page.count("data:image/png") == 4 and "Rest of the day" in page
    assert "rest of day, size" in out and "[q10, q90] held" in out
    risk = report["risk"]["targets"]
    assert set(risk) == {"abs_move", "rv", "range"}
    assert set(risk["rv"]["checkpoints"]) == {"30", "120", "pooled"}
    assert {"hist_mean", "yesterday", "scaled_rv", "analogue"} <= set(
        risk["rv"]["checkpoints"]["pooled"]["forecasters"])  # fmt: skip
    assert report["band"]["algorithm"] == "ensemble"
    assert report["band"]["checkpoints"]["pooled"]["n"] == 60

    # sq, pooled, from scratch: own earlier days, brute-force top 5, weighted continuation
    ratio = curves.droplevel("ticker").to_numpy(np.float64)
    index = list(curves.index.get_level_values("date"))
    pred, real, closes = [], [], []
    for d in dates[-30:]:
        t, earlier = index.index(d), [i for i, x in enumerate(index) if x < d]
        x = ratio[t]
        for m in AT:
            best = brute_topk("sq", x[:m], ratio[earlier, :m], [("000300", index[i])
                              for i in earlier], 5)  # fmt: skip
            rows = [index.index(dd) for _, dd, _ in best]
            s = np.array([sc for *_, sc in best])
            w = 1 / (s + 1e-3 * s.mean() + 1e-300)
            w /= w.sum()
            c = float(w @ ((1 + x[m - 1]) * (1 + ratio[rows, -1]) / (1 + ratio[rows, m - 1]) - 1))
            pred.append((1 + c) / (1 + x[m - 1]) - 1)
            real.append((1 + x[-1]) / (1 + x[m - 1]) - 1)
            closes.append(abs(c - x[-1]))
    sq = report["results"]["sq"]["pooled"]
    rated = [(p, r) for p, r in zip(pred, real, strict=True) if p and r]
    assert sq["n"] == 60 and sq["n_direction"] == len(rated)
    assert sq["hit_rate"] == pytest.approx(np.mean([(p > 0) == (r > 0) for p, r in rated]))
    assert sq["mae"] == pytest.approx(np.mean(closes), rel=1e-5)

    # the live run takes the calibration; its day curves come from evaluate's cache
    url = redis_server.url  # type: ignore[attr-defined]
    cal_path = tmp_path / "out" / "calibration.json"
    run = _simsignal(["run", "--history", str(history), "--replay", str(replay), "--date", day,
                      "--algorithms", "sq,var,ensemble", "--k", "5", "--ticker", "000300",
                      "--calibration", str(cal_path), "--redis-url", url, "--out", "live"],
                     tmp_path)  # fmt: skip
    assert "Spark not needed" in run
    cal = json.loads(cal_path.read_text())
    assert set(cal["band"]) == {"sq", "var", "ensemble"}  # the band's factor, for the live run
    assert cal["band"]["ensemble"] == pytest.approx(
        report["band"]["checkpoints"]["pooled"]["scale"]
    )
    moves = (1 + ratio[:, -1:]) / (1 + ratio) - 1
    base = np.mean(np.where(moves > 0, 1.0, np.where(moves == 0, 0.5, 0.0)), axis=0)
    np.testing.assert_allclose(cal["base_up"]["000300"], base, rtol=1e-9)
    signals = signals_in(store, "000300")
    assert len(signals) == 241 * 3
    for sig in signals:
        lam, b = cal["weights"][sig.algo], base[sig.minute - 1]
        assert 0.0 <= lam <= 1.0
        assert sig.up_prob == pytest.approx(b + lam * (sig.up_prob_raw - b), abs=1e-12)
    assert (tmp_path / "live" / "fitting.png").stat().st_size > 10_000

    chart = _simsignal(["chart", "--history", str(history), "--date", end, "--minute", "90",
                        "--algorithms", "sq,var", "--ticker", "000300", "--out", "charts"],
                       tmp_path)  # fmt: skip
    assert "Spark not needed" in chart
    for name in ("similarity.png", "fitting.png"):
        assert (tmp_path / "charts" / name).stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2024-13-01", "--to", "2024-12-31"], "'2024-13-01' is not a date"),
        (["--from", "2024-12-31", "--to", "2024-01-31"], "is after --to"),
        (["--from", "2024-01-02", "--to", "2024-01-31", "--at", "0,30"], "minute 0 is outside"),
        (["--from", "2024-01-02", "--to", "2024-01-31", "--at", "noon"], "'noon' is not a minute"),
        (
            ["--from", "2024-01-02", "--to", "2024-01-31", "--on", "gpu"],
            "'gpu' is not auto, shards",
        ),
        (
            ["--from", "2024-01-02", "--to", "2024-01-31", "--on", "shards", "--at", "all"],
            "--at all are evaluated in one process",
        ),
    ],
)
def test_evaluate_refuses_bad_arguments_before_starting_anything(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = _simsignal(["evaluate", "--history", str(tmp_path), *args], tmp_path, code=2)
    assert message in " ".join(out.split())
    assert "Ray" not in out


@pytest.mark.slow(seconds=50)
def test_a_market_evaluate_on_the_shards_equals_the_live_walk(tmp_path: Path) -> None:
    """Twelve tickers through Spark and the shard actors against the in-process walk.

    The in-process walk feeds every minute of every test day through the live minute pipeline,
    from day curves built here with pandas; the shards score only the checkpoints, by a row
    bound over the days they hold. The two reports must say the same to rounding.
    """
    names = [f"{600000 + i}" for i in range(12)]
    bars = pd.concat([make_history(CN, years=25 / 243, ticker=t, seed=50 + i)
                      for i, t in enumerate(names)], ignore_index=True)  # fmt: skip
    bars.to_parquet(tmp_path / "market.parquet")
    wide = curves_from_bars(bars, CN)
    dates = sorted(wide.index.get_level_values("date").unique())
    start, end = dates[-12], dates[-1]
    out = _simsignal(["evaluate", "--history", str(tmp_path / "market.parquet"), "--from", start,
                      "--to", end, "--at", "30,120", "--algorithms", "sq,var,ensemble",
                      "--k", "5", "--out", "out"], tmp_path)  # fmt: skip
    assert "across the market: sq:" in out
    got = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert got["on"] == "shards" and len(got["tickers"]) == 12 and got["days"] == 12
    assert got["cross_section"]["algorithm"] == "ensemble"
    assert set(got["cross_section"]["checkpoints"]) == {"30", "120", "pooled"}

    curves = DayCurves(
        np.asarray(wide.index.get_level_values("ticker"), object),
        np.asarray(wide.index.get_level_values("date"), object),
        wide.to_numpy(np.float32), np.full(len(wide), 100.0),
    )  # fmt: skip
    config = WalkConfig(("sq", "var", "ensemble"), 5, CN, checkpoints=AT)
    want = evaluate(curves, config, start, end).report
    assert got["forecasts"] == want["forecasts"] == 12 * 12 * 2 * 3
    for algo in ("sq", "var", "ensemble"):
        for at in ("30", "120", "pooled"):
            a, b = got["results"][algo][at], want["results"][algo][at]
            for key in ("n", "hit_rate", "rmse", "ic_spearman", "brier", "brier_raw"):
                assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-12), (algo, at, key)
        a, b = (r["cross_section"]["algorithms"][algo]["checkpoints"]["pooled"]
                for r in (got, want))  # fmt: skip
        assert a == pytest.approx(b, rel=1e-6, abs=1e-12)
    for target in ("abs_move", "rv", "range"):
        a, b = (r["risk"]["targets"][target]["checkpoints"]["pooled"]["forecasters"]
                for r in (got, want))  # fmt: skip
        assert a.keys() == b.keys()
        for name in a:
            assert a[name]["mae"] == pytest.approx(b[name]["mae"], rel=1e-6), (target, name)
    assert got["band"]["checkpoints"]["pooled"] == pytest.approx(
        want["band"]["checkpoints"]["pooled"], rel=1e-6)  # fmt: skip
