"""Dial-in as callers, the carrier and an attacker see it: real Kamailio, Asterisk and SIPp."""

import re
import time

import pytest
from conftest import (
    ACCOUNTS,
    DIALIN,
    PBX,
    PBX_CONTAINER,
    PROXY_CONTAINER,
    asterisk_pid,
    cdr_rows,
    dial_in,
    forget_failures,
    in_container,
    pbx,
    run_playbook,
)
from sipwave_testlib import dialin, sipp

ACME = ACCOUNTS["acme"]
DESTINATION = "123456789"  # national: +48123456789
WRONG_PIN = "11112222"


def pin_of(account: str) -> str:
    return ACCOUNTS[account]["pin"]


def test_asterisk_runs_and_serves_sip_on_the_pbx_address_only():
    assert pbx("systemctl", "is-active", "asterisk").strip() == "active"
    listening = pbx("sh", "-c", "ss -Hlnpt | grep asterisk | awk '{print $4}'").split()
    sip = pbx("sh", "-c", "ss -Hlnpu | grep asterisk | awk '{print $4}' | grep ':5060$'").split()
    # Besides SIP, Asterisk holds only its DNS resolver's unconnected UDP sockets and the
    # HTTP server of its metrics (asterisk_metrics_enabled), on the PBX address.
    assert listening == ["127.0.21.21:8088"], f"Asterisk listens on TCP: {listening}"
    assert sip == ["127.0.21.21:5060"], sip


def test_manager_is_off():
    output = pbx("asterisk", "-rx", "manager show settings")
    assert re.search(r"Manager \(AMI\):\s+No", output), output


def test_http_serves_only_the_metrics():
    output = pbx("asterisk", "-rx", "http show status")
    assert "Server Enabled and Bound to 127.0.21.21:8088" in output, output
    uris = re.findall(r"^(/\S*) =>", output, re.M)
    assert uris == ["/metrics/..."], output


def test_no_anonymous_or_guest_endpoint():
    endpoints = pbx("asterisk", "-rx", "pjsip show endpoints")
    assert "anonymous" not in endpoints
    modules = pbx("asterisk", "-rx", "module show like identifier")
    assert "res_pjsip_endpoint_identifier_ip.so" in modules
    assert "identifier_anonymous" not in modules and "identifier_user" not in modules


@pytest.mark.parametrize("endpoint", ["sipwave-proxy", "sipwave-carrier"])
def test_no_endpoint_accepts_a_transfer(endpoint):
    """A REFER would send a dial-in call on past the PIN and prefix checks."""
    shown = pbx("asterisk", "-rx", f"pjsip show endpoint {endpoint}")
    assert re.search(r"^\s*allow_transfer\s*:\s*false\s*$", shown, re.M), shown


def test_direct_call_from_an_unknown_address_is_refused(carrier):
    result = sipp.run(
        str(dialin.write(dialin.DialinCall("48601000001", DIALIN, "127.0.21.21", expect="401"))),
        PBX,
        "127.0.21.99",
        extra=["-mp", "22990"],
    )
    assert result.successful == 1, result.output
    assert "INVITE" not in carrier.stop().messages


def test_authorised_caller_dials_out_with_the_account_number(carrier):
    start = pbx("date", "+%F %T").strip()
    call = dial_in("+48601000001", entries=[pin_of("acme"), DESTINATION])
    carrier_side = carrier.answered()
    assert call.successful == 1, call.output
    assert carrier_side.successful == 1, carrier_side.output
    assert "INVITE sip:+48123456789@127.0.21.31" in carrier_side.messages
    assert "From: <sip:+48221110001@" in carrier_side.messages
    assert "P-Asserted-Identity: <sip:+48221110001@" in carrier_side.messages
    rows = cdr_rows(f"calldate >= '{start}' AND caller = '+48601000001'")
    assert rows and rows[-1]["account"] == "acme" and rows[-1]["department"] == "sales", rows
    assert rows[-1]["destination"] == "+48123456789" and rows[-1]["disposition"] == "ANSWERED"


def test_account_without_pin_dials_out_directly(carrier):
    call = dial_in("601000003", entries=[DESTINATION])
    carrier_side = carrier.answered()
    assert call.successful == 1, call.output
    assert "From: <sip:+48221110002@" in carrier_side.messages


