"""dialin_access sources: inventory and wave rows side by side, schema upgrade, conflicts."""

import json
import sqlite3

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import dialin_db
from module_runner import run_module_file
from test_dialin_access import ACME, BETA, MODULE, PLAN

WAVE = "wave:wave1"
CUSTOMER = {
    "id": "481200000",
    "department": "sales",
    "number": "+48220000000",
    "dialin_numbers": ["+48600000000", "0048700000000"],
}
# Schema 1, as the first release of the asterisk role created it.
SCHEMA_1 = """
CREATE TABLE account (id TEXT PRIMARY KEY, department TEXT NOT NULL, number TEXT NOT NULL,
    pin_hash TEXT, max_calls INTEGER NOT NULL);
CREATE TABLE dialin_number (number TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id) ON DELETE CASCADE);
CREATE INDEX dialin_number_account ON dialin_number (account_id);
CREATE TABLE failure (caller TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX failure_caller ON failure (caller, at);
"""


def run(tmp_path, accounts, *, source="inventory", check=False, diff=False, **extra):
    args = {
        "database": str(tmp_path / "dialin.sqlite"),
        "number_plan": PLAN,
        "accounts": accounts,
        "source": source,
        "exclusive": True,
        **extra,
    }
    completed = run_module_file(MODULE, tmp_path, args, check=check, diff=diff)
    return json.loads(completed.stdout)


def rows(tmp_path) -> dict[str, tuple[str, str]]:
    """caller number -> (account, source)"""
    with sqlite3.connect(tmp_path / "dialin.sqlite") as connection:
        return {
            number: (account, source)
            for number, account, source in connection.execute(
                "SELECT d.number, a.id, a.source FROM dialin_number d"
                " JOIN account a ON a.id = d.account_id"
            )
        }


def dump(tmp_path) -> list:
    with sqlite3.connect(tmp_path / "dialin.sqlite") as connection:
        return [
            connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("account", "dialin_number", "failure")
        ]


def old_database(tmp_path) -> str:
    """A schema-1 database with an account, its numbers and a lockout counter."""
    pin_hash = dialin_db.hash_pin(ACME["pin"])
    with sqlite3.connect(tmp_path / "dialin.sqlite") as connection:
        connection.executescript(SCHEMA_1)
        connection.execute(
            "INSERT INTO account VALUES ('acme', 'sales', '+48221110001', ?, 2)", (pin_hash,)
        )
        connection.executemany(
            "INSERT INTO dialin_number VALUES (?, 'acme')", [("+48601000001",), ("+48601000002",)]
        )
        connection.execute("INSERT INTO failure VALUES ('+48601000001', 1.0)")
    return pin_hash


def test_a_wave_never_removes_inventory_rows(tmp_path):
    run(tmp_path, [ACME, BETA])
    run(tmp_path, [CUSTOMER], source=WAVE)
    emptied = run(tmp_path, [], source=WAVE)
    assert emptied["removed"] == ["481200000"]
    assert rows(tmp_path) == {
        "+48601000001": ("acme", "inventory"),
        "+48601000002": ("acme", "inventory"),
    }


def test_the_inventory_never_removes_wave_rows(tmp_path):
    run(tmp_path, [CUSTOMER], source=WAVE)
    result = run(tmp_path, [BETA])
    assert result["removed"] == [] and result["added"] == ["beta"]
    assert rows(tmp_path) == {
        "+48600000000": ("481200000", WAVE),
        "+48700000000": ("481200000", WAVE),
    }


def test_two_waves_keep_their_own_rows(tmp_path):
    other = {**CUSTOMER, "id": "481200001", "dialin_numbers": ["+48600000001"]}
    run(tmp_path, [CUSTOMER], source=WAVE)
    run(tmp_path, [other], source="wave:wave2")
    assert run(tmp_path, [CUSTOMER], source=WAVE)["changed"] is False
    assert rows(tmp_path)["+48600000001"] == ("481200001", "wave:wave2")


def test_a_schema_1_database_is_upgraded_without_losing_anything(tmp_path):
    pin_hash = old_database(tmp_path)
    before = dump(tmp_path)
    first = run(tmp_path, [ACME])
    assert first["changed"] and first["schema_upgraded"]
    assert first["counts"]["unchanged"] == 1
    accounts, numbers, failures = dump(tmp_path)
    # Sources came with schema 2, the limits of accounts without a PIN with schema 3.
    assert accounts == [(*before[0][0], "inventory", None, None)]
    assert accounts[0][3] == pin_hash
    assert numbers == before[1] and failures == before[2]
    second = run(tmp_path, [ACME])
    assert not second["changed"] and not second["schema_upgraded"]
    assert dump(tmp_path) == [accounts, numbers, failures]


