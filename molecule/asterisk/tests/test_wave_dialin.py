"""A wave's dial-in numbers on the PBX: a caller authorised only in the legacy export dials in
and out after the wave, keeps working through an inventory run, and is refused once the
account is closed or the wave rolled back; an account in phase 2 (login tnf..., which is no
number) dials in as its account's number. Real Kamailio, Asterisk and SIPp."""

import csv
import json
import os
import re
from pathlib import Path

import pytest
from conftest import (
    CARRIER,
    DIALIN_DATABASE,
    PBX_CONTAINER,
    PROXY_CONTAINER,
    asterisk_pid,
    cdr_rows,
    dial_in,
    in_container,
    pbx,
    prometheus_query,
    run_playbook,
    wait_for_metric,
)
from sipwave_testlib import sipp

EXPORT = Path(__file__).resolve().parents[1] / "files" / "legacy_export.csv"
ROWS = {row["login"]: row for row in csv.DictReader(EXPORT.open(encoding="utf-8"))}
WAVE = "dialwave"
SOURCE = f"wave:{WAVE}"
TODAY = "2026-11-20"
DESTINATION = "123456789"  # national: +48123456789
# Closes in phase 2; the other one moves to phase 2 and stays until the rollback. It
# authorises its own first number as a caller too: that is how its subscriber dials in.
CLOSING = {"login": "48331000001", "caller": "+48603000001", "number": "+48331000001",
           "department": "wave-sales"}  # fmt: skip
STAYING = {"login": "48331000002", "caller": "+48603000002", "number": "+48331000002",
           "department": "unassigned"}  # fmt: skip
NEW_DOMAIN = "sip.sipwave.test"
OUTPUTS: list[str] = []


