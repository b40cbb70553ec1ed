"""Porting and cutover on the real proxies and the lab's legacy platform (it plays the old
operator TNF; sipwave is SWV): codes issued and mailed, requests over the file exchange,
wrong secret codes, donor rejections, cancellation, the port completing, cutover refused and
then made, the carrier's call reaching the phone, rollbacks refused after cutover, and the
refund taken back by a rollback and recorded once by the next closure.

Runs after test_migration.py (file order) on the state it leaves: wave 1's accounts other
than MIGRATED and CLOSING are served and undecided, CLOSING is closed with its numbers kept
for porting, wave 2 is in phase 2 with CLOSING_IN_WAVE2 closed."""

import csv
import hashlib
import hmac
import json
import os
import re
import time
from pathlib import Path

import pytest
from conftest import (
    ACCOUNTS,
    CLOSING,
    CLOSING_IN_WAVE2,
    LEGACY_CONTAINER,
    LEGACY_DOMAIN,
    PROXY,
    PROXY2_CONTAINER,
    PROXY_CONTAINER,
    PROXY_CONTAINERS,
    WAVE2_DATE,
    mails_for,
    migrate,
    register,
    sql,
)
from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook
from sipwave_testlib.secrets import record_runtime_secret

EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
EXCHANGE = EPHEMERAL / "port-exchange"
REPORTS = EPHEMERAL / "reports"
CARRIER = "127.0.23.31"
BLOCKED = ACCOUNTS["481200014"]  # gives wrong secret codes until its request is blocked
PORTED = ACCOUNTS["481200008"]  # ported, then cut over
REJECTED = ACCOUNTS["481200010"]  # a code the old operator never issued; then cancelled
WRONG_SECRETS = ("WRONG0001", "WRONG0002", "WRONG0003", "WRONG0004")
REQUEST_DATE = "2026-12-10"


def numbers_of(login: str, container: str = PROXY_CONTAINER) -> dict[str, str]:
    rows = sql(container, "SELECT number, state FROM sipwave_number WHERE kind = 'number' "
                          f"AND login = '{login}'")  # fmt: skip
    return dict(line.split("|") for line in rows.split())


def request_state(ref: str, container: str = PROXY_CONTAINER) -> str:
    return sql(container, f"SELECT state || ' ' || reason FROM sipwave_port_request "
                          f"WHERE ref = '{ref}'").strip()  # fmt: skip


def port(action: str, **extra) -> str:
    run = run_playbook("port.yml", {"port_action": action, **extra})
    assert run.returncode == 0, run.stdout[-4000:]
    return run.stdout


def donor_answers() -> str:
    run = run_playbook("port_donor.yml", {"donor_action": "answer",
                                          "sipwave_donor_hosts": "legacy"})  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    return run.stdout


