"""Phones fetch their configs from real nginx and tftpd-hpa; enumeration gets nothing and is
banned by fail2ban; after phase 2 the config changes and the registered phone (SIPp) gets a
check-sync NOTIFY through the real Kamailio proxy.

The tests run in file order: wave 1 is in phase 1 after converge; the phase-2 tests come last.
"""

from __future__ import annotations

import re
import secrets as random_tokens
import time
import xml.etree.ElementTree as ET

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.provisioning import VENDOR_FILES
from conftest import (
    DAY_AFTER_WAVE1,
    HA1_ONLY,
    LEGACY_DOMAIN,
    NEW_DOMAIN,
    NOT_MIGRATED,
    PHONES,
    PROJECT,
    PROV_CONTAINER,
    PROXY,
    PROXY_CONTAINER,
    RESYNCED,
    Client,
    in_container,
    one_per_vendor,
    tftp_get,
)
from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook

OUTPUTS: dict[str, str] = {}
ENUMERATOR = "127.0.22.201"
PHONE_ADDRESS = "127.0.22.202"  # provisioning_ban_ignore: never banned
UAS_ADDRESS = "127.0.22.101"
UAS_PORT = 5099
# A second contact of the re-synced phone's identity where nothing answers (a phone gone).
DEAD_CONTACT = "127.0.22.106:5097"
CHECK_SYNC_DEADLINE = 8  # provisioning_check_sync_deadline of the scenario


def recap_changed(output: str, host: str) -> int:
    found = re.search(rf"^{re.escape(host)}\s*:.*changed=(\d+)", output, re.M)
    assert found, output[-3000:]
    return int(found.group(1))


def fetch(client: Client, phone, name: str) -> tuple[int, str]:
    status, body = client.get(f"/p/{phone.token}/{name}")
    return status, body.decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def phone_client(tls_context):
    client = Client(PHONE_ADDRESS, tls_context)
    yield client
    client.close()


# -- the services --------------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "port"), [("nginx", ":443"), ("nginx", ":80")])
def test_nginx_binds_only_the_provisioning_address(service, port):
    listening = in_container(PROV_CONTAINER, "ss", "-Hltnp").stdout
    sockets = [line.split()[3] for line in listening.splitlines() if service in line]
    assert f"127.0.22.51{port}" in sockets
    assert all(s.startswith("127.0.22.51:") for s in sockets), sockets


def test_tftpd_binds_only_the_provisioning_address():
    listening = in_container(PROV_CONTAINER, "ss", "-Hlunp").stdout
    sockets = [line.split()[3] for line in listening.splitlines() if "tftpd" in line]
    assert sockets == ["127.0.22.51:69"]


# -- a device with its token gets its config ---------------------------------------------------


def test_the_migrated_phones_cover_every_vendor():
    assert {phone.vendor for phone in one_per_vendor()} == set(VENDOR_FILES)


@pytest.mark.parametrize("phone", one_per_vendor(), ids=lambda p: p.vendor)
def test_a_device_presenting_its_token_gets_each_file_in_its_vendors_format(phone, phone_client):
    texts = []
    for name in phone.files:
        status, text = fetch(phone_client, phone, name)
        assert status == 200, name
        if name.endswith(".xml") or text.startswith("<?xml"):
            ET.fromstring(text)  # well-formed
        texts.append(text)
    config = "".join(texts)
    assert phone.login in config
    assert LEGACY_DOMAIN in config
    assert phone.password in config


def test_a_yealink_config_holds_the_phase1_credentials(phone_client):
    status, text = fetch(phone_client, RESYNCED, f"{RESYNCED.mac}.cfg")
    assert status == 200
    assert text.startswith("#!version:1.0.0.1\n")
    assert f"account.1.user_name = {RESYNCED.login}\n" in text
    assert f"account.1.password = {RESYNCED.password}\n" in text
    assert f"account.1.sip_server.1.address = {LEGACY_DOMAIN}\n" in text
    assert "account.1.outbound_proxy.1.address = 127.0.22.11\n" in text


def test_an_ha1_only_account_in_phase1_gets_no_password_key(phone_client):
    name = HA1_ONLY.files[-1]
    status, text = fetch(phone_client, HA1_ONLY, name)
    assert status == 200
    assert HA1_ONLY.login in text
    assert not re.search(r"(?i)(password|pswd|P34>|user_pass)", text), text


def test_the_site_template_overrides_the_roles_gigaset_template(phone_client):
    gigaset = next(p for p in one_per_vendor() if p.vendor == "gigaset")
    status, text = fetch(phone_client, gigaset, gigaset.files[0])
    assert status == 200
    assert "sipwave-site-override" in text


def test_a_not_migrated_accounts_device_is_not_served(phone_client):
    status, _ = fetch(phone_client, NOT_MIGRATED, NOT_MIGRATED.files[0])
    assert status == 404


