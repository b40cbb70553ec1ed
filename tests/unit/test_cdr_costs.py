"""Dial-in calls for the cost report from a real SQLite CDR table laid out as the asterisk
role's cdr_sqlite3_custom configuration writes it (its columns read from the role): only
the carrier leg's talk time is billed, refused calls are listed at no cost, hostile values
are counted, never crash, and a PBX's record never merges with a proxy's."""

import sqlite3
from pathlib import Path

import pytest
import yaml
from ansible_collections.sipwave.platform.plugins.module_utils.call_costs import (
    rate,
    report,
    tariffs,
)
from ansible_collections.sipwave.platform.plugins.module_utils.cdr_costs import (
    read_dialin_calls,
)

ROLE_VARS = Path(__file__).resolve().parents[2] / "roles/asterisk/vars/main.yml"
ROLE_COLUMNS = [c["name"] for c in yaml.safe_load(ROLE_VARS.read_text())["__asterisk_cdr_columns"]]
# The columns the report reads besides the role's (until the role writes them too).
COLUMNS = ROLE_COLUMNS + [
    c for c in ("start_epoch", "end_epoch", "dialstatus", "talk_ms") if c not in ROLE_COLUMNS
]
TARIFFS = tariffs([
    {"carrier": "pstn", "prefix": "+48", "per_minute": "0.09"},
    {"carrier": "pstn", "prefix": "+4822", "per_minute": "0.06", "increment": 1, "first": 1},
])  # fmt: skip
DEC_3 = 1796299200.0  # 2026-12-03T12:00:00Z


def cdr_table(path: Path, columns=COLUMNS) -> Path:
    """The table as cdr_sqlite3_custom creates it: a row id and one TEXT column per value."""
    with sqlite3.connect(path) as db:
        typed = ", ".join(f"{c} TEXT" for c in columns)
        db.execute(f"CREATE TABLE cdr (AcctId INTEGER PRIMARY KEY, {typed})")
    return path


def insert(path: Path, **values) -> None:
    row = {"account": "acme", "department": "sales", "destination": "+48123456789",
           "uniqueid": "1796299200.1", "disposition": "ANSWERED", **values}  # fmt: skip
    with sqlite3.connect(path) as db:
        names = ", ".join(row)
        db.execute(f"INSERT INTO cdr ({names}) VALUES ({', '.join('?' * len(row))})",
                   list(row.values()))  # fmt: skip


def dialin_call(path: Path, uniqueid: str, *, began: float, pin_s: float, talk_ms: int | None,
                status: str = "ANSWER", **values) -> None:  # fmt: skip
    """A dial-in call: answered at ``began`` for the PIN prompt, then the Dial."""
    end = began + pin_s + (talk_ms or 0) / 1000
    insert(path, uniqueid=uniqueid, start_epoch=f"{began:.6f}", end_epoch=f"{end:.6f}",
           calldate="2026-12-03 12:00:00", answerdate="2026-12-03 12:00:00",
           billsec=str(int(end - began)), dialstatus=status,
           talk_ms="" if talk_ms is None else str(talk_ms), **values)  # fmt: skip


def read(path: Path, period: str = "2026-12"):
    with sqlite3.connect(path) as db:
        calls, unreadable = read_dialin_calls(
            db.cursor(), period, pbx="pbx1", carrier="pstn", site="warsaw"
        )
    return rate(calls, TARIFFS), unreadable


def by_id(calls):
    return {c["callid"]: (c["state"], c["seconds"], c["billed_seconds"], c["cost"]) for c in calls}


def test_only_the_carrier_legs_talk_time_is_billed_never_the_pin_phase(tmp_path):
    db = cdr_table(tmp_path / "master.db")
    dialin_call(db, "1.1", began=DEC_3, pin_s=25, talk_ms=3200)  # +48: per started minute
    dialin_call(db, "1.2", began=DEC_3 + 60, pin_s=40, talk_ms=61000,
                destination="+48221234567")  # +4822: per second  # fmt: skip
    calls, unreadable = read(db)
    assert unreadable == 0
    assert by_id(calls) == {"1.1": ("ended", 4, 60, "0.09"), "1.2": ("ended", 61, 61, "0.06")}
    first = calls[0]
    assert (first["account"], first["department"], first["site"], first["carrier"]) == (
        "acme", "sales", "warsaw", "pstn")  # fmt: skip
    # answered when the carrier answered: after the 25 s of the PIN phase
    assert first["answered_at"] == "2026-12-03T12:00:25Z"
    assert first["direction"] == "outbound" and first["source"] == "cdr:pbx1"


