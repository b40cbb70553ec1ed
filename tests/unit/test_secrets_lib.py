"""sipwave_testlib.secrets: the secrets the scenarios' last test searches their -vvvv
playbook transcripts for, the search itself and the playbook coverage table."""

import csv
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import subscriber_db
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    device_token,
    generated_password,
)
from sipwave_testlib import secrets

PROJECT = Path(__file__).resolve().parents[2]
MIGRATION = PROJECT / "molecule" / "migration"


@pytest.fixture(scope="module")
def migration_secrets() -> list[secrets.Secret]:
    return secrets.scenario_secrets(MIGRATION)


def test_the_derivations_are_the_platforms():
    # The library derives on its own; these keep it on the platform's formulas.
    assert secrets.phase2_password("s3cret-site", "481200006") == generated_password(
        "s3cret-site", "481200006"
    )
    mac = "5836866d0d85"
    assert secrets.device_token("s3cret-site", mac) == device_token("s3cret-site", mac)
    assert secrets.ha1_pair("tnf1", "sip.sipwave.test", "pw") == (
        subscriber_db.ha1("tnf1", "sip.sipwave.test", "pw"),
        subscriber_db.ha1b("tnf1", "sip.sipwave.test", "pw"),
    )


def test_every_playbook_is_covered_by_a_scenario_or_has_a_reason():
    playbooks = {p.name for p in (PROJECT / "playbooks").glob("*.yml")}
    assert set(secrets.PLAYBOOK_COVERAGE) == playbooks
    scenarios = {p.name for p in (PROJECT / "molecule").iterdir() if p.is_dir()}
    for covered in secrets.PLAYBOOK_COVERAGE.values():
        assert isinstance(covered, str) or set(covered) <= scenarios, covered


def test_play_names_tell_the_playbooks_apart():
    names = [
        n for p in sorted((PROJECT / "playbooks").glob("*.yml")) for n in secrets.play_names(p)
    ]
    assert len(names) == len(set(names))


def test_the_scenario_secrets_hold_every_export_password_and_the_site_secret(
    migration_secrets,
):
    values = {s.value for s in migration_secrets}
    with secrets.LAB_EXPORT.open(encoding="utf-8", errors="replace", newline="") as handle:
        passwords = {row["password"] for row in csv.DictReader(handle) if row["password"]}
    assert passwords and passwords <= values
    assert "molecule-site-secret" in values
    assert "lab-site-secret-not-for-production" in values  # the lab inventory's


def test_the_scenario_secrets_hold_the_phase2_identitys_ha1_and_the_generated_password(
    migration_secrets,
):
    values = {s.value for s in migration_secrets}
    password = "pw-hdpebq742guk"  # the export's first account, 481200000
    assert secrets.ha1_pair("481200000", "ip.tanifon.pl", password)[0] in values
    assert secrets.ha1_pair("tnf481200000", "sip.sipwave.test", password)[1] in values
    generated = generated_password("molecule-site-secret", "481200006")  # only an HA1
    assert generated in values
    assert subscriber_db.ha1("tnf481200006", "sip.sipwave.test", generated) in values
    assert device_token("molecule-site-secret", "5836866d0d85") in values


def test_no_owner_names_a_value(migration_secrets):
    values = {s.value for s in migration_secrets}
    owners = " ".join(s.owner for s in migration_secrets)
    assert not [v for v in values if v in owners]


def test_pins_and_db_passwords_of_the_inventories_are_secrets():
    found = secrets.scenario_secrets(PROJECT / "molecule" / "kamailio-postgres")
    assert {"PIN", "DB password"} <= {s.kind for s in found}


TRANSCRIPT = """\
PLAY [Migrate a wave of legacy accounts] ***************************************

TASK [Apply the wave in one transaction] ***************************************
ok: [proxy] => {"ha1": "{ha1}"}
changed: [proxy] => {"pin": "{pin}"}
"""


def test_a_leak_is_named_by_kind_owner_transcript_line_and_task_not_value(tmp_path):
    ha1 = secrets.md5("x")
    pin = secrets.Secret("PIN", "lab-alice", "40729361")
    hashed = secrets.Secret("HA1", "login 1 (export:2)", ha1)
    transcript = tmp_path / "0001-migrate_wave.log"
    transcript.write_text(TRANSCRIPT.replace("{ha1}", ha1.upper()).replace("{pin}", pin.value))
    leaks = secrets.find_leaks([pin, hashed], [transcript])
    assert [str(leak) for leak in leaks] == [
        "HA1 of login 1 (export:2) in 0001-migrate_wave.log:4 "
        "(TASK [Apply the wave in one transaction])",
        "PIN of lab-alice in 0001-migrate_wave.log:5 (TASK [Apply the wave in one transaction])",
    ]


def test_a_pin_inside_a_longer_number_is_no_leak(tmp_path):
    transcript = tmp_path / "0001-x.log"
    transcript.write_text("ansible-tmp-1764748807.249729361402-27391\n")
    assert secrets.find_leaks([secrets.Secret("PIN", "a", "72936140")], [transcript]) == []


def test_a_play_counts_as_run_only_with_a_task(tmp_path):
    transcript = tmp_path / "0001-migrate_wave.log"
    transcript.write_text(
        TRANSCRIPT + "PLAY [Authorise the wave's dial-in numbers on the PBXs] *****\n"
        "skipping: no hosts matched\n"
    )
    assert secrets.plays_run(transcript) == {"Migrate a wave of legacy accounts"}
    assert secrets.playbooks_run([transcript]) == {"migrate_wave.yml": ["0001-migrate_wave.log"]}
