# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One JSON report per wave run, merged across the hosts the run applied the wave to.

Every host's task result (the wave module's, unpacked by the action plugin) is added to the
run's report under a lock as soon as that host is done, so a run killed between hosts leaves
a report that says which hosts are missing. The report is ``complete`` only when every host
of the play reported, every reconciliation passed, all hosts hold the same state of every
account and, when the run has PBX hosts (``reconciliation.dialin_hosts_expected``), the
``dialin`` section of every one of them is in and reconciled; notifications act on complete
reports only. A report never holds a secret: only the fields below are copied from the task
result.

Refunds: every closed account carries the refund recorded at its closure and the run that
recorded it (``refund_run``), also when an earlier run of the wave (a killed one, say) closed
it; ``refunds`` lists each once with ``recorded_by``, and ``refunds.recorded_by_this_run``
says what this run recorded itself.
"""

from __future__ import annotations

import os
from collections import Counter
from decimal import Decimal

from ansible_collections.sipwave.platform.plugins.module_utils.files import locked_json_update

RUN_FIELDS = ("operation", "wave", "phase", "run_id", "today", "export", "bad_rows",
              "dropped_parts", "not_carried", "actions_for_customer_care",
              "limit_to")  # fmt: skip
# The report of a run limited to some accounts (-e account=LOGIN) ends in this: whoever reads
# "the wave's newest report" as the whole wave (notifications, cutover, status) skips it.
LIMITED_SUFFIX = ".accounts.json"
HOST_FIELDS = ("changed", "counts", "reconciliation", "refunds", "snapshot_taken_for",
               "routing_generation", "failed", "msg")  # fmt: skip
# What every host must agree on for each account after the run (closure_numbers: a run
# killed between hosts and re-run with another closure_numbers setting leaves a closed
# account's numbers kept on one host and released on the other, which is never hidden).
STATE_FIELDS = ("state", "identity", "grace_until", "closure_numbers")
UNCHANGED = ("unchanged", "kept")


def report_path(report_dir: str, wave: str, run_id: str, limited: bool = False) -> str:
    suffix = LIMITED_SUFFIX if limited else ".json"
    return os.path.join(report_dir, f"{wave}-{run_id}{suffix}")


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
        if _merge_refund(known, account):
            disagreements.append(login)
    return disagreements


def _merge_refund(known: dict, account: dict) -> bool:
    """One refund per closed account: where hosts closed it in different runs (a run killed
    between them, then re-run), the first run that recorded it. True when the hosts
    recorded different amounts."""
    if account.get("refund") is None:
        return False
    if known.get("refund") is None:
        known["refund"] = account["refund"]
        known["refund_run"] = account.get("refund_run")
        return False
    if Decimal(known["refund"]) != Decimal(account["refund"]):
        return True
    runs = [r for r in (known.get("refund_run"), account.get("refund_run")) if r]
    known["refund_run"] = min(runs, default=None)  # run ids begin with their UTC time
    return False


def _total(amounts) -> str:
    return str(sum((Decimal(amount) for amount in amounts), Decimal("0.00")))


def _refunds(accounts: list[dict], run_id: str | None) -> dict:
    """Every closed account's refund once, with the run that recorded it."""
    listed = [
        {"login": a["login"], "amount": a["refund"], "recorded_by": a.get("refund_run")}
        for a in accounts
        if a.get("refund") is not None
    ]
    now = [entry for entry in listed if entry["recorded_by"] == run_id]
    return {
        "total": _total(entry["amount"] for entry in listed),
        "accounts": listed,
        "recorded_by_this_run": {
            "total": _total(entry["amount"] for entry in now),
            "accounts": len(now),
        },
    }


def _closure_conflicts(hosts: dict) -> dict | None:
    """Closed accounts whose numbers kept their closure's decision against the run's setting,
    as the hosts reported them (see wave.plan.closure_conflicts_summary)."""
    found = [
        (s.get("reconciliation") or {}).get("closure_numbers_conflicts") for s in hosts.values()
    ]
    found = [conflict for conflict in found if conflict]
    return max(found, key=lambda conflict: conflict["count"]) if found else None


def _summary(report: dict) -> None:
    """The run-wide fields computed from the host sections and the merged accounts."""
    accounts = report["accounts"]
    hosts = report["hosts"]
    report["counts"] = {
        "accounts": len(accounts),
        "outcomes": dict(Counter(a["action"] for a in accounts)),
        "states": dict(Counter(a["state"] for a in accounts if a.get("state"))),
    }
    report["refunds"] = _refunds(accounts, report.get("run_id"))
    hosts_ok = {h: not s.get("failed") and bool((s.get("reconciliation") or {}).get("ok"))
                for h, s in sorted(hosts.items())}  # fmt: skip
    reconciliation = {
        "ok": all(hosts_ok.values()) and not report["disagreements"],
        "hosts": hosts_ok,
    }
    dialin_expected = (report.get("reconciliation") or {}).get("dialin_hosts_expected")
    if dialin_expected:
        reconciliation["dialin_hosts_expected"] = dialin_expected
    conflicts = _closure_conflicts(hosts)
    if conflicts:
        reconciliation["closure_numbers_conflicts"] = conflicts
    report["reconciliation"] = reconciliation
    report["hosts_reported"] = sorted(hosts)
    if "dialin" in report:
        fold_dialin(report)
    else:
        refresh_completeness(report)


