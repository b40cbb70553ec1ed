#!/usr/bin/env python3
"""Show what `make demo` built: the lab proxy's release, its accounts, live registrations and
the summary of the last wave report.

Reads the lab inventory, asks the running containers (podman exec), registers the lab's
demonstration accounts with SIPp over loopback and reads reports/<wave>-<run>.json.
"""

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from sipwave_testlib import sipp  # noqa: E402

INVENTORY = ROOT / "inventories" / "lab"
REPORTS = ROOT / "reports"


def container_output(container: str, *command: str) -> str:
    return subprocess.run(
        ["podman", "exec", container, *command], check=True, capture_output=True, text=True
    ).stdout.strip()


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
    print_wave_report()
    print("\nThe lab stays up: `make lab-down` removes it.")
    return 1 if failures else 0


def print_wave_report() -> None:
    """The newest wave report's summary; it never holds a secret, so it can all be shown."""
    reports = sorted(REPORTS.glob("*.json"), key=lambda path: path.stat().st_mtime)
    if not reports:
        print("\n== no wave report under reports/ yet")
        return
    report = json.loads(reports[-1].read_text())
    print(f"\n== wave {report.get('wave')} phase {report.get('phase')} ({reports[-1].name})")
    export = report.get("export") or {}
    if export:
        print(f"   export: {export['rows']} rows, {export['good']} good, {export['bad']} bad")
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
        print(f"   refunds: {refunds.get('total')} for {len(refunds.get('accounts', []))} accounts")


if __name__ == "__main__":
    sys.exit(main())