@pytest.mark.parametrize(
    "path",
    ["/", "/p/", f"/p/{RESYNCED.token}/", f"/p/{RESYNCED.token}", "/common/", "/p/../"],
)
def test_no_directory_is_listed(path, phone_client):
    status, body = phone_client.get(path)
    assert status in (400, 403, 404)
    assert RESYNCED.mac.encode() not in body
    assert b"Index of" not in body


def test_a_wrong_token_gets_nothing(phone_client):
    status, _ = phone_client.get(f"/p/{random_tokens.token_hex(16)}/{RESYNCED.mac}.cfg")
    assert status == 404


def test_plain_http_serves_no_device_file():
    client = Client(PHONE_ADDRESS, None, port=80)
    status, _ = client.get(f"/p/{RESYNCED.token}/{RESYNCED.mac}.cfg")
    assert status == 404
    status, body = client.get("/common/y000000000000.cfg")
    assert status == 200
    assert b"static.auto_provision.server.url" in body
    client.close()


# -- enumeration --------------------------------------------------------------------------------


def enumeration_paths(count: int) -> list[str]:
    """Guesses an attacker who knows the vendors' naming would try: real MACs of the export
    without a token, with a random token, and random MACs in every vendor's file names."""
    real = list(PHONES)
    paths = []
    for index in range(count):
        phone = real[index % len(real)]
        mac = phone.mac if index % 2 else f"{random_tokens.randbits(48):012x}"
        name = (f"{mac}.cfg", f"cfg{mac}.xml", f"{mac.upper()}.xml", f"{mac}-phone.cfg",
                f"{mac}.xml")[index % 5]  # fmt: skip
        paths.append(
            (f"/{name}", f"/p/{random_tokens.token_hex(16)}/{name}", f"/p/{name}")[index % 3]
        )
    return paths


@pytest.fixture(scope="module")
def enumeration(tls_context, secrets):
    client = Client(ENUMERATOR, tls_context)
    statuses: dict[int, int] = {}
    leaked = 0
    bodies: set[bytes] = set()
    for path in enumeration_paths(10_000):
        status, body = client.get(path)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            leaked += 1
        elif body not in bodies:  # error pages repeat: search each distinct body once
            bodies.add(body)
            leaked += any(s.encode() in body for s in secrets)
    client.close()
    return statuses, leaked


def test_10000_enumerated_macs_without_tokens_get_no_config(enumeration):
    statuses, leaked = enumeration
    assert sum(statuses.values()) == 10_000
    assert statuses.get(200, 0) == 0, statuses
    assert leaked == 0


def test_the_enumerating_address_is_rate_limited_and_banned(enumeration, tls_context):
    statuses, _ = enumeration
    assert statuses.get(429, 0) > 0, statuses
    client = Client(ENUMERATOR, tls_context)
    deadline = time.monotonic() + 30
    status = 0
    while time.monotonic() < deadline:
        status, _ = client.get(f"/p/{RESYNCED.token}/{RESYNCED.mac}.cfg")
        if status == 403:
            break
        time.sleep(1)
    client.close()
    assert status == 403  # banned: not even a valid token is served to it
    banned = in_container(PROV_CONTAINER, "fail2ban-client", "status", "sipwave-provisioning")
    assert ENUMERATOR in banned.stdout


def test_a_phone_on_another_address_is_still_served_during_the_ban(enumeration, phone_client):
    status, _ = fetch(phone_client, RESYNCED, f"{RESYNCED.mac}.cfg")
    assert status == 200


def test_no_log_of_the_provisioning_host_holds_a_token_or_secret(enumeration, secrets):
    logs = in_container(
        PROV_CONTAINER, "sh", "-c", "cat /var/log/nginx/*.log /var/log/fail2ban.log 2>/dev/null"
    ).stdout
    assert "/p/-/" in logs  # device requests are logged, with the token replaced
    leaked = [s for s in secrets if s in logs]
    assert not leaked, f"{len(leaked)} secrets or tokens in the provisioning host's logs"


# -- TFTP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "points_to"),
    [
        ("y000000000000.cfg", "https://127.0.22.51/common/"),
        ("000000000000.cfg", 'CONFIG_FILES="sipwave-common.cfg"'),
        ("sipwave-common.cfg", 'device.prov.serverName="127.0.22.51/common"'),
        ("cfg.xml", "<P237>127.0.22.51/common</P237>"),
    ],
)
def test_tftp_serves_the_common_files_without_any_secret(name, points_to, secrets):
    found, content = tftp_get(name)
    assert found, content
    text = content.decode()
    assert points_to in text
    assert not [s for s in secrets if s in text]
    assert not re.search(r"(?i)password|pswd|user_pass|<P34>", text)


def test_tftp_serves_no_device_file():
    for name in RESYNCED.files:
        found, _ = tftp_get(name)
        assert not found
    found, _ = tftp_get(f"../../{RESYNCED.token}/{RESYNCED.files[0]}")
    assert not found


