"""A staff member's account in the proxy database (module_utils/staff.py): one transaction,
numbers from the staff inventory, refusals naming the value, idempotence, check mode, and
the provisioning and dial-in paths that pick the member up."""

import json
import sqlite3
from datetime import date

import pytest
from ansible_collections.sipwave.platform.plugins.action.provisioning_configs import (
    parse_staff,
    staff_lines,
)
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    generated_password,
    ha1,
    ha1b,
    staff_password,
)
from ansible_collections.sipwave.platform.plugins.module_utils.dialin_db import (
    DialinError,
    check_source,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import plan_from_dict
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.staff import (
    StaffError,
    apply_member,
    member_from_input,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import temporary_pools
from ansible_collections.sipwave.platform.plugins.modules.account_states import read_staff

SECRET = "unit-test-site-secret-0123456789abcdef"
DOMAIN = "sip.sipwave.test"
PLAN = plan_from_dict({"country_code": "48", "national_lengths": [9]})
POOLS = temporary_pools([{"area": "+4822", "first": "+48225558000", "last": "+48225558002"}])
TODAY = date(2026, 12, 4)
MEMBER = {
    "login": "jkowalska",
    "display_name": "Joanna Kowalska",
    "email": "j.kowalska@example.test",
    "department": "support",
    "devices": ["Yealink:T54W:80-5E-C0-AB-00-01"],
    "dialin_numbers": ["601 234 567"],
}


@pytest.fixture
def conn(tmp_path):
    connection = sqlite3.connect(tmp_path / "proxy.sqlite")
    database = Database("sqlite", connection, sqlite3.Error)
    schema.ensure(database, connection.cursor())
    connection.commit()
    yield database
    connection.close()


def add(conn, values=None, check_mode=False):
    member = member_from_input({**MEMBER, **(values or {})}, PLAN, DOMAIN)
    password = staff_password(SECRET, member.login)
    credentials = (ha1(member.login, DOMAIN, password), ha1b(member.login, DOMAIN, password))
    return apply_member(conn, member, credentials, POOLS, TODAY, "tnf", "run-1", check_mode)


def rows(conn, query):
    return conn.connection.execute(query).fetchall()


def test_one_run_writes_the_account_number_alias_dialin_and_staff_rows(conn):
    plan, generation = add(conn)
    assert plan.changed and generation == 1
    assert plan.after["number"] == "+48225558000"
    assert rows(conn, "SELECT username, domain FROM subscriber") == [("jkowalska", DOMAIN)]
    assert rows(conn, "SELECT alias_username, username FROM dbaliases") == [
        ("48225558000", "jkowalska")
    ]
    assert sorted(rows(conn, "SELECT number, kind, state FROM sipwave_number")) == [
        ("+48225558000", "number", "active"),
        ("+48601234567", "dialin", "active"),
    ]
    assert rows(conn, "SELECT devices, department FROM sipwave_staff") == [
        ("yealink:T54W:805ec0ab0001", "support")
    ]
    assert rows(conn, "SELECT wave, login, action FROM sipwave_audit") == [
        ("staff", "jkowalska", "staff_added")
    ]


def test_the_routing_view_routes_the_number_and_names_the_department(conn):
    add(conn)
    view = dict(rows(conn, "SELECT key_name, key_value FROM sipwave_routing"))
    assert view["n:48225558000"] == f"jkowalska@{DOMAIN}"
    assert view[f"d:jkowalska@{DOMAIN}"] == "support"
    assert view[f"i:jkowalska@{DOMAIN}"] == "1"


def test_only_hashes_are_stored(conn):
    add(conn)
    password = staff_password(SECRET, "jkowalska")
    dumped = "\n".join(conn.connection.iterdump())
    assert password not in dumped
    assert ha1("jkowalska", DOMAIN, password) in dumped


def test_a_second_run_changes_nothing(conn):
    add(conn)
    plan, generation = add(conn)
    assert not plan.changed and generation == 1
    assert plan.before == {**plan.after, "credentials": "set"}


def test_check_mode_plans_and_writes_nothing(conn):
    plan, generation = add(conn, check_mode=True)
    assert plan.changed and plan.after["number"] == "+48225558000" and generation == 0
    assert rows(conn, "SELECT * FROM subscriber") == []


def test_each_member_gets_the_next_free_number_and_none_twice(conn):
    add(conn)
    second, _ = add(conn, {"login": "anowak", "devices": [], "dialin_numbers": []})
    third, _ = add(conn, {"login": "bnowak", "devices": [], "dialin_numbers": []})
    assert [second.number, third.number] == ["+48225558001", "+48225558002"]
    with pytest.raises(StaffError, match="no free number left"):
        add(conn, {"login": "cnowak", "devices": [], "dialin_numbers": []})


def test_a_change_of_phone_and_dialin_numbers_updates_the_member(conn):
    add(conn)
    plan, _ = add(conn, {"devices": ["snom:D785:000413ab0002"], "dialin_numbers": []})
    assert plan.changed and plan.before["devices"] == ["yealink:T54W:805ec0ab0001"]
    assert rows(conn, "SELECT number, kind FROM sipwave_number") == [("+48225558000", "number")]
    assert rows(conn, "SELECT action FROM sipwave_audit ORDER BY id")[-1] == ("staff_updated",)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"devices": ["yealink:T54W:80:5e:c0:zz:00:01"]}, "malformed MAC '80:5e:c0:zz:00:01'"),
        ({"devices": ["nokia:3310:805ec0ab0001"]}, "unknown vendor 'nokia'"),
        ({"login": "j kowalska"}, "login 'j kowalska' must be"),
        ({"email": "nobody"}, "email 'nobody' is not an e-mail address"),
        ({"display_name": "Eve\r\nBcc: x@example.test"}, "display_name must be one line"),
        ({"number": "12"}, "number:"),
    ],
)
def test_bad_input_is_refused_naming_the_value(values, named):
    with pytest.raises(StaffError, match="refused: .*" + named.replace("(", r"\(")):
        member_from_input({**MEMBER, **values}, PLAN, DOMAIN)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"number": "+48225559999"}, "number +48225559999 is not in the staff number inventory"),
        ({"login": "tnf481200001"}, "starts with 'tnf'"),
    ],
)
def test_a_clash_with_the_inventory_is_refused(conn, values, named):
    with pytest.raises(StaffError, match=named.replace("+", r"\+")):
        add(conn, values)