def test_refused_and_unanswered_dial_in_calls_are_listed_at_no_cost(tmp_path):
    db = cdr_table(tmp_path / "master.db")
    insert(db, uniqueid="2.1", start_epoch=f"{DEC_3:.6f}", end_epoch=f"{DEC_3 + 1:.6f}",
           disposition="NO ANSWER", outcome="not authorised", destination="")  # fmt: skip
    dialin_call(db, "2.2", began=DEC_3, pin_s=30, talk_ms=None, status="",
                outcome="wrong PIN 3 times")  # fmt: skip
    dialin_call(db, "2.3", began=DEC_3, pin_s=10, talk_ms=None, status="BUSY")
    dialin_call(db, "2.4", began=DEC_3, pin_s=10, talk_ms=0, status="NOANSWER")
    calls, unreadable = read(db)
    assert unreadable == 0
    assert by_id(calls) == {k: ("unanswered", 0, 0, "0.00") for k in ("2.1", "2.2", "2.3", "2.4")}
    summed = report(calls, "PLN")["departments"]
    assert [(r["site"], r["department"], r["calls"], r["answered"], r["cost"]) for r in summed] == [
        ("warsaw", "sales", 4, 0, "0.00")]  # fmt: skip


def test_the_rows_of_one_channel_are_one_call(tmp_path):
    """Asterisk may write a row per party pair of a channel: one call, its Dial's talk time."""
    db = cdr_table(tmp_path / "master.db")
    dialin_call(db, "3.1", began=DEC_3, pin_s=20, talk_ms=None, status="", department="")
    dialin_call(db, "3.1", began=DEC_3, pin_s=20, talk_ms=5000)
    calls, _ = read(db)
    assert by_id(calls) == {"3.1": ("ended", 5, 60, "0.09")}
    assert calls[0]["department"] == "sales"


@pytest.mark.parametrize("bad", [
    {"start_epoch": "2026-12-03 12:00:00"}, {"start_epoch": "nan"}, {"start_epoch": "1e10"},
    {"start_epoch": ""}, {"start_epoch": None}, {"end_epoch": "-1796299200"},
    {"end_epoch": "1796299100.0"},  # before its start
    {"uniqueid": "1.1' OR 1=1 --"}, {"uniqueid": ""}, {"uniqueid": b"\xff"},
])  # fmt: skip
def test_a_row_whose_time_or_identity_cannot_be_read_is_counted_not_guessed(tmp_path, bad):
    db = cdr_table(tmp_path / "master.db")
    dialin_call(db, "4.1", began=DEC_3, pin_s=5, talk_ms=1000)
    insert(db, **{"uniqueid": "4.2", "start_epoch": f"{DEC_3:.6f}",
                  "end_epoch": f"{DEC_3 + 9:.6f}", "dialstatus": "ANSWER", "talk_ms": "2000",
                  **bad})  # fmt: skip
    calls, unreadable = read(db)
    assert unreadable == 1 and [c["callid"] for c in calls] == ["4.1"]


@pytest.mark.parametrize("talk", ["-1", "1e9", "inf", "3000.5", " 3000", "", "99999999999"])
def test_a_talk_time_that_is_not_milliseconds_bills_nothing(tmp_path, talk):
    db = cdr_table(tmp_path / "master.db")
    dialin_call(db, "5.1", began=DEC_3, pin_s=5, talk_ms=1000)
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE cdr SET talk_ms = ?", (talk,))
    calls, unreadable = read(db)
    assert unreadable == 0 and by_id(calls) == {"5.1": ("unanswered", 0, 0, "0.00")}


def test_caller_chosen_text_is_shown_plainly_and_never_priced_by_guess(tmp_path):
    db = cdr_table(tmp_path / "master.db")
    dialin_call(db, "6.1", began=DEC_3, pin_s=5, talk_ms=1000, destination="+48=1+1\x1b[2J",
                department="=HYPERLINK(\"x\")\r\n\x1b[31m", account="acme\x00")  # fmt: skip
    (call,), _ = read(db)
    assert call["state"] == "ended" and call["cost"] is None  # no tariff for such a number
    assert call["department"] == '=HYPERLINK("x")[31m' and call["account"] == "acme"
    assert call["callee"] == ""


def test_calls_outside_the_period_are_left_out_by_the_carriers_answer(tmp_path):
    db = cdr_table(tmp_path / "master.db")
    midnight = 1798761600.0  # 2027-01-01T00:00:00Z
    # started in December, the carrier answered in January
    dialin_call(db, "7.1", began=midnight - 10, pin_s=20, talk_ms=1000)
    assert read(db, "2026-12")[0] == [] and len(read(db, "2027-01")[0]) == 1


def test_an_older_table_or_none_reads_without_crashing(tmp_path):
    older = cdr_table(tmp_path / "older.db", [c for c in COLUMNS if "epoch" not in c])
    insert(older, calldate="2026-12-03 12:00:00")
    assert read(older) == ([], 1)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert read(empty) == ([], 0)


def test_a_pbx_record_never_merges_with_a_proxy_record(tmp_path):
    db = cdr_table(tmp_path / "master.db")
    dialin_call(db, "8.1", began=DEC_3, pin_s=5, talk_ms=1000)
    calls, _ = read(db)
    # a proxy record a caller shaped like it: same Call-ID, tags, answer and code
    forged = {**calls[0], "source": None, "direction": "inbound", "cost": "0.00"}
    merged = report([forged, *calls], "PLN")["calls"]
    assert len(merged) == 2 and {c["cost"] for c in merged} == {"0.00", "0.09"}
