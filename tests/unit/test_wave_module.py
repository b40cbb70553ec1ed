"""sipwave.platform.wave run as Ansible runs it: the module file, and the playbooks at -vvv."""

import base64
import json
import os
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import (
    dialin_db,
    legacy_export,
)
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import generated_password
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import plan_from_dict
from ansible_collections.sipwave.platform.plugins.module_utils.wave.outcomes import unpack
from module_runner import COLLECTIONS, run_module_file
from wave_helpers import NEW, PROJECT, create_database, dump, secrets_of, wave_accounts

MODULE = COLLECTIONS / "ansible_collections/sipwave/platform/plugins/modules/wave.py"
SAMPLE = PROJECT / "inventories/lab/files/legacy_export.csv"
LAB_SITE_SECRET = "lab-site-secret-not-for-production"


def accounts_file(tmp_path: Path, accounts) -> str:
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps([
        {"login": a.login, "domain": a.legacy_domain, "department": a.department,
         "balance": a.balance, "numbers": list(a.numbers),
         "dialin_numbers": list(a.dialin_numbers), "legacy_ha1": a.legacy_credentials[0],
         "legacy_ha1b": a.legacy_credentials[1], "new_ha1": a.new_credentials[0],
         "new_ha1b": a.new_credentials[1], "password_generated": a.password_generated}
        for a in accounts
    ]))  # fmt: skip
    return str(path)


def run_module(tmp_path, args, *, check=False, diff=False):
    completed = run_module_file(MODULE, tmp_path, args, check=check, diff=diff)
    return json.loads(completed.stdout), completed.stdout + completed.stderr


@pytest.fixture
def database(tmp_path):
    return create_database(tmp_path / "kamailio.sqlite")


def wave_args(tmp_path, database, accounts, **extra):
    return {
        "wave": "wave1",
        "accounts_file": accounts_file(tmp_path, accounts),
        "new_domain": NEW,
        "today": "2026-11-22",
        "database": str(database),
    } | extra


def test_module_applies_the_wave_then_changes_nothing(tmp_path, database):
    accounts = wave_accounts()

    first, _ = run_module(tmp_path, wave_args(tmp_path, database, accounts))
    second, _ = run_module(tmp_path, wave_args(tmp_path, database, accounts))

    assert first["changed"] and not second["changed"]
    assert first["counts"]["outcomes"] == {"phase1": 6}
    assert second["counts"]["outcomes"] == {"unchanged": 6}
    assert first["reconciliation"]["ok"]
    assert unpack(first["account_outcomes"])[0]["identity"] == "481234000@ip.tanifon.pl"


def test_check_diff_lists_each_account_change_and_writes_nothing(tmp_path, database):
    accounts = wave_accounts(2)
    untouched = database.read_bytes()

    result, output = run_module(
        tmp_path, wave_args(tmp_path, database, accounts), check=True, diff=True
    )

    assert database.read_bytes() == untouched
    assert result["changed"]
    assert result["diff"]["after"].splitlines() == [
        "481234000: phase1: phase1; registers as 481234000@ip.tanifon.pl; numbers +48221230000 "
        "legacy; dial-in +48600100000 active",
        "481234001: phase1: phase1; registers as 481234001@ip.tanifon.pl; numbers +48221230001 "
        "legacy, +48581230001 legacy",
    ]
    for secret in secrets_of(accounts):
        assert secret not in output


def test_invocation_never_shows_the_hashes(tmp_path, database):
    accounts = wave_accounts()

    result, output = run_module(tmp_path, wave_args(tmp_path, database, accounts, db_password="x"))

    assert result["invocation"]["module_args"]["db_password"] != "x"
    for secret in secrets_of(accounts):
        assert secret not in output


def test_consent_then_phase2_then_rollback_through_the_module(tmp_path, database):
    accounts = wave_accounts(3)
    run_module(tmp_path, wave_args(tmp_path, database, accounts))
    before_phase2 = dump(database)

    recorded, _ = run_module(tmp_path, {
        "operation": "consent", "new_domain": NEW, "database": str(database),
        "consent": [{"login": "481234001", "decision": "migrate", "source": "ticket 7"}],
    })  # fmt: skip
    phase2, _ = run_module(tmp_path, wave_args(tmp_path, database, accounts, phase=2))
    rolled_back, _ = run_module(tmp_path, {
        "operation": "rollback", "wave": "wave1", "new_domain": NEW, "database": str(database),
    })  # fmt: skip

    assert recorded["consent"] == [
        {"login": "481234001", "before": None, "after": "migrate", "source": "ticket 7"}
    ]
    assert phase2["counts"]["states"] == {"consent_pending": 2, "phase2": 1}
    assert rolled_back["counts"]["outcomes"] == {"rollback": 3}
    assert dump(database) == {table: [] for table in before_phase2}


