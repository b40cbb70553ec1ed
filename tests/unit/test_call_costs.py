"""Rating calls for the cost report on real SQLite call records laid out as Kamailio's acc
module writes them (time as a Julian day number): tariffs by carrier and longest prefix,
billing increments, ends that count (forged ones do not), the site/department sums, the CSV
for accounting and the page with charts."""

import re
import sqlite3
from decimal import Decimal

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import call_costs
from ansible_collections.sipwave.platform.plugins.module_utils.call_costs import (
    CostError,
    Tariff,
    billed_seconds,
    cost_of,
    rate,
    read_calls,
    report,
    tariffs,
    to_csv,
)
from ansible_collections.sipwave.platform.plugins.module_utils.cost_page import (
    COST_COLOUR,
    MINUTES_COLOUR,
    page,
)
from wave_helpers import create_database

TARIFFS = tariffs([
    {"carrier": "a", "prefix": "+48", "per_minute": "0.10"},
    {"carrier": "a", "prefix": "+4822", "per_minute": "0.05", "increment": 1, "first": 30},
    {"carrier": "b", "prefix": "+49", "per_minute": "0.20", "setup": "0.15"},
])  # fmt: skip


def julian(epoch: float) -> float:
    return epoch / 86400 + call_costs.JULIAN_DAY_OF_EPOCH


DEC_3 = 1796299200.0  # 2026-12-03T12:00:00Z


def insert_call(connection, callid, at, *, department="sales", carrier="a", callee="+48225550100",
                direction="outbound", code="200", tags=("ft", "tt"), site="warsaw"):  # fmt: skip
    connection.execute(
        "INSERT INTO acc (method, callid, from_tag, to_tag, sip_code, time, department, "
        "carrier, callee, direction, site) VALUES ('INVITE', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (callid, *tags, code, julian(at), department, carrier, callee, direction, site),
    )


def insert_end(connection, callid, at, *, tags=("ft", "tt"), carrier="a"):
    """A BYE's end record, as the router writes it: with the carrier that confirmed it."""
    connection.execute(
        "INSERT INTO sipwave_call_end (method, callid, from_tag, to_tag, sip_code, time, "
        "carrier) VALUES ('BYE', ?, ?, ?, '200', ?, ?)",
        (callid, *tags, julian(at), carrier),
    )


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
            insert_call(connection, callid, at, department=department, carrier=carrier,
                        callee=callee, direction=direction, code=code)  # fmt: skip
            if seconds is not None:
                # The called side hangs up: its BYE runs the other way (tags swapped).
                tags = ("tt", "ft") if callid == "c3" else ("ft", "tt")
                insert_end(connection, callid, at + seconds, tags=tags, carrier=carrier)
    return database


def rated_calls(database, period="2026-12"):
    with sqlite3.connect(database) as connection:
        calls, unreadable = read_calls(connection.cursor(), period)
    assert unreadable == 0
    return rate(calls, TARIFFS)


def test_calls_of_the_month_are_rated_by_carrier_and_longest_prefix(tmp_path):
    calls = rated_calls(records(tmp_path))
    rated = {c["callid"]: (c["state"], c["seconds"], c["billed_seconds"], c["cost"]) for c in calls}
    assert rated == {
        "c1": ("ended", 61, 61, "0.05"),      # +4822: per second after 30 s, 0.05/min
        "c2": ("ended", 61, 120, "0.20"),     # +48: per started minute
        "c3": ("ended", 10, 60, "0.35"),      # set-up 0.15 + one minute at 0.20
        "c4": ("unanswered", 0, 0, "0.00"),
        "c5": ("ended", 300, 0, "0.00"),      # inbound costs nothing
        "c6": ("ended", 5, 5, None),          # no tariff for carrier c: unrated, never guessed
        "c8": ("ended", 1, 60, "0.10"),       # an answered call that ended lasted a second
    }  # fmt: skip


FORGED_ENDS = {
    # An early BYE that only a phone of the caller's own answered: no carrier confirmed it.
    "answered by nobody's carrier": {"carrier": None},
    # The Call-ID of the call with tags of no dialog of it (the carrier said 481).
    "tags of another dialog": {"tags": ("ft", "forged")},
    # A BYE recorded before the call was answered (a Call-ID chosen in advance).
    "before the answer": {"at": DEC_3 - 30},
    # Another carrier confirmed an end of a call it never carried.
    "confirmed by another carrier": {"carrier": "b"},
}


