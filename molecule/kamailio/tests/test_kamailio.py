"""The proxy as a phone, a PBX and an attacker see it: real Kamailio, real SIPp traffic."""

import json
import re

import pytest
from conftest import (
    ACCOUNTS,
    NEW_DOMAIN,
    PBX_ADDRESS,
    PROJECT,
    PROXY,
    call_row,
    in_container,
    main_pid,
    register_row,
    run_playbook,
)
from sipwave_testlib import sipp
from sipwave_testlib.dialogs import DIALOG_TOKEN


def journal(host) -> str:
    return host.run("journalctl -u kamailio --no-pager -n 60").stdout


def test_kamailio_runs(host):
    assert host.service("kamailio").is_running, journal(host)
    assert host.service("kamailio").is_enabled


def test_kamailio_binds_only_the_lab_address(host):
    sockets = host.check_output("ss -Hlnptu | grep kamailio | awk '{print $5}' | sort -u")
    assert sockets.split() == ["127.0.20.11:5060"], sockets


def test_subscriber_table_holds_no_plaintext_password(host):
    columns = host.check_output(
        "sqlite3 /var/lib/kamailio/sipwave.sqlite 'PRAGMA table_info(subscriber)'"
    )
    assert "password" not in columns


@pytest.mark.parametrize("account", sorted(ACCOUNTS))
def test_no_password_on_disk_or_in_the_journal(account):
    # Searched through podman exec, not Ansible: a module invocation carrying the password
    # would itself be logged to the journal.
    password = ACCOUNTS[account][2]
    files = in_container("grep", "-rlF", "-e", password, "/etc", "/var/lib/kamailio", "/var/log")
    journal_lines = in_container(
        "sh", "-c", 'journalctl -o cat --no-pager | grep -cF -e "$0"', password
    )
    assert files.stdout == "", f"plaintext password found in {files.stdout}"
    assert journal_lines.stdout.strip() == "0"


@pytest.mark.parametrize("account", ["legacy-a", "new"])
def test_subscriber_registers_with_digest_auth(account):
    result = sipp.run(
        "register.xml", PROXY, "127.0.20.101", rows=[register_row(account, "127.0.20.101:5099")]
    )
    assert result.successful == 1, result.output


def test_wrong_password_is_refused_never_accepted():
    result = sipp.run(
        "register_refused.xml",
        PROXY,
        "127.0.20.103",
        rows=[register_row("legacy-b", "127.0.20.103:5099", password="not-it")],
    )
    assert (result.successful, result.failed) == (1, 0), result.output
    assert "SIP/2.0 200" not in result.messages


def test_register_for_a_domain_not_served_is_refused():
    row = [
        "481234001",
        "not-served.example",
        sipp.credentials("481234001", "x"),
        "127.0.20.104:5099",
    ]
    result = sipp.run("register_not_served.xml", PROXY, "127.0.20.104", rows=[row])
    assert result.successful == 1, result.output


def test_call_reaches_the_registered_contact_through_the_proxy():
    callee, callee_domain, _ = ACCOUNTS["new"]
    answering, workdir = sipp.run(
        "answer.xml", PROXY, "127.0.20.102", local_port=5070, background=True, timeout_s=20
    )
    registered = sipp.run(
        "register.xml",
        PROXY,
        "127.0.20.102",
        local_port=5071,
        rows=[register_row("new", "127.0.20.102:5070")],
    )
    assert registered.successful == 1, registered.output
    caller = sipp.run(
        "call_auth.xml", PROXY, "127.0.20.105", rows=[call_row("legacy-a", callee, callee_domain)]
    )
    callee_side = sipp.wait(answering, workdir)
    assert caller.successful == 1, caller.output
    assert callee_side.successful == 1, callee_side.output
    assert f"INVITE sip:{callee}@127.0.20.102:5070" in callee_side.messages
    # The proxy's own Record-Route, with the dialog token of the call's Call-ID: the caller's
    # BYE (call_auth.xml) brought it back and was relayed.
    own_route = r"Record-Route: <sip:127\.0\.20\.11;lr;" + DIALOG_TOKEN + ">"
    assert re.search(own_route, callee_side.messages), callee_side.messages


