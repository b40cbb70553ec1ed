#!/usr/bin/env python3
"""Show what `make demo` built: the lab proxy's release, its accounts, live registrations and
the summary of the last wave report.

Reads the lab inventory, asks the running containers (podman exec), registers the lab's
demonstration accounts with SIPp over loopback and reads reports/<wave>-<run>.json.
"""

import http.client
import json
import ssl
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import demo_calls  # noqa: E402  (beside this file)
from demo_calls import container_output  # noqa: E402
from demo_journeys import print_journeys  # noqa: E402
from sipwave_testlib import sipp  # noqa: E402

sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.sipwave.platform.plugins.module_utils import (  # noqa: E402
    credentials,
    e164,
    legacy_export,
    provisioning,
)

INVENTORY = ROOT / "inventories" / "lab"
REPORTS = ROOT / "reports"
# The address the report's own requests come from (loopback, like every lab client).
CLIENT_ADDRESS = "127.0.10.200"
DIALIN_DATABASE = "/var/lib/asterisk/sipwave/dialin.sqlite"
PROVISIONING_ROOT = "/srv/sipwave-provisioning"
PROVISIONING_CA = "/etc/sipwave-provisioning/tls/ca.crt"
# Customers of the demo's wave 1 whose timelines are shown (the Makefile's demo moves the
# first to phase 2 on its consent and rolls the second back; the third stays in phase 1; the
# fourth migrates without its phone, whose MAC is malformed; the fifth's row is rejected).
DEMO_CUSTOMERS = ["481200000", "481200002", "481200006", "481200506", "481200508"]


def main() -> int:
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())
    proxies = hosts["all"]["children"]["lab"]["children"]["proxies"]["hosts"]
    sip = yaml.safe_load((INVENTORY / "group_vars" / "all" / "sip.yml").read_text())
    settings = yaml.safe_load((INVENTORY / "group_vars" / "proxies" / "kamailio.yml").read_text())
    domains = {
        "{{ sipwave_legacy_domain }}": sip["sipwave_legacy_domain"],
        "{{ sipwave_new_domain }}": sip["sipwave_new_domain"],
    }
    failures = 0
    for name, host_vars in proxies.items():
        container, address = f"sipwave-lab-{name}", host_vars["lab_address"]
        version = container_output(container, "kamailio", "-v").splitlines()[0]
        release = container_output(container, "readlink", "/etc/kamailio/sipwave/current")
        counts = container_output(
            container,
            "sqlite3",
            "/var/lib/kamailio/sipwave.sqlite",
            "SELECT domain, COUNT(*) FROM subscriber GROUP BY domain",
        )
        print(f"\n== {name} ({container}) on {address}:5060")
        print(f"   {version}")
        print(f"   routing: Python KEMI router, release {release.rsplit('/', 1)[-1]}")
        for line in counts.splitlines():
            domain, count = line.split("|")
            print(f"   subscribers in {domain}: {count} (HA1 only)")
        for account in settings["kamailio_subscribers"]:
            domain = domains.get(account["domain"], account["domain"])
            row = [
                account["username"],
                domain,
                sipp.credentials(account["username"], account["password"]),
                "127.0.10.200:5099",
            ]
            result = sipp.run("register.xml", f"{address}:5060", "127.0.10.200", rows=[row])
            status = "registered (digest auth)" if result.successful == 1 else "FAILED"
            failures += result.successful != 1
            print(f"   REGISTER {account['username']}@{domain}: {status}")
    migration = yaml.safe_load((INVENTORY / "group_vars/all/migration.yml").read_text())
    accounts = demo_calls.export_accounts(
        INVENTORY / "files" / "legacy_export.csv", migration["sipwave_number_plan"]
    )
    for name, host_vars in proxies.items():
        failures += demo_calls.print_calls(
            f"sipwave-lab-{name}", host_vars["lab_address"], sip["sipwave_carrier_address"],
            accounts, next(iter(lab_group(hosts, "legacy").values()), {}).get("lab_address", ""),
        )  # fmt: skip
    failures += print_pbx(lab_group(hosts, "pbx"))
    failures += print_provisioning(lab_group(hosts, "provisioning"))
    print_wave_report()
    first_proxy = f"sipwave-lab-{next(iter(proxies))}"
    print_journeys(first_proxy, REPORTS, sys.argv[1:] or DEMO_CUSTOMERS)
    print("\nThe lab stays up: `make lab-down` removes it.")
    return 1 if failures else 0


def lab_group(hosts: dict, group: str) -> dict:
    return hosts["all"]["children"]["lab"]["children"].get(group, {}).get("hosts") or {}


def print_pbx(pbx_hosts: dict) -> int:
    """Asterisk's version, its PJSIP endpoints and the dial-in accounts per source."""
    for name, host_vars in pbx_hosts.items():
        container = f"sipwave-lab-{name}"
        version = container_output(container, "asterisk", "-rx", "core show version")
        endpoints = container_output(container, "asterisk", "-rx", "pjsip show endpoints")
        named = [
            line.split()[1]
            for line in endpoints.splitlines()
            if line.strip().startswith("Endpoint:") and "<" not in line
        ]
        sources = container_output(
            container,
            "sqlite3",
            DIALIN_DATABASE,
            "SELECT a.source, COUNT(DISTINCT a.id), COUNT(n.number) FROM account a "
            "LEFT JOIN dialin_number n ON n.account_id = a.id GROUP BY a.source",
        )
        print(f"\n== {name} ({container}) on {host_vars['lab_address']}")
        print(f"   {version.split(' built ')[0]}")
        print(f"   PJSIP endpoints (by address, no anonymous): {', '.join(named) or 'none'}")
        for line in sources.splitlines():
            source, accounts, numbers = line.split("|")
            print(f"   dial-in accounts from {source}: {accounts}, authorised numbers {numbers}")
    return 0