def test_a_taken_number_a_customer_login_a_taken_mac_or_dialin_number_is_refused(conn):
    add(conn)
    conn.connection.execute(
        "INSERT INTO sipwave_account (login, state, wave, legacy_domain, updated_at, run_id) "
        "VALUES ('481200001', 'phase1', 'wave1', 'ip.tanifon.pl', 'now', 'r')"
    )
    conn.connection.commit()
    other = {"login": "anowak", "devices": [], "dialin_numbers": []}
    with pytest.raises(StaffError, match=r"number \+48225558000 is already taken \(jkowalska\)"):
        add(conn, {**other, "number": "+48225558000"})
    with pytest.raises(StaffError, match="taken by the customer account 481200001"):
        add(conn, {**other, "login": "481200001"})
    with pytest.raises(StaffError, match="MAC 805ec0ab0001 is a phone of staff member jkowalska"):
        add(conn, {**other, "devices": MEMBER["devices"]})
    with pytest.raises(StaffError, match=r"dial-in number \+48601234567 is authorised for"):
        add(conn, {**other, "dialin_numbers": ["601234567"]})


def test_an_identity_that_is_already_a_sip_account_is_refused(conn):
    conn.connection.execute(
        "INSERT INTO subscriber (username, domain, ha1, ha1b) VALUES ('jkowalska', ?, 'x', 'y')",
        (DOMAIN,),
    )
    conn.connection.commit()
    with pytest.raises(StaffError, match="is already a SIP account"):
        add(conn)


def test_account_states_hands_the_phones_to_the_provisioning(conn):
    add(conn)
    staff = parse_staff(json.dumps(read_staff(conn)))
    ((where, line, devices),) = staff_lines(staff, SECRET)
    assert where == "staff member jkowalska" and line.username == "jkowalska"
    assert line.password == staff_password(SECRET, "jkowalska")
    assert [(d.vendor, d.mac) for d in devices] == [("yealink", "805ec0ab0001")]


def test_the_staff_password_is_not_a_customers_generated_one():
    assert staff_password(SECRET, "481200001") != generated_password(SECRET, "481200001")


def test_the_dialin_database_takes_a_staff_source():
    assert check_source("staff:jkowalska") == "staff:jkowalska"
    with pytest.raises(DialinError):
        check_source("staff:")
