"""Bars in, signals out: parsing, the gate, the Redis field forms."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import pytest

from simsignal.engine.core.bars import BadBar, BarGate, parse_bar
from simsignal.engine.core.commit import Call
from simsignal.engine.core.signals import Signal, epoch_ms, signal_entries
from simsignal.engine.core.templates import TEMPLATES, get_template
from simsignal.engine.core.today import TodayCurve

GOOD = {
    "ticker": "000300",
    "ts": "2024-04-26T09:30:00",
    "open": "10",
    "high": "11",
    "low": "9.5",
    "close": "10.5",
    "volume": "100",
}


def test_templates_have_the_documented_slots() -> None:
    cn, us = TEMPLATES["cn"], TEMPLATES["us"]
    assert (cn.slots, us.slots) == (241, 390)
    assert [cn.label(i) for i in (0, 120, 121, 240)] == ["09:30", "11:30", "13:01", "15:00"]
    assert cn.slot_of(datetime(2024, 1, 2, 12, 0)) is None
    with pytest.raises(ValueError, match="known: cn, us"):
        get_template("eu")


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"close": "nan"}, "close", "not a plain decimal"),
        ({"close": "inf"}, "close", "not a plain decimal"),
        ({"close": "-1"}, "close", "must be > 0"),
        ({"volume": "abc"}, "volume", "not a plain decimal"),
        ({"volume": "7_005"}, "volume", "not a plain decimal"),
        ({"volume": "\u0661\u0662"}, "volume", "not a plain decimal"),  # Arabic-Indic digits
        ({"close": "1" * 65}, "close", "not a plain decimal"),
        ({"close": "1e300"}, "close", "implausibly large"),
        ({"ts": "26/04/2024 09:30"}, "ts", "not a time of the form"),
        ({"ts": "2024-W17-5T09:30:00"}, "ts", "not a time of the form"),  # ISO week
        ({"ts": "20240426T093000"}, "ts", "not a time of the form"),  # compact
        ({"ts": "2024-04-26T09:30:00+08:00"}, "ts", "no exchange time zone"),
        ({"ticker": ""}, "ticker", "missing field"),
        ({"ticker": "000 300"}, "ticker", "not 1-32 of"),
        ({"ticker": "\ud800"}, "ticker", "not 1-32 of"),  # a lone surrogate
        ({"high": "9"}, "high", "below low"),
        ({"open": "12"}, "open", "outside [low, high]"),
        ({"close": "9"}, "close", "outside [low, high]"),
    ],
)
def test_bad_fields_are_named(change: dict[str, str], field: str, reason: str) -> None:
    with pytest.raises(BadBar) as err:
        parse_bar({**GOOD, **change})
    assert err.value.field == field
    assert reason in err.value.reason
    assert err.value.value in str(err.value) and len(err.value.value) <= 80
    assert err.value.key == f"{field}:{err.value.code}"  # counted by code, never by value


@pytest.mark.parametrize(
    ("ts", "template", "local"),
    [
        ("2025-06-23 09:30:00-04:00", "us", "2025-06-23 09:30:00"),  # as pandas writes it
        ("2025-06-23T13:31:00Z", "us", "2025-06-23 09:31:00"),  # UTC, EDT is UTC-4
        ("2025-01-06T14:45:00+00:00", "us", "2025-01-06 09:45:00"),  # EST is UTC-5
        ("2024-04-26T01:30:00Z", "cn", "2024-04-26 09:30:00"),  # Shanghai is UTC+8
        ("2024-04-26T09:30:00", "us", "2024-04-26 09:30:00"),  # naive: already local
    ],
)
def test_offsets_become_exchange_local_time(ts: str, template: str, local: str) -> None:
    zone = get_template(template).zone
    bar = parse_bar({**GOOD, "ts": ts}, zone)
    assert bar.ts == datetime.fromisoformat(local) and bar.ts.tzinfo is None


def test_missing_column_and_garbage_json() -> None:
    without_close = {k: v for k, v in GOOD.items() if k != "close"}
    with pytest.raises(BadBar, match="close=None: missing field"):
        parse_bar(without_close)
    with pytest.raises(BadBar, match="not valid JSON"):
        parse_bar({"json": "{not json"})
    with pytest.raises(BadBar, match="not valid JSON"):
        parse_bar({"json": "[" * 2000 + "]" * 2000})  # deeper than the parser's recursion
    with pytest.raises(BadBar, match="not a string or a number"):
        parse_bar({"json": '{"ticker": "000300", "close": [1]}'})
    assert (
        parse_bar(
            {
                "json": '{"ticker": "000300", "ts": "2024-04-26T09:31:00", "open": 1, '
                '"high": 1, "low": 1, "close": 1, "volume": 0}'
            }
        ).close
        == 1.0
    )


def test_bar_fields_round_trip() -> None:
    bar = parse_bar({**GOOD, "amount": "1050", "prev_close": "10.2"})
    assert parse_bar(bar.to_fields()) == bar


def test_gate_refuses_duplicates_late_and_foreign_bars() -> None:
    gate = BarGate(get_template("cn"), "2024-04-26", {"000300"})
    assert gate.admit(parse_bar(GOOD)) == 0
    assert gate.admit(parse_bar({**GOOD, "ts": "2024-04-26T09:32:00"})) == 2
    cases = [
        ({"ts": "2024-04-26T09:32:00"}, "duplicate minute"),
        ({"ts": "2024-04-26T09:31:00"}, "out of order"),
        ({"ticker": "600000"}, "not a ticker of this session"),
        ({"ts": "2024-04-25T09:33:00"}, "not on the session date"),
        ({"ts": "2024-04-26T12:00:00"}, "outside the cn session"),
    ]
    for change, reason in cases:
        with pytest.raises(BadBar, match=reason):
            gate.admit(parse_bar({**GOOD, **change}))
    assert gate.last_slot == {"000300": 2}  # refused bars changed nothing


def test_today_curve_fills_gaps() -> None:
    today = TodayCurve("000300", prev_close=100.0)
    [(m, x, values)] = today.advance(0, 101.0, volume=10)
    assert (m, x, values) == (1, pytest.approx(0.01), (pytest.approx(0.01),))
    new = today.advance(3, 99.0, volume=5)
    assert [m for m, _, _ in new] == [2, 3, 4]
    assert new[0][1] == new[1][1] == pytest.approx(0.01)
    assert new[2][1] == pytest.approx(-0.01)
    assert today.volumes == [10, 0, 0, 5]


def _signal(**over: object) -> Signal:
    base = dict(
        ticker="000300",
        date="2024-04-26",
        minute=3,
        slot="09:32",
        algo="var",
        algo_index=1,
        bar_epoch_ms=1714095120000,
        k=2,
        pred_close=0.01,
        pred_close_mean=0.02,
        pred_move=0.001,
        up_prob=0.5,
        up_prob_raw=0.625,
        q10=-0.01,
        q50=0.0,
        q90=0.02,
        dispersion=0.01,
        neighbors=(("000300", "2020-01-02", 0.5), ("000300", "2019-03-04", 0.7)),
        latency_ms=1.5,
    )
    base.update(over)
    return Signal(**base)  # type: ignore[arg-type]


def test_signal_fields_round_trip_and_id() -> None:
    sig = _signal()
    fields = sig.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["v"] == "4"
    assert Signal.from_fields(fields) == sig
    assert sig.stream_id == "1714095120000-1"


def test_a_schema_2_entry_reads_with_up_prob_raw_equal_to_up_prob() -> None:
    """Schema 2 had no calibration: its up_prob was the raw share."""
    fields = _signal().to_fields()
    del fields["up_prob_raw"]
    fields["v"] = "2"
    old = Signal.from_fields(fields)
    assert old.up_prob_raw == old.up_prob == 0.5 and old.v == 2


def test_the_neighbours_are_written_once() -> None:
    """Since schema 2 the entry has them; the pub/sub / latest payload points at the entry."""
    sig = _signal(pred_close=0.1 + 0.2)  # a float that needs all its digits
    payload = json.loads(sig.to_json())
    assert "neighbors" not in payload and payload["id"] == sig.stream_id
    assert payload == {k: v for k, v in dataclasses.asdict(sig).items() if k != "neighbors"} | {
        "id": sig.stream_id
    }
    assert json.loads(sig.to_fields()["neighbors"]) == [list(n) for n in sig.neighbors]
    assert sig.to_json().count("2020-01-02") == 0


def test_a_batch_formatted_by_columns_equals_each_signal_formatted_alone() -> None:
    """The commit's rows, built a column at a time, hold the text of the per-signal forms."""
    sigs = [
        _signal(),
        _signal(ticker="000001~000002", algo="sq", algo_index=0, pred_close=0.1 + 0.2, q10=-1e-20,
                neighbors=(("000001~000002", "2020-01-02", 3.0e-12),)),
        _signal(algo="motif", algo_index=8, minute=241, slot="15:00", k=1, up_prob=1.0,
                dispersion=0.0, neighbors=(("000300", "2021-05-06", "10:31", 0.25),)),
        _signal(bar_epoch_ms=1714095180000, pred_move=-0.0, latency_ms=123456.789, neighbors=()),
    ]  # fmt: skip
    rows = signal_entries(sigs)
    assert rows == [[s.stream_id, s.hash_field, s.to_json(), *s.field_list()] for s in sigs]
    for sig, row in zip(sigs, rows, strict=True):
        assert Signal.from_fields(dict(zip(row[3::2], row[4::2], strict=True))) == sig
        assert json.loads(row[2]) == {k: v for k, v in dataclasses.asdict(sig).items()
                                      if k != "neighbors"} | {"id": sig.stream_id}  # fmt: skip
    assert signal_entries([]) == []


def test_a_spilled_call_of_the_first_schema_4_layout_reads_as_the_same_entries() -> None:
    """Spill lines written before the MessagePack layout held four flat arguments per entry."""
    sigs = [_signal(), _signal(algo="sq", algo_index=0)]
    call = Call("s", "l", "c", 17, signal_entries(sigs))
    flat: list[str | int] = [17, "c"]
    for row in call.entries:
        flat += [*row[:3], json.dumps(row[3:])]
    assert Call.from_json(["s", "l", flat]) == call
    assert Call.from_json(json.loads(json.dumps(call.to_json()))) == call


def test_epoch_ms_uses_the_exchange_zone() -> None:
    ts = datetime(2024, 4, 26, 9, 32)
    assert epoch_ms(ts, get_template("cn").zone) == 1714095120000  # 01:32 UTC
