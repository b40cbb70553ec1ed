#!/usr/bin/env python3
"""Show what `make demo` built: the lab proxy's release, its accounts, and live registrations.

Reads the lab inventory, asks the running containers (podman exec) and registers the lab's
demonstration accounts with SIPp over loopback.
"""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from sipwave_testlib import sipp  # noqa: E402

INVENTORY = ROOT / "inventories" / "lab"


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
    print("\nThe lab stays up: `make lab-down` removes it.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
