"""A wave migrates while both platforms run: real Kamailio on both sides, SIPp phones, Postfix.

The tests run in file order and build on each other, like an operator's day: notices, wave 1
in phase 1, calls across platforms, phase 2 with consent, the end of the grace period, a
rollback and a migration forward again, closed accounts in routing (the closing run killed
once both proxies had closed the account, and run again), then wave 2 killed during its
database write and run again, and its phase 2 killed between the two proxies and run again.
"""

import json
import os
import re
import signal
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import (
    ACCOUNTS,
    CLOSING,
    CLOSING_IN_WAVE2,
    DATABASE,
    EXPORT,
    HA1_ONLY,
    LEGACY_ADDRESS,
    LEGACY_CONTAINER,
    LEGACY_DOMAIN,
    MIGRATED,
    NEW_DOMAIN,
    NOT_MIGRATED,
    PROXY,
    PROXY2,
    PROXY2_CONTAINER,
    PROXY_CONTAINER,
    PROXY_CONTAINERS,
    WAVE1_DATE,
    WAVE2_DATE,
    call,
    call_refused,
    in_container,
    mails_for,
    migrate,
    register,
    register_not_served,
    register_refused,
    registrations,
    run_playbook,
    sql,
)
from sipwave_testlib import sipp
from sipwave_testlib.dialogs import DIALOG_TOKEN
from sipwave_testlib.playbooks import run_sipwave, start_playbook

DAY_AFTER_WAVE1 = (date.fromisoformat(WAVE1_DATE) + timedelta(days=1)).isoformat()
AFTER_GRACE = (date.fromisoformat(WAVE1_DATE) + timedelta(days=30)).isoformat()
ROUTING_TABLES = ("subscriber", "dbaliases")
REPORTS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "reports"
OUTPUTS: dict[str, str] = {}


def recap_changed(output: str, host: str) -> int:
    found = re.search(rf"^{re.escape(host)}\s*:.*changed=(\d+)", output, re.M)
    assert found, output[-3000:]
    return int(found.group(1))


def table_digest(table: str, container: str = PROXY_CONTAINER) -> str:
    """A digest of a table's rows: compared across runs without printing any HA1."""
    return query_digest(f"SELECT * FROM {table}", container, skip_first_column=True)


def query_digest(query: str, container: str, skip_first_column: bool = False) -> str:
    """A digest of a query's rows (compared across runs and proxies, never printed)."""
    cut = "| cut -d'|' -f2- " if skip_first_column else ""
    rows = in_container(
        container, "sh", "-c", f'sqlite3 {DATABASE} "{query}" {cut}| sort | sha256sum'
    )
    return rows.stdout.split()[0]


def contact_of(container: str, user: str, domain: str) -> str:
    return registrations(container, f"{user}@{domain}")


def wait_for_report_section(
    host: str, known: set[Path], timeout_s: float = 300, wave: str = "wave2"
) -> Path:
    """The new report of ``wave`` as soon as ``host``'s section is in it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in set(REPORTS.glob(f"{wave}-*.json")) - known:
            if host in json.loads(path.read_text())["hosts"]:
                return path
        time.sleep(0.05)
    raise AssertionError(f"no report section of {host} within {timeout_s} s")


# -- the lab before any wave -------------------------------------------------------------------


def test_legacy_platform_holds_the_legacy_accounts_as_ha1_only():
    count = int(sql(LEGACY_CONTAINER, "SELECT COUNT(*) FROM subscriber").strip())
    assert count >= 490
    assert (
        sql(
            LEGACY_CONTAINER, f"SELECT COUNT(*) FROM subscriber WHERE username='{MIGRATED.login}'"
        ).strip()
        == "1"
    )
    assert "password" not in sql(LEGACY_CONTAINER, "PRAGMA table_info(subscriber)")


def test_smtp_server_binds_only_its_lab_address():
    sockets = in_container(
        "sipwave-molecule-migration-smtp", "sh", "-c", "ss -Hltn | awk '{print $4}'"
    )
    assert "127.0.23.61:25" in sockets.stdout.split()
    assert not [s for s in sockets.stdout.split() if s.endswith(":25") and s != "127.0.23.61:25"]


def test_before_any_wave_a_phone_registers_through_the_proxy_on_the_legacy_platform():
    result = register(MIGRATED.login, LEGACY_DOMAIN, MIGRATED.password, "127.0.23.101")
    assert result.successful == 1, result.output
    assert "127.0.23.101:5099" in contact_of(LEGACY_CONTAINER, MIGRATED.login, LEGACY_DOMAIN)
    assert "127.0.23.101" not in contact_of(PROXY_CONTAINER, MIGRATED.login, LEGACY_DOMAIN)


# -- notices ---------------------------------------------------------------------------------


# Wave 1 is on 2026-11-16: its notice window opens 21 days before, its reminder's 5 days.
NOTICE_DAY, REMINDER_DAY = "2026-11-02", "2026-11-13"
LEGACY_OPERATOR = "Tanifon <obsluga@ip.tanifon.pl>"
NEW_OPERATOR = "sipwave <migration@sip.sipwave.test>"


def notify(notification: str, today: str | None = None, wave: str = "wave1"):
    variables = {"wave": wave, "notification": notification}
    if today:
        variables["sipwave_today"] = today
    return run_playbook("notify_wave.yml", variables)


@pytest.mark.parametrize(
    ("notification", "today", "refusal"),
    [("notice", WAVE1_DATE, "never on or after it"),
     ("notice", "2026-12-01", "never on or after it"),
     ("reminder", NOTICE_DAY, "due from 2026-11-11")],
)  # fmt: skip
def test_a_notice_out_of_its_window_is_refused_and_sends_nothing(notification, today, refusal):
    run = notify(notification, today)
    assert run.returncode != 0
    assert refusal in run.stdout, run.stdout[-3000:]
    assert mails_for(MIGRATED.login, notification) == []


def test_the_wave_notice_reaches_each_customer_with_the_date_and_numbers():
    run = notify("notice", NOTICE_DAY)
    assert run.returncode == 0, run.stdout[-3000:]
    mails = mails_for(MIGRATED.login, "notice")
    assert len(mails) == 1
    mail = mails[0]
    assert mail.headers["To"].addresses[0].addr_spec == MIGRATED.email
    # Nobody consented yet: the legacy operator writes, with where to get help.
    assert str(mail.headers["From"]) == LEGACY_OPERATOR
    assert "hotline +48 22 555 00 00" in mail.body and "support@sip.sipwave.test" in mail.body
    assert WAVE1_DATE in mail.headers["Subject"]
    assert f"{MIGRATED.login}@{LEGACY_DOMAIN}" in mail.body
    assert "+48220000000" in mail.body
    assert mails_for(NOT_MIGRATED.login, "notice") == []  # wave 2 is not told yet


def test_a_second_notice_run_sends_nothing():
    run = notify("notice", NOTICE_DAY)
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap_changed(run.stdout, "localhost") == 0
    assert len(mails_for(MIGRATED.login, "notice")) == 1


def test_the_reminder_is_sent_once_besides_the_notice():
    run = notify("reminder", REMINDER_DAY)
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(mails_for(MIGRATED.login, "reminder")) == 1


# -- wave 1, phase 1 -----------------------------------------------------------------------------


def test_check_mode_shows_the_wave_and_writes_nothing():
    """Through the sipwave command: `wave plan` is migrate_wave.yml in check mode with diff."""
    before = {t: table_digest(t) for t in ROUTING_TABLES}
    OUTPUTS["before_wave1"] = before
    run = run_sipwave("wave", "plan", "wave1", "--today", WAVE1_DATE)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert {t: table_digest(t) for t in ROUTING_TABLES} == before
    plan = json.loads(run.stdout)
    assert (plan["check"], plan["reports"], plan["failures"]) == (True, [], [])
    assert plan["data"]["wave_result"]["states"]["phase1"] >= 240
    assert plan["data"]["wave_result"]["bad_rows"] > 0


def test_wave1_phase1_migrates_and_reports_bad_rows_with_line_and_reason():
    run = migrate("wave1", WAVE1_DATE)
    assert run.returncode == 0, run.stdout[-3000:]
    assert re.search(r"legacy_export\.csv:\d+: ", run.stdout), "bad rows without file:line"
    assert "Reload the routing cache" in run.stdout
    served = int(
        sql(
            PROXY_CONTAINER, f"SELECT COUNT(*) FROM subscriber WHERE domain='{LEGACY_DOMAIN}'"
        ).strip()
    )
    assert served >= 240


def test_a_second_wave_run_changes_nothing():
    run = migrate("wave1", WAVE1_DATE)
    assert run.returncode == 0, run.stdout[-3000:]
    assert [recap_changed(run.stdout, proxy) for proxy in PROXY_CONTAINERS] == [0, 0]


def test_wave1_gives_each_account_one_temporary_number_of_its_area_on_both_proxies():
    """The lab export's accounts have Warsaw (+4822) or Gdansk (+4858) first numbers; the
    scenario's pools are +4822555xxxx and +4858555xxxx (molecule.yml)."""
    query = (
        "SELECT t.number, n.number FROM sipwave_number t JOIN sipwave_number n "
        "ON n.login = t.login AND n.kind = 'number' WHERE t.kind = 'temporary' "
        "ORDER BY t.number, n.number"
    )
    listings = [sql(container, query) for container in PROXY_CONTAINERS]
    assert listings[0] == listings[1]
    pairs = [line.split("|") for line in listings[0].splitlines()]
    temporary = {number for number, _own in pairs}
    accounts = int(sql(PROXY_CONTAINER, "SELECT COUNT(*) FROM sipwave_number "
                                        "WHERE kind = 'temporary'"))  # fmt: skip
    assert accounts == len(temporary) >= 200  # one each, never shared
    # every account's temporary number is of the area of one of its own numbers
    owned = {}
    for number, own in pairs:
        owned.setdefault(number, []).append(own)
    for number, own in owned.items():
        assert any(o[:5] == number[:5] for o in own), (number, own)
    assert sql(PROXY_CONTAINER, "SELECT DISTINCT state FROM sipwave_number "
                                "WHERE kind = 'number'").split() == ["legacy"]  # fmt: skip


