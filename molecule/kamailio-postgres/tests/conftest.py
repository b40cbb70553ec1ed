"""Fixtures for the kamailio-postgres scenario: addresses, accounts and secrets of molecule.yml."""

import hashlib
import subprocess
import time
from pathlib import Path

from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook as run_project_playbook

PROJECT = Path(__file__).resolve().parents[3]
DB_CONTAINER = "sipwave-molecule-pgsql-db"
PROXY_CONTAINER = "sipwave-molecule-pgsql-proxy"
PROXY = "127.0.24.11:5060"
DB_ADDRESS = "127.0.24.31"
DB_PASSWORD = "Lab-Pg@Kam:24/Secret"
LEGACY_DOMAIN = "ip.tanifon.pl"
NEW_DOMAIN = "sip.sipwave.test"
ACCOUNTS = {
    "legacy-a": ("481240001", LEGACY_DOMAIN, "Legacy-Pw-481240001"),
    "legacy-b": ("481240002", LEGACY_DOMAIN, "Legacy-Pw-481240002"),
    "new": ("tnf481240003", NEW_DOMAIN, "New-Pw-tnf481240003"),
}


def ha1(user: str, domain: str, password: str) -> str:
    """Digest HA1 with the SIP domain as realm, as the subscriber module stores it."""
    return hashlib.md5(f"{user}:{domain}:{password}".encode()).hexdigest()


def register_row(account: str, contact: str, password: str | None = None) -> list[str]:
    user, domain, real_password = ACCOUNTS[account]
    return [user, domain, sipp.credentials(user, password or real_password), contact]


def register(
    account: str, address: str, password: str | None = None, scenario: str = "register.xml"
):
    """One REGISTER from ``address`` (contact on port 5099 there)."""
    return sipp.run(
        scenario, PROXY, address, rows=[register_row(account, f"{address}:5099", password)]
    )


def in_container(container: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["podman", "exec", container, *command], capture_output=True, text=True, timeout=120
    )


def psql(sql: str) -> list[list[str]]:
    """Rows of one query on the Kamailio database, run as postgres on the database host."""
    result = in_container(
        DB_CONTAINER, "runuser", "-u", "postgres", "--",
        "psql", "-d", "kamailio", "-X", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [line.split("|") for line in result.stdout.splitlines() if line]


def wait_until(check, timeout_s: float, step_s: float = 1.0):
    """Call ``check`` until it returns something true or the time is up; its last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(step_s)


def run_playbook(*extra_vars: dict, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the scenario's converge playbook against its inventory, through the shared runner:
    at -vvvv, extra vars from a 0600 file (never echoed), with a transcript."""
    converge = Path(__file__).resolve().parents[1] / "converge.yml"
    return run_project_playbook(str(converge), *extra_vars, options=options)