def test_authenticated_subscriber_calls_as_its_account_number(carrier):
    call = dial_in("", subscriber="48221110003", source="127.0.21.103", entries=[DESTINATION])
    carrier_side = carrier.answered()
    assert call.successful == 1, call.output
    assert "From: <sip:+48221110003@" in carrier_side.messages


@pytest.mark.parametrize("caller", ["+48609999999", "0048609999998", "609999997"])
def test_unknown_caller_is_refused_before_answer(carrier, caller):
    call = dial_in(caller, expect="403")
    assert call.successful == 1, call.output
    assert "INVITE" not in carrier.stop().messages


def test_subscriber_calling_from_outside_must_authenticate():
    call = sipp.run(
        str(dialin.write(dialin.DialinCall("+48601000001", DIALIN, "ip.tanifon.pl", expect="407"))),
        "127.0.21.11:5060",
        "127.0.21.104",
        extra=["-mp", "22980"],
    )
    assert call.successful == 1, call.output


def test_wrong_pin_is_refused_after_three_tries(carrier):
    forget_failures("+48601000005")
    call = dial_in("+48601000005", entries=[WRONG_PIN, "22223333", "33334444"], expect="hungup")
    assert call.successful == 1, call.output
    assert "INVITE" not in carrier.stop().messages
    rows = cdr_rows("caller = '+48601000005'")
    assert rows[-1]["outcome"] == "wrong PIN 3 times", rows


def test_account_is_locked_out_after_four_failures_from_any_of_its_numbers(carrier):
    """Caller numbers can be forged: guesses spread over gamma's two dial-in numbers lock
    gamma (asterisk_dialin_lockout_failures 4), and then neither number gets a PIN prompt."""
    forget_failures("+48601000004", "+48601000006")
    first = dial_in("+48601000004", entries=[WRONG_PIN] * 3, expect="hungup")
    assert first.successful == 1, first.output
    fourth_failure = dial_in("+48601000006", entries=[WRONG_PIN], expect="hungup")
    assert fourth_failure.successful == 1, fourth_failure.output
    for caller in ("+48601000004", "+48601000006"):
        with_the_right_pin = dial_in(caller, expect="403")
        assert with_the_right_pin.successful == 1, with_the_right_pin.output
        assert cdr_rows(f"caller = '{caller}'")[-1]["outcome"] == "locked out"
    assert "INVITE" not in carrier.stop().messages


@pytest.mark.parametrize("dialled", ["701234567", "00979123456789"])
def test_blocked_prefix_is_refused(carrier, dialled):
    """A national premium number, and the international premium-rate code +979 (a PIN
    account may call abroad, not there)."""
    call = dial_in("0048601000002", entries=[pin_of("acme"), dialled], expect="hungup")
    assert call.successful == 1, call.output
    assert "INVITE" not in carrier.stop().messages
    assert "blocked prefix" in cdr_rows("caller = '+48601000002'")[-1]["outcome"]


@pytest.mark.parametrize(
    "header",
    [
        "X-Sipwave-Caller: +48601000003",
        "x-sipwave-caller: +48601000003",
        "X-SIPWAVE-CALLER :  +48601000003",
        "X-Sipwave-Caller\t:+48601000003",
        "x-SipWave-Authorised: yes",
    ],
)
def test_spoofed_caller_header_from_a_subscriber_has_no_effect(carrier, header):
    # 48221119999 is a valid subscriber whose number is authorised for no account.
    call = dial_in(
        "",
        subscriber="48221119999",
        source="127.0.21.105",
        extra_headers=[header],
        expect="403",
    )
    assert call.successful == 1, call.output
    assert "INVITE" not in carrier.stop().messages


def test_spoofed_caller_header_from_the_carrier_is_replaced(carrier):
    call = dial_in("+48609999996", extra_headers=["X-Sipwave-Caller: +48601000003"], expect="403")
    assert call.successful == 1, call.output
    assert "INVITE" not in carrier.stop().messages