def test_call_to_a_pbx_prefix_goes_to_the_pbx():
    answering, workdir = sipp.run(
        "answer.xml", PROXY, PBX_ADDRESS, local_port=5080, background=True, timeout_s=20
    )
    caller = sipp.run(
        "call_auth.xml", PROXY, "127.0.20.106", rows=[call_row("legacy-b", "800100", NEW_DOMAIN)]
    )
    pbx_side = sipp.wait(answering, workdir)
    assert caller.successful == 1, caller.output
    assert pbx_side.successful == 1, pbx_side.output
    assert f"INVITE sip:800100@{NEW_DOMAIN}" in pbx_side.messages


def test_twenty_failed_authentications_ban_the_source_only():
    attacker, other = "127.0.20.150", "127.0.20.151"
    guesses = sipp.run(
        "register_refused.xml",
        PROXY,
        attacker,
        calls=20,
        rate=50,
        rows=[register_row("legacy-a", f"{attacker}:5099", password="guess")],
    )
    assert guesses.successful >= 19, guesses.output
    banned = sipp.run(
        "register.xml",
        PROXY,
        attacker,
        timeout_s=8,
        rows=[register_row("legacy-a", f"{attacker}:5099")],
    )
    assert banned.successful == 0
    assert "message received" not in banned.messages, "a banned source got an answer"
    still_served = sipp.run(
        "register.xml", PROXY, other, rows=[register_row("legacy-a", f"{other}:5099")]
    )
    assert still_served.successful == 1, still_served.output


def test_broken_kamailio_cfg_never_reaches_the_service(host):
    before = host.check_output("readlink /etc/kamailio/sipwave/current")
    pid = main_pid(host)
    run = run_playbook({"kamailio_cfg_extra": 'modparam("tm", "no_such_parameter", 1)'})
    assert run.returncode != 0, run.stdout[-2000:]
    assert "kamailio" in run.stdout and "-c" in run.stdout
    assert host.check_output("readlink /etc/kamailio/sipwave/current") == before
    assert main_pid(host) == pid
    result = sipp.run(
        "register.xml", PROXY, "127.0.20.107", rows=[register_row("legacy-b", "127.0.20.107:5099")]
    )
    assert result.successful == 1, result.output


def test_broken_router_never_reaches_the_service(host):
    before = host.check_output("readlink /etc/kamailio/sipwave/current")
    host.check_output(
        "rm -rf /tmp/broken && cp -a /etc/kamailio/sipwave/staging /tmp/broken && "
        "printf '\\ndef broken(:\\n' >> /tmp/broken/router/sipwave_router/routing.py"
    )
    run = host.ansible(
        "sipwave.platform.release", "staging=/tmp/broken root=/etc/kamailio/sipwave", check=False
    )
    assert "routing.py" in run.get("msg", ""), run
    assert host.check_output("readlink /etc/kamailio/sipwave/current") == before
    result = sipp.run(
        "register.xml", PROXY, "127.0.20.108", rows=[register_row("legacy-b", "127.0.20.108:5099")]
    )
    assert result.successful == 1, result.output


# Both compile, so only the import check of the role's validation catches them; before it,
# `kamailio -c` passed them and the reload that followed made Kamailio exit.
IMPORT_FAILURES = {
    "import-error": (
        "printf 'import nonexistent_module_x\\n' >> {staged}/router/sipwave_router/routing.py",
        "routing.py line",
        "ModuleNotFoundError: No module named 'nonexistent_module_x'",
    ),
    "settings-rejected": (
        "printf '{{\"domains\": 3}}' > {staged}/router/settings.json",
        "settings.py line",
        "TypeError: 'int' object is not iterable",
    ),
}


