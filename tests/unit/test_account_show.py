"""account_show.yml / account_info: one account as customer care sees it, read from a real
proxy database that real wave runs wrote (ansible-playbook on localhost, SQLite), never a
secret."""

import json
import re

import pytest
from test_wave_module import playbook, sample_secrets
from wave_helpers import create_database


@pytest.fixture
def database(tmp_path):
    return create_database(tmp_path / "kamailio.sqlite")


@pytest.fixture
def migrated(tmp_path, database):
    """wave1 in phase 1, one consent, that account in phase 2 on its own, another rolled back."""
    reports = tmp_path / "reports"
    playbook("migrate_wave.yml", database, reports, "-e", "wave=wave1")
    playbook("record_consent.yml", database, reports, "-e", "login=481200000",
             "-e", "decision=migrate", "-e", "wave=wave1")  # fmt: skip
    playbook("rollback_wave.yml", database, reports, "-e", "wave=wave1", "-e",
             "account=481200002")  # fmt: skip
    return reports


def shown(database, reports, login: str, *extra: str, succeeds: bool = True) -> tuple[dict, str]:
    output = playbook("account_show.yml", database, reports, "-e", f"login={login}", *extra,
                      succeeds=succeeds)  # fmt: skip
    found = re.search(r'"__sipwave_account\.account": (\{.*?\n    \})', output, re.S)
    return (json.loads(found[1]) if found else {}), output


def test_an_account_moved_on_its_own_shows_its_whole_story(database, migrated):
    account, output = shown(database, migrated, "481200000")
    assert (account["state"], account["identity"]) == ("phase2", "tnf481200000@sip.sipwave.test")
    assert account["decision"]["decision"] == "migrate"
    assert [h["action"] for h in account["history"]] == ["phase1", "consent_migrate", "phase2"]
    assert {n["kind"] for n in account["numbers"]} >= {"number"}
    assert account["export"]["email"] == "customer0@example.test"
    assert account["export"]["devices"][0]["mac"]
    assert not any(secret in output for secret in sample_secrets())


def test_a_rolled_back_account_shows_none_of_the_wave(database, migrated):
    account, _ = shown(database, migrated, "481200002")
    assert account["state"] is None  # as before the wave: no row
    assert account["export"]["email"] == "customer2@example.test"


def test_a_rejected_row_shows_why_and_whom_to_call(database, migrated):
    account, _ = shown(database, migrated, "481200508")
    assert account["state"] == "rejected"
    assert any("neither password nor ha1" in why for why in account["export"]["rejected"])
    assert account["export"]["email"] == "customer508@example.test"


def test_a_login_that_is_no_login_is_refused(database, migrated):
    _, output = shown(database, migrated, "x' OR '1'='1", succeeds=False)
    assert "Give -e login=LOGIN" in output