def test_concurrent_dialin_calls_are_limited_per_account(carrier):
    first = dial_in("601000003", entries=[DESTINATION], hold_ms=12000, background=True)
    try:
        pbx("sleep", "4")
        second = dial_in("601000003", expect="486")
        assert second.successful == 1, second.output
    finally:
        held = sipp.wait(*first)
    assert held.successful == 1, held.output
    # Waiting for the carrier's side lets it answer the PBX's BYE: killed before that, the
    # PBX would retransmit the BYE into the next test's carrier and use up its one call.
    assert carrier.answered().successful == 1


@pytest.mark.parametrize("account", ["acme", "gamma", "epsilon"])
@pytest.mark.parametrize("container", [PBX_CONTAINER, PROXY_CONTAINER])
def test_no_pin_in_any_log_cdr_or_rendered_file(account, container):
    # Searched through podman exec, not Ansible: a module invocation carrying the PIN would
    # itself be logged to the journal.
    pin = pin_of(account)
    files = in_container(
        container,
        "grep",
        "-rlaF",
        "-e",
        pin,
        "/etc",
        "/var/log",
        "/var/lib/asterisk",
        "/var/lib/kamailio",
        "/tmp",
    )
    journal = in_container(
        container, "sh", "-c", 'journalctl -o cat --no-pager | grep -cF -e "$0"', pin
    )
    assert files.stdout == "", f"PIN found in {files.stdout}"
    assert journal.stdout.strip() == "0"


def test_pins_are_stored_as_salted_hashes_only():
    hashes = pbx(
        "sqlite3",
        "/var/lib/asterisk/sipwave/dialin.sqlite",
        "SELECT pin_hash FROM account WHERE pin_hash IS NOT NULL",
    )
    assert len(set(hashes.split())) == 3
    assert all(h.startswith("scrypt$") for h in hashes.split())


def test_list_update_applies_without_restart_or_dropping_calls(carrier):
    pid = asterisk_pid()
    newcomer = "+48601000009"
    refused = dial_in(newcomer, expect="403")
    assert refused.successful == 1, refused.output
    in_progress = dial_in("601000003", entries=[DESTINATION], hold_ms=60000, background=True)
    accounts = [
        {**a, "dialin_numbers": [*a["dialin_numbers"], newcomer]} if a["id"] == "delta" else a
        for a in ACCOUNTS.values()
    ]
    try:
        pbx("sleep", "4")
        started = time.monotonic()
        # What an operator runs to change the list: the dial-in part of the role only.
        update = run_playbook({"asterisk_dialin_accounts": accounts}, tags="asterisk_dialin")
        print(f"playbook run with the new list: {time.monotonic() - started:.1f} s")
        assert update.returncode == 0, update.stdout[-3000:]
        assert asterisk_pid() == pid
        channels = pbx("asterisk", "-rx", "core show channels concise")
        assert "sipwave-carrier" in channels, "the call in progress was dropped"
        # A blocked destination ends the call at the PBX: it shows the caller got that far.
        admitted = dial_in(newcomer, entries=["701234567"], expect="hungup")
        assert admitted.successful == 1, admitted.output
    finally:
        held = sipp.wait(*in_progress, timeout_s=120)
        restore = run_playbook(tags="asterisk_dialin")
    assert held.successful == 1, held.output
    assert carrier.answered().successful == 1
    assert "blocked prefix" in cdr_rows(f"caller = '{newcomer}'")[-1]["outcome"]
    assert restore.returncode == 0, restore.stdout[-3000:]


def test_release_asterisk_does_not_take_is_rolled_back(carrier):
    before = pbx("readlink", "/etc/asterisk/sipwave/current").strip()
    pid = asterisk_pid()
    # A new dial timeout in a dialplan Asterisk cannot parse: the reload keeps the old one.
    broken = run_playbook(
        {"asterisk_dialin_dial_timeout_s": 61, "asterisk_extensions_extra": "[unclosed"},
        tags="asterisk_config,asterisk_service",
    )
    assert broken.returncode != 0, broken.stdout[-3000:]
    assert "did not load release" in broken.stdout, broken.stdout[-3000:]
    assert pbx("readlink", "/etc/asterisk/sipwave/current").strip() == before
    assert asterisk_pid() == pid
    still_served = dial_in("+48609999990", expect="403")
    assert still_served.successful == 1, still_served.output
    assert "INVITE" not in carrier.stop().messages