def release_with_the_roles_validation(staging: str, tmp_path) -> str:
    """Release ``staging`` through exactly the validate list of the kamailio role."""
    playbook = tmp_path / "release.yml"
    play = {
        "name": "Release a staged copy as the kamailio role does",
        "hosts": "proxies",
        "gather_facts": False,
        "vars_files": [str(PROJECT / "roles" / "kamailio" / "vars" / "main.yml")],
        "tasks": [
            {
                "name": "Validate and release",
                "sipwave.platform.release": {
                    "staging": staging,
                    "root": "/etc/kamailio/sipwave",
                    "validate": "{{ __kamailio_release_validate }}",
                },
            }
        ],
    }
    playbook.write_text(json.dumps([play]))
    run = run_playbook(playbook=playbook)
    assert run.returncode != 0, run.stdout[-3000:]
    return run.stdout


@pytest.mark.parametrize("failure", sorted(IMPORT_FAILURES))
def test_router_failing_at_import_never_reaches_the_service(host, tmp_path, failure):
    breakage, where, reason = IMPORT_FAILURES[failure]
    staged = f"/tmp/import-{failure}"
    before = host.check_output("readlink /etc/kamailio/sipwave/current")
    pid = main_pid(host)
    # A copy of the live release: staging may still hold what an earlier test broke.
    host.check_output(
        f"rm -rf {staged} && cp -a /etc/kamailio/sipwave/releases/{before.split('/')[-1]} "
        f"{staged} && " + breakage.format(staged=staged)
    )
    output = release_with_the_roles_validation(staged, tmp_path)
    assert "KEMI router check failed" in output and where in output, output[-3000:]
    assert reason in output, output[-3000:]
    assert host.check_output("readlink /etc/kamailio/sipwave/current") == before
    assert main_pid(host) == pid
    result = sipp.run(
        "register.xml", PROXY, "127.0.20.110", rows=[register_row("legacy-b", "127.0.20.110:5099")]
    )
    assert result.successful == 1, result.output
    host.check_output(f"rm -rf {staged}")


DIALOG_KEY = "/var/lib/kamailio/sipwave-dialog.key"  # kamailio_dialog_key_file


def test_the_dialog_key_is_random_hex_for_kamailio_alone_and_never_logged():
    owner_and_mode = in_container("stat", "-c", "%U:%G %a", DIALOG_KEY).stdout.split()
    assert owner_and_mode == ["kamailio:kamailio", "600"]
    key = in_container("cat", DIALOG_KEY).stdout.strip()
    well_formed = re.fullmatch("[0-9a-f]{64}", key) is not None and len(set(key)) > 4
    journal = in_container("journalctl", "--no-pager", "-o", "cat").stdout
    logged = key in journal
    assert well_formed, "the dialog key is not 32 random bytes in hex"
    assert not logged, "the dialog key is in the journal"


def test_router_change_reloads_without_restart(host):
    pid = main_pid(host)
    routes = [
        {"name": "pbx-services", "prefix": "800", "destination": "sip:127.0.20.21:5080"},
        {"name": "pbx-extra", "prefix": "801", "destination": "sip:127.0.20.21:5080"},
    ]
    run = run_playbook({"kamailio_prefix_routes": routes})
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Reload kamailio routing" in run.stdout
    assert main_pid(host) == pid
    answering, workdir = sipp.run(
        "answer.xml", PROXY, PBX_ADDRESS, local_port=5080, background=True, timeout_s=20
    )
    caller = sipp.run(
        "call_auth.xml", PROXY, "127.0.20.109", rows=[call_row("legacy-b", "801555", NEW_DOMAIN)]
    )
    sipp.wait(answering, workdir)
    assert caller.successful == 1, caller.output
    restore = run_playbook()
    assert restore.returncode == 0, restore.stdout[-3000:]