def test_the_inventory_names_each_numbers_site_and_carrier_on_both_proxies():
    """Site: the kamailio_sites area that is the number's prefix; carrier: a temporary
    number's pool's (only the +4822 pool names one; the wave's first numbers are all of
    +4822); own numbers are still at the old operator, so no carrier brings them here yet
    (molecule.yml)."""
    query = (
        "SELECT kind, substr(number, 1, 5), site, carrier, COUNT(*) FROM sipwave_number "
        "WHERE kind IN ('number', 'temporary') GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    )
    listings = [sql(container, query) for container in PROXY_CONTAINERS]
    assert listings[0] == listings[1]
    groups = {
        tuple(line.split("|")[:4]): int(line.split("|")[4]) for line in listings[0].splitlines()
    }
    assert groups[("temporary", "+4822", "warsaw", "pstn")] > 0
    assert groups[("number", "+4822", "warsaw", "")] > 0
    for (kind, area, site, carrier), _count in groups.items():
        assert site == {"+4822": "warsaw", "+4858": "gdansk"}.get(area, ""), (kind, area, site)
        assert carrier == ("pstn" if (kind, area) == ("temporary", "+4822") else ""), (kind, area)


def test_both_proxies_serve_the_wave():
    result = register(MIGRATED.login, LEGACY_DOMAIN, MIGRATED.password, "127.0.23.120",
                      proxy=PROXY2)  # fmt: skip
    assert result.successful == 1, result.output
    assert "127.0.23.120:5099" in contact_of(PROXY2_CONTAINER, MIGRATED.login, LEGACY_DOMAIN)


def test_a_migrated_account_registers_on_the_new_proxy_with_its_old_credentials():
    result = register(MIGRATED.login, LEGACY_DOMAIN, MIGRATED.password, "127.0.23.102")
    assert result.successful == 1, result.output
    assert "127.0.23.102:5099" in contact_of(PROXY_CONTAINER, MIGRATED.login, LEGACY_DOMAIN)


def test_a_not_migrated_account_still_registers_through_the_proxy_on_the_legacy_platform():
    result = register(NOT_MIGRATED.login, LEGACY_DOMAIN, NOT_MIGRATED.password, "127.0.23.103")
    assert result.successful == 1, result.output
    assert "127.0.23.103:5099" in contact_of(LEGACY_CONTAINER, NOT_MIGRATED.login, LEGACY_DOMAIN)
    assert "127.0.23.103" not in contact_of(PROXY_CONTAINER, NOT_MIGRATED.login, LEGACY_DOMAIN)


def test_a_wrong_password_of_a_migrated_account_is_refused_on_the_new_proxy():
    result = register_refused(MIGRATED.login, LEGACY_DOMAIN, "not-the-password", "127.0.23.104")
    assert (result.successful, result.failed) == (1, 0), result.output


def test_a_migrated_account_calls_a_not_migrated_one_on_the_legacy_platform():
    callee_phone = "127.0.23.105"
    registered = register(
        NOT_MIGRATED.login, LEGACY_DOMAIN, NOT_MIGRATED.password, callee_phone, 5070
    )
    assert registered.successful == 1, registered.output
    caller, callee = call(
        (MIGRATED.login, LEGACY_DOMAIN, MIGRATED.password),
        (NOT_MIGRATED.login, LEGACY_DOMAIN),
        callee_phone,
        "127.0.23.106",
    )
    assert caller.successful == 1, caller.output
    assert callee.successful == 1, callee.output
    # it went through legacy (whose Record-Route carries its own dialog token)
    own_route = r"Record-Route: <sip:127\.0\.23\.41;lr;" + DIALOG_TOKEN + ">"
    assert re.search(own_route, callee.messages)


def test_a_not_migrated_account_calls_a_migrated_number_on_the_new_proxy():
    callee_phone = "127.0.23.107"
    registered = register(MIGRATED.login, LEGACY_DOMAIN, MIGRATED.password, callee_phone, 5070)
    assert registered.successful == 1, registered.output
    caller, callee = call(
        (NOT_MIGRATED.login, LEGACY_DOMAIN, NOT_MIGRATED.password),
        ("+48220000000", LEGACY_DOMAIN),
        callee_phone,
        "127.0.23.108",
    )
    assert caller.successful == 1, caller.output
    assert callee.successful == 1, callee.output
    assert f"INVITE sip:{MIGRATED.login}@{callee_phone}:5070" in callee.messages


def test_the_legacy_platform_forwards_a_migrated_old_number_to_its_temporary_number():
    old_number = "+48220000000"  # MIGRATED's first number, still at the old operator
    temporary = sql(
        PROXY_CONTAINER,
        "SELECT number FROM sipwave_number WHERE kind = 'temporary' "
        f"AND login = '{MIGRATED.login}'",
    ).strip()
    forwarded_to = sql(
        LEGACY_CONTAINER, f"SELECT target FROM sipwave_forwarding WHERE number = '{old_number}'"
    )
    assert temporary.startswith("+48225559") and forwarded_to.strip() == temporary
    callee_phone = "127.0.23.109"
    registered = register(MIGRATED.login, LEGACY_DOMAIN, MIGRATED.password, callee_phone, 5070)
    assert registered.successful == 1, registered.output
    caller, callee = call(
        (NOT_MIGRATED.login, LEGACY_DOMAIN, NOT_MIGRATED.password),
        (old_number, LEGACY_DOMAIN),
        callee_phone,
        "127.0.23.110",
        via=f"{LEGACY_ADDRESS}:5060",  # a customer of the old operator calls the old number
    )
    assert caller.successful == 1, caller.output
    assert callee.successful == 1, callee.output
    assert f"Diversion: <sip:{old_number}@{LEGACY_DOMAIN}>;reason=unconditional" in callee.messages
    assert f"To: <sip:{old_number}@{LEGACY_DOMAIN}>" in callee.messages
    # The new proxy records the call as the called account's (nobody there placed it).
    call_id = re.search(r"^Call-ID:\s*(\S+)", callee.messages, re.M)[1]
    record = sql(
        PROXY_CONTAINER,
        f"SELECT account, department, direction, callee FROM acc WHERE callid = '{call_id}'",
    )
    assert record.splitlines() == [f"{MIGRATED.login}@{LEGACY_DOMAIN}|sales|inbound|{temporary}"]


# -- phase 2 ---------------------------------------------------------------------------------------


def test_consent_and_phase2_give_the_new_identity_with_the_same_password():
    for login, decision in ((MIGRATED.login, "migrate"), (CLOSING.login, "close")):
        run = run_playbook("record_consent.yml", {"login": login, "decision": decision})
        assert run.returncode == 0, run.stdout[-3000:]
    run = migrate("wave1", DAY_AFTER_WAVE1, wave_phase=2)
    assert run.returncode == 0, run.stdout[-3000:]
    result = register(f"tnf{MIGRATED.login}", NEW_DOMAIN, MIGRATED.password, "127.0.23.109")
    assert result.successful == 1, result.output


def test_during_the_grace_period_the_old_identity_still_registers():
    result = register(MIGRATED.login, LEGACY_DOMAIN, MIGRATED.password, "127.0.23.110")
    assert result.successful == 1, result.output


def test_phase2_and_closure_notifications_are_sent_once():
    for notification in ("phase2", "closure", "phase2"):
        run = run_playbook("notify_wave.yml", {"wave": "wave1", "notification": notification})
        assert run.returncode == 0, run.stdout[-3000:]
    assert recap_changed(run.stdout, "localhost") == 0


def test_the_phase2_mail_carries_the_new_settings():
    mails = mails_for(MIGRATED.login, "phase2")
    assert len(mails) == 1
    # The customer consented to the new operator: it writes from now on.
    assert str(mails[0].headers["From"]) == NEW_OPERATOR
    assert f"SIP login:  tnf{MIGRATED.login}" in mails[0].body
    assert f"SIP domain: {NEW_DOMAIN}" in mails[0].body
    assert "Password:   unchanged" in mails[0].body


def test_the_closure_mail_names_the_refund():
    mails = mails_for(CLOSING.login, "closure")
    assert len(mails) == 1
    # The customer closes and never consented to the new operator: the legacy one writes.
    assert str(mails[0].headers["From"]) == LEGACY_OPERATOR
    assert f"{CLOSING.balance} PLN" in mails[0].body


def test_after_the_grace_period_the_old_identity_is_refused():
    run = migrate("wave1", AFTER_GRACE, wave_phase=2)
    assert run.returncode == 0, run.stdout[-3000:]
    # answered 403 at once, without a challenge (the scenario of a domain not served)
    row = [MIGRATED.login, LEGACY_DOMAIN, "unused", "127.0.23.111:5099"]
    result = sipp.run("register_not_served.xml", PROXY, "127.0.23.111", rows=[row])
    assert result.successful == 1, result.output
    assert "403 Account Moved" in result.messages


def test_after_the_grace_period_the_new_identity_still_registers():
    result = register(f"tnf{MIGRATED.login}", NEW_DOMAIN, MIGRATED.password, "127.0.23.112")
    assert result.successful == 1, result.output


# -- rollback and forward again ---------------------------------------------------------------


def test_rollback_restores_the_routing_data_exactly():
    run = run_playbook("rollback_wave.yml", {"wave": "wave1"})
    assert run.returncode == 0, run.stdout[-3000:]
    assert {t: table_digest(t) for t in ROUTING_TABLES} == OUTPUTS["before_wave1"]


def test_after_rollback_the_account_registers_on_the_legacy_platform_again():
    result = register(MIGRATED.login, LEGACY_DOMAIN, MIGRATED.password, "127.0.23.113")
    assert result.successful == 1, result.output
    assert "127.0.23.113:5099" in contact_of(LEGACY_CONTAINER, MIGRATED.login, LEGACY_DOMAIN)


def test_migrating_forward_again_serves_the_account_on_the_new_proxy():
    run = migrate("wave1", WAVE1_DATE)
    assert run.returncode == 0, run.stdout[-3000:]
    result = register(MIGRATED.login, LEGACY_DOMAIN, MIGRATED.password, "127.0.23.114")
    assert result.successful == 1, result.output
    assert "127.0.23.114:5099" in contact_of(PROXY_CONTAINER, MIGRATED.login, LEGACY_DOMAIN)


# -- closed accounts in routing ------------------------------------------------------------------


@pytest.fixture(scope="module")
def wave1_closure_killed_after_both_proxies():
    """Phase 2 of wave 1 (CLOSING closes) with one fork, the controller killed as soon as
    proxy2's result is in the run's report: both proxies closed the account, nothing after
    that ran (no routing reload). Then run again. Returns the killed run's report, the
    re-run and the re-run's report."""
    known = set(REPORTS.glob("wave1-*.json"))
    extra = {"wave": "wave1", "sipwave_today": DAY_AFTER_WAVE1, "wave_phase": 2}
    controller = start_playbook("migrate_wave.yml", extra, options=["--forks", "1"])
    try:
        killed_report = wait_for_report_section(PROXY2_CONTAINER, known, wave="wave1")
    finally:
        os.killpg(controller.pid, signal.SIGKILL)
        controller.wait(timeout=30)
    known = set(REPORTS.glob("wave1-*.json"))
    rerun = migrate("wave1", DAY_AFTER_WAVE1, wave_phase=2)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    (report,) = set(REPORTS.glob("wave1-*.json")) - known
    return json.loads(killed_report.read_text()), rerun, json.loads(report.read_text())


def test_phase2_closes_an_account_and_keeps_its_numbers_for_porting(
    wave1_closure_killed_after_both_proxies,
):
    for proxy in PROXY_CONTAINERS:
        numbers = sql(proxy, f"SELECT state FROM sipwave_number WHERE login = '{CLOSING.login}' "
                             "AND kind = 'number'")  # fmt: skip
        assert numbers.split() == ["kept_for_porting"]


def test_the_rerun_reports_the_closure_of_the_killed_run_with_its_refund_once(
    wave1_closure_killed_after_both_proxies,
):
    killed, _, report = wave1_closure_killed_after_both_proxies
    killed_run = killed["run_id"]
    assert killed["hosts_reported"] == sorted(PROXY_CONTAINERS)  # closed on both proxies
    assert [report["hosts"][proxy]["changed"] for proxy in PROXY_CONTAINERS] == [False, False]
    closed = next(a for a in report["accounts"] if a["login"] == CLOSING.login)
    assert (closed["action"], closed["state"]) == ("unchanged", "closed")
    assert (closed["refund"], closed["refund_run"]) == (CLOSING.balance, killed_run)
    assert {"login": CLOSING.login, "amount": CLOSING.balance, "recorded_by": killed_run} in (
        report["refunds"]["accounts"]
    )
    assert report["refunds"]["recorded_by_this_run"] == {"total": "0.00", "accounts": 0}
    assert report["complete"] is True


def test_the_closure_of_the_killed_run_is_recorded_once(wave1_closure_killed_after_both_proxies):
    killed, _, report = wave1_closure_killed_after_both_proxies
    for proxy in PROXY_CONTAINERS:
        latest = sql(proxy, "SELECT run_id FROM sipwave_audit WHERE action = 'closed' AND "
                            f"login = '{CLOSING.login}' ORDER BY id DESC LIMIT 1")  # fmt: skip
        assert latest.strip() == killed["run_id"], proxy
        rerun_rows = sql(proxy, "SELECT COUNT(*) FROM sipwave_audit WHERE "
                                f"run_id = '{report['run_id']}'")  # fmt: skip
        assert rerun_rows.strip() == "0", proxy


def test_the_run_after_the_rerun_of_the_closure_changes_nothing(
    wave1_closure_killed_after_both_proxies,
):
    run = migrate("wave1", DAY_AFTER_WAVE1, wave_phase=2)
    assert run.returncode == 0, run.stdout[-3000:]
    assert [recap_changed(run.stdout, proxy) for proxy in PROXY_CONTAINERS] == [0, 0]


@pytest.mark.parametrize(("proxy", "phone"), [(PROXY, "127.0.23.121"), (PROXY2, "127.0.23.122")])
def test_a_closed_account_cannot_register(proxy, phone):
    result = register_not_served(CLOSING.login, LEGACY_DOMAIN, phone, proxy)
    assert result.successful == 1, result.output
    assert "403 Account Closed" in result.messages


def test_a_closed_account_cannot_call():
    result = call_refused(
        (CLOSING.login, LEGACY_DOMAIN, CLOSING.password),
        (NOT_MIGRATED.login, LEGACY_DOMAIN),
        "127.0.23.123",
    )
    assert result.successful == 1, result.output
    assert "403 Account Closed" in result.messages
    assert "407 Proxy Authentication Required" not in result.messages


def test_a_call_to_a_number_kept_for_porting_is_answered_480():
    result = call_refused(
        (f"tnf{MIGRATED.login}", NEW_DOMAIN, MIGRATED.password),
        ("+48220000002", LEGACY_DOMAIN),
        "127.0.23.124",
    )
    assert result.successful == 1, result.output
    assert "480 Number Kept For Porting" in result.messages


# -- wave 2 killed during its database write -----------------------------------------------------


# Inside the proxy: wait for the wave module (the python3 process with the database open),
# give it a second to reach its first write, and kill that process by its pid.
KILL_THE_WAVE_MODULE = """
for _ in $(seq 900); do
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = python3 ] || continue
    ls -l "$p/fd" 2>/dev/null | grep -q sipwave.sqlite || continue
    sleep 1; kill -9 "${p#/proc/}" && echo "killed ${p#/proc/}"; exit 0
  done
  sleep 0.1
done
exit 1
"""


@pytest.fixture(scope="module")
def wave2_after_a_kill():
    """Wave 2 killed while it waits to write (a sqlite3 shell holds the write lock), then
    run again after the lock is gone."""
    locker = subprocess.Popen(
        ["podman", "exec", "-i", PROXY_CONTAINER, "sqlite3", DATABASE],
        stdin=subprocess.PIPE,
        text=True,
    )
    locker.stdin.write("BEGIN IMMEDIATE;\n")
    locker.stdin.flush()
    killer = subprocess.Popen(
        ["podman", "exec", PROXY_CONTAINER, "sh", "-c", KILL_THE_WAVE_MODULE],
        stdout=subprocess.PIPE,
        text=True,
    )
    killed_run = migrate("wave2", WAVE2_DATE, timeout=300)
    killed, _ = killer.communicate(timeout=120)
    locker.stdin.write("ROLLBACK;\n.quit\n")
    locker.stdin.close()
    locker.wait(timeout=30)
    assert killed.startswith("killed"), "the wave module was never seen"
    return killed_run.returncode, killed_run.stdout, migrate("wave2", WAVE2_DATE)


def test_a_wave_killed_during_its_database_write_fails_and_leaves_nothing_half_written(
    wave2_after_a_kill,
):
    returncode, output, _ = wave2_after_a_kill
    assert returncode != 0, output[-2000:]


def test_the_rerun_after_the_kill_migrates_every_account_once(wave2_after_a_kill):
    _, _, rerun = wave2_after_a_kill
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    duplicates = sql(
        PROXY_CONTAINER,
        "SELECT username, domain, COUNT(*) FROM subscriber GROUP BY 1, 2 HAVING COUNT(*) > 1",
    )
    assert duplicates == ""
    result = register(NOT_MIGRATED.login, LEGACY_DOMAIN, NOT_MIGRATED.password, "127.0.23.115")
    assert result.successful == 1, result.output
    assert "127.0.23.115:5099" in contact_of(PROXY_CONTAINER, NOT_MIGRATED.login, LEGACY_DOMAIN)


def test_the_proxy_that_finished_the_killed_run_reloads_its_routing_on_the_rerun(
    wave2_after_a_kill,
):
    # proxy2 wrote wave 2 in the killed run, which stopped before any reload; the re-run has
    # nothing to change there, and still has to load what proxy2's database holds.
    result = register(NOT_MIGRATED.login, LEGACY_DOMAIN, NOT_MIGRATED.password, "127.0.23.125",
                      proxy=PROXY2)  # fmt: skip
    assert result.successful == 1, result.output
    assert "127.0.23.125:5099" in contact_of(PROXY2_CONTAINER, NOT_MIGRATED.login, LEGACY_DOMAIN)


def test_the_run_after_the_recovery_changes_nothing(wave2_after_a_kill):
    run = migrate("wave2", WAVE2_DATE)
    assert run.returncode == 0, run.stdout[-3000:]
    assert [recap_changed(run.stdout, proxy) for proxy in PROXY_CONTAINERS] == [0, 0]


# Its only bad field is a dial-in number ("12345"): the account migrates without it.
PARTIAL = ACCOUNTS["481200505"]


def test_a_row_with_a_malformed_dialin_number_migrates_and_is_an_action_item(wave2_after_a_kill):
    result = register(PARTIAL.login, LEGACY_DOMAIN, PARTIAL.password, "127.0.23.151")
    assert result.successful == 1, result.output
    newest = max(REPORTS.glob("wave2-*.json"), key=lambda path: path.stat().st_mtime)
    report = json.loads(newest.read_text())
    (action,) = [a for a in report["actions_for_customer_care"] if a["login"] == PARTIAL.login]
    assert action["email"] == PARTIAL.email
    assert [(d["column"], d["item"], d["reason"]) for d in action["dropped"]] == [
        ("dialin_numbers", "12345", "number")
    ]
    assert report["not_carried"]["per_column"].get("dialin_numbers", 0) >= 1
    # A rejected row of the wave is listed too, with whom to call (it gets no mail).
    rejected = [a for a in report["actions_for_customer_care"] if "dropped" not in a]
    assert rejected and all(a["action"].startswith("not migrated") for a in rejected)


# Consents while the rest of wave 2 is undecided, and is moved to phase 2 at once, alone.
EARLY = ACCOUNTS["481200005"]


def test_a_consent_applied_at_once_moves_that_account_alone_to_phase2(wave2_after_a_kill):
    outside = run_playbook("record_consent.yml", {
        "login": MIGRATED.login, "decision": "migrate", "apply": True, "wave": "wave2",
        "sipwave_today": WAVE2_DATE})  # fmt: skip
    assert outside.returncode != 0
    assert f"wave wave2 does not take {MIGRATED.login}" in outside.stdout
    run = run_playbook("record_consent.yml", {
        "login": EARLY.login, "decision": "migrate", "apply": True, "wave": "wave2",
        "sipwave_today": WAVE2_DATE})  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    result = register(f"tnf{EARLY.login}", NEW_DOMAIN, EARLY.password, "127.0.23.152")
    assert result.successful == 1, result.output
    states = dict(
        line.split("|")
        for line in sql(PROXY_CONTAINER, "SELECT login, state FROM sipwave_account "
                        f"WHERE login IN ('{EARLY.login}', '{NOT_MIGRATED.login}')").split()
    )  # fmt: skip
    assert states == {EARLY.login: "phase2", NOT_MIGRATED.login: "phase1"}
    newest = max(REPORTS.glob("wave2-*.json"), key=lambda path: path.stat().st_mtime)
    report = json.loads(newest.read_text())
    assert [(a["login"], a["state"]) for a in report["accounts"]] == [(EARLY.login, "phase2")]
    assert report["complete"], report.get("incomplete_because")


def test_one_account_rolls_back_alone_and_registers_on_the_legacy_platform(wave2_after_a_kill):
    run = run_playbook("rollback_wave.yml", {"wave": "wave2", "account": EARLY.login})
    assert run.returncode == 0, run.stdout[-3000:]
    states = sql(PROXY_CONTAINER, "SELECT login, state FROM sipwave_account "
                 f"WHERE login IN ('{EARLY.login}', '{NOT_MIGRATED.login}')").split()  # fmt: skip
    assert states == [f"{NOT_MIGRATED.login}|phase1"]  # EARLY had no row before wave 2
    result = register(EARLY.login, LEGACY_DOMAIN, EARLY.password, "127.0.23.153")
    assert result.successful == 1, result.output
    assert "127.0.23.153:5099" in contact_of(LEGACY_CONTAINER, EARLY.login, LEGACY_DOMAIN)


def test_a_generated_phase2_password_arrives_by_mail_and_registers(wave2_after_a_kill):
    run = run_playbook("record_consent.yml", {"login": HA1_ONLY.login, "decision": "migrate"})
    assert run.returncode == 0, run.stdout[-3000:]
    run = migrate("wave2", WAVE2_DATE, wave_phase=2)
    assert run.returncode == 0, run.stdout[-3000:]
    notified = run_playbook("notify_wave.yml", {"wave": "wave2", "notification": "phase2"})
    assert notified.returncode == 0, notified.stdout[-3000:]
    mails = mails_for(HA1_ONLY.login, "phase2")
    assert len(mails) == 1
    password = re.search(r"Password:\s+(\S+)", mails[0].body).group(1)
    assert password != "unchanged"
    assert password not in run.stdout + notified.stdout + notified.stderr
    result = register(f"tnf{HA1_ONLY.login}", NEW_DOMAIN, password, "127.0.23.116")
    assert result.successful == 1, result.output


# -- wave 2, phase 2 killed between the two proxies -----------------------------------------------

WAVE2_PHASE2 = {"wave": "wave2", "sipwave_today": WAVE2_DATE, "wave_phase": 2,
                "sipwave_closure_numbers": "released"}  # fmt: skip
# Inside proxy2 after the controller was killed: a wave module it had started there goes as
# well, as it would with a dropped SSH session. An orphaned `podman exec` may start its
# module seconds late on a busy machine, so this keeps looking (every python3 process in the
# container is an Ansible module: Kamailio's Python runs inside the kamailio processes) until
# 20 s have passed and none was seen for the last 10 s; the write lock is held meanwhile.
KILL_ORPHANED_WAVE_MODULES = """
start=$(date +%s); last_seen=$start
while :; do
  for p in /proc/[0-9]*; do
    case "$(cat "$p/comm" 2>/dev/null)" in
      python3*) kill -9 "${p#/proc/}" 2>/dev/null && echo "killed ${p#/proc/}" \\
                && last_seen=$(date +%s) ;;
    esac
  done
  now=$(date +%s)
  [ $((now - start)) -ge 20 ] && [ $((now - last_seen)) -ge 10 ] && exit 0
  [ $((now - start)) -ge 120 ] && exit 1
  sleep 0.2
done
"""


def hold_write_lock(container: str) -> subprocess.Popen:
    """A sqlite3 shell in ``container`` holding the database's write lock until released."""
    locker = subprocess.Popen(
        ["podman", "exec", "-i", container, "sqlite3", DATABASE], stdin=subprocess.PIPE, text=True
    )
    locker.stdin.write("BEGIN IMMEDIATE;\n")
    locker.stdin.flush()
    return locker


def release_write_lock(locker: subprocess.Popen) -> None:
    locker.stdin.write("ROLLBACK;\n.quit\n")
    locker.stdin.close()
    locker.wait(timeout=30)


def state_of(container: str, login: str) -> str:
    return sql(container, f"SELECT state FROM sipwave_account WHERE login = '{login}'").strip()


@pytest.fixture(scope="module")
def wave2_killed_between_hosts():
    """Phase 2 of wave 2 (one account closes) with one fork, so the proxies take turns:
    proxy2's write lock is held, and the controller is killed (SIGKILL, its whole process
    group) as soon as proxy1's result is in the report. Returns the report and the state of
    the closing account on both proxies right after the kill."""
    consent = run_playbook("record_consent.yml", {"login": CLOSING_IN_WAVE2.login,
                                                  "decision": "close"})  # fmt: skip
    assert consent.returncode == 0, consent.stdout[-3000:]
    known = set(REPORTS.glob("wave2-*.json"))
    locker = hold_write_lock(PROXY2_CONTAINER)
    try:
        controller = start_playbook("migrate_wave.yml", WAVE2_PHASE2, options=["--forks", "1"])
        report = wait_for_report_section(PROXY_CONTAINER, known)
        os.killpg(controller.pid, signal.SIGKILL)
        controller.wait(timeout=30)
        cleanup = in_container(PROXY2_CONTAINER, "sh", "-c", KILL_ORPHANED_WAVE_MODULES)
        assert cleanup.returncode == 0, cleanup.stdout
        # read while the lock is still held: what the killed run left behind
        states = {proxy: state_of(proxy, CLOSING_IN_WAVE2.login) for proxy in PROXY_CONTAINERS}
    finally:
        release_write_lock(locker)
    return json.loads(report.read_text()), states, cleanup.stdout


@pytest.fixture(scope="module")
def rerun_after_the_kill_between_hosts(wave2_killed_between_hosts):
    known = set(REPORTS.glob("wave2-*.json"))
    run = migrate("wave2", WAVE2_DATE, wave_phase=2, sipwave_closure_numbers="released")
    assert run.returncode == 0, run.stdout[-3000:]
    (report,) = set(REPORTS.glob("wave2-*.json")) - known
    return run, json.loads(report.read_text())


def test_the_run_killed_between_hosts_changed_proxy1_only(wave2_killed_between_hosts):
    _, states, _ = wave2_killed_between_hosts
    assert states == {PROXY_CONTAINER: "closed", PROXY2_CONTAINER: "consent_pending"}


def test_the_report_of_the_killed_run_is_one_file_marked_incomplete(wave2_killed_between_hosts):
    report, _, _ = wave2_killed_between_hosts
    assert report["hosts_reported"] == [PROXY_CONTAINER]
    assert report["hosts_expected"] == sorted(PROXY_CONTAINERS)
    assert report["complete"] is False
    assert f"no result from {PROXY2_CONTAINER}" in report["incomplete_because"]


def test_notifications_refuse_the_incomplete_report(wave2_killed_between_hosts):
    run = run_playbook("notify_wave.yml", {"wave": "wave2", "notification": "closure"})
    assert run.returncode != 0
    assert "is the report of an incomplete run" in " ".join(run.stdout.split())
    assert mails_for(CLOSING_IN_WAVE2.login, "closure") == []


def test_the_rerun_reloads_proxy1_and_applies_proxy2(
    wave2_killed_between_hosts, rerun_after_the_kill_between_hosts
):
    run, report = rerun_after_the_kill_between_hosts
    orphans_killed = wave2_killed_between_hosts[2]
    assert report["complete"] is True
    assert report["hosts"][PROXY_CONTAINER]["changed"] is False
    assert report["hosts"][PROXY2_CONTAINER]["changed"] is True, orphans_killed
    # proxy1's only change in the re-run is the reload of its routing cache
    assert recap_changed(run.stdout, PROXY_CONTAINER) == 1


def test_after_the_rerun_both_proxies_hold_the_same_state(rerun_after_the_kill_between_hosts):
    queries = (
        "SELECT login, state, wave, legacy_domain, current_username, current_domain, "
        "grace_until FROM sipwave_account",
        "SELECT number, login, kind, state FROM sipwave_number",
        "SELECT username, domain, ha1, ha1b FROM subscriber",
        "SELECT alias_username, alias_domain, username, domain FROM dbaliases",
        "SELECT key_name, key_value FROM sipwave_routing WHERE key_name NOT LIKE 'g:%'",
    )
    for query in queries:
        digests = {query_digest(query, proxy) for proxy in PROXY_CONTAINERS}
        assert len(digests) == 1, query


def test_after_the_rerun_no_account_is_lost_or_duplicated(rerun_after_the_kill_between_hosts):
    _, report = rerun_after_the_kill_between_hosts
    for proxy in PROXY_CONTAINERS:
        reconciliation = report["hosts"][proxy]["reconciliation"]
        assert reconciliation["ok"], reconciliation["problems"]
        assert reconciliation["accounts_in_one_state"] == reconciliation["accounts"]
        duplicates = sql(proxy, "SELECT username, domain FROM subscriber GROUP BY 1, 2 "
                                "HAVING COUNT(*) > 1")  # fmt: skip
        assert duplicates == ""
    assert report["counts"]["states"]["closed"] == 1


def test_after_the_rerun_each_change_has_one_audit_row(rerun_after_the_kill_between_hosts):
    # EARLY went to phase 2 on its own, was rolled back alone and moved again by the wave:
    # its changes repeat on purpose.
    for proxy in PROXY_CONTAINERS:
        repeated = sql(proxy, "SELECT login, action FROM sipwave_audit WHERE wave = 'wave2' "
                              f"AND login <> '{EARLY.login}' "
                              "GROUP BY login, action HAVING COUNT(*) > 1")  # fmt: skip
        assert repeated == "", proxy
        closures = sql(
            proxy,
            "SELECT COUNT(*) FROM sipwave_audit "
            f"WHERE login = '{CLOSING_IN_WAVE2.login}' AND action = 'closed'",
        )
        assert closures.strip() == "1", proxy


def test_the_refund_of_the_account_closed_across_the_kill_is_the_killed_runs(
    wave2_killed_between_hosts, rerun_after_the_kill_between_hosts
):
    killed_run = wave2_killed_between_hosts[0]["run_id"]
    _, report = rerun_after_the_kill_between_hosts
    refund = {"login": CLOSING_IN_WAVE2.login, "amount": CLOSING_IN_WAVE2.balance,
              "recorded_by": killed_run}  # fmt: skip
    assert report["refunds"]["accounts"] == [refund]
    assert report["refunds"]["total"] == CLOSING_IN_WAVE2.balance


def test_the_run_after_the_rerun_changes_nothing(rerun_after_the_kill_between_hosts):
    run = migrate("wave2", WAVE2_DATE, wave_phase=2, sipwave_closure_numbers="released")
    assert run.returncode == 0, run.stdout[-3000:]
    assert [recap_changed(run.stdout, proxy) for proxy in PROXY_CONTAINERS] == [0, 0]


def test_a_later_run_keeping_numbers_for_porting_never_takes_back_a_released_one(
    rerun_after_the_kill_between_hosts,
):
    known = set(REPORTS.glob("wave2-*.json"))
    run = migrate("wave2", WAVE2_DATE, wave_phase=2, sipwave_closure_numbers="kept_for_porting")
    assert run.returncode == 0, run.stdout[-3000:]
    assert [recap_changed(run.stdout, proxy) for proxy in PROXY_CONTAINERS] == [0, 0]
    output = " ".join((run.stdout + run.stderr).split())
    assert "closure_numbers is kept_for_porting, but 1 account(s) closed earlier keep their " \
           f"numbers released as decided at closure (not changed by this run): " \
           f"{CLOSING_IN_WAVE2.login}" in output  # fmt: skip
    for proxy in PROXY_CONTAINERS:
        numbers = sql(proxy, "SELECT state FROM sipwave_number WHERE kind = 'number' AND "
                             f"login = '{CLOSING_IN_WAVE2.login}'")  # fmt: skip
        assert set(numbers.split()) == {"released"}, proxy
    (path,) = set(REPORTS.glob("wave2-*.json")) - known
    report = json.loads(path.read_text())
    conflicts = report["reconciliation"]["closure_numbers_conflicts"]
    assert conflicts["setting"] == "kept_for_porting"
    assert [a["login"] for a in conflicts["accounts"]] == [CLOSING_IN_WAVE2.login]
    assert report["complete"] is True


@pytest.mark.parametrize(("proxy", "phone"), [(PROXY, "127.0.23.126"), (PROXY2, "127.0.23.127")])
def test_the_account_closed_across_the_kill_is_refused_on_both_proxies(
    rerun_after_the_kill_between_hosts, proxy, phone
):
    result = register_not_served(CLOSING_IN_WAVE2.login, LEGACY_DOMAIN, phone, proxy)
    assert result.successful == 1, result.output
    assert "403 Account Closed" in result.messages


@pytest.mark.parametrize(("proxy", "phone"), [(PROXY, "127.0.23.128"), (PROXY2, "127.0.23.129")])
def test_a_call_to_a_released_number_is_answered_410_on_both_proxies(
    rerun_after_the_kill_between_hosts, proxy, phone
):
    result = call_refused(
        (NOT_MIGRATED.login, LEGACY_DOMAIN, NOT_MIGRATED.password),
        ("+48220000007", LEGACY_DOMAIN),
        phone,
        proxy,
    )
    assert result.successful == 1, result.output
    assert "410 Number Released" in result.messages


def test_the_closure_mail_follows_the_complete_report(rerun_after_the_kill_between_hosts):
    run = run_playbook("notify_wave.yml", {"wave": "wave2", "notification": "closure"})
    assert run.returncode == 0, run.stdout[-3000:]
    mails = mails_for(CLOSING_IN_WAVE2.login, "closure")
    assert len(mails) == 1
    assert f"{CLOSING_IN_WAVE2.balance} PLN" in mails[0].body


# -- bad input: each playbook that takes input fails clearly -------------------------------------
# (their -vvvv transcripts are among those test_zz_secrets.py searches: failures included)


def one_line(run: subprocess.CompletedProcess) -> str:
    return " ".join((run.stdout + run.stderr).split())


def test_a_wave_with_an_export_header_lacking_a_column_fails_naming_file_and_line(tmp_path):
    export = tmp_path / "export.csv"
    lines = EXPORT.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    export.write_text(lines[0].replace("ha1,", "", 1) + "".join(lines[1:20]), encoding="utf-8")
    run = migrate("wave2", WAVE2_DATE, sipwave_legacy_export=str(export))
    assert run.returncode != 0
    assert f"{export}:1: header lacks column(s) ha1" in one_line(run), run.stdout[-3000:]


def test_a_wave_whose_database_cannot_be_opened_fails_naming_it():
    # The module is handed the wave's HA1s and fails: its -vvvv result must not show them.
    missing = "/nonexistent/sipwave.sqlite"
    run = migrate("wave2", WAVE2_DATE, kamailio_db_sqlite_path=missing)
    assert run.returncode != 0
    assert missing in one_line(run), run.stdout[-3000:]


def test_a_consent_file_with_a_bad_decision_fails_naming_file_line_and_reason(tmp_path):
    consent = tmp_path / "consent.csv"
    consent.write_text(f"login,decision\n{NOT_MIGRATED.login},maybe\n", encoding="utf-8")
    run = run_playbook("record_consent.yml", {"consent_file": str(consent)})
    assert run.returncode != 0
    assert f"{consent}:2: decision 'maybe' is not migrate or close" in one_line(run), run.stdout[
        -3000:
    ]


def test_a_rollback_of_an_unknown_wave_fails_naming_the_waves():
    run = run_playbook("rollback_wave.yml", {"wave": "wave9"})
    assert run.returncode != 0
    assert "Give -e wave=NAME, one of: wave1, wave2" in one_line(run), run.stdout[-3000:]


def test_customer_care_sees_one_accounts_whole_story():
    """account_show.yml on the real proxies after everything above: the account wave 1 moved,
    consented, rolled back and migrated again; its mails with their senders."""
    run = run_playbook("account_show.yml", {"login": MIGRATED.login})
    assert run.returncode == 0, run.stdout[-3000:]
    shown = one_line(run)
    assert f'"login": "{MIGRATED.login}"' in shown
    assert '"action": "consent_migrate"' in shown and '"action": "rollback"' in shown
    assert f'"email": "{MIGRATED.email}"' in shown
    assert '"notification": "notice"' in shown and "obsluga@ip.tanifon.pl" in shown


# -- wave 2's decision window: decide_by 2026-12-21, undecided customers are closed -----------

DECIDED = EARLY  # consented (and was moved at once) above


def test_the_decision_reminder_reaches_only_the_undecided_from_the_legacy_operator():
    for today, refusal in (("2026-12-13", "is due from 2026-12-14"),
                           ("2026-12-22", "ended on 2026-12-21")):  # fmt: skip
        refused = notify("decision_reminder", today, wave="wave2")
        assert refused.returncode != 0 and refusal in one_line(refused), refused.stdout[-3000:]
    assert mails_for(NOT_MIGRATED.login, "decision_reminder") == []

    run = notify("decision_reminder", "2026-12-18", wave="wave2")

    assert run.returncode == 0, run.stdout[-3000:]
    (mail,) = mails_for(NOT_MIGRATED.login, "decision_reminder")
    assert str(mail.headers["From"]) == LEGACY_OPERATOR
    assert "decide by 2026-12-21" in mail.body and "is closed and its balance" in mail.body
    assert mails_for(DECIDED.login, "decision_reminder") == []


def test_customer_care_resends_one_mail_to_one_customer_within_its_window():
    base = {"wave": "wave2", "notification": "decision_reminder", "resend": True}
    again = run_sipwave("account", "resend", NOT_MIGRATED.login, "--wave", "wave2",
                        "--mail", "decision_reminder", "--today", "2026-12-19")  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:]
    assert len(mails_for(NOT_MIGRATED.login, "decision_reminder")) == 2
    sent_log = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports" / "notifications.jsonl"
    entries = [json.loads(line) for line in sent_log.read_text().splitlines() if line.strip()]
    mine = [e for e in entries if e["login"] == NOT_MIGRATED.login
            and e["notification"] == "decision_reminder"]  # fmt: skip
    assert [e.get("resend", False) for e in mine] == [False, True]
    # Outside its window, to someone the mail is not for, or without naming the customer:
    for extra, refusal in (
        ({"account": NOT_MIGRATED.login, "sipwave_today": "2026-12-22"}, "ended on 2026-12-21"),
        ({"account": DECIDED.login, "sipwave_today": "2026-12-19"},
         f"{DECIDED.login} would get no decision_reminder of wave wave2"),
        ({"sipwave_today": "2026-12-19"}, "named with -e account=LOGIN"),
    ):  # fmt: skip
        refused = run_playbook("notify_wave.yml", {**base, **extra})
        assert refused.returncode != 0 and refusal in one_line(refused), refused.stdout[-3000:]
    assert len(mails_for(NOT_MIGRATED.login, "decision_reminder")) == 2
    assert mails_for(DECIDED.login, "decision_reminder") == []