def test_bad_accounts_file_is_a_clear_error(tmp_path, database):
    path = tmp_path / "accounts.json"
    path.write_text('{"not": "a list"}')

    result, _ = run_module(tmp_path, {"wave": "w", "accounts_file": str(path),
                                      "new_domain": NEW, "database": str(database)})  # fmt: skip

    assert result["failed"]
    assert "is not a list of accounts" in result["msg"]


# -- the playbooks, with the action plugin, at -vvv -------------------------------------------


def sample_secrets() -> list[str]:
    """Every password and HA1 of the sample export, and the generated phase-2 passwords."""
    export = legacy_export.read_export(str(SAMPLE), plan_from_dict({"country_code": "48"}))
    found = {LAB_SITE_SECRET}
    for account in export.accounts.values():
        found.update(s for s in (account.password, account.ha1) if s)
        found.add(generated_password(LAB_SITE_SECRET, account.login))
    raw = SAMPLE.read_bytes().decode("utf-8", errors="replace")
    for row in raw.splitlines()[1:]:
        fields = row.split(",")
        # The password and HA1 columns of the bad rows too; the continuation line of a
        # quoted line break starts elsewhere (an e-mail address is no secret).
        if len(fields) > 2:
            found.update(f for f in fields[1:3] if len(f) >= 10 and "@" not in f)
    return sorted(found)


def playbook(
    name: str,
    database: Path,
    reports: Path,
    *extra: str,
    pbx_ready: bool = True,
    succeeds: bool = True,
) -> str:
    # The PBX of these runs is localhost too, with a dial-in database next to Kamailio's.
    dialin = database.with_name("dialin.sqlite")
    if pbx_ready:
        dialin_db.connect(str(dialin)).close()
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), f"playbooks/{name}", "-vvv",
         "-e", "sipwave_migration_hosts=localhost", "-e", f"kamailio_db_sqlite_path={database}",
         "-e", "sipwave_dialin_hosts=localhost", "-e", f"asterisk_dialin_database={dialin}",
         "-e", "sipwave_legacy_hosts=no_legacy_hosts",
         "-e", f"sipwave_report_dir={reports}",
         # no provisioning host here: the wave playbook's re-provisioning has nothing to do
         "-e", "sipwave_provisioning_hosts=no_provisioning_hosts", *extra],
        cwd=PROJECT, capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert (completed.returncode == 0) is succeeds, output[-3000:]
    return output


def test_playbooks_at_vvv_never_show_a_password_or_hash(tmp_path, database):
    reports = tmp_path / "reports"
    consent_csv = tmp_path / "consent.csv"
    consent_csv.write_text(
        "login,decision\n481200000,migrate\n481200002,close\n481200006,migrate\n"
    )
    outputs = [
        playbook("migrate_wave.yml", database, reports, "-e", "wave=wave1"),
        playbook("migrate_wave.yml", database, reports, "-e", "wave=wave1", "--check", "--diff"),
        playbook("record_consent.yml", database, reports, "-e", f"consent_file={consent_csv}"),
        playbook("migrate_wave.yml", database, reports, "-e", "wave=wave1", "-e", "wave_phase=2",
                 "--diff"),
        playbook("rollback_wave.yml", database, reports, "-e", "wave=wave1", "--diff"),
    ]  # fmt: skip
    shown = "\n".join(outputs) + "".join(p.read_text() for p in reports.iterdir())

    assert "/legacy_export.csv:503: broken UTF-8" in outputs[0]
    assert '"phase2": 2' in outputs[3]  # 481200006 only had an HA1: a generated password
    secrets = sample_secrets()
    assert len(secrets) > 900
    leaked = [secret for secret in secrets if secret in shown]
    assert leaked == []


