"""Rating calls for the cost report on real SQLite call records laid out as Kamailio's acc
module writes them (time as a Julian day number): tariffs by carrier and longest prefix,
billing increments, the department sums and the CSV for accounting."""

import sqlite3
from decimal import Decimal

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import call_costs
from ansible_collections.sipwave.platform.plugins.module_utils.call_costs import (
    CostError,
    Tariff,
    billed_seconds,
    by_department,
    cost_of,
    rate,
    read_calls,
    tariffs,
)
from ansible_collections.sipwave.platform.plugins.module_utils.csv_records import to_csv
from wave_helpers import create_database

TARIFFS = tariffs([
    {"carrier": "a", "prefix": "+48", "per_minute": "0.10"},
    {"carrier": "a", "prefix": "+4822", "per_minute": "0.05", "increment": 1, "first": 30},
    {"carrier": "b", "prefix": "+49", "per_minute": "0.20", "setup": "0.15"},
])  # fmt: skip


def julian(epoch: float) -> float:
    return epoch / 86400 + call_costs.JULIAN_DAY_OF_EPOCH


DEC_3 = 1796299200.0  # 2026-12-03T12:00:00Z


def records(tmp_path):
    database = create_database(tmp_path / "proxy.sqlite")
    rows = [  # callid, answer time, department, carrier, callee, direction, code, seconds
        ("c1", DEC_3, "sales", "a", "+48225550100", "outbound", "200", 61),
        ("c2", DEC_3 + 60, "sales", "a", "+48615550100", "outbound", "200", 61),
        ("c3", DEC_3 + 120, "support", "b", "+4930123456", "outbound", "200", 10),
        ("c4", DEC_3 + 180, "support", "b", "+4930123456", "outbound", "486", None),
        ("c5", DEC_3 + 240, "support", "a", "+48225550101", "inbound", "200", 300),
        ("c6", DEC_3 + 300, "sales", "c", "+33123456789", "outbound", "200", 5),
        ("c7", DEC_3 - 40 * 86400, "sales", "a", "+48225550100", "outbound", "200", 600),
        # answered and ended within one second of the database's stamps
        ("c8", DEC_3 + 360, "sales", "a", "+48615550100", "outbound", "200", 0),
    ]
    with sqlite3.connect(database) as connection:
        for callid, at, department, carrier, callee, direction, code, seconds in rows:
            connection.execute(
                "INSERT INTO acc (method, callid, sip_code, time, department, carrier, callee, "
                "direction) VALUES ('INVITE', ?, ?, ?, ?, ?, ?, ?)",
                (callid, code, julian(at), department, carrier, callee, direction),
            )
            if seconds is not None:
                connection.execute(
                    "INSERT INTO sipwave_call_end (method, callid, sip_code, time) "
                    "VALUES ('BYE', ?, '200', ?)",
                    (callid, julian(at + seconds)),
                )
    return database


def test_calls_of_the_month_are_rated_by_carrier_and_longest_prefix(tmp_path):
    with sqlite3.connect(records(tmp_path)) as connection:
        calls = rate(read_calls(connection.cursor(), "2026-12"), TARIFFS)
    rated = {c["callid"]: (c["seconds"], c["billed_seconds"], c["cost"]) for c in calls}
    assert rated == {
        "c1": (61, 61, "0.05"),      # +4822: per second after 30 s, 0.05/min
        "c2": (61, 120, "0.20"),     # +48: per started minute
        "c3": (10, 60, "0.35"),      # set-up 0.15 + one minute at 0.20
        "c4": (0, 0, "0.00"),        # not answered
        "c5": (300, 0, "0.00"),      # inbound costs nothing
        "c6": (5, 5, None),          # no tariff for carrier c: unrated, never guessed
        "c8": (1, 60, "0.10"),       # an answered call that ended lasted a started second
    }  # fmt: skip


def test_departments_sum_each_call_once_across_proxies(tmp_path):
    with sqlite3.connect(records(tmp_path)) as connection:
        calls = rate(read_calls(connection.cursor(), "2026-12"), TARIFFS)
    rows = by_department(calls + calls[:2], "PLN")  # the same calls seen on two proxies
    assert rows == [
        {"department": "sales", "calls": 4, "answered": 4, "billed_minutes": "4.10",
         "cost": "0.35", "unrated": 1, "currency": "PLN"},
        {"department": "support", "calls": 3, "answered": 2, "billed_minutes": "1.00",
         "cost": "0.35", "unrated": 0, "currency": "PLN"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"carrier": "a", "prefix": "48", "per_minute": "0.1"}, r"tariffs\[0\]: prefix '48'"),
        ({"carrier": "a", "prefix": "+48", "per_minute": "-1"}, r"per_minute: '-1' is not a price"),
        ({"carrier": "a", "prefix": "+48", "per_minute": "1", "increment": 0}, "increment"),
        ({"carrier": "a b", "prefix": "+48", "per_minute": "1"}, "carrier must be"),
    ],
)
def test_a_bad_tariff_is_refused_naming_the_entry(entry, message):
    with pytest.raises(CostError, match=message):
        tariffs([entry])


def test_billing_increments():
    minute = Tariff("a", "+48", Decimal("0.60"))
    assert [billed_seconds(minute, s) for s in (0, 1, 60, 61, 121)] == [0, 60, 60, 120, 180]
    assert cost_of(minute, 61) == (120, Decimal("1.20"))
    second = Tariff("a", "+48", Decimal("0.60"), increment=1, first=1)
    assert cost_of(second, 61) == (61, Decimal("0.61"))


def test_the_csv_quotes_what_a_spreadsheet_would_run_as_a_formula():
    text = to_csv([{"department": "=HYPERLINK(\"x\")", "cost": "-0.10", "calls": 1}],
                  ("department", "calls", "cost"))  # fmt: skip
    assert text.splitlines()[1] == '"\'=HYPERLINK(""x"")",1,-0.10'


def test_a_bad_period_is_refused():
    with pytest.raises(CostError, match="period '2026-13': must be a month"):
        call_costs.period_bounds("2026-13")