def fold_dialin(report: dict) -> dict:
    """Fold the report's ``dialin`` section into its reconciliation and completeness: the
    reconciliation is ok only when both the database's and the PBXs' checks are."""
    reconciliation = report.setdefault("reconciliation", {})
    database_ok = reconciliation.get("database_ok", reconciliation.get("ok", True))
    dialin_ok = bool(report["dialin"].get("ok"))
    reconciliation.update(database_ok=database_ok, dialin_ok=dialin_ok,
                          ok=database_ok and dialin_ok)  # fmt: skip
    refresh_completeness(report)
    return report


def _dialin_reasons(report: dict) -> list[str]:
    expected = (report.get("reconciliation") or {}).get("dialin_hosts_expected") or []
    section = report.get("dialin")
    if section is None:
        if not expected:
            return []
        return [
            "no dial-in section (expected from " + ", ".join(expected) + "): the run stopped "
            "before the PBXs were checked; run wave_dialin.yml (or the wave again)"
        ]
    reasons = []
    missing = [h for h in expected if h not in (section.get("hosts") or {})]
    if missing:
        reasons.append("no dial-in result from " + ", ".join(missing))
    if not section.get("ok"):
        problems = section.get("problems") or []
        reasons.append("dial-in not reconciled" + (": " + "; ".join(problems[:3]) if problems
                                                   else ""))  # fmt: skip
    return reasons


def refresh_completeness(report: dict) -> dict:
    """``complete`` and ``incomplete_because`` from every host's section, their agreement and
    the dial-in section the run expects."""
    hosts = report.get("hosts") or {}
    missing = [h for h in report.get("hosts_expected") or [] if h not in hosts]
    failed = sorted(h for h, ok in (report.get("reconciliation") or {}).get("hosts", {}).items()
                    if not ok)  # fmt: skip
    reasons = []
    if missing:
        reasons.append("no result from " + ", ".join(missing))
    if failed:
        reasons.append("failed or not reconciled on " + ", ".join(failed))
    if report.get("disagreements"):
        reasons.append(f"hosts disagree on {len(report['disagreements'])} accounts")
    reasons.extend(_dialin_reasons(report))
    report["incomplete_because"] = reasons
    report["complete"] = not reasons
    return report


def merge_host_result(
    report: dict | None,
    host: str,
    result: dict,
    expected: list[str],
    dialin_hosts: list[str] | tuple[str, ...] = (),
) -> dict:
    """The run's report with ``host``'s result added (or replaced). ``dialin_hosts``: the PBX
    hosts whose dial-in result the run's report must hold before it is complete."""
    if report is None:
        report = {name: result[name] for name in RUN_FIELDS if name in result}
        report.update(hosts={}, accounts=[], disagreements=[], hosts_expected=[])
    report["hosts_expected"] = sorted(set(report["hosts_expected"]) | set(expected) | {host})
    reconciliation = report.setdefault("reconciliation", {})
    dialin_expected = set(reconciliation.get("dialin_hosts_expected") or []) | set(dialin_hosts)
    if dialin_expected:
        reconciliation["dialin_hosts_expected"] = sorted(dialin_expected)
    report["hosts"][host] = {name: result[name] for name in HOST_FIELDS if name in result}
    merged = {a["login"]: a for a in report["accounts"]}
    disagreements = set(report["disagreements"])
    disagreements.update(_merge_accounts(merged, result.get("accounts") or []))
    report["accounts"] = list(merged.values())
    report["disagreements"] = sorted(disagreements)
    _summary(report)
    return report


def add_host_result(
    report_dir: str,
    host: str,
    result: dict,
    expected: list[str],
    dialin_hosts: list[str] | tuple[str, ...] = (),
) -> str:
    """Add a host's result to its run's report file; safe with hosts finishing at once."""
    os.makedirs(report_dir, exist_ok=True)
    path = report_path(report_dir, result["wave"], result["run_id"], bool(result.get("limit_to")))
    # Under the report directory's lock: hosts finishing at once never lose each other's part.
    locked_json_update(
        path, lambda report: merge_host_result(report, host, result, expected, dialin_hosts)
    )
    return path
