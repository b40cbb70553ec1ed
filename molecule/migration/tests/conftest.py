"""Fixtures for the migration scenario: addresses, sample accounts, playbooks, mailbox."""

import base64
import csv
import email
import email.policy
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook

PROJECT = Path(__file__).resolve().parents[3]
EXPORT = PROJECT / "inventories" / "lab" / "files" / "legacy_export.csv"
PROXY_CONTAINER = "sipwave-molecule-migration-proxy"
PROXY2_CONTAINER = "sipwave-molecule-migration-proxy2"
PROXY_CONTAINERS = (PROXY_CONTAINER, PROXY2_CONTAINER)
LEGACY_CONTAINER = "sipwave-molecule-migration-legacy"
SMTP_CONTAINER = "sipwave-molecule-migration-smtp"
PROXY = "127.0.23.11:5060"
PROXY2 = "127.0.23.12:5060"
LEGACY_ADDRESS = "127.0.23.41"
LEGACY_DOMAIN = "ip.tanifon.pl"
NEW_DOMAIN = "sip.sipwave.test"
DATABASE = "/var/lib/kamailio/sipwave.sqlite"
MAILDIR = "/home/labmail/Maildir"
WAVE1_DATE = "2026-11-16"
WAVE2_DATE = "2026-12-07"


@dataclass(frozen=True)
class Account:
    login: str
    password: str
    ha1: str
    numbers: str
    wave: str
    email: str
    balance: str


def sample_accounts() -> dict[str, Account]:
    """Rows of the sample export that have a readable login (bad rows included)."""
    accounts = {}
    with EXPORT.open(encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.DictReader(handle):
            login = row.get("login") or ""
            if login and login not in accounts:
                accounts[login] = Account(
                    login,
                    row.get("password") or "",
                    row.get("ha1") or "",
                    row.get("numbers") or "",
                    row.get("wave") or "",
                    row.get("email") or "",
                    row.get("balance") or "",
                )
    return accounts


ACCOUNTS = sample_accounts()
# wave1: moves in phase 1, then the first one to phase 2, the second closes.
MIGRATED = ACCOUNTS["481200000"]
CLOSING = ACCOUNTS["481200002"]
# wave2: not migrated while wave1 runs; one of its accounts only has an HA1 in the export,
# another closes in a phase-2 run killed between the two proxies.
NOT_MIGRATED = ACCOUNTS["481200001"]
CLOSING_IN_WAVE2 = ACCOUNTS["481200007"]
HA1_ONLY = next(
    a for a in ACCOUNTS.values() if a.wave == "wave2" and not a.password and len(a.ha1) == 32
)


def migrate(
    wave: str, today: str, timeout: float | None = None, **extra
) -> subprocess.CompletedProcess:
    return run_playbook(
        "migrate_wave.yml", {"wave": wave, "sipwave_today": today, **extra}, timeout=timeout
    )


def in_container(container: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "exec", container, *command], capture_output=True, text=True)


def sql(container: str, query: str) -> str:
    result = in_container(container, "sqlite3", DATABASE, query)
    assert result.returncode == 0, result.stderr
    return result.stdout


def registrations(container: str, identity: str) -> str:
    user, domain = identity.split("@")
    return in_container(
        container, "kamcmd", "-s", "unix:/run/kamailio/kamailio_ctl", "ul.lookup", "location",
        f"{user}@{domain}",
    ).stdout  # fmt: skip


def register(
    user: str, domain: str, password: str, phone: str, port: int = 5099, proxy: str = PROXY
):
    row = [user, domain, sipp.credentials(user, password), f"{phone}:{port}"]
    return sipp.run("register.xml", proxy, phone, rows=[row])


def register_not_served(user: str, domain: str, phone: str, proxy: str = PROXY):
    """A REGISTER the proxy answers with 403 at once, without a challenge."""
    row = [user, domain, "unused", f"{phone}:5099"]
    return sipp.run("register_not_served.xml", proxy, phone, rows=[row])


def call_refused(
    caller: tuple[str, str, str], callee: tuple[str, str], phone: str, proxy: str = PROXY
):
    """A call the proxy refuses (403, 410 or 480), at once or after the digest challenge."""
    user, domain, password = caller
    row = [user, domain, sipp.credentials(user, password), *callee]
    return sipp.run("call_refused.xml", proxy, phone, rows=[row])


def register_refused(user: str, domain: str, password: str, phone: str):
    row = [user, domain, sipp.credentials(user, password), f"{phone}:5099"]
    return sipp.run("register_refused.xml", PROXY, phone, rows=[row])


def call(
    caller: tuple[str, str, str],
    callee: tuple[str, str],
    callee_phone: str,
    phone: str,
    via: str = PROXY,
):
    """Let the callee's (registered) phone answer, place the call from ``phone`` to ``via``;
    both sides' results."""
    answering, workdir = sipp.run(
        "answer.xml", PROXY, callee_phone, local_port=5070, background=True, timeout_s=25
    )
    user, domain, password = caller
    result = sipp.run(
        "call_auth.xml",
        via,
        phone,
        rows=[[user, domain, sipp.credentials(user, password), *callee]],
    )
    return result, sipp.wait(answering, workdir)


@dataclass
class Mail:
    headers: email.message.EmailMessage

    @property
    def body(self) -> str:
        return self.headers.get_content()


def mailbox() -> list[Mail]:
    """Every message delivered to the lab mailbox (one base64 line per file)."""
    raw = in_container(
        SMTP_CONTAINER,
        "sh",
        "-c",
        f'for f in {MAILDIR}/new/*; do [ -f "$f" ] && base64 -w0 "$f" && echo; done; true',
    )
    return [
        Mail(email.message_from_bytes(base64.b64decode(line), policy=email.policy.default))
        for line in raw.stdout.split()
    ]


def mails_for(login: str, notification: str) -> list[Mail]:
    return [
        m
        for m in mailbox()
        if m.headers.get("X-Sipwave-Notification", "").startswith(notification + ";")
        and m.headers["X-Sipwave-Notification"].endswith(f"login={login}")
    ]


@pytest.fixture(scope="session", autouse=True)
def fresh_controller_state():
    """The sent-log and reports on the controller belong to the lab they were made against:
    one left from an earlier lab would make notifications look sent already."""
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    # So are the port exchange's record files and the controller's database backups.
    for directory in ("reports", "port-exchange", "backups"):
        shutil.rmtree(ephemeral / directory, ignore_errors=True)
    in_container(SMTP_CONTAINER, "sh", "-c", f"rm -f {MAILDIR}/new/* {MAILDIR}/cur/*")
