# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A wave's live accounts as dial-in rows for the PBX, and the report's ``dialin`` section.

The rows come from the legacy export (the account's authorised caller numbers, department and
numbers) and from the wave run's outcome per account: an account in a live state (phase 1,
consent pending, phase 2) keeps dial-in; a closed, rejected or rolled-back account has none.
An account whose own numbers are still at the old operator holds a temporary number (the
outcome's ``temporary_held``): its row carries it as ``screened_number``, presented by a PBX
whose carrier accepts only numbers it holds, as the proxy does toward such carriers.
The export carries no PIN (see the export contract), so wave rows never have one; no password
or hash of the export reaches a row, a message or the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ansible_collections.sipwave.platform.plugins.module_utils.dialin_db import wave_source
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import (
    Account,
    Export,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import LIVE_STATES
from ansible_collections.sipwave.platform.plugins.module_utils.wave_report import fold_dialin

# Cost centre of a wave account whose export row leaves the department empty.
DEFAULT_DEPARTMENT = "unassigned"
DEFAULT_MAX_CALLS = 1
# What an operator may allow a wave account beyond the PBX's defaults for accounts without a
# PIN (sipwave_dialin_account_limits): the export has no such column.
LIMIT_KEYS = ("allowed_prefixes", "daily_minutes")
# A served account whose export row turned bad: the wave keeps it as it is ("kept").
KEPT_ACTION = "kept"
MAX_REPORTED = 50


@dataclass
class WaveDialin:
    """What a wave hands to every PBX, and what the reconciliation expects there."""

    wave: str
    operation: str
    source: str
    accounts: list[dict] = field(default_factory=list)  # dialin_access entries
    keep: list[str] = field(default_factory=list)  # left as they are on the PBX
    expected_accounts: int = 0
    expected_numbers: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def handed_numbers(self) -> int:
        return sum(len(entry["dialin_numbers"]) for entry in self.accounts)

    def as_dict(self) -> dict:
        return {
            "wave": self.wave,
            "operation": self.operation,
            "source": self.source,
            "accounts": self.accounts,
            "keep": self.keep,
            "expected": {"accounts": self.expected_accounts, "numbers": self.expected_numbers},
            "handed_to_pbx": {"accounts": len(self.accounts), "numbers": self.handed_numbers},
            "problems": self.problems,
        }


def wave_dialin(
    wave: str,
    operation: str,
    outcomes: Iterable[Mapping],
    export: Export | None,
    default_department: str = DEFAULT_DEPARTMENT,
    max_calls: int = DEFAULT_MAX_CALLS,
    limits: Mapping[str, Mapping] | None = None,
) -> WaveDialin:
    """The dial-in rows of a wave after a run (``operation`` apply or rollback).

    After a rollback the wave's source holds nothing: every account is back where it was
    before the wave, and an account live again belongs to the wave that migrated it first.
    """
    result = WaveDialin(wave=wave, operation=operation, source=wave_source(wave))
    if operation == "rollback":
        return result
    if export is None:
        raise ValueError("the export is needed to map an applied wave")
    live: list[Account] = []
    held: dict[str, str] = {}  # login -> the temporary number it holds after the run
    for outcome in outcomes:
        login = str(outcome["login"])
        if outcome.get("action") == KEPT_ACTION:
            result.keep.append(login)
        elif outcome.get("state") in LIVE_STATES:
            account = export.accounts.get(login)
            if account is None:
                result.problems.append(
                    f"{login}: live in the wave but not a good row of the export"
                )
            elif account.dialin_numbers:
                live.append(account)
                if outcome.get("temporary_held"):
                    held[login] = str(outcome["temporary_held"])
    shared = _shared_numbers(live, result.problems)
    for account in live:
        result.expected_accounts += 1
        result.expected_numbers += len(account.dialin_numbers)
        if not account.numbers:
            result.problems.append(
                f"{account.login} (line {account.line}): has dial-in numbers but no number of "
                "its own to present on calls out"
            )
            continue
        own_limits = (limits or {}).get(account.login) or {}
        result.accounts.append(
            {
                "id": account.login,
                "department": account.department or default_department,
                "number": account.numbers[0],
                # While its own numbers are at the old operator: what a PBX whose carrier
                # screens caller numbers presents instead (dialin_access clip_no_screening).
                **({"screened_number": held[account.login]} if account.login in held else {}),
                "dialin_numbers": [n for n in account.dialin_numbers if n not in shared],
                "max_calls": max_calls,
                **{key: own_limits[key] for key in LIMIT_KEYS if key in own_limits},
            }
        )
    return result


def _shared_numbers(accounts: Iterable[Account], problems: list[str]) -> set[str]:
    """Caller numbers several accounts authorise: a call from one could not be charged to an
    account, so none of them gets it and each clash is a problem (never a guess)."""
    owners: dict[str, list[Account]] = {}
    for account in accounts:
        for number in account.dialin_numbers:
            owners.setdefault(number, []).append(account)
    shared = {number for number, holders in owners.items() if len(holders) > 1}
    for number in sorted(shared):
        holders = ", ".join(f"{a.login} (line {a.line})" for a in owners[number])
        problems.append(f"dial-in number {number} is authorised for several accounts: {holders}")
    return shared


def _host_entry(mapping: Mapping, result: Mapping) -> dict:
    present = dict(result.get("present") or {"accounts": 0, "numbers": 0})
    held = dict(result.get("source_rows") or {"accounts": 0, "numbers": 0})
    conflicts = list(result.get("conflicts") or [])
    kept = len(mapping["keep"])
    all_arrived = (
        present["numbers"] == mapping["expected"]["numbers"]
        and present["accounts"] == mapping["handed_to_pbx"]["accounts"]
    )
    # The wave's source holds what was handed over, plus at most its kept accounts' rows.
    nothing_left_over = held["accounts"] - present["accounts"] <= kept and (
        kept > 0 or held["numbers"] == present["numbers"]
    )
    return {
        "present": present,
        "held_by_source": held,
        "without_pin": len(result.get("without_pin") or []),
        "conflicts": conflicts[:MAX_REPORTED],
        "changed": bool(result.get("changed")),
        "ok": not result.get("failed") and all_arrived and nothing_left_over and not conflicts,
    }


def report_section(mapping: Mapping, results: Mapping[str, Mapping]) -> dict:
    """The report's ``dialin`` section from the mapping (WaveDialin.as_dict()) and each PBX
    host's dialin_access result: expected, handed to the PBX, present per host, ok."""
    hosts = {host: _host_entry(mapping, result) for host, result in sorted(results.items())}
    problems = list(mapping["problems"])
    for host, entry in hosts.items():
        if not entry["ok"]:
            present, expected = entry["present"]["numbers"], mapping["expected"]["numbers"]
            problems.append(
                f"{host}: {present} of {expected} dial-in numbers present, "
                f"{len(entry['conflicts'])} conflict(s), "
                f"{entry['held_by_source']['numbers']} held by {mapping['source']}"
            )
    # Exposure, not a failure: anyone who forges one of these accounts' caller numbers from
    # the PSTN calls out on them (within the limits for accounts without a PIN). Every one is
    # listed, of every source, so that the operator sees them all.
    without_pin = sorted({a for r in results.values() for a in r.get("without_pin") or []})
    return {
        "source": mapping["source"],
        "operation": mapping["operation"],
        "expected": mapping["expected"],
        "handed_to_pbx": mapping["handed_to_pbx"],
        "kept_accounts": len(mapping["keep"]),
        "accounts_without_pin": {"count": len(without_pin), "accounts": without_pin},
        "hosts": hosts,
        "problems": problems[:MAX_REPORTED],
        "problem_count": len(problems),
        "ok": bool(hosts) and not problems and all(e["ok"] for e in hosts.values()),
    }


def with_dialin(report: dict, section: dict) -> dict:
    """The report with its ``dialin`` section; the reconciliation is ok only when both the
    database's and the PBXs' checks are, and the report is complete only when the section
    holds every PBX host the run expects. Recording again replaces the earlier section."""
    reconciliation = dict(report.get("reconciliation") or {})
    return fold_dialin({**report, "dialin": section, "reconciliation": reconciliation})