def test_check_mode_reports_the_upgrade_and_writes_nothing(tmp_path):
    old_database(tmp_path)
    before = dump(tmp_path)
    result = run(tmp_path, [ACME], check=True)
    assert result["changed"] and result["schema_upgraded"]
    assert dump(tmp_path) == before


def test_a_wave_next_to_an_upgraded_database(tmp_path):
    old_database(tmp_path)
    result = run(tmp_path, [CUSTOMER], source=WAVE)
    assert result["schema_upgraded"] and result["added"] == ["481200000"]
    assert rows(tmp_path)["+48601000001"] == ("acme", "inventory")


def test_a_number_of_another_source_fails_the_run_and_nothing_is_written(tmp_path):
    run(tmp_path, [ACME])
    before = dump(tmp_path)
    clashing = {**CUSTOMER, "dialin_numbers": ["601000001", "+48600000000"]}
    result = run(tmp_path, [clashing], source=WAVE)
    assert result["failed"]
    assert (
        "caller number +48601000001 of account 481200000 is authorised for account acme of "
        "source inventory"
    ) in result["msg"]
    assert dump(tmp_path) == before


def test_on_conflict_keep_applies_the_rest_and_reports_the_clash(tmp_path):
    run(tmp_path, [ACME])
    clashing = {**CUSTOMER, "dialin_numbers": ["601000001", "+48600000000"]}
    result = run(tmp_path, [clashing], source=WAVE, on_conflict="keep")
    assert result["conflicts"] == [
        {
            "account": "481200000",
            "number": "+48601000001",
            "held_by": "acme",
            "held_by_source": "inventory",
        }
    ]
    assert "+48601000001" in json.dumps(result["warnings"])
    assert result["present"] == {"accounts": 1, "numbers": 1}
    assert rows(tmp_path)["+48601000001"] == ("acme", "inventory")
    assert rows(tmp_path)["+48600000000"] == ("481200000", WAVE)
    again = run(tmp_path, [clashing], source=WAVE, on_conflict="keep")
    assert not again["changed"] and len(again["conflicts"]) == 1


def test_an_account_id_of_another_source_is_a_conflict(tmp_path):
    run(tmp_path, [ACME])
    result = run(tmp_path, [{**CUSTOMER, "id": "acme"}], source=WAVE, on_conflict="keep")
    assert result["conflicts"] == [
        {"account": "acme", "number": None, "held_by": "acme", "held_by_source": "inventory"}
    ]
    assert not result["changed"] and "+48600000000" not in rows(tmp_path)


def test_kept_accounts_survive_an_exclusive_run(tmp_path):
    other = {**CUSTOMER, "id": "481200001", "dialin_numbers": ["+48600000001"]}
    run(tmp_path, [CUSTOMER, other], source=WAVE)
    result = run(tmp_path, [CUSTOMER], source=WAVE, keep_accounts=["481200001"])
    assert not result["changed"]
    assert result["source_rows"] == {"accounts": 2, "numbers": 3}


def test_a_number_moves_between_accounts_of_one_source(tmp_path):
    other = {**CUSTOMER, "id": "481200001", "dialin_numbers": ["+48600000001"]}
    run(tmp_path, [CUSTOMER, other], source=WAVE)
    moved = {**other, "dialin_numbers": ["+48600000001", "+48600000000"]}
    result = run(tmp_path, [{**CUSTOMER, "dialin_numbers": ["+48700000000"]}, moved], source=WAVE)
    assert result["conflicts"] == [] and result["present"] == {"accounts": 2, "numbers": 3}
    assert rows(tmp_path)["+48600000000"] == ("481200001", WAVE)


def test_presence_is_read_back_and_planned_alike(tmp_path):
    planned = run(tmp_path, [CUSTOMER], source=WAVE, check=True)
    applied = run(tmp_path, [CUSTOMER], source=WAVE)
    expected = {"accounts": 1, "numbers": 2}
    assert planned["present"] == applied["present"] == expected
    assert applied["source_rows"] == expected


def test_the_diff_shows_only_the_runs_source(tmp_path):
    run(tmp_path, [ACME])
    result = run(tmp_path, [CUSTOMER], source=WAVE, diff=True)
    assert "481200000 department=sales" in result["diff"]["after"]
    assert "source=wave:wave1" in result["diff"]["after"]
    assert "acme" not in result["diff"]["after"] + result["diff"]["before"]


@pytest.mark.parametrize("source", ["wave:", "waves:wave1", "wave:a b", "Inventory"])
def test_a_bad_source_is_refused(tmp_path, source):
    result = run(tmp_path, [CUSTOMER], source=source)
    assert result["failed"] and f"source {source!r}" in result["msg"]
    assert not (tmp_path / "dialin.sqlite").exists()
