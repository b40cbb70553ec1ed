# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One JSON report per wave run, merged across the hosts the run applied the wave to.

Every host's task result (the wave module's, unpacked by the action plugin) is added to the
run's report under a lock as soon as that host is done, so a run killed between hosts leaves
a report that says which hosts are missing. The report is ``complete`` only when every host
of the play reported, every reconciliation passed and all hosts hold the same state of every
account; notifications act on complete reports only. A report never holds a secret: only the
fields below are copied from the task result.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections import Counter
from decimal import Decimal

RUN_FIELDS = ("operation", "wave", "phase", "run_id", "today", "export", "bad_rows")
HOST_FIELDS = ("changed", "counts", "reconciliation", "refunds", "snapshot_taken_for",
               "routing_generation", "failed", "msg")  # fmt: skip
# What every host must agree on for each account after the run.
STATE_FIELDS = ("state", "identity", "grace_until")
UNCHANGED = ("unchanged", "kept")


def report_path(report_dir: str, wave: str, run_id: str) -> str:
    return os.path.join(report_dir, f"{wave}-{run_id}.json")


def _merge_accounts(merged: dict[str, dict], accounts: list[dict]) -> list[str]:
    """Fold one host's per-account outcomes into ``merged``; returns disagreements."""
    disagreements = []
    for account in accounts:
        login = account["login"]
        known = merged.get(login)
        if known is None:
            merged[login] = dict(account)
            continue
        if any(known.get(name) != account.get(name) for name in STATE_FIELDS):
            disagreements.append(login)
        # The run changed the account where any host changed it (a killed run may have
        # changed it on one host already); the refund is the one of that change.
        if known.get("action") in UNCHANGED and account.get("action") not in UNCHANGED:
            known["action"] = account["action"]
        if "refund" in account and "refund" not in known:
            known["refund"] = account["refund"]
    return disagreements


def _summary(report: dict) -> None:
    """The run-wide fields computed from the host sections and the merged accounts."""
    accounts = report["accounts"]
    hosts = report["hosts"]
    refunds = [(a["login"], a["refund"]) for a in accounts if a.get("refund") is not None]
    report["counts"] = {
        "accounts": len(accounts),
        "outcomes": dict(Counter(a["action"] for a in accounts)),
        "states": dict(Counter(a["state"] for a in accounts if a.get("state"))),
    }
    report["refunds"] = {
        "total": str(sum((Decimal(amount) for _login, amount in refunds), Decimal("0.00"))),
        "accounts": [{"login": login, "amount": amount} for login, amount in refunds],
    }
    missing = [h for h in report["hosts_expected"] if h not in hosts]
    failed = sorted(h for h, s in hosts.items() if s.get("failed") or
                    not (s.get("reconciliation") or {}).get("ok"))  # fmt: skip
    reasons = []
    if missing:
        reasons.append("no result from " + ", ".join(missing))
    if failed:
        reasons.append("failed or not reconciled on " + ", ".join(failed))
    if report["disagreements"]:
        reasons.append(f"hosts disagree on {len(report['disagreements'])} accounts")
    report["reconciliation"] = {"ok": not failed and not report["disagreements"],
                                "hosts": {h: not s.get("failed") and bool(
                                    (s.get("reconciliation") or {}).get("ok"))
                                    for h, s in sorted(hosts.items())}}  # fmt: skip
    report["hosts_reported"] = sorted(hosts)
    report["incomplete_because"] = reasons
    report["complete"] = not reasons


def merge_host_result(report: dict | None, host: str, result: dict, expected: list[str]) -> dict:
    """The run's report with ``host``'s result added (or replaced)."""
    if report is None:
        report = {name: result[name] for name in RUN_FIELDS if name in result}
        report.update(hosts={}, accounts=[], disagreements=[], hosts_expected=[])
    report["hosts_expected"] = sorted(set(report["hosts_expected"]) | set(expected) | {host})
    report["hosts"][host] = {name: result[name] for name in HOST_FIELDS if name in result}
    merged = {a["login"]: a for a in report["accounts"]}
    disagreements = set(report["disagreements"])
    disagreements.update(_merge_accounts(merged, result.get("accounts") or []))
    report["accounts"] = list(merged.values())
    report["disagreements"] = sorted(disagreements)
    _summary(report)
    return report


def add_host_result(report_dir: str, host: str, result: dict, expected: list[str]) -> str:
    """Add a host's result to its run's report file; safe with hosts finishing at once."""
    os.makedirs(report_dir, exist_ok=True)
    path = report_path(report_dir, result["wave"], result["run_id"])
    directory = os.open(report_dir, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        report = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                report = json.load(handle)
        report = merge_host_result(report, host, result, expected)
        # Written aside and renamed: a reader never sees half a report.
        with tempfile.NamedTemporaryFile("w", dir=report_dir, prefix=".report-", suffix=".tmp",
                                         delete=False, encoding="utf-8") as handle:  # fmt: skip
            json.dump(report, handle, indent=1, sort_keys=True)
            handle.write("\n")
        os.replace(handle.name, path)
    finally:
        fcntl.flock(directory, fcntl.LOCK_UN)
        os.close(directory)
    return path