@pytest.mark.parametrize("forged", sorted(FORGED_ENDS))
def test_a_forged_end_shortens_no_call(tmp_path, forged):
    database = create_database(tmp_path / "proxy.sqlite")
    with sqlite3.connect(database) as connection:
        insert_call(connection, "long", DEC_3)
        end = {"at": DEC_3 + 2, "tags": ("ft", "tt"), "carrier": "a", **FORGED_ENDS[forged]}
        insert_end(connection, "long", end["at"], tags=end["tags"], carrier=end["carrier"])
        insert_end(connection, "long", DEC_3 + 600)  # the carrier's real end, 10 minutes in
    (call,) = rated_calls(database)
    assert (call["state"], call["seconds"], call["cost"]) == ("ended", 600, "0.50")


def test_an_answered_call_without_a_confirmed_end_is_open_never_free(tmp_path):
    database = create_database(tmp_path / "proxy.sqlite")
    with sqlite3.connect(database) as connection:
        insert_call(connection, "open", DEC_3)
        insert_end(connection, "open", DEC_3 + 1, carrier=None)
        # An internal call needs no carrier: any end of its dialog ends it.
        insert_call(connection, "internal", DEC_3 + 5, direction="internal", carrier=None)
        insert_end(connection, "internal", DEC_3 + 65, carrier=None)
    calls = {c["callid"]: c for c in rated_calls(database)}
    assert (calls["open"]["state"], calls["open"]["cost"]) == ("open", None)
    assert (calls["internal"]["state"], calls["internal"]["seconds"]) == ("ended", 60)
    (sales,) = report(calls.values(), "PLN")["departments"]
    assert (sales["open"], sales["unrated"], sales["cost"]) == (1, 0, "0.00")


def test_a_reused_call_id_is_two_calls_in_both_lists(tmp_path):
    """A phone that reuses a Call-ID for a cheap and a dear call hides neither."""
    database = create_database(tmp_path / "proxy.sqlite")
    with sqlite3.connect(database) as connection:
        insert_call(connection, "same", DEC_3, tags=("f1", "t1"))
        insert_end(connection, "same", DEC_3 + 600, tags=("f1", "t1"))
        insert_call(connection, "same", DEC_3 + 700, tags=("f2", "t2"), callee="+48615550100")
        insert_end(connection, "same", DEC_3 + 710, tags=("f2", "t2"))
    calls = rated_calls(database)
    merged = report(calls + calls, "PLN")  # and read on two proxies sharing the database
    assert [c["seconds"] for c in merged["calls"]] == [600, 10]
    (sales,) = merged["departments"]
    assert sales["calls"] == 2
    assert Decimal(sales["cost"]) == sum(Decimal(c["cost"]) for c in merged["calls"])


def test_a_record_whose_time_cannot_be_read_is_counted_not_guessed(tmp_path):
    database = create_database(tmp_path / "proxy.sqlite")
    with sqlite3.connect(database) as connection:
        insert_call(connection, "fine", DEC_3)
        connection.execute(
            "INSERT INTO acc (method, callid, sip_code, time) VALUES "
            "('INVITE', 'garbled', '200', 'yesterday')"
        )
    with sqlite3.connect(database) as connection:
        calls, unreadable = read_calls(connection.cursor(), "2026-12")
    assert ([c["callid"] for c in calls], unreadable) == (["fine"], 1)


def test_sites_and_departments_sum_each_record_once_across_proxies(tmp_path):
    calls = rated_calls(records(tmp_path))
    rows = report(calls + calls[:2], "PLN")["departments"]  # seen on two proxies
    assert rows == [
        {"site": "warsaw", "department": "sales", "calls": 4, "answered": 4,
         "billed_minutes": "4.10", "cost": "0.35", "unrated": 1, "open": 0, "currency": "PLN"},
        {"site": "warsaw", "department": "support", "calls": 3, "answered": 2,
         "billed_minutes": "1.00", "cost": "0.35", "unrated": 0, "open": 0, "currency": "PLN"},
    ]  # fmt: skip


HOSTILE_NAME = "--><script>alert(1)</script><!-- $x^2$ & <b>"


def test_the_report_page_draws_both_charts_and_escapes_every_name(tmp_path):
    calls = rated_calls(records(tmp_path))
    for call in calls:
        call["department"] = HOSTILE_NAME if call["department"] == "sales" else "support"
    merged = report(calls, "PLN")
    text = page(merged["departments"], "2026-12", "PLN", {"calls": len(merged["calls"])})
    assert text.count("<svg") == 2
    assert COST_COLOUR in text and MINUTES_COLOUR in text
    assert "<script" not in text and "<b>" not in text
    assert "&lt;script&gt;" in text
    # Self-contained: nothing for a browser to fetch.
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)|<link|@import|url\((?!#)""", text)


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