# -- zero-touch phase 2 -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phase2(phone_client):
    """The phone registers (phase 1 identity) with a SIPp UAS as its contact; the customer
    consents; wave 1 phase 2 runs. Returns the UAS's result and the playbook output."""
    uas, workdir = sipp.run(
        "notify_uas.xml", PROXY, UAS_ADDRESS, local_port=UAS_PORT, background=True,
        timeout_s=400,
    )  # fmt: skip
    row = [RESYNCED.login, LEGACY_DOMAIN, sipp.credentials(RESYNCED.login, RESYNCED.password),
           f"{UAS_ADDRESS}:{UAS_PORT}"]  # fmt: skip
    dead = [*row[:3], DEAD_CONTACT]
    registered = sipp.run("register.xml", PROXY, "127.0.22.102", rows=[row, dead], calls=2)
    assert registered.successful == 2, registered.output
    _, before = fetch(phone_client, RESYNCED, f"{RESYNCED.mac}.cfg")
    consent = run_playbook("record_consent.yml", {"login": RESYNCED.login, "decision": "migrate"})
    assert consent.returncode == 0, consent.stdout[-3000:]
    run = run_playbook(
        "migrate_wave.yml",
        {"wave": "wave1", "sipwave_today": DAY_AFTER_WAVE1, "wave_phase": 2},
        verbosity=3,
    )
    OUTPUTS["phase2"] = run.stdout + run.stderr
    assert run.returncode == 0, run.stdout[-4000:]
    return sipp.wait(uas, workdir, timeout_s=60), before, run.stdout


def test_after_phase2_the_config_has_the_new_login_and_domain(phase2, phone_client):
    _, before, _ = phase2
    status, after = fetch(phone_client, RESYNCED, f"{RESYNCED.mac}.cfg")
    assert status == 200
    assert after != before
    assert f"account.1.user_name = tnf{RESYNCED.login}\n" in after
    assert f"account.1.sip_server.1.address = {NEW_DOMAIN}\n" in after
    assert f"account.1.password = {RESYNCED.password}\n" in after


def test_the_registered_phone_receives_the_check_sync_notify(phase2):
    uas, _, output = phase2
    assert uas.successful == 1, uas.output + uas.messages
    assert "Event: check-sync" in uas.messages
    assert "NOTIFY sip:" in uas.messages
    assert "'notified': 1" in output or '"notified": 1' in output


def shown(output: str, name: str) -> str:
    # the YAML (or JSON) of a debug task's message: `name: value`
    found = re.search(rf"""(?:^|[\s{{,])["']?{name}["']?: *([^,}}\s]+)""", output, re.M)
    assert found, output[-3000:]
    return found.group(1).strip().strip('"')


def test_a_phone_gone_ends_the_check_sync_at_its_deadline_and_is_reported(phase2):
    _, _, output = phase2
    told = output.split("TASK [Show who was told]", 1)[1].split("TASK [", 1)[0]
    assert shown(told, "timed_out_contacts") == "1"  # the dead contact
    assert shown(told, "notified") == "1"  # the SIPp phone
    assert shown(told, "answered") == "1"  # the device: one of its contacts answered
    assert CHECK_SYNC_DEADLINE <= float(shown(told, "seconds")) < CHECK_SYNC_DEADLINE + 3
    result = output.split("TASK [Send check-sync", 1)[1].split("TASK [", 1)[0]
    assert f"sip:{RESYNCED.login}@{DEAD_CONTACT}" in result
    assert re.search(r"outcome\W+timed_out", result) and re.search(r"outcome\W+answered", result)


def test_the_new_credentials_register_on_the_proxy(phase2):
    user = f"tnf{RESYNCED.login}"
    row = [user, NEW_DOMAIN, sipp.credentials(user, RESYNCED.password), "127.0.22.104:5099"]
    result = sipp.run("register.xml", PROXY, "127.0.22.104", rows=[row])
    assert result.successful == 1, result.output


def test_no_secret_appears_in_the_scenarios_converge_log(secrets):
    """The converge and idempotence output, written by tools/run_scenario.sh before verify."""
    log = PROJECT / ".cache" / "molecule" / "provisioning.log"
    if not log.exists():
        pytest.skip("not run through tools/run_scenario.sh")
    text = log.read_text(errors="replace")
    if "Render every phone's files" not in text:
        pytest.skip("the log is of an earlier run that did not converge")
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"{len(leaked)} secrets or tokens in the scenario's log"


def test_no_secret_appears_in_the_verbose_phase2_output(phase2, secrets):
    leaked = [s for s in secrets if s in OUTPUTS["phase2"]]
    assert not leaked, f"{len(leaked)} secrets or tokens in the -vvv output"


def test_a_second_run_changes_nothing_and_notifies_nobody(phase2):
    run = run_playbook("provisioning.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap_changed(run.stdout, PROV_CONTAINER) == 0
    assert recap_changed(run.stdout, PROXY_CONTAINER) == 0
