"""Rendering of many devices: only changed files written, stale ones removed, check mode,
tokens, phase-dependent credentials, site template overrides, and the module's output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.sipwave.platform.plugins.action.provisioning_configs import (
    load_templates,
    parse_states,
    plan_devices,
)
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    CredentialError,
    device_token,
    generated_password,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import plan_from_dict
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import read_export
from ansible_collections.sipwave.platform.plugins.module_utils.provisioning import (
    AccountState,
    DeviceConfig,
    Line,
    ProvisioningError,
    Renderer,
)
from module_runner import run_module_file

PROJECT = Path(__file__).resolve().parents[2]
ROLE_TEMPLATES = PROJECT / "roles" / "provisioning" / "templates" / "phones"
MODULE = (
    PROJECT / "collections/ansible_collections/sipwave/platform/plugins/modules"
    / "provisioning_configs.py"
)  # fmt: skip
SECRET = "unit-site-secret"
HEADER = (
    "login,password,ha1,domain,display_name,email,numbers,dialin_numbers,department,"
    "balance,devices,wave\n"
)


def templates() -> dict[str, str]:
    return load_templates([str(ROLE_TEMPLATES)])[0]


def device(
    mac: str, vendor: str = "yealink", password: str | None = "pw-one-secret"
) -> DeviceConfig:
    line = Line("481200000", "phase1", "481200000", "ip.tanifon.pl", "Anna", password)
    return DeviceConfig(mac, vendor, "T46U", device_token(SECRET, mac), line)


def renderer(tmp_path: Path) -> Renderer:
    return Renderer(templates(), {"provisioning_url": "https://prov.test"}, str(tmp_path / "out"))


def test_tokens_are_stable_per_mac_and_differ_between_macs_and_secrets():
    assert device_token(SECRET, "0015651a2b3c") == device_token(SECRET, "0015651A2B3C")
    assert device_token(SECRET, "0015651a2b3c") != device_token(SECRET, "0015651a2b3d")
    assert device_token(SECRET, "0015651a2b3c") != device_token("other", "0015651a2b3c")
    assert len(device_token(SECRET, "0015651a2b3c")) == 32


def test_a_token_needs_a_site_secret():
    with pytest.raises(CredentialError, match="site secret"):
        device_token("", "0015651a2b3c")


def test_first_run_creates_every_file_under_the_device_token(tmp_path):
    result = renderer(tmp_path).run([device("0015651a2b3c"), device("0015651a2b3d", "polycom")],
                                    False)  # fmt: skip
    assert result.counts() == {"devices": 2, "files": 3, "created": 3, "updated": 0,
                               "removed": 0, "unchanged": 0}  # fmt: skip
    token = device_token(SECRET, "0015651a2b3c")
    path = tmp_path / "out" / token / "0015651a2b3c.cfg"
    assert "pw-one-secret" in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert oct((tmp_path / "out" / token).stat().st_mode & 0o777) == "0o750"


def test_a_second_run_writes_nothing(tmp_path):
    devices = [device("0015651a2b3c"), device("0015651a2b3d", "snom")]
    renderer(tmp_path).run(devices, False)
    path = tmp_path / "out" / device_token(SECRET, "0015651a2b3c") / "0015651a2b3c.cfg"
    before = path.stat().st_mtime_ns
    result = renderer(tmp_path).run(devices, False)
    assert not result.changed
    assert result.counts()["unchanged"] == 2
    assert path.stat().st_mtime_ns == before


def test_a_changed_password_rewrites_only_that_device(tmp_path):
    renderer(tmp_path).run([device("0015651a2b3c"), device("0015651a2b3d")], False)
    result = renderer(tmp_path).run(
        [device("0015651a2b3c", password="pw-new-secret"), device("0015651a2b3d")], False
    )
    assert result.updated == [("0015651a2b3c", "0015651a2b3c.cfg")]
    assert result.updated_macs == ["0015651a2b3c"]
    assert result.counts()["unchanged"] == 1


def test_devices_no_longer_listed_are_removed_with_their_directory(tmp_path):
    renderer(tmp_path).run([device("0015651a2b3c"), device("0015651a2b3d")], False)
    result = renderer(tmp_path).run([device("0015651a2b3c")], False)
    assert result.removed == ["0015651a2b3d.cfg"]
    assert not (tmp_path / "out" / device_token(SECRET, "0015651a2b3d")).exists()


def test_check_mode_reports_and_writes_nothing(tmp_path):
    result = renderer(tmp_path).run([device("0015651a2b3c")], True)
    assert result.counts()["created"] == 1
    assert not (tmp_path / "out").exists()


def test_a_crashed_runs_temporary_file_is_cleaned_up(tmp_path):
    renderer(tmp_path).run([device("0015651a2b3c")], False)
    directory = tmp_path / "out" / device_token(SECRET, "0015651a2b3c")
    (directory / ".sipwave-0015651a2b3c.cfg.tmp").write_text("half")
    result = renderer(tmp_path).run([device("0015651a2b3c")], False)
    assert os.listdir(directory) == ["0015651a2b3c.cfg"]
    assert result.removed == []  # not reported as a device file


def test_a_file_modified_by_hand_is_restored(tmp_path):
    renderer(tmp_path).run([device("0015651a2b3c")], False)
    path = tmp_path / "out" / device_token(SECRET, "0015651a2b3c") / "0015651a2b3c.cfg"
    path.write_text("tampered")
    result = renderer(tmp_path).run([device("0015651a2b3c")], False)
    assert result.counts()["updated"] == 1
    assert "pw-one-secret" in path.read_text()


def test_a_template_error_names_the_template_and_line(tmp_path):
    broken = {**templates(), "yealink/mac.cfg.j2": "line one\n{% if %}\n"}
    render = Renderer(broken, {}, str(tmp_path / "out"))
    with pytest.raises(ProvisioningError, match=r"yealink/mac.cfg.j2:2: syntax error"):
        render.run([device("0015651a2b3c")], False)


def test_a_missing_value_names_the_variable_and_not_a_secret(tmp_path):
    broken = {**templates(), "yealink/mac.cfg.j2": "{{ line.password }} {{ site.nothing }}\n"}
    render = Renderer(broken, {}, str(tmp_path / "out"))
    with pytest.raises(ProvisioningError) as raised:
        render.run([device("0015651a2b3c")], False)
    assert "nothing" in str(raised.value)
    assert "pw-one-secret" not in str(raised.value)


# -- the controller side: export, states, overrides ---------------------------------------------


def write_export(tmp_path: Path, rows: list[str]) -> str:
    path = tmp_path / "export.csv"
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return str(path)


EXPORT_ROWS = [
    "1001,pw-plain-1001,,ip.tanifon.pl,Anna,a@x.test,+48221000001,,s,0,yealink:T46U:00:15:65:00:00:01,w",
    "1002,,0123456789abcdef0123456789abcdef,ip.tanifon.pl,Jan,j@x.test,+48221000002,,s,0,"
    "snom:D785:00:04:13:00:00:02,w",
    "1003,pw-plain-1003,,ip.tanifon.pl,Ewa,e@x.test,+48221000003,,s,0,cisco:8841:00:00:00:00:00:03,w",
]
STATES = {
    "1001": AccountState("1001", "phase2", "tnf1001", "sip.sipwave.test"),
    "1002": AccountState("1002", "phase2", "tnf1002", "sip.sipwave.test"),
    "1003": AccountState("1003", "closed", None, None),
}


def planned(tmp_path: Path, rows: list[str] = EXPORT_ROWS, states=None):
    export = read_export(write_export(tmp_path, rows), plan_from_dict({"country_code": "48"}))
    return plan_devices(export, states or STATES, SECRET)


def test_phase2_devices_get_the_new_identity_and_keep_the_password(tmp_path):
    rows, identities, _ = planned(tmp_path)
    line = next(r["line"] for r in rows if r["mac"] == "001565000001")
    assert line[2:4] == ["tnf1001", "sip.sipwave.test"]
    assert line[5] == "pw-plain-1001"
    assert identities["001565000001"] == ["tnf1001@sip.sipwave.test", "1001@ip.tanifon.pl"]


def test_a_phone_rolled_back_to_phase1_is_also_looked_for_under_its_phase2_identity(tmp_path):
    export = read_export(
        write_export(tmp_path, EXPORT_ROWS), plan_from_dict({"country_code": "48"})
    )
    states = {"1001": AccountState("1001", "phase1", "1001", "ip.tanifon.pl")}
    rows, identities, _ = plan_devices(export, states, SECRET, ("tnf", "sip.sipwave.test"))
    assert rows[0]["line"][2:4] == ["1001", "ip.tanifon.pl"]  # its files: the legacy identity
    assert identities["001565000001"] == ["1001@ip.tanifon.pl", "tnf1001@sip.sipwave.test"]
    assert rows[0]["identities"] == identities["001565000001"]


def test_a_phase2_phone_is_looked_for_under_each_identity_once(tmp_path):
    export = read_export(
        write_export(tmp_path, EXPORT_ROWS), plan_from_dict({"country_code": "48"})
    )
    _, identities, _ = plan_devices(export, STATES, SECRET, ("tnf", "sip.sipwave.test"))
    assert identities["001565000001"] == ["tnf1001@sip.sipwave.test", "1001@ip.tanifon.pl"]


def test_an_ha1_only_account_gets_the_generated_phase2_password(tmp_path):
    rows, _, _ = planned(tmp_path)
    line = next(r["line"] for r in rows if r["mac"] == "000413000002")
    assert line[5] == generated_password(SECRET, "1002")


def test_an_ha1_only_account_in_phase1_gets_no_password(tmp_path):
    states = {**STATES, "1002": AccountState("1002", "phase1", "1002", "ip.tanifon.pl")}
    rows, _, _ = planned(tmp_path, states=states)
    line = next(r["line"] for r in rows if r["mac"] == "000413000002")
    assert line[2:4] == ["1002", "ip.tanifon.pl"]
    assert line[5] is None


def test_devices_of_closed_and_unmigrated_accounts_are_not_provisioned(tmp_path):
    rows, _, _ = planned(tmp_path, states={"1001": STATES["1001"], "1003": STATES["1003"]})
    assert [row["mac"] for row in rows] == ["001565000001"]


def test_a_mac_on_two_accounts_is_reported_and_provisioned_for_neither(tmp_path):
    rows_in = [*EXPORT_ROWS[:2], EXPORT_ROWS[2].replace("00:00:00:00:00:03", "00:15:65:00:00:01")]
    states = {**STATES, "1003": AccountState("1003", "phase1", None, None)}
    rows, _, problems = planned(tmp_path, rows_in, states)
    assert "001565000001" not in [row["mac"] for row in rows]
    assert len(problems) == 1
    assert "export.csv:4: MAC 001565000001 is also a device of login '1001' (line 2)" in problems[0]


def test_states_are_read_from_the_account_states_value():
    packed = json.dumps([["login", "state", "current_username", "current_domain"],
                         [["1001", "phase1", "1001", "ip.tanifon.pl"]]])  # fmt: skip
    assert parse_states(packed)["1001"].state == "phase1"


def test_a_site_template_overrides_the_roles_without_forking_the_others(tmp_path):
    site = tmp_path / "site" / "yealink"
    site.mkdir(parents=True)
    (site / "mac.cfg.j2").write_text("#!version:1.0.0.1\n# site template\n")
    loaded, overridden = load_templates([str(tmp_path / "site"), str(ROLE_TEMPLATES)])
    assert loaded["yealink/mac.cfg.j2"] == "#!version:1.0.0.1\n# site template\n"
    assert loaded["snom/mac.xml.j2"] == (ROLE_TEMPLATES / "snom/mac.xml.j2").read_text()
    assert overridden == ["yealink/mac.cfg.j2"]


def test_a_missing_override_directory_is_fine_but_missing_templates_are_not(tmp_path):
    loaded, overridden = load_templates([str(tmp_path / "none"), str(ROLE_TEMPLATES)])
    assert overridden == []
    assert "gigaset/mac.xml.j2" in loaded
    (tmp_path / "partial" / "yealink").mkdir(parents=True)
    (tmp_path / "partial" / "yealink" / "mac.cfg.j2").write_text("x")
    with pytest.raises(AnsibleActionFail, match="no template"):
        load_templates([str(tmp_path / "partial")])


# -- the module as Ansible runs it ------------------------------------------------------------


def module_args(tmp_path: Path, password: str) -> dict:
    devices = tmp_path / "devices.json"
    devices.write_text(json.dumps([{
        "mac": "0015651a2b3c", "vendor": "yealink", "model": "T46U",
        "token": device_token(SECRET, "0015651a2b3c"),
        "line": ["1001", "phase1", "1001", "ip.tanifon.pl", "Anna", password],
    }]))  # fmt: skip
    return {
        "devices_file": str(devices),
        "templates": templates(),
        "site": {"provisioning_url": "https://prov.test"},
        "output_dir": str(tmp_path / "out"),
    }


def test_the_module_reports_counts_and_diff_without_secrets(tmp_path):
    run = run_module_file(MODULE, tmp_path, module_args(tmp_path, "pw-module-secret"), diff=True)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["changed"] is True
    assert result["counts"]["created"] == 1
    assert result["diff"]["after"] == "0015651a2b3c 0015651a2b3c.cfg: created\n"
    assert "pw-module-secret" not in run.stdout
    assert device_token(SECRET, "0015651a2b3c") not in run.stdout


def test_the_module_in_check_mode_changes_nothing(tmp_path):
    run = run_module_file(MODULE, tmp_path, module_args(tmp_path, "pw"), check=True)
    assert json.loads(run.stdout)["changed"] is True
    assert not (tmp_path / "out").exists()


# -- check_sync: the registered contacts of kamcmd's ul.lookup ---------------------------------

UL_LOOKUP = """{
	AoR: 481200000@ip.tanifon.pl
	Contacts: {
		Contact: {
			Address: sip:481200000@127.0.22.101:5099
			Expires: 3597
			Received: [not set]
			Path: [not set]
			Socket: udp:127.0.22.11:5060
		}
		Contact: {
			Address: sip:481200000@10.0.0.5:5060
			Received: sip:127.0.22.105:40000
			Socket: udp:127.0.22.11:5060
		}
	}
}
"""


def test_check_sync_reads_every_contact_with_its_nat_address_and_socket():
    from ansible_collections.sipwave.platform.plugins.module_utils.check_sync import parse_contacts

    assert parse_contacts(UL_LOOKUP) == [
        {"address": "sip:481200000@127.0.22.101:5099", "received": None,
         "socket": "udp:127.0.22.11:5060"},
        {"address": "sip:481200000@10.0.0.5:5060", "received": "sip:127.0.22.105:40000",
         "socket": "udp:127.0.22.11:5060"},
    ]  # fmt: skip


# -- account_states: what the wave database says, no secret ------------------------------------

STATES_MODULE = MODULE.with_name("account_states.py")


def test_account_states_reads_every_accounts_state_and_identity(tmp_path):
    import sqlite3

    database = tmp_path / "sipwave.sqlite"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TABLE sipwave_account (login TEXT, state TEXT, wave TEXT, legacy_domain TEXT,"
            " current_username TEXT, current_domain TEXT)"
        )
        connection.executemany(
            "INSERT INTO sipwave_account VALUES (?, ?, 'w', 'ip.tanifon.pl', ?, ?)",
            [("1001", "phase2", "tnf1001", "sip.sipwave.test"), ("1002", "closed", None, None)],
        )
    run = run_module_file(STATES_MODULE, tmp_path, {"database": str(database)})
    result = json.loads(run.stdout)
    assert result["changed"] is False
    assert result["counts"] == {"closed": 1, "phase2": 1}
    states = parse_states(result["states"])
    assert states["1001"] == AccountState("1001", "phase2", "tnf1001", "sip.sipwave.test")


def test_account_states_of_a_host_without_a_wave_yet_is_empty(tmp_path):
    run = run_module_file(STATES_MODULE, tmp_path, {"database": str(tmp_path / "none.sqlite")})
    assert parse_states(json.loads(run.stdout)["states"]) == {}
