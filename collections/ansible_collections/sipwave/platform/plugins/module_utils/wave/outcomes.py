# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the wave module reads and returns: the accounts file its action plugin transferred
(hashes only), and a run's outcome as compact rows, counts and a diff without secrets."""

from __future__ import annotations

import base64
import json
import zlib

from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    TEMPORARY,
    MigrationError,
    RunResult,
    WaveAccount,
)

ACCOUNT_FIELDS = ("login", "domain", "legacy_ha1", "new_ha1")
# The accounts file the action plugin writes: {"columns": ACCOUNT_COLUMNS, "rows": [...]},
# one list per account (a list of one mapping per account is read too). For 100,000 accounts
# rows are written and read in half the time of mappings, and need no key per value.
ACCOUNT_COLUMNS = (
    "login", "domain", "department", "balance", "numbers", "dialin_numbers",
    "legacy_ha1", "legacy_ha1b", "new_ha1", "new_ha1b", "password_generated",
)  # fmt: skip


def account_rows(entries: list) -> dict:
    """Accounts as the module reads them from its accounts file: rows of ACCOUNT_COLUMNS (as
    the action plugin makes them) pass as they are, a mapping becomes its row."""
    return {
        "columns": list(ACCOUNT_COLUMNS),
        "rows": [
            [entry.get(name) for name in ACCOUNT_COLUMNS] if isinstance(entry, dict) else entry
            for entry in entries
        ],
    }


def wave_accounts(entries: list) -> list[WaveAccount]:
    """The accounts as WaveAccounts, from rows of ACCOUNT_COLUMNS (or one mapping each);
    MigrationError lists the entries that lack a value the engine needs, or repeat a login."""
    accounts, problems, seen = [], [], set()
    required = [ACCOUNT_COLUMNS.index(name) for name in ACCOUNT_FIELDS]
    for index, entry in enumerate(entries):
        row = [entry.get(name) for name in ACCOUNT_COLUMNS] if isinstance(entry, dict) else entry
        (login, domain, department, balance, numbers, dialin_numbers,
         legacy_ha1, legacy_ha1b, new_ha1, new_ha1b, generated) = row  # fmt: skip
        if not all(row[at] for at in required):
            missing = [ACCOUNT_COLUMNS[at] for at in required if not row[at]]
            problems.append(f"accounts[{index}] (login {login!r}) lacks {', '.join(missing)}")
            continue
        if login in seen:
            problems.append(f"accounts[{index}]: login {login!r} is listed twice")
            continue
        seen.add(login)
        accounts.append(
            WaveAccount(
                str(login), str(domain), str(department or ""), str(balance or "0.00"),
                tuple(numbers or ()), tuple(dialin_numbers or ()),
                (legacy_ha1, legacy_ha1b or ""), (new_ha1, new_ha1b or ""), bool(generated),
            )
        )  # fmt: skip
    if problems:
        raise MigrationError("invalid accounts:\n" + "\n".join(problems[:20]))
    return accounts


OUTCOME_COLUMNS = ("login", "action", "state", "identity", "grace_until", "refund",
                   "refund_run", "closure_numbers", "password_generated", "reason",
                   "temporary_number", "temporary_returned", "temporary_missing",
                   "temporary_held", "refund_reversed")  # fmt: skip


def pack(rows: list[list]) -> str:
    """Outcome rows as one text: the JSON of [columns, rows], zlib-compressed, base64. As JSON
    text inside the module's JSON reply, 100,000 rows were 10.9 MB (every quote escaped);
    packed they are 0.7 MB, in 25 ms."""
    text = json.dumps([OUTCOME_COLUMNS, rows], separators=(",", ":"))
    return base64.b64encode(zlib.compress(text.encode(), 1)).decode("ascii")


def unpack(packed: str) -> list[dict]:
    """The per-account outcomes of account_outcomes (see pack) as one dictionary per account,
    without the columns that are null for it."""
    columns, rows = json.loads(zlib.decompress(base64.b64decode(packed, validate=True)))
    return [
        {name: value for name, value in zip(columns, row, strict=True) if value is not None}
        for row in rows
    ]


def outcomes_of(run: dict) -> list[dict]:
    """A wave run's per-account outcomes: from a registered task result (packed, see unpack)
    or from a report (a list under accounts)."""
    if run.get("accounts") is not None:
        return list(run["accounts"])
    return unpack(run["account_outcomes"]) if run.get("account_outcomes") else []


def load_accounts(path: str | None) -> list:
    """The accounts of the accounts file: rows of ACCOUNT_COLUMNS, or mappings."""
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except (OSError, ValueError) as exc:
        raise MigrationError(f"cannot read the accounts file {path}: {exc}") from exc
    if isinstance(entries, dict):
        columns, rows = entries.get("columns"), entries.get("rows")
        if (
            columns != list(ACCOUNT_COLUMNS)
            or not isinstance(rows, list)
            or not all(isinstance(row, list) and len(row) == len(columns) for row in rows)
        ):
            raise MigrationError(f"the accounts file {path} is not a list of accounts or rows")
        return rows
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise MigrationError(f"the accounts file {path} is not a list of accounts")
    return entries


def outcome_rows(result: RunResult) -> list[list]:
    rows = []
    for plan in result.plans:
        row = plan.account_row
        served = row is not None and row.current_username
        rows.append([
            plan.login,
            plan.action,
            row.state if row else None,
            f"{row.current_username}@{row.current_domain}" if served else None,
            row.grace_until if row else None,
            plan.refund,
            plan.refund_run,
            plan.closure_numbers,
            True if plan.password_generated else None,
            plan.reason,
            # The temporary number this run gave the account (None when it kept its own).
            next((n for (n, kind), want in plan.numbers.items()
                  if kind == TEMPORARY and want is not None), None),
            plan.temporary_returned,
            True if plan.temporary_missing else None,
            plan.temporary_held,
            plan.refund_reversed,
        ])  # fmt: skip
    return rows


def counts(rows: list[list]) -> dict:
    """Accounts per action and per final state, from outcome_rows()."""
    actions: dict[str, int] = {}
    states: dict[str, int] = {}
    for row in rows:
        actions[row[1]] = actions.get(row[1], 0) + 1
        if row[2]:
            states[row[2]] = states.get(row[2], 0) + 1
    return {"accounts": len(rows), "outcomes": actions, "states": states}


def describe(view: dict | None) -> str:
    if view is None:
        return "(not migrated: served by the legacy platform)"
    parts = [view["state"]]
    if view["registers_as"]:
        parts.append("registers as " + ", ".join(view["registers_as"]))
    if view["grace_until"]:
        parts.append(f"grace until {view['grace_until']}")
    numbers = [f"{n} {s}" for n, s in view["numbers"].items()]
    if numbers:
        parts.append("numbers " + ", ".join(numbers))
    dialin = [f"{n} {s}" for n, s in view["dialin_numbers"].items()]
    if dialin:
        parts.append("dial-in " + ", ".join(dialin))
    if view.get("temporary_number"):
        parts.append(f"temporary number {view['temporary_number']}")
    return "; ".join(parts)


def diff(result: RunResult) -> dict:
    changed = [plan for plan in result.plans if plan.changed]
    return {
        "before": "".join(f"{p.login}: {describe(p.before)}\n" for p in changed),
        "after": "".join(f"{p.login}: {p.action}{_why(p)}: {describe(p.after)}\n" for p in changed),
    }


def _why(plan) -> str:
    """Why a served account changes state without a decision of its own (the undecided
    policy); a rejected row's reason stays in the report."""
    return f" ({plan.reason})" if plan.reason and plan.action != "rejected" else ""