def test_second_playbook_run_reports_changed_0(tmp_path, database):
    reports = tmp_path / "reports"
    playbook("migrate_wave.yml", database, reports, "-e", "wave=wave1")

    output = playbook("migrate_wave.yml", database, reports, "-e", "wave=wave1")

    assert "changed=0" in output
    report = json.loads(sorted(reports.iterdir())[-1].read_text())
    assert report["counts"]["outcomes"] == {"unchanged": report["counts"]["accounts"]}
    assert report["reconciliation"]["ok"]
    # Rows whose only problem is a dial-in number or a device migrate without it.
    assert (report["export"]["bad"], report["export"]["partial"]) == (11, 4)
    # wave1 has one of them (a malformed MAC): an action item, counted as not carried.
    actions = report["actions_for_customer_care"]
    (partial,) = [a for a in actions if a.get("dropped")]
    assert [d["reason"] for d in partial["dropped"]] == ["mac"] and partial["email"]
    assert report["not_carried"] == {
        "accounts": 1, "parts": 1, "per_column": {"devices": 1},
        "rejected_accounts": len(actions) - 1, "customer_care_actions": len(actions),
    }  # fmt: skip
    assert all(a["action"].startswith("not migrated") for a in actions if a is not partial)
    assert report["dialin"]["ok"] and report["dialin"]["expected"]["numbers"] > 100


def test_a_wave_not_yet_due_is_refused(tmp_path, database):
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "playbooks/migrate_wave.yml",
         "-e", "wave=wave2", "-e", "sipwave_migration_hosts=localhost",
         "-e", f"kamailio_db_sqlite_path={database}", "-e", "sipwave_today=2026-11-22"],
        cwd=PROJECT, capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert completed.returncode != 0
    assert "wave wave2 is scheduled for 2026-12-07" in completed.stdout


def test_phase2_password_filter_gives_the_password_the_wave_hashed():
    from ansible_collections.sipwave.platform.plugins.filter.migration import FilterModule

    phase2_password = FilterModule().filters()["phase2_password"]

    assert phase2_password("481200006", LAB_SITE_SECRET) == generated_password(
        LAB_SITE_SECRET, "481200006"
    )


def test_wave_outcomes_filter_unpacks_a_registered_result_and_passes_a_report(tmp_path, database):
    from ansible.errors import AnsibleFilterError
    from ansible_collections.sipwave.platform.plugins.filter.migration import FilterModule

    wave_outcomes = FilterModule().filters()["wave_outcomes"]
    result, _ = run_module(tmp_path, wave_args(tmp_path, database, wave_accounts(3)))
    outcomes = wave_outcomes(result)

    assert [o["action"] for o in outcomes] == ["phase1"] * 3
    assert outcomes[0] == {
        "login": outcomes[0]["login"], "action": "phase1", "state": "phase1",
        "identity": f"{outcomes[0]['login']}@ip.tanifon.pl",
    }  # fmt: skip
    assert len(result["account_outcomes"]) < len(json.dumps(outcomes))
    assert wave_outcomes({"accounts": outcomes}) == outcomes
    with pytest.raises(AnsibleFilterError, match="not packed"):
        wave_outcomes({"account_outcomes": "not base64 zlib"})


def test_check_mode_on_a_host_without_the_database_plans_from_empty(tmp_path):
    missing = tmp_path / "not-yet.sqlite"

    result, _ = run_module(tmp_path, wave_args(tmp_path, missing, wave_accounts(2)), check=True)

    assert result["changed"]
    assert result["counts"]["outcomes"] == {"phase1": 2}
    assert not missing.exists()


def test_a_database_without_the_subscriber_table_is_a_clear_error(tmp_path):
    bare = tmp_path / "bare.sqlite"
    sqlite3.connect(bare).close()

    result, _ = run_module(tmp_path, wave_args(tmp_path, bare, wave_accounts(2)))

    assert result["failed"]
    assert result["msg"] == "the database has no subscriber table: deploy the kamailio role first"


def newest_report(reports: Path) -> dict:
    return json.loads(sorted(reports.glob("wave1-*.json"))[-1].read_text())


def test_a_run_stopped_before_its_dial_in_step_leaves_an_incomplete_report(tmp_path, database):
    reports = tmp_path / "reports"
    # the PBX has no dial-in database yet: the run stops in its dial-in step
    output = playbook("migrate_wave.yml", database, reports, "-e", "wave=wave1",
                      pbx_ready=False, succeeds=False)  # fmt: skip

    assert "does not exist: deploy the asterisk role" in output
    report = newest_report(reports)
    assert report["hosts_reported"] == ["localhost"] and report["reconciliation"]["hosts"]
    assert report["complete"] is False
    assert report["incomplete_because"][0].startswith(
        "no dial-in section (expected from localhost)"
    )

    # the PBX is deployed; its dial-in step alone completes the newest report
    playbook("wave_dialin.yml", database, reports, "-e", "wave=wave1")

    report = newest_report(reports)
    assert report["complete"] is True, report["incomplete_because"]
    assert report["dialin"]["ok"] and report["reconciliation"]["dialin_ok"]


