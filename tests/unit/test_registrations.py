"""The phase-2 accounts without a registration (module_utils/registrations.py, the module
wave_registrations and its filters) on a real proxy database: made by the project's schema
and filled by the wave engine, with location rows as Kamailio's usrloc writes them."""

import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.filter.registrations import (
    unregistered_csv,
    unregistered_everywhere,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import (
    connection as dbconn,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.times import (
    JULIAN_DAY_OF_EPOCH,
)
from ansible_collections.sipwave.platform.plugins.module_utils.registrations import (
    unregistered_in_phase2,
)
from module_runner import run_module_file
from wave_helpers import LEGACY, NEW, PROJECT, account, consent, create_database, run

MODULE = (
    PROJECT / "collections/ansible_collections/sipwave/platform/plugins/modules/"
    "wave_registrations.py"
)
ON_NEW_PHONE = account("481234301", ("+48221234301",))
ON_OLD_PHONE = account("481234302", ("+48221234302",))
SILENT = account("481234303", ("+48221234303",))
BEFORE_PHASE2 = account("481234304", ("+48221234304",))
CLOSING = account("481234305", ("+48221234305",))
STILL_PHASE1 = account("481234306", ("+48221234306",))
WAVE = [ON_NEW_PHONE, ON_OLD_PHONE, SILENT, BEFORE_PHASE2, CLOSING, STILL_PHASE1]


def register(database: Path, user: str, domain: str, *, julian_day: float | str) -> None:
    """A location row as usrloc writes it back (db_sqlite: TIMESTAMP as a Julian day)."""
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO location (ruid, username, domain, contact, last_modified) "
            "VALUES (?, ?, ?, 'sip:phone@127.0.0.1:5099', ?)",
            (f"r-{user}-{domain}", user, domain, julian_day),
        )


@pytest.fixture
def phase2(tmp_path) -> Path:
    """A wave in phase 2: five accounts consented (one to close), one still in phase 1."""
    database = create_database(tmp_path / "proxy.sqlite")
    run(database, WAVE)
    consent(database, **{a.login: "migrate" for a in WAVE[:4]}, **{CLOSING.login: "close"})
    run(database, WAVE, phase=2)
    now = time.time() / 86400 + JULIAN_DAY_OF_EPOCH
    register(database, f"tnf{ON_NEW_PHONE.login}", NEW, julian_day=now)
    register(database, ON_OLD_PHONE.login, LEGACY, julian_day=now)
    register(database, f"tnf{BEFORE_PHASE2.login}", NEW, julian_day="2000-01-01 00:00:01")
    return database


def listed(database: Path, wave: str = "wave1") -> dict:
    conn = dbconn.connect("sqlite", database=str(database))
    try:
        return unregistered_in_phase2(conn, wave)
    finally:
        conn.close()


def test_phase2_accounts_without_a_new_registration_are_listed(phase2):
    result = listed(phase2)
    assert result["phase2"] == 4
    assert [a["login"] for a in result["unregistered"]] == [
        ON_OLD_PHONE.login, SILENT.login, BEFORE_PHASE2.login,
    ]  # fmt: skip


def test_each_listed_account_says_who_and_until_when(phase2):
    (old_phone, silent, _) = listed(phase2)["unregistered"]
    assert old_phone["identity"] == f"tnf{ON_OLD_PHONE.login}@{NEW}"
    assert old_phone["legacy_identity_registered"] is True
    assert silent["legacy_identity_registered"] is False
    assert silent["grace_until"] == "2026-12-06"  # wave_helpers: TODAY + 14 days
    assert silent["phase2_since"]


def test_another_wave_or_a_database_without_the_engine_lists_nothing(phase2, tmp_path):
    assert listed(phase2, "wave2") == {"phase2": 0, "unregistered": []}
    bare = tmp_path / "bare.sqlite"
    sqlite3.connect(bare).close()
    assert listed(bare) == {"phase2": 0, "unregistered": []}


def test_an_account_counts_as_unregistered_only_where_no_proxy_saw_it():
    def entry(login, legacy=False):
        return {"login": login, "identity": f"tnf{login}@{NEW}", "phase2_since": "x",
                "grace_until": "2026-12-06", "legacy_identity_registered": legacy}  # fmt: skip

    proxy1 = {"phase2": 3, "unregistered": [entry("a"), entry("b"), entry("c")]}
    proxy2 = {"phase2": 3, "unregistered": [entry("c"), entry("b", legacy=True)]}
    combined = unregistered_everywhere([proxy1, proxy2])
    assert [(a["login"], a["legacy_identity_registered"]) for a in combined] == [
        ("b", True), ("c", False),
    ]  # fmt: skip


def test_the_csv_for_customer_care_quotes_what_a_spreadsheet_would_run(phase2):
    accounts = listed(phase2)["unregistered"] + [
        {"login": "=cmd|' /C calc'!A0", "identity": "x", "phase2_since": "",
         "grace_until": "", "legacy_identity_registered": False}
    ]  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(unregistered_csv(accounts))))
    assert list(rows[0]) == ["login", "identity", "phase2_since", "grace_until",
                             "legacy_identity_registered"]  # fmt: skip
    assert rows[0]["login"] == ON_OLD_PHONE.login
    assert rows[-1]["login"].startswith("'=")


def test_the_module_reads_only_and_reports_the_list(phase2, tmp_path):
    before = phase2.read_bytes()
    result = run_module_file(MODULE, tmp_path, {"wave": "wave1", "database": str(phase2)},
                             check=True)  # fmt: skip
    output = json.loads(result.stdout)
    assert result.returncode == 0 and output["changed"] is False, result.stdout
    assert [a["login"] for a in output["unregistered"]] == [
        ON_OLD_PHONE.login, SILENT.login, BEFORE_PHASE2.login,
    ]  # fmt: skip
    assert phase2.read_bytes() == before


@pytest.mark.parametrize("wave", ["../x", "wave 1", ""])
def test_the_module_refuses_what_is_no_wave_name(phase2, tmp_path, wave):
    result = run_module_file(MODULE, tmp_path, {"wave": wave, "database": str(phase2)})
    output = json.loads(result.stdout)
    assert output.get("failed") and "is no wave name" in output["msg"], result.stdout


def test_the_module_names_the_role_when_the_database_is_missing(tmp_path):
    result = run_module_file(MODULE, tmp_path, {"wave": "w", "database": str(tmp_path / "x")})
    assert "deploy the kamailio role" in json.loads(result.stdout)["msg"]
