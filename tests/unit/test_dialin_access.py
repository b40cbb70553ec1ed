"""sipwave.platform.dialin_access: dial-in accounts, authorised numbers and PIN hashes in bulk."""

import json
import sqlite3
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import dialin_db
from module_runner import run_module_file

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
MODULE = COLLECTIONS / "ansible_collections/sipwave/platform/plugins/modules/dialin_access.py"
PIN = "73920561"
PLAN = {"country_code": "48"}
ACME = {
    "id": "acme",
    "department": "sales",
    "number": "221110001",
    "dialin_numbers": ["+48601000001", "0048 601-000-002"],
    "pin": PIN,
    "max_calls": 2,
}
BETA = {"id": "beta", "department": "finance", "number": "+48221110002", "dialin_numbers": []}


def run(tmp_path, accounts, *, check=False, diff=False, **extra):
    args = {"database": str(tmp_path / "dialin.sqlite"), "number_plan": PLAN, "accounts": accounts}
    completed = run_module_file(MODULE, tmp_path, {**args, **extra}, check=check, diff=diff)
    return json.loads(completed.stdout), completed.stdout


def numbers(tmp_path) -> dict[str, str]:
    with sqlite3.connect(tmp_path / "dialin.sqlite") as connection:
        return dict(connection.execute("SELECT number, account_id FROM dialin_number"))


def test_accounts_are_written_in_e164_with_a_pin_hash(tmp_path):
    result, _ = run(tmp_path, [ACME, BETA])
    assert result["changed"] and result["added"] == ["acme", "beta"]
    assert numbers(tmp_path) == {"+48601000001": "acme", "+48601000002": "acme"}
    with sqlite3.connect(tmp_path / "dialin.sqlite") as connection:
        number, pin_hash = connection.execute(
            "SELECT number, pin_hash FROM account WHERE id = 'acme'"
        ).fetchone()
    assert number == "+48221110001"
    assert dialin_db.pin_matches(PIN, pin_hash) and PIN not in pin_hash


def test_second_run_changes_nothing(tmp_path):
    run(tmp_path, [ACME, BETA])
    result, _ = run(tmp_path, [ACME, BETA])
    assert not result["changed"]
    assert result["counts"] == {
        "added": 0,
        "updated": 0,
        "removed": 0,
        "unchanged": 2,
        "conflicting": 0,
    }


def test_changed_pin_and_list_are_updated(tmp_path):
    run(tmp_path, [ACME])
    result, _ = run(tmp_path, [{**ACME, "pin": "11112222", "dialin_numbers": ["601000009"]}])
    assert result["updated"] == ["acme"]
    assert numbers(tmp_path) == {"+48601000009": "acme"}


def test_the_pin_never_leaves_the_module(tmp_path):
    _, first = run(tmp_path, [ACME], diff=True)
    _, changed = run(tmp_path, [{**ACME, "pin": "55556666"}], diff=True)
    assert PIN not in first and "55556666" not in changed
    assert "(PIN changed)" in json.loads(changed)["diff"]["after"]


def test_check_mode_on_a_missing_database_writes_nothing(tmp_path):
    result, _ = run(tmp_path, [ACME], check=True, diff=True)
    assert result["changed"] and not (tmp_path / "dialin.sqlite").exists()
    assert "acme department=sales" in result["diff"]["after"]


def test_exclusive_removes_unlisted_accounts_but_not_the_lockout_counter(tmp_path):
    run(tmp_path, [ACME, BETA])
    with sqlite3.connect(tmp_path / "dialin.sqlite") as connection:
        connection.execute("INSERT INTO failure VALUES ('+48601000001', 1.0)")
    result, _ = run(tmp_path, [BETA], exclusive=True)
    assert result["removed"] == ["acme"] and numbers(tmp_path) == {}
    with sqlite3.connect(tmp_path / "dialin.sqlite") as connection:
        assert connection.execute("SELECT count(*) FROM failure").fetchone() == (1,)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({**ACME, "pin": "12a4"}, "accounts[0] (acme): pin must be 4 to 12 digits"),
        ({**ACME, "dialin_numbers": ["12ab"]}, "accounts[0] (acme): dialin_numbers '12ab'"),
        ({**ACME, "max_calls": 0}, "accounts[0] (acme): max_calls must be at least 1"),
    ],
)
def test_bad_entries_are_named_and_nothing_is_written(tmp_path, entry, reason):
    result, stdout = run(tmp_path, [entry])
    assert result["failed"] and reason in result["msg"]
    assert not (tmp_path / "dialin.sqlite").exists()
    if "pin" in reason:
        assert entry["pin"] not in stdout