def closure_args(tmp_path, database, alice, closure_numbers, run_id):
    return wave_args(tmp_path, database, [alice], phase=2, closure_numbers=closure_numbers,
                     run_id=run_id)  # fmt: skip


def test_a_different_closure_setting_changes_nothing_and_warns_naming_the_account(
    tmp_path, database
):
    alice = wave_accounts(1)[0]
    run_module(tmp_path, wave_args(tmp_path, database, [alice]))
    run_module(tmp_path, {"operation": "consent", "new_domain": NEW, "database": str(database),
                          "consent": [{"login": alice.login, "decision": "close"}]})  # fmt: skip
    closed, _ = run_module(tmp_path, closure_args(tmp_path, database, alice, "kept_for_porting",
                                                  "closing-run"))  # fmt: skip
    before = dump(database)

    rerun, _ = run_module(tmp_path, closure_args(tmp_path, database, alice, "released", "rerun"))

    assert closed["changed"] and not rerun["changed"]
    assert dump(database) == before
    assert [w["event"]["msg"] for w in rerun["warnings"]] == [
        "closure_numbers is released, but 1 account(s) closed earlier keep their numbers "
        f"kept_for_porting as decided at closure (not changed by this run): {alice.login}"
    ]
    columns, rows = json.loads(zlib.decompress(base64.b64decode(rerun["account_outcomes"])))
    outcome = dict(zip(columns, rows[0], strict=True))
    assert outcome | {"identity": None} == {
        "login": alice.login, "action": "unchanged", "state": "closed", "identity": None,
        "grace_until": None, "refund": "10.00", "refund_run": "closing-run",
        "closure_numbers": "kept_for_porting", "password_generated": None, "reason": None,
        "temporary_number": None, "temporary_returned": None, "temporary_missing": None,
        "temporary_held": None, "refund_reversed": None,
    }  # fmt: skip
    # the refund stays the closing run's: this run recorded none
    assert rerun["refunds"] == {"total": "0.00", "accounts": []}
    assert closed["refunds"] == {
        "total": "10.00",
        "accounts": [{"login": alice.login, "amount": "10.00"}],
    }


def test_a_limit_moves_only_logins_of_the_wave():
    from ansible.errors import AnsibleActionFail
    from ansible_collections.sipwave.platform.plugins.action.wave import limited

    wave = ["481200001", "481200005", "481200007"]
    assert limited(wave, None, "wave2") == wave
    assert limited(wave, ["481200007", "481200005"], "wave2") == ["481200005", "481200007"]
    with pytest.raises(AnsibleActionFail, match="wave wave2 does not take 481200000"):
        limited(wave, ["481200005", "481200000"], "wave2")
    with pytest.raises(AnsibleActionFail, match="non-empty list"):
        limited(wave, [], "wave2")


def test_the_playbooks_fill_the_inventory_columns_from_sites_and_the_pools_carrier(
    tmp_path, database
):
    reports = tmp_path / "reports"
    config = tmp_path / "config.json"
    pools = [{"area": "+4822", "first": "+48225559000", "last": "+48225559999", "carrier": "pstn"},
             {"area": "+4858", "first": "+48585559000", "last": "+48585559999"}]  # fmt: skip
    config.write_text(json.dumps({
        "sipwave_temporary_numbers": pools,
        "kamailio_sites": [{"name": "warsaw", "areas": ["+4822"]}],
        "kamailio_carriers": [{"name": "pstn", "address": "127.0.0.1"}],
    }))  # fmt: skip

    playbook("migrate_wave.yml", database, reports, "-e", "wave=wave1", "-e", f"@{config}")

    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT number, kind, site, carrier FROM sipwave_number")
        rows = rows.fetchall()
    assert len(rows) > 100
    for number, kind, site, carrier in rows:
        assert site == ("warsaw" if number.startswith("+4822") else ""), number
        expected = "pstn" if kind == "temporary" and number.startswith("+4822") else ""
        assert carrier == expected, (number, kind)
    assert {carrier for *_, carrier in rows} == {"", "pstn"}

    playbook("rollback_wave.yml", database, reports, "-e", "wave=wave1", "-e", f"@{config}")
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM sipwave_number").fetchone() == (0,)

    pools[0]["carrier"] = "gone"
    config.write_text(json.dumps({"sipwave_temporary_numbers": pools, "kamailio_carriers": []}))
    output = playbook("migrate_wave.yml", database, reports, "-e", "wave=wave1", "-e",
                      f"@{config}", succeeds=False)  # fmt: skip
    assert "temporary_numbers[0]: carrier 'gone' is not a name of kamailio_carriers" in output
