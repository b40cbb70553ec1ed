"""The demo's two calls of a migrated account, through the lab proxy and its carrier.

SIPp plays every party on loopback: the account's phone (registered with the password of
its export row), and the carrier on ``sipwave_carrier_address``, which answers the proxy's
OPTIONS probes, takes the outbound call and then places the inbound one to the account's
temporary number. What the carrier received and the proxy's call records are printed; the
password never is.
"""

import re
import subprocess
import time
from pathlib import Path

from sipwave_testlib import sipp

DATABASE = "/var/lib/kamailio/sipwave.sqlite"
PHONE_ADDRESS = "127.0.10.202"
PHONE_PORT = 5099
CALLER_ADDRESS = "127.0.10.203"
CARRIER_CALLER_PORT = 5071
PUBLIC_CALLER = "+48601000001"
CALLED_OUTSIDE = "+48615550100"
PROBE_WAIT_S = 15


def container_output(container: str, *command: str) -> str:
    """What a command run in a lab container printed (stripped); fails when it fails."""
    return subprocess.run(
        ["podman", "exec", container, *command], check=True, capture_output=True, text=True
    ).stdout.strip()


def _sql(container: str, query: str) -> str:
    return container_output(container, "sqlite3", DATABASE, query)


def _carrier_active(container: str, carrier: str) -> bool:
    listing = container_output(container, "kamcmd", "dispatcher.list")
    flags = re.findall(rf"URI: sip:{re.escape(carrier)}:5060\S*\s+FLAGS: (\w+)", listing)
    return bool(flags) and flags[0].startswith("A")


def _header(messages: str, name: str) -> str:
    found = re.search(rf"^{name}:\s*(.*?)\s*$", messages, re.M | re.I)
    return found[1] if found else "(none)"


def _account(container: str, export_accounts: dict) -> tuple[str, str, str, str] | None:
    """(login, domain, password, temporary number) of a migrated account holding one."""
    rows = _sql(
        container,
        "SELECT a.login, a.current_username, a.current_domain, n.number FROM sipwave_account a "
        "JOIN sipwave_number n ON n.login = a.login AND n.kind = 'temporary' "
        "WHERE a.state = 'phase1' ORDER BY a.login",
    )
    for line in rows.splitlines():
        login, user, domain, temporary = line.split("|")
        account = export_accounts.get(login)
        if account is not None and account.password and user == login:
            return login, domain, account.password, temporary
    return None


def _answering_phone(target: str) -> tuple:
    """The registered phone of the account, answering one call (SIPp in the background)."""
    return sipp.run(
        "answer.xml", f"{target}:5060", PHONE_ADDRESS, local_port=PHONE_PORT, background=True,
        timeout_s=20,
    )  # fmt: skip


def _forwarded_call(
    container: str, legacy: str, export_accounts: dict, called: tuple[str, str]
) -> int:
    """A customer still at the old operator calls the migrated account's old number there:
    the legacy platform forwards it to the temporary number, which rings the phone."""
    own, temporary = called
    served = set(_sql(container, "SELECT login FROM sipwave_account").split())
    caller = next(
        (a for a in export_accounts.values() if a.login not in served and a.password), None
    )
    if caller is None:
        return 0
    phone = _answering_phone(legacy)
    try:
        call = sipp.run(
            "call_auth.xml", f"{legacy}:5060", CALLER_ADDRESS,
            rows=[[caller.login, caller.domain, sipp.credentials(caller.login, caller.password),
                   own, caller.domain]],
        )  # fmt: skip
    finally:
        rang = sipp.wait(*phone, timeout_s=10)
    answered = call.successful == rang.successful == 1
    outcome = f"forwarded to {temporary}, rang the phone" if answered else "FAILED"
    print(f"   {caller.login} (not migrated) calls {own} at the legacy platform {legacy}: "
          f"{outcome}")  # fmt: skip
    if answered:
        print(f"     the phone saw Diversion {_header(rang.messages, 'Diversion')}")
    return 0 if answered else 1