def test_after_the_window_no_one_moves_at_once_and_the_undecided_are_closed():
    late = run_playbook("record_consent.yml", {
        "login": NOT_MIGRATED.login, "decision": "migrate", "wave": "wave2",
        "sipwave_today": "2026-12-22"})  # fmt: skip
    assert late.returncode != 0 and "whose decision window" in one_line(late), late.stdout[-3000:]
    assert sql(PROXY_CONTAINER, "SELECT count(*) FROM sipwave_consent "
               f"WHERE login = '{NOT_MIGRATED.login}'").strip() == "0"  # fmt: skip
    moved = migrate("wave2", "2026-12-22", wave_phase=2, account=NOT_MIGRATED.login)
    assert moved.returncode != 0
    assert "the decision window of wave wave2 ended on 2026-12-21" in one_line(moved)

    # The phase-2 run after the window, shown (check mode with diff) on the real proxies.
    after_window = {"wave": "wave2", "sipwave_today": "2026-12-22", "wave_phase": 2}
    plan = run_playbook("migrate_wave.yml", after_window, check=True)
    assert plan.returncode == 0, plan.stdout[-3000:]
    shown = one_line(plan)
    closing = f"{NOT_MIGRATED.login}: closed (no decision by 2026-12-21: policy close)"
    assert closing in shown, shown[-3000:]
    assert f"{DECIDED.login}: closed" not in shown
    # Check mode: the account stays as wave 2's phase-2 run left it.
    assert sql(PROXY_CONTAINER, "SELECT state FROM sipwave_account "
               f"WHERE login = '{NOT_MIGRATED.login}'").strip() == "consent_pending"  # fmt: skip
