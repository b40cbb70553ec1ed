"""A wave rollback puts the phones back too: the rolled-back wave took one account from
phase 1 (wave "vendors") and one not migrated before straight to phase 2; after
rollback_wave.yml the first one's phone is served its legacy identity again and is told to
re-sync where it is registered with its phase-2 identity, and the phone of the account that
was not provisioned before the wave has no files any more.

Runs after test_robustness.py (file order) and leaves both accounts as converge made them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from conftest import LEGACY_DOMAIN, NEW_DOMAIN, PHONES, PROXY, Client
from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook
from test_provisioning import fetch

PHONE_ADDRESS = "127.0.22.202"  # provisioning_ban_ignore: never banned
WAVE = "rollback"
BACK_TO_PHASE1 = next(p for p in PHONES if p.login == "481200003")  # Grandstream
NOT_BEFORE = next(p for p in PHONES if p.login == "481200009")
UAS_ADDRESS = "127.0.22.121"
UAS_PORT = 5099


@pytest.fixture(scope="module")
def phone_client(tls_context):
    client = Client(PHONE_ADDRESS, tls_context)
    yield client
    client.close()


def grandstream_account(text: str) -> dict[str, str]:
    """The SIP account a Grandstream phone takes from its file: server, user, password."""
    values = {node.tag: node.text or "" for node in ET.fromstring(text).iter()}
    return {"domain": values["P47"], "user": values["P35"], "password": values.get("P34", "")}


@pytest.fixture(scope="module")
def rolled_back(phone_client, tmp_path_factory):
    """Both accounts consent and go to phase 2 in one run; the Grandstream phone fetches its
    phase-2 file and registers with it (a SIPp UAS as its contact); the wave is rolled back."""
    consent = tmp_path_factory.mktemp("consent") / "consent.csv"
    consent.write_text(f"login,decision\n{BACK_TO_PHASE1.login},migrate\n"
                       f"{NOT_BEFORE.login},migrate\n")  # fmt: skip
    run = run_playbook("record_consent.yml", {"consent_file": str(consent)})
    assert run.returncode == 0, run.stdout[-3000:]
    run = run_playbook("migrate_wave.yml", {"wave": WAVE, "sipwave_today": "2026-11-17"})
    assert run.returncode == 0, run.stdout[-3000:]
    name = BACK_TO_PHASE1.files[0]
    _, phase2_file = fetch(phone_client, BACK_TO_PHASE1, name)
    phase2 = grandstream_account(phase2_file)
    uas, workdir = sipp.run(
        "notify_uas.xml", PROXY, UAS_ADDRESS, local_port=UAS_PORT, background=True,
        timeout_s=300,
    )  # fmt: skip
    row = [phase2["user"], phase2["domain"], sipp.credentials(phase2["user"], phase2["password"]),
           f"{UAS_ADDRESS}:{UAS_PORT}"]  # fmt: skip
    registered = sipp.run("register.xml", PROXY, "127.0.22.122", rows=[row])
    assert registered.successful == 1, registered.output
    new_file_served = fetch(phone_client, NOT_BEFORE, NOT_BEFORE.files[0])[0]
    rollback = run_playbook("rollback_wave.yml", {"wave": WAVE})
    told = sipp.wait(uas, workdir, timeout_s=60)
    status, legacy_file = fetch(phone_client, BACK_TO_PHASE1, name)
    gone = [fetch(phone_client, NOT_BEFORE, file)[0] for file in NOT_BEFORE.files]
    return {
        "phase2": phase2, "rollback": rollback, "told": told, "status": status,
        "file": legacy_file, "new_file_served": new_file_served, "gone": gone,
    }  # fmt: skip


def test_the_wave_gave_both_phones_phase2_files(rolled_back):
    assert rolled_back["phase2"]["user"] == f"tnf{BACK_TO_PHASE1.login}"
    assert rolled_back["phase2"]["domain"] == NEW_DOMAIN
    assert rolled_back["new_file_served"] == 200


def test_the_rollback_runs(rolled_back):
    run = rolled_back["rollback"]
    assert run.returncode == 0, run.stdout[-4000:]
    # the provisioning playbook it imports rendered the phones' files
    assert "TASK [provisioning : Render every phone's files" in run.stdout


def test_after_rollback_the_phone_is_served_the_identity_it_had_before(rolled_back):
    assert rolled_back["status"] == 200
    account = grandstream_account(rolled_back["file"])
    assert account == {"domain": LEGACY_DOMAIN, "user": BACK_TO_PHASE1.login,
                       "password": BACK_TO_PHASE1.password}  # fmt: skip
    assert "tnf" not in rolled_back["file"]


def test_the_phone_registered_with_its_phase2_identity_is_told_to_resync(rolled_back):
    told = rolled_back["told"]
    assert told.successful == 1, told.output + told.messages
    assert "Event: check-sync" in told.messages
    assert re.search(rf"NOTIFY sip:tnf{BACK_TO_PHASE1.login}@{UAS_ADDRESS}", told.messages)


def test_the_phone_registers_with_the_identity_of_the_file_it_fetches(rolled_back):
    account = grandstream_account(rolled_back["file"])
    row = [account["user"], account["domain"],
           sipp.credentials(account["user"], account["password"]), "127.0.22.123:5099"]  # fmt: skip
    result = sipp.run("register.xml", PROXY, "127.0.22.123", rows=[row])
    assert result.successful == 1, result.output


def test_the_phase2_identity_the_wave_gave_is_refused_again(rolled_back):
    phase2 = rolled_back["phase2"]
    row = [phase2["user"], phase2["domain"],
           sipp.credentials(phase2["user"], phase2["password"]), "127.0.22.124:5099"]  # fmt: skip
    result = sipp.run("register_refused.xml", PROXY, "127.0.22.124", rows=[row])
    assert result.successful == 1, result.output


def test_the_phone_of_an_account_not_provisioned_before_the_wave_has_no_files(rolled_back):
    assert rolled_back["gone"] == [404] * len(NOT_BEFORE.files)