def mail_of(login: str, notification: str, timeout_s: float = 15):
    """The one mail of ``notification`` to ``login``, once the lab's Postfix delivered it."""
    deadline = time.monotonic() + timeout_s
    while not (found := mails_for(login, notification)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(found) == 1, f"{len(found)} {notification} mails to {login}"
    return found[0]


def codes_from_mail(login: str) -> tuple[str, str]:
    mail = mail_of(login, "port_code")
    body = mail.body
    code = re.search(r"migration code: (\S+)", body)[1]
    secret = re.search(r"secret code: +(\S+)", body)[1]
    record_runtime_secret("secret code", f"login {login}", secret)
    return code, secret


def request(ref: str, account, code: str, secret: str) -> dict:
    record_runtime_secret("secret code", f"request {ref}", secret)
    return {"ref": ref, "login": account.login, "migration_code": code, "secret_code": secret,
            "numbers": [], "requested_date": REQUEST_DATE}  # fmt: skip


@pytest.fixture(scope="module")
def legacy_codes() -> dict[str, tuple[str, str]]:
    """The old operator gives two of its customers their codes (mailed)."""
    accounts = [{"login": a.login, "numbers": sorted(numbers_of(a.login))}
                for a in (BLOCKED, PORTED)]  # fmt: skip
    assert all(account["numbers"] for account in accounts), accounts
    run = run_playbook("port_donor.yml", {"donor_action": "issue", "sipwave_donor_hosts": "legacy",
                                          "donor_accounts": accounts})  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    return {a.login: codes_from_mail(a.login) for a in (BLOCKED, PORTED)}


def test_the_old_operator_mails_each_leaving_customer_a_code_and_a_secret_code(legacy_codes):
    code, secret = legacy_codes[PORTED.login]
    assert code.startswith("TNF220000008001") and len(code) == 16
    stored = sql(LEGACY_CONTAINER, "SELECT secret_proof FROM sipwave_port_code "
                                   f"WHERE code = '{code}'")  # fmt: skip
    assert stored.startswith("scrypt$") and secret not in stored


def test_a_malformed_migration_code_is_refused_naming_the_field(legacy_codes):
    bad = request("P-BAD", BLOCKED, "TNF 220000014 0A1 K", "WRONG0000")
    run = run_playbook("port.yml", {"port_action": "submit", "port_requests": [bad]})
    assert run.returncode != 0
    assert "requests[0] (ref 'P-BAD'): migration code: field service is '0A1'" in run.stdout
    assert sql(PROXY_CONTAINER, "SELECT count(*) FROM sipwave_port_request").strip() == "0"


@pytest.fixture(scope="module")
def first_exchange(legacy_codes):
    """Three requests (phase 1) go to the old operator, which answers; the answers are
    applied with the first wrong secret code's resubmission."""
    blocked_code = legacy_codes[BLOCKED.login][0]
    ported_code, ported_secret = legacy_codes[PORTED.login]
    unknown_code = "TNF" + "220000010" + "001" + "Z"
    requests = [
        request("P-BLOCKED", BLOCKED, blocked_code, WRONG_SECRETS[0]),
        request("P-PORTED", PORTED, ported_code, ported_secret),
        request("P-REJECTED", REJECTED, unknown_code, "SOMETHING1"),
    ]
    # The three come as customer care collects them: one CSV file (mode 0600: secret codes).
    batch = EPHEMERAL / "port-requests.csv"
    fd = os.open(batch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(requests[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "numbers": ";".join(r["numbers"])} for r in requests)
    submitted = port("submit", port_requests_file=str(batch))
    answered = donor_answers()
    return submitted, answered


def test_a_request_is_validated_and_sent_to_the_old_operator_at_once(first_exchange):
    for proxy in PROXY_CONTAINERS:
        assert request_state("P-PORTED", proxy) == "donor_notified"
        assert set(numbers_of(PORTED.login, proxy).values()) == {"porting"}
    (sent,) = EXCHANGE.glob("SWV-TNF-*.requests.csv")
    rows = list(csv.DictReader(sent.open(encoding="utf-8")))
    assert [r["ref"] for r in rows] == ["P-BLOCKED", "P-PORTED", "P-REJECTED"]
    assert all(r["secret_proof"].startswith("hmac-sha256$") for r in rows)
    assert mail_of(PORTED.login, "port_validated")


def test_the_old_number_still_forwards_while_it_is_porting(first_exchange):
    number = sorted(numbers_of(PORTED.login))[0]
    forwarded = sql(
        LEGACY_CONTAINER, f"SELECT target FROM sipwave_forwarding WHERE number = '{number}'"
    )
    assert forwarded.strip().startswith("+48225559")


def test_a_donor_rejection_stops_the_request_and_the_reason_is_mailed(first_exchange):
    port("exchange")
    assert request_state("P-REJECTED") == "donor_rejected unknown_code"
    assert set(numbers_of(REJECTED.login).values()) == {"legacy"}
    mail = mail_of(REJECTED.login, "port_donor_rejected")
    assert "The reason they gave: unknown_code" in mail.body
    assert request_state("P-PORTED") == "donor_accepted"


def test_a_wrong_secret_code_is_refused_and_the_fourth_blocks_the_request(first_exchange):
    assert request_state("P-BLOCKED") == "donor_rejected secret_code"
    for wrong in WRONG_SECRETS[1:]:
        port("resubmit", ref="P-BLOCKED", secret_code=wrong)
        donor_answers()
    port("exchange")
    assert request_state("P-BLOCKED") == "failed blocked: too many wrong secret codes"
    assert set(numbers_of(BLOCKED.login).values()) == {"legacy"}
    code = sql(LEGACY_CONTAINER, "SELECT state, wrong_secrets FROM sipwave_port_code "
                                 f"WHERE login = '{BLOCKED.login}'")  # fmt: skip
    assert code.strip() == "blocked|4"
    events = sql(PROXY_CONTAINER, "SELECT to_state FROM sipwave_port_event "
                                  "WHERE ref = 'P-BLOCKED' ORDER BY id").split()  # fmt: skip
    assert events.count("donor_rejected") == 4 and events[-1] == "failed"


def test_a_cancelled_request_frees_the_numbers(first_exchange):
    code = "TNF" + "220000010" + "001" + "Y"
    port("submit", port_requests=[request("P-CANCEL", REJECTED, code, "SOMETHING2")])
    assert set(numbers_of(REJECTED.login).values()) == {"porting"}
    port("cancel", refs=["P-CANCEL"], reason="customer stays")
    assert request_state("P-CANCEL") == "cancelled customer stays"
    assert set(numbers_of(REJECTED.login).values()) == {"legacy"}
    assert mail_of(REJECTED.login, "port_cancelled")


def cutover(logins: list[str]):
    return run_playbook("cutover.yml", {"logins": logins})


def test_before_the_numbers_are_ported_cutover_refuses_naming_them(first_exchange):
    run_playbook("backup.yml")
    run = cutover([PORTED.login])
    assert run.returncode != 0
    for number in numbers_of(PORTED.login):
        assert f"{number} is porting, not ported" in run.stdout


@pytest.fixture(scope="module")
def ported(first_exchange):
    temporary = sql(PROXY_CONTAINER, "SELECT number FROM sipwave_number WHERE kind = 'temporary' "
                                     f"AND login = '{PORTED.login}'").strip()  # fmt: skip
    port("schedule", refs=["P-PORTED"])
    port("complete", refs=["P-PORTED"])
    return temporary


def test_a_completed_port_makes_the_numbers_active_and_returns_the_temporary_number(ported):
    for proxy in PROXY_CONTAINERS:
        assert request_state("P-PORTED", proxy) == "ported"
        assert set(numbers_of(PORTED.login, proxy).values()) == {"active"}
        quarantined = sql(proxy, "SELECT number FROM sipwave_number_quarantine "
                                 f"WHERE number = '{ported}'")  # fmt: skip
        assert quarantined.strip() == ported
    assert mail_of(PORTED.login, "port_ported")


def test_the_old_operator_stops_forwarding_the_ported_numbers(ported):
    for number in numbers_of(PORTED.login):
        assert sql(LEGACY_CONTAINER, "SELECT count(*) FROM sipwave_forwarding "
                                     f"WHERE number = '{number}'").strip() == "0"  # fmt: skip


def identity_of(login: str) -> tuple[str, str]:
    row = sql(PROXY_CONTAINER, "SELECT current_username, current_domain FROM sipwave_account "
                               f"WHERE login = '{login}'")  # fmt: skip
    user, domain = row.strip().split("|")
    return user, domain


def wait_for_location(user: str, timeout_s: float = 45) -> None:
    """usrloc writes registrations to the database every 30 s (db_mode 2)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (
            sql(PROXY_CONTAINER, f"SELECT count(*) FROM location WHERE username = '{user}'").strip()
            != "0"
        ):
            return
        time.sleep(2)
    raise AssertionError(f"no location row for {user} after {timeout_s} s")


@pytest.fixture(scope="module")
def cut_over(ported):
    user, domain = identity_of(PORTED.login)
    registered = register(user, domain, PORTED.password, "127.0.23.131", 5070)
    assert registered.successful == 1, registered.output
    wait_for_location(user)
    run = cutover([PORTED.login])
    assert run.returncode == 0, run.stdout[-4000:]
    return run


def test_after_the_port_cutover_succeeds_and_records_the_point_of_no_return(cut_over):
    for proxy in PROXY_CONTAINERS:
        assert sql(
            proxy, f"SELECT login FROM sipwave_cutover WHERE login = '{PORTED.login}'"
        ).strip() == (PORTED.login)
        audit = sql(proxy, "SELECT action FROM sipwave_audit WHERE action = 'cutover' "
                           f"AND login = '{PORTED.login}'")  # fmt: skip
        assert audit.split() == ["cutover"]


def test_after_cutover_the_legacy_platform_no_longer_knows_the_account(cut_over):
    for table in ("subscriber", "dbaliases"):
        rows = sql(
            LEGACY_CONTAINER, f"SELECT count(*) FROM {table} WHERE username = '{PORTED.login}'"
        )
        assert rows.strip() == "0", table


def test_a_call_from_the_carrier_to_the_ported_number_reaches_the_phone(cut_over):
    number = sorted(numbers_of(PORTED.login))[0]
    answering, workdir = sipp.run(
        "answer.xml", PROXY, "127.0.23.131", local_port=5070, background=True, timeout_s=25
    )
    caller = sipp.run(
        "call.xml", PROXY, CARRIER, rows=[["+48601000099", CARRIER, number, LEGACY_DOMAIN]]
    )
    callee = sipp.wait(answering, workdir)
    assert caller.successful == 1, caller.output
    assert callee.successful == 1, callee.output
    user, _domain = identity_of(PORTED.login)
    assert f"INVITE sip:{user}@127.0.23.131:5070" in callee.messages
    call_id = re.search(r"^Call-ID:\s*(\S+)", callee.messages, re.M)[1]
    record = sql(
        PROXY_CONTAINER, f"SELECT carrier, direction, callee FROM acc WHERE callid = '{call_id}'"
    )
    assert record.split() == [f"pstn|inbound|{number}"]


def test_after_cutover_a_rollback_of_the_wave_is_refused_naming_the_account(cut_over):
    before = sql(PROXY_CONTAINER, "SELECT count(*) FROM sipwave_audit").strip()
    run = run_playbook("rollback_wave.yml", {"wave": "wave1"})
    assert run.returncode != 0
    assert "past their cutover" in run.stdout and PORTED.login in run.stdout
    assert sql(PROXY_CONTAINER, "SELECT count(*) FROM sipwave_audit").strip() == before


# -- sipwave as the old operator -------------------------------------------------------------------


def foreign_request(ref: str, code: str, secret: str, numbers: list[str]) -> Path:
    """Another operator's request file, with the proof made as docs/porting.md describes it:
    scrypt of the secret code salted with the code's digest, then an HMAC of the request
    keyed with that hash."""
    salt = hashlib.sha256(b"sipwave port secret\0" + code.encode()).digest()[:16]
    digest = hashlib.scrypt(secret.upper().encode(), salt=salt, n=2**14, r=8, p=1, dklen=64)
    bound = hmac.new(digest, f"OTH|{ref}|1|{code}".encode(), hashlib.sha256).hexdigest()
    proof = f"hmac-sha256${bound}"
    path = EXCHANGE / f"OTH-SWV-{ref}.requests.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["record", "ref", "attempt", "recipient", "donor", "migration_code",
                         "secret_proof", "numbers", "requested_date"])  # fmt: skip
        writer.writerow(
            ["request", ref, "1", "OTH", "SWV", code, proof, ";".join(numbers), "2026-12-24"]
        )
    return path


def test_as_old_operator_a_closed_customer_gets_codes_and_a_request_with_them_is_accepted():
    run = run_playbook("port_donor.yml", {"donor_action": "issue"})
    assert run.returncode == 0, run.stdout[-4000:]
    code, secret = codes_from_mail(CLOSING.login)
    numbers = sorted(numbers_of(CLOSING.login))
    foreign_request("X1-WRONG", code, "NOTTHEONE1", numbers)  # answered first (file order)
    record_runtime_secret("secret code", "foreign request X1-WRONG", "NOTTHEONE1")
    foreign_request("X2-RIGHT", code, secret, numbers)
    answered = run_playbook("port_donor.yml", {"donor_action": "answer"})
    assert answered.returncode == 0, answered.stdout[-4000:]
    rows = {}
    for path in EXCHANGE.glob("SWV-OTH-*.answers.csv"):
        rows.update({r["ref"]: (r["answer"], r["reason"]) for r in csv.DictReader(path.open())})
    assert rows == {"X1-WRONG": ("rejected", "secret_code"), "X2-RIGHT": ("accepted", "")}


# -- a rollback takes a refund back; the next closure records one ----------------------------------


def newest_report(wave: str, known: set[Path]) -> dict:
    (path,) = set(REPORTS.glob(f"{wave}-*.json")) - known
    return json.loads(path.read_text())


def test_a_rollback_reverses_the_refund_and_closing_again_records_exactly_one():
    known = set(REPORTS.glob("wave2-*.json"))
    rolled = run_playbook("rollback_wave.yml", {"wave": "wave2"})
    assert rolled.returncode == 0, rolled.stdout[-4000:]
    report = newest_report("wave2", known)
    (reopened,) = [a for a in report["accounts"] if a["login"] == CLOSING_IN_WAVE2.login]
    assert reopened["refund_reversed"] == CLOSING_IN_WAVE2.balance
    for proxy in PROXY_CONTAINERS:
        assert set(numbers_of(CLOSING_IN_WAVE2.login, proxy).values()) == {"released"}
    known = set(REPORTS.glob("wave2-*.json"))
    closed = migrate("wave2", WAVE2_DATE, wave_phase=2, sipwave_closure_numbers="released")
    assert closed.returncode == 0, closed.stdout[-4000:]
    report = newest_report("wave2", known)
    refunds = [r for r in report["refunds"]["accounts"] if r["login"] == CLOSING_IN_WAVE2.login]
    assert refunds == [{"login": CLOSING_IN_WAVE2.login, "amount": CLOSING_IN_WAVE2.balance,
                        "recorded_by": report["run_id"]}]  # fmt: skip
    assert PROXY2_CONTAINER in report["hosts"]
