"""The PBX's dial-in calls in the monthly cost report (playbooks/cost_report.yml), from the
CDRs of the real dial-in calls test_asterisk.py made before: billed for the carrier leg's
talk time only (the PIN phase before it is free), refused calls listed at no cost."""

import csv
import json
import math
import os
import time
from pathlib import Path

import pytest
from conftest import CDR_DATABASE, pbx, run_playbook

REPORTS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "pbx-costs"
# Per started minute: every dial-in call of this scenario (a few seconds) costs 0.12.
TARIFFS = [{"carrier": "lab-carrier", "prefix": "+48", "per_minute": "0.12"}]


def cdr(query: str) -> list[dict]:
    output = pbx("sqlite3", "-json", CDR_DATABASE, query).strip()
    return json.loads(output) if output else []


def test_dial_in_calls_are_billed_for_the_carrier_leg_only_and_refused_ones_cost_nothing():
    period = time.strftime("%Y-%m", time.gmtime())
    started = time.monotonic()
    run = run_playbook({"period": period, "sipwave_report_dir": str(REPORTS),
                        "sipwave_call_tariffs": TARIFFS, "sipwave_call_currency": "PLN"},
                       playbook="cost_report.yml")  # fmt: skip
    print(f"cost_report.yml took {time.monotonic() - started:.1f} s")
    assert run.returncode == 0, run.stdout[-3000:]
    with (REPORTS / f"costs-{period}-calls.csv").open(encoding="utf-8") as handle:
        calls = {r["callid"]: r for r in csv.DictReader(handle) if r["source"].startswith("cdr:")}
    with (REPORTS / f"costs-{period}-departments.csv").open(encoding="utf-8") as handle:
        departments = {(r["site"], r["department"]): r for r in csv.DictReader(handle)}

    # test_authorised_caller_dials_out_with_the_account_number: PIN, destination, 3 s held,
    # then the caller hangs up first; its talk time is in the CDR all the same.
    answered = cdr("SELECT uniqueid, billsec, talk_ms FROM cdr WHERE caller = '+48601000001'"
                   " AND dialstatus = 'ANSWER'")  # fmt: skip
    print("answered dial-in CDRs:", answered)
    assert answered, cdr("SELECT * FROM cdr WHERE caller = '+48601000001'")
    for row in answered:
        call = calls[row["uniqueid"]]
        seconds = math.ceil(int(row["talk_ms"]) / 1000 - 0.001)
        assert (call["account"], call["department"], call["site"], call["carrier"]) == (
            "acme", "sales", "warsaw", "lab-carrier"), call  # fmt: skip
        assert (call["state"], call["callee"], call["sip_code"]) == ("ended", "+48123456789", "200")
        # the held 3 s, not the PIN phase the inbound leg's billsec counts too
        assert int(call["seconds"]) == max(1, seconds) <= 4 < int(row["billsec"]), (call, row)
        assert (call["billed_seconds"], call["cost"]) == ("60", "0.12")
    acme = {r["uniqueid"] for r in cdr("SELECT uniqueid FROM cdr WHERE account = 'acme'"
                                       " AND dialstatus = 'ANSWER'")}  # fmt: skip
    sales = departments[("warsaw", "sales")]
    assert (int(sales["answered"]), sales["cost"]) == (len(acme), f"{0.12 * len(acme):.2f}")

    # test_wrong_pin_is_refused_after_three_tries: answered for the PIN, never dialled out
    refused = cdr("SELECT uniqueid FROM cdr WHERE caller = '+48601000005'")
    assert refused
    for row in refused:
        call = calls[row["uniqueid"]]
        assert (call["account"], call["department"], call["state"], call["cost"]) == (
            "epsilon", "legal", "unanswered", "0.00"), call  # fmt: skip
    legal = departments[("warsaw", "legal")]
    assert (legal["answered"], legal["cost"]) == ("0", "0.00")
    # an unknown caller, refused before the answer: listed without an account, at no cost
    unknown = cdr("SELECT uniqueid FROM cdr WHERE caller = '+48609999999'")
    assert unknown and all(calls[r["uniqueid"]]["cost"] == "0.00" for r in unknown)
    assert "warsaw" in (REPORTS / f"costs-{period}.html").read_text(encoding="utf-8")


# The AGI script's own count of an account's minutes today, run on the PBX against the CDRs
# the real calls wrote (the function the daily-minutes limit calls before each Dial).
USED_MINUTES = """
import json, sys
sys.path.insert(0, "/etc/asterisk/sipwave/current/agi")
import sipwave_dialin
settings = json.loads(sipwave_dialin.SETTINGS_FILE.read_text())
dialin = sipwave_dialin.Dialin(None, settings)
print(json.dumps({a: dialin.minutes_used_today(a) for a in sys.argv[1:]}))
"""


def test_the_daily_minutes_count_the_carrier_leg_only_not_the_pin_phase_or_refused_calls():
    """A wrong-PIN call is answered for its prompts (billsec > 0) and never dialled out: it
    must use none of the account's daily minutes; an answered call uses its talk time, not
    the billsec that includes the PIN phase."""
    accounts = ("acme", "epsilon")
    output = pbx("python3", "-c", USED_MINUTES, *accounts)
    used = json.loads(output)
    rows = {a: cdr(f"SELECT billsec, talk_ms, end_epoch FROM cdr WHERE account = '{a}'"
                   " AND calldate >= date('now', 'localtime')") for a in accounts}  # fmt: skip
    print("used minutes:", used, "CDRs:", rows)
    assert rows["epsilon"] and sum(int(r["billsec"] or 0) for r in rows["epsilon"]) > 0
    assert all(r["end_epoch"] and not r["talk_ms"] for r in rows["epsilon"]), rows["epsilon"]
    assert used["epsilon"] == 0
    talked = sum(int(r["talk_ms"] or 0) for r in rows["acme"]) / 60000
    billed = sum(int(r["billsec"] or 0) for r in rows["acme"]) / 60
    assert 0 < used["acme"] < billed, (used, rows["acme"])
    assert used["acme"] == pytest.approx(talked), (used, rows["acme"])
