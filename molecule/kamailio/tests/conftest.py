"""Fixtures for the kamailio scenario: addresses and accounts of molecule.yml."""

import subprocess
from pathlib import Path

from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook as run_project_playbook

PROJECT = Path(__file__).resolve().parents[3]
CONTAINER = "sipwave-molecule-proxy"
PROXY = "127.0.20.11:5060"
PBX_ADDRESS = "127.0.20.21"
LEGACY_DOMAIN = "ip.tanifon.pl"
NEW_DOMAIN = "sip.sipwave.test"
ACCOUNTS = {
    "legacy-a": ("481234001", LEGACY_DOMAIN, "Legacy-Pw-481234001"),
    "legacy-b": ("481234002", LEGACY_DOMAIN, "Legacy-Pw-481234002"),
    "new": ("tnf481234003", NEW_DOMAIN, "New-Pw-tnf481234003"),
    # only the password-guessing test uses it: failures are counted per identity too
    "guessed": ("481234009", LEGACY_DOMAIN, "Legacy-Pw-481234009"),
}


def register_row(account: str, contact: str, password: str | None = None) -> list[str]:
    user, domain, real_password = ACCOUNTS[account]
    return [user, domain, sipp.credentials(user, password or real_password), contact]


def call_row(caller: str, called_user: str, called_domain: str) -> list[str]:
    user, domain, password = ACCOUNTS[caller]
    return [user, domain, sipp.credentials(user, password), called_user, called_domain]


def run_playbook(
    *extra_vars: dict, playbook: Path = PROJECT / "playbooks" / "kamailio.yml"
) -> subprocess.CompletedProcess:
    """Run the kamailio playbook (or another one) against the scenario's inventory.

    Through the shared runner: at -vvvv, with a transcript that test_zz_secrets.py searches.
    """
    return run_project_playbook(str(playbook), *extra_vars)


def in_container(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "exec", CONTAINER, *command], capture_output=True, text=True)


def main_pid(host) -> int:
    return int(host.check_output("systemctl show kamailio -p MainPID --value"))