def test_a_caller_number_belongs_to_one_account(tmp_path):
    other = {**BETA, "dialin_numbers": ["601000001"]}
    result, _ = run(tmp_path, [ACME, other])
    assert result["failed"] and "+48601000001 is already acme's" in result["msg"]


def test_allowed_prefixes_and_daily_minutes_are_kept_and_a_rerun_changes_nothing(tmp_path):
    limited = {**BETA, "allowed_prefixes": ["+4822", "+44", "+44"], "daily_minutes": 30}
    result, _ = run(tmp_path, [ACME, limited])
    assert result["changed"]
    with sqlite3.connect(tmp_path / "dialin.sqlite") as connection:
        stored = connection.execute(
            "SELECT id, allowed_prefixes, daily_minutes FROM account ORDER BY id"
        ).fetchall()
    assert stored == [("acme", None, None), ("beta", "+44,+4822", 30)]
    again, _ = run(tmp_path, [ACME, limited])
    assert not again["changed"]
    back_to_defaults, _ = run(tmp_path, [ACME, BETA])
    assert back_to_defaults["updated"] == ["beta"]


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"allowed_prefixes": ["44"]}, "allowed prefix '44' is not '+' and 1 to 15 digits"),
        ({"daily_minutes": -1}, "daily_minutes must be 0 or more"),
        ({"department": "sales\nEXEC Dial x"}, "department holds a control character (U+000A)"),
    ],
)
def test_bad_limits_are_named_and_nothing_is_written(tmp_path, extra, reason):
    result, _ = run(tmp_path, [ACME, {**BETA, **extra}])
    assert result["failed"] and reason in result["msg"]
    assert not (tmp_path / "dialin.sqlite").exists() or numbers(tmp_path) == {}


def test_every_account_without_a_pin_is_returned(tmp_path):
    result, _ = run(tmp_path, [ACME, BETA])
    assert result["without_pin"] == ["beta"]
    checked, _ = run(tmp_path, [ACME, BETA, {**BETA, "id": "gamma"}], check=True)
    assert checked["without_pin"] == ["beta", "gamma"]


def test_a_staff_members_own_source_adds_and_removes_only_their_account(tmp_path):
    """playbooks/user_add.yml: source staff:<login>, exclusive; an empty list removes it."""
    run(tmp_path, [ACME], source="inventory")
    staff = {"id": "jkowalska", "department": "support", "number": "+48225558000",
             "dialin_numbers": ["601234567"]}  # fmt: skip
    added, _ = run(tmp_path, [staff], source="staff:jkowalska", exclusive=True)
    assert added["changed"] and numbers(tmp_path)["+48601234567"] == "jkowalska"
    again, _ = run(tmp_path, [staff], source="staff:jkowalska", exclusive=True)
    assert not again["changed"]
    taken = {**staff, "dialin_numbers": ["+48601000001"]}  # acme's, from the inventory
    refused, _ = run(tmp_path, [taken], source="staff:jkowalska", exclusive=True)
    assert refused.get("failed") and "+48601000001" in refused["msg"], refused
    run(tmp_path, [], source="staff:jkowalska", exclusive=True)
    assert numbers(tmp_path) == {"+48601000001": "acme", "+48601000002": "acme"}


def presented(tmp_path) -> dict[str, str]:
    with sqlite3.connect(tmp_path / "dialin.sqlite") as connection:
        return dict(connection.execute("SELECT id, number FROM account"))


def test_a_carrier_that_screens_is_shown_the_screened_number_and_others_the_own(tmp_path):
    waiting = {**BETA, "screened_number": "0048 22 555 09 00"}  # its temporary number
    run(tmp_path, [ACME, waiting])
    assert presented(tmp_path) == {"acme": "+48221110001", "beta": "+48221110002"}
    result, _ = run(tmp_path, [ACME, waiting], clip_no_screening=False)
    assert result["changed"] and result["updated"] == ["beta"]
    # acme has no temporary number: its own, whatever the carrier
    assert presented(tmp_path) == {"acme": "+48221110001", "beta": "+48225550900"}
    result, _ = run(tmp_path, [ACME, waiting], clip_no_screening=False)
    assert not result["changed"]


def test_a_bad_screened_number_is_named_and_nothing_is_written(tmp_path):
    result, _ = run(tmp_path, [{**BETA, "screened_number": "12ab"}], clip_no_screening=False)
    assert result["failed"] and "accounts[0] (beta): screened_number" in result["msg"]
    assert not (tmp_path / "dialin.sqlite").exists() or presented(tmp_path) == {}
