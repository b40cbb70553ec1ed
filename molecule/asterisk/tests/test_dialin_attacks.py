"""Attacks on the dial-in service, sent to the real proxy and PBX: each one names the hole it
closes (issue 11). Real Kamailio, Asterisk and SIPp as callers and as the carrier."""

from conftest import ACCOUNTS, DIALIN_DATABASE, cdr_rows, dial_in, pbx

DESTINATION = "123456789"  # national: +48123456789
# A valid subscriber whose own number is authorised for no dial-in account.
ATTACKER = "48221119999"
# Account delta authorises its own number, +48221110003, and has no PIN.
VICTIM = ACCOUNTS["delta"]
# A first Proxy-Authorization for the victim in another realm: auth_check() skips it and
# accepts the attacker's own one after it, while $au reads this one.
FORGED_CREDENTIALS = (
    'Proxy-Authorization: Digest username="48221110003", realm="forged.invalid",'
    ' nonce="0", uri="sip:+48225550100@ip.tanifon.pl",'
    ' response="00000000000000000000000000000000"'
)


def test_a_forged_first_credentials_header_leaves_the_attacker_its_own_number(carrier):
    assert "pin" not in VICTIM  # taken for the victim, the call would go straight out
    start = pbx("date", "+%F %T").strip()
    call = dial_in(
        "",
        subscriber=ATTACKER,
        source="127.0.21.106",
        headers_before_credentials=[FORGED_CREDENTIALS],
        entries=[DESTINATION],
        expect="403",
    )
    assert call.successful == 1, call.output
    assert "INVITE" not in carrier.stop().messages
    rows = cdr_rows(f"calldate >= '{start}'")
    assert [(r["caller"], r["outcome"]) for r in rows] == [(f"+{ATTACKER}", "not authorised")]


def test_a_department_with_a_line_break_runs_no_agi_command(carrier):
    # A row as an older release or a hand edit may have left it (the role and the export
    # reader refuse such a department now): the AGI script hands it to Asterisk as one
    # quoted value, never as a command of its own.
    injected = "'sales' || char(10) || 'EXEC Dial PJSIP/+44201234567@sipwave-carrier'"
    start = pbx("date", "+%F %T").strip()
    pbx("sqlite3", DIALIN_DATABASE, f"UPDATE account SET department = {injected} WHERE id = 'beta'")
    try:
        call = dial_in("601000003", expect="hungup")
    finally:
        pbx(
            "sqlite3",
            DIALIN_DATABASE,
            "UPDATE account SET department = 'finance' WHERE id = 'beta'",
        )
    assert call.successful == 1, call.output
    assert "INVITE" not in carrier.stop().messages
    rows = cdr_rows(f"calldate >= '{start}' AND caller = '+48601000003'")
    assert [r["department"] for r in rows] == ["sales EXEC Dial PJSIP/+44201234567@sipwave-carrier"]


def test_a_forged_caller_of_an_account_without_a_pin_cannot_call_abroad(carrier):
    # The carrier passes any caller number on; beta authorises 601000003 and has no PIN.
    assert "pin" not in ACCOUNTS["beta"] and "allowed_prefixes" not in ACCOUNTS["beta"]
    start = pbx("date", "+%F %T").strip()
    call = dial_in("+48601000003", entries=["00441234567890"], expect="hungup")
    assert call.successful == 1, call.output
    assert "INVITE" not in carrier.stop().messages
    rows = cdr_rows(f"calldate >= '{start}' AND caller = '+48601000003'")
    assert [r["outcome"] for r in rows] == [
        "destination +441234567890 is not allowed without a PIN"
    ]