def wave_playbook(name: str, *extra_vars: dict):
    run = run_playbook({"wave": WAVE, "sipwave_today": TODAY}, *extra_vars, playbook=name)
    OUTPUTS.append(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return run


def newest_report() -> dict:
    reports = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports"
    return json.loads(sorted(reports.glob(f"{WAVE}-*.json"))[-1].read_text())


def recap_changed(output: str, host: str) -> int:
    found = re.search(rf"^{re.escape(host)}\s*:.*changed=(\d+)", output, re.M)
    assert found, output[-3000:]
    return int(found.group(1))


def callers_of(source: str) -> dict[str, str]:
    """caller number -> account, for the accounts of one source in the PBX's database."""
    output = pbx(
        "sqlite3",
        DIALIN_DATABASE,
        "SELECT d.number, a.id FROM dialin_number d JOIN account a ON a.id = d.account_id"
        f" WHERE a.source = '{source}'",
    )
    return dict(line.split("|") for line in output.split())


def test_a_caller_known_only_to_the_export_is_refused_before_the_wave(carrier):
    call = dial_in(CLOSING["caller"], expect="403")
    assert call.successful == 1, call.output
    assert "INVITE" not in carrier.stop().messages


def test_the_wave_hands_its_dial_in_numbers_to_the_pbx_without_a_restart():
    pid = asterisk_pid()
    wave_playbook("migrate_wave.yml")
    assert asterisk_pid() == pid
    assert callers_of(SOURCE) == {
        "+48603000001": CLOSING["login"],
        "+48603000011": CLOSING["login"],
        "+48603000002": STAYING["login"],
        "+48331000002": STAYING["login"],
    }
    report = newest_report()
    dialin = report["dialin"]
    assert dialin["ok"] and report["reconciliation"]["ok"], dialin
    assert dialin["expected"] == dialin["handed_to_pbx"] == {"accounts": 2, "numbers": 4}
    assert dialin["hosts"][PBX_CONTAINER]["present"] == {"accounts": 2, "numbers": 4}
    # The exposure: every account on the PBX without a PIN, of the wave and the inventory.
    assert dialin["accounts_without_pin"] == {
        "count": 4,
        "accounts": [CLOSING["login"], STAYING["login"], "beta", "delta"],
    }


@pytest.mark.parametrize(
    ("account", "caller"),
    [(CLOSING, "0048603000011"), (STAYING, "603000002")],
    ids=["first-number-of-two", "no-department-in-the-export"],
)
def test_a_caller_authorised_only_in_the_export_dials_out_with_the_account_number(
    carrier, account, caller
):
    start = pbx("date", "+%F %T").strip()
    call = dial_in(caller, entries=[DESTINATION])
    carrier_side = carrier.answered()
    assert call.successful == 1, call.output
    assert carrier_side.successful == 1, carrier_side.output
    assert f"INVITE sip:+48123456789@{CARRIER}" in carrier_side.messages
    assert f"From: <sip:{account['number']}@" in carrier_side.messages
    rows = cdr_rows(f"calldate >= '{start}' AND account = '{account['login']}'")
    assert rows and rows[-1]["department"] == account["department"], rows
    assert rows[-1]["disposition"] == "ANSWERED", rows


# A wave account whose own numbers are still at the old operator holds a temporary number
# (the wave's outcome temporary_held, handed over as screened_number).
SCREENING = Path(__file__).resolve().parents[1] / "dialin_screening.yml"
WAITING = {"id": "48331000009", "department": "wave-sales", "number": "+48331000009",
           "screened_number": "+48225550977", "dialin_numbers": ["+48603000009"]}  # fmt: skip


def test_a_carrier_that_screens_caller_numbers_is_shown_the_temporary_number(carrier):
    handed = run_playbook({"screening_accounts": [WAITING]}, playbook=str(SCREENING))
    assert handed.returncode == 0, handed.stdout[-3000:]
    try:
        call = dial_in("0048603000009", entries=[DESTINATION])
        carrier_side = carrier.answered()
    finally:
        taken_back = run_playbook({"screening_accounts": []}, playbook=str(SCREENING))
    assert call.successful == 1, call.output
    assert carrier_side.successful == 1, carrier_side.output
    assert f"INVITE sip:+48123456789@{CARRIER}" in carrier_side.messages
    assert f"From: <sip:{WAITING['screened_number']}@" in carrier_side.messages
    # the number the carrier does not hold yet is nowhere in what it received
    assert WAITING["number"] not in carrier_side.messages
    assert taken_back.returncode == 0, taken_back.stdout[-3000:]
    assert callers_of("wave:screening") == {}


def test_an_inventory_run_leaves_the_waves_numbers_alone():
    inventory_before = callers_of("inventory")
    run = run_playbook(tags="asterisk_dialin")
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap_changed(run.stdout, PBX_CONTAINER) == 0
    assert len(callers_of(SOURCE)) == 4
    assert callers_of("inventory") == inventory_before


def test_a_second_wave_run_changes_nothing():
    run = wave_playbook("migrate_wave.yml")
    assert recap_changed(run.stdout, PBX_CONTAINER) == 0
    assert recap_changed(run.stdout, PROXY_CONTAINER) == 0
    assert newest_report()["dialin"]["ok"]


def test_the_closed_account_is_refused_after_phase_2(carrier):
    for login, decision in ((CLOSING["login"], "close"), (STAYING["login"], "migrate")):
        consent = run_playbook(
            {"login": login, "decision": decision}, playbook="record_consent.yml"
        )
        assert consent.returncode == 0, consent.stdout[-3000:]
    wave_playbook("migrate_wave.yml", {"wave_phase": 2})
    refused = dial_in(CLOSING["caller"], expect="403")
    assert refused.successful == 1, refused.output
    assert "INVITE" not in carrier.stop().messages
    assert callers_of(SOURCE) == {
        "+48603000002": STAYING["login"],
        "+48331000002": STAYING["login"],
    }
    dialin = newest_report()["dialin"]
    assert dialin["ok"] and dialin["expected"] == {"accounts": 1, "numbers": 2}, dialin


def test_a_phase2_account_dials_in_and_out_as_its_accounts_number(carrier):
    # The new login has no number in it: the proxy presents the account's first number.
    start = pbx("date", "+%F %T").strip()
    call = dial_in(
        "",
        subscriber=f"tnf{STAYING['login']}",
        password=ROWS[STAYING["login"]]["password"],
        domain=NEW_DOMAIN,
        source="127.0.21.107",
        entries=[DESTINATION],
    )
    carrier_side = carrier.answered()
    assert call.successful == 1, call.output
    assert carrier_side.successful == 1, carrier_side.output
    assert f"From: <sip:{STAYING['number']}@" in carrier_side.messages
    rows = cdr_rows(f"calldate >= '{start}' AND account = '{STAYING['login']}'")
    assert [(r["caller"], r["disposition"]) for r in rows] == [(STAYING["number"], "ANSWERED")]


def unregistered_logins() -> list[str]:
    """The logins of playbooks/unregistered_report.yml's newest CSV for the wave."""
    wave_playbook("unregistered_report.yml")
    reports = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports"
    newest = sorted(reports.glob(f"{WAVE}-unregistered-*.csv"))[-1]
    return [row["login"] for row in csv.DictReader(newest.open(encoding="utf-8"))]


def test_phase2_accounts_without_a_registration_are_listed_until_their_phone_registers():
    """Two live accounts after phase 2 (one closed); the phase-2 login registering takes its
    account off customer care's list and makes the wave's registered gauge count it (usrloc
    writes location back within 30 s)."""
    assert unregistered_logins() == [STAYING["login"]]
    login = f"tnf{STAYING['login']}"
    credentials = sipp.credentials(login, ROWS[STAYING["login"]]["password"])
    row = [login, NEW_DOMAIN, credentials, "127.0.21.108:5099"]
    registered = sipp.run("register.xml", "127.0.21.11:5060", "127.0.21.108", rows=[row])
    assert registered.successful == 1, registered.output
    assert wait_for_metric(f'kamailio_sipwave_wave_accounts{{wave="{WAVE}"}} == 2')
    assert wait_for_metric(f'kamailio_sipwave_wave_registered{{wave="{WAVE}"}} >= 1', 90), (
        prometheus_query("kamailio_sipwave_wave_registered")
    )
    assert unregistered_logins() == []


def test_a_pbx_rebuilt_from_nothing_loses_no_number(carrier):
    """Numbers belong to the proxy's inventory, never to a PBX: the PBX loses its releases
    and its dial-in database (as a new machine would), the proxy's numbers and routing do not
    change, and asterisk.yml plus wave_dialin.yml give it back every caller number."""
    inventory = "SELECT number, login, kind, state FROM sipwave_number ORDER BY 1, 2, 3"
    proxy_db = ("sqlite3", "/var/lib/kamailio/sipwave.sqlite")
    numbers_before = in_container(PROXY_CONTAINER, *proxy_db, inventory).stdout
    routing_before = in_container(
        PROXY_CONTAINER, *proxy_db, "SELECT * FROM sipwave_routing ORDER BY 1"
    ).stdout
    callers_before, inventory_before = callers_of(SOURCE), callers_of("inventory")
    assert numbers_before and callers_before and inventory_before
    pbx("systemctl", "stop", "asterisk")
    pbx("rm", "-rf", "/etc/asterisk/sipwave", "/var/lib/asterisk/sipwave")

    rebuilt = run_playbook()
    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    assert callers_of(SOURCE) == {}  # the wave's numbers come from the wave's report
    wave_playbook("wave_dialin.yml")

    assert callers_of(SOURCE) == callers_before
    assert callers_of("inventory") == inventory_before
    assert in_container(PROXY_CONTAINER, *proxy_db, inventory).stdout == numbers_before
    assert (
        in_container(PROXY_CONTAINER, *proxy_db, "SELECT * FROM sipwave_routing ORDER BY 1").stdout
        == routing_before
    )
    call = dial_in("603000002", entries=[DESTINATION])
    carrier_side = carrier.answered()
    assert call.successful == 1, call.output
    assert f"From: <sip:{STAYING['number']}@" in carrier_side.messages


def test_after_the_rollback_the_waves_callers_are_refused(carrier):
    inventory_before = callers_of("inventory")
    wave_playbook("rollback_wave.yml")
    refused = dial_in(STAYING["caller"], expect="403")
    assert refused.successful == 1, refused.output
    assert "INVITE" not in carrier.stop().messages
    assert callers_of(SOURCE) == {}
    assert callers_of("inventory") == inventory_before
    report = newest_report()
    assert report["operation"] == "rollback" and report["reconciliation"]["ok"]
    assert report["dialin"]["hosts"][PBX_CONTAINER]["held_by_source"] == {
        "accounts": 0,
        "numbers": 0,
    }


@pytest.mark.parametrize("container", [PBX_CONTAINER, PROXY_CONTAINER])
def test_no_export_password_on_the_hosts_in_reports_or_in_the_output(container):
    passwords = [row["password"] for row in ROWS.values()]
    reports = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports"
    written = "".join(path.read_text() for path in reports.glob(f"{WAVE}-*.json"))
    assert OUTPUTS and written
    for password in passwords:
        files = in_container(
            container, "grep", "-rlaF", "-e", password, "/etc", "/var/log", "/var/lib", "/tmp"
        )
        journal = in_container(
            container, "sh", "-c", 'journalctl -o cat --no-pager | grep -cF -e "$0"', password
        )
        assert files.stdout == "", f"{password} found in {files.stdout}"
        assert journal.stdout.strip() == "0"
        assert password not in written
        assert not any(password in output for output in OUTPUTS)