def first_device(export: Path, number_plan: dict) -> tuple[str, str]:
    """(vendor, MAC) of the first device of a good row, read as the role reads the export."""
    accounts = legacy_export.read_export(str(export), e164.plan_from_dict(number_plan)).accounts
    for account in accounts.values():
        for device in account.devices:
            return device.vendor, device.mac
    raise SystemExit(f"{export}: no device in the export")


def https_status(address: str, path: str, ca_file: str) -> tuple[int, int]:
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False  # the lab has no DNS: the CA is what is checked
    connection = http.client.HTTPSConnection(
        address, 443, context=context, timeout=10, source_address=(CLIENT_ADDRESS, 0)
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, len(response.read())
    finally:
        connection.close()


def print_provisioning(provisioning_hosts: dict) -> int:
    """What the phones find: rendered files, one fetch with a token, one without.

    The token is derived here as the role derives it; neither it nor the file is printed.
    """
    if not provisioning_hosts:
        return 0
    migration = yaml.safe_load((INVENTORY / "group_vars/all/migration.yml").read_text())
    export = INVENTORY / "files" / "legacy_export.csv"
    vendor, mac = first_device(export, migration["sipwave_number_plan"])
    file_name = provisioning.file_names(vendor, mac)[0][1]
    token = credentials.device_token(migration["sipwave_site_secret"], mac)
    failures = 0
    for name, host_vars in provisioning_hosts.items():
        container, address = f"sipwave-lab-{name}", host_vars["lab_address"]
        devices = container_output(
            container, "find", f"{PROVISIONING_ROOT}/devices", "-mindepth", "1", "-type", "d"
        )
        files = container_output(container, "find", f"{PROVISIONING_ROOT}/devices", "-type", "f")
        with tempfile.NamedTemporaryFile("w", suffix=".crt") as ca_file:
            ca_file.write(container_output(container, "cat", PROVISIONING_CA) + "\n")
            ca_file.flush()
            with_token = https_status(address, f"/p/{token}/{file_name}", ca_file.name)
            without = https_status(address, f"/p/{file_name}", ca_file.name)
        print(f"\n== {name} ({container}) on https://{address} (lab CA) and tftp")
        print(f"   phones: {len(devices.splitlines())}, files: {len(files.splitlines())}")
        print(f"   {vendor} {mac} fetches {file_name} with its token: HTTP {with_token[0]}, "
              f"{with_token[1]} bytes (not shown: it holds the credentials)")  # fmt: skip
        print(f"   the same file name without the token: HTTP {without[0]}")
        failures += with_token[0] != 200 or without[0] == 200
    return failures


def print_wave_report() -> None:
    """The summary of the newest report of a whole wave (an account's own run or rollback
    covers one account); it never holds a secret, so it can all be shown."""
    reports = sorted(REPORTS.glob("*.json"), key=lambda path: path.stat().st_mtime)
    reports = [
        r for r in reports if (json.loads(r.read_text()).get("counts") or {}).get("accounts", 0) > 1
    ] or reports
    if not reports:
        print("\n== no wave report under reports/ yet")
        return
    report = json.loads(reports[-1].read_text())
    print(f"\n== wave {report.get('wave')} phase {report.get('phase')} ({reports[-1].name})")
    export = report.get("export") or {}
    if export:
        print(
            f"   export: {export['rows']} rows, {export['good']} good, {export['bad']} bad; "
            f"{export.get('partial', 0)} migrate without a bad dial-in number or phone"
        )
        for reason, count in (export.get("bad_per_reason") or {}).items():
            print(f"     bad rows, {reason}: {count}")
    for line in (report.get("bad_rows") or [])[:5]:
        print(f"     {line}")
    counts = report.get("counts") or {}
    for name in ("outcomes", "states"):
        shown = ", ".join(f"{k} {v}" for k, v in sorted((counts.get(name) or {}).items()))
        print(f"   {name}: {shown}")
    reconciliation = report.get("reconciliation") or {}
    print(f"   reconciliation: {'ok' if reconciliation.get('ok') else 'FAILED'}")
    dialin = report.get("dialin")
    if dialin:
        expected = dialin["expected"]["numbers"]
        for host, entry in sorted(dialin["hosts"].items()):
            status = "ok" if entry["ok"] else "FAILED"
            print(f"   dial-in on {host}: {entry['present']['numbers']} of {expected} "
                  f"authorised numbers ({status})")  # fmt: skip
    refunds = report.get("refunds") or {}
    if refunds:
        line = f"   refunds: {refunds.get('total')} for {len(refunds.get('accounts', []))} accounts"
        this_run = refunds.get("recorded_by_this_run")
        if this_run is not None:
            line += f" (recorded by this run: {this_run['total']})"
        print(line)
    if not report.get("complete", True):
        print("   incomplete: " + "; ".join(report.get("incomplete_because") or []))


if __name__ == "__main__":
    sys.exit(main())