def print_calls(
    container: str, proxy: str, carrier: str, export_accounts: dict, legacy: str = ""
) -> int:
    """One outbound and one inbound call of a migrated account; returns the failures."""
    print(f"\n== calls of a migrated account through {proxy} and the carrier at {carrier}")
    chosen = _account(container, export_accounts)
    if chosen is None:
        print("   no migrated account holds a temporary number: nothing to call with")
        return 1
    login, domain, password, temporary = chosen
    own = _sql(container, f"SELECT number FROM sipwave_number WHERE login = '{login}' "
                          "AND kind = 'number' ORDER BY number LIMIT 1")  # fmt: skip
    print(f"   account {login}@{domain}: own number {own} (at the old operator), "
          f"temporary number {temporary}")  # fmt: skip
    registered = sipp.run(
        "register.xml", f"{proxy}:5060", PHONE_ADDRESS,
        rows=[[login, domain, sipp.credentials(login, password), f"{PHONE_ADDRESS}:{PHONE_PORT}"]],
        local_port=PHONE_PORT + 1, trace_messages=False,
    )  # fmt: skip
    print(f"   its phone registers from {PHONE_ADDRESS}: "
          f"{'ok' if registered.successful == 1 else 'FAILED'}")  # fmt: skip
    # The carrier: answers the proxy's OPTIONS probes (-aa, each counts as a call for -m)
    # and the call, until it is stopped.
    carrier_side = sipp.run(
        "answer.xml", f"{proxy}:5060", carrier, local_port=5060, background=True,
        calls=1000, timeout_s=PROBE_WAIT_S + 20, extra=["-aa"],
    )  # fmt: skip
    failures = registered.successful != 1
    try:
        deadline = time.monotonic() + PROBE_WAIT_S
        while not _carrier_active(container, carrier) and time.monotonic() < deadline:
            time.sleep(0.5)
        outbound = sipp.run(
            "call_auth.xml", f"{proxy}:5060", CALLER_ADDRESS,
            rows=[[login, domain, sipp.credentials(login, password), CALLED_OUTSIDE, domain]],
        )  # fmt: skip
    finally:
        carrier_side[0].terminate()
        carrier_result = sipp.wait(*carrier_side, timeout_s=10)
    invite = carrier_result.messages.split("INVITE sip:", 1)[-1] if carrier_result.messages else ""
    print(f"   outbound {login} -> {CALLED_OUTSIDE}: "
          f"{'answered by the carrier' if outbound.successful == 1 else 'FAILED'}")  # fmt: skip
    print(f"     the carrier saw From {_header(invite, 'From')}")
    print(f"     and P-Asserted-Identity {_header(invite, 'P-Asserted-Identity')}")
    failures += outbound.successful != 1
    phone = _answering_phone(proxy)
    try:
        inbound = sipp.run(
            "call.xml", f"{proxy}:5060", carrier, local_port=CARRIER_CALLER_PORT,
            rows=[[PUBLIC_CALLER, carrier, temporary, proxy]],
        )  # fmt: skip
    finally:
        rang = sipp.wait(*phone, timeout_s=10)
    answered = inbound.successful == rang.successful == 1
    print(f"   inbound {PUBLIC_CALLER} -> {temporary} from the carrier: "
          f"{'rang the phone, answered' if answered else 'FAILED'}")  # fmt: skip
    failures += not answered
    if legacy:
        failures += _forwarded_call(container, legacy, export_accounts, (own, temporary))
    # One record per call above: outbound, inbound and, with a legacy platform, forwarded.
    calls = 3 if legacy else 2
    records = _sql(
        container,
        "SELECT direction, account, department, carrier, caller, callee, sip_code FROM acc "
        f"WHERE account = '{login}@{domain}' ORDER BY id DESC LIMIT {calls}",
    )
    print("   call records (acc): direction, account, department, carrier, caller, callee, code")
    for line in reversed(records.splitlines()):
        print(f"     {line.replace('|', ', ')}")
    failures += len(records.splitlines()) != calls
    return failures


def export_accounts(export: Path, number_plan: dict) -> dict:
    from ansible_collections.sipwave.platform.plugins.module_utils import e164, legacy_export

    return legacy_export.read_export(str(export), e164.plan_from_dict(number_plan)).accounts
