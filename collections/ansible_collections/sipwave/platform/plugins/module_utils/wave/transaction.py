# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying plans: the SQL that turns the current rows into what the plans describe, the
audit rows and the wave's snapshot, all in one transaction with the routing generation
counted up. Wave runs and rollbacks both apply their plans through ``apply``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils import subscriber_db
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    ACCOUNT_COLUMNS,
    AccountPlan,
    Settings,
    State,
    now,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (
    BUMP_GENERATION,
    read_state,
)


@contextmanager
def transaction(conn: Database) -> Iterator[Any]:
    """A cursor whose work is rolled back when anything (also KeyboardInterrupt) escapes;
    committing is the caller's."""
    cursor = conn.connection.cursor()
    try:
        yield cursor
    except BaseException:
        conn.connection.rollback()
        raise
    finally:
        cursor.close()


def apply_to_state(state: State, plans: Iterable[AccountPlan], today: str) -> None:
    """Apply plans to the in-memory state: the after-view of each account, and what check
    mode reconciles against."""
    next_id = max(state.aliases, default=0) + 1
    for plan in plans:
        if plan.delete_account:
            state.accounts.pop(plan.login, None)
        elif plan.account_row is not None:
            state.accounts[plan.login] = plan.account_row
        for key, want in plan.subscribers.items():
            if want is None:
                state.subscribers.pop(key, None)
            else:
                state.subscribers[key] = want
        for i in plan.alias_remove:
            state.aliases.pop(i, None)
        for alias in plan.alias_add:
            state.aliases[next_id] = alias
            next_id += 1
        numbers = state.numbers.setdefault(plan.login, {})
        for key, want in plan.numbers.items():
            if want is None:
                numbers.pop(key, None)
            else:
                numbers[key] = want
        if plan.temporary_returned is not None:
            state.returned[plan.temporary_returned] = today


_WHERE_NUMBER = "number = {p} AND login = {p} AND kind = {p}"
_ALL_ACCOUNT_COLUMNS = (*ACCOUNT_COLUMNS, "updated_at", "run_id")


def _statements(
    conn: Database, plans: Sequence[AccountPlan], state: State, settings: Settings, today: str
) -> list[tuple[str, list[tuple]]]:
    """The SQL that turns ``state`` into what the plans describe, as (statement, rows)."""
    sub_remove, sub_update, sub_add = [], [], []
    alias_remove, alias_add = [], []
    number_delete, number_update, number_insert = [], [], []
    account_delete, account_update, account_insert = [], [], []
    returned = []
    at = now()
    run_id = settings.run_id
    columns = settings.number_columns
    for plan in plans:
        for key, want in plan.subscribers.items():
            if want is None:
                sub_remove.append(key)
            elif key in state.subscribers:
                sub_update.append((*want, *key))
            else:
                sub_add.append((*key, *want))
        alias_remove.extend((i,) for i in plan.alias_remove)
        alias_add.extend(plan.alias_add)
        have = state.numbers.get(plan.login, {})
        for (number, kind), want in plan.numbers.items():
            if want is None:
                number_delete.append((number, plan.login, kind))
            elif (number, kind) in have:
                number_update.append((want, *columns(number, kind), number, plan.login, kind))
            else:
                number_insert.append((number, plan.login, kind, want, *columns(number, kind)))
        if plan.temporary_returned is not None:
            returned.append(plan.temporary_returned)
        current = state.accounts.get(plan.login)
        if plan.delete_account:
            if current is not None:
                account_delete.append((plan.login,))
        elif plan.account_row is not None and current != plan.account_row:
            values = (*plan.account_row, at, run_id)
            if current is None:
                account_insert.append(values)
            else:
                account_update.append((*values[1:], plan.login))
    table = subscriber_db.TABLE
    assignments = ", ".join(f"{column} = {{p}}" for column in _ALL_ACCOUNT_COLUMNS[1:])
    return [
        (f"DELETE FROM {table} WHERE username = {{p}} AND domain = {{p}}", sub_remove),
        (f"UPDATE {table} SET ha1 = {{p}}, ha1b = {{p}} WHERE username = {{p}} AND domain = {{p}}",
         sub_update),
        (f"INSERT INTO {table} (username, domain, ha1, ha1b) VALUES ({{p}}, {{p}}, {{p}}, {{p}})",
         sub_add),
        ("DELETE FROM dbaliases WHERE id = {p}", alias_remove),
        ("INSERT INTO dbaliases (alias_username, alias_domain, username, domain) "
         "VALUES ({p}, {p}, {p}, {p})", alias_add),
        (f"DELETE FROM sipwave_number WHERE {_WHERE_NUMBER}", number_delete),
        (f"UPDATE sipwave_number SET state = {{p}}, site = {{p}}, carrier = {{p}} "
         f"WHERE {_WHERE_NUMBER}", number_update),
        ("INSERT INTO sipwave_number (number, login, kind, state, site, carrier) "
         "VALUES ({p}, {p}, {p}, {p}, {p}, {p})", number_insert),
        ("DELETE FROM sipwave_number_quarantine WHERE number = {p}", [(n,) for n in returned]),
        ("INSERT INTO sipwave_number_quarantine (number, returned_on) VALUES ({p}, {p})",
         [(n, today) for n in returned]),
        ("DELETE FROM sipwave_account WHERE login = {p}", account_delete),
        (f"UPDATE sipwave_account SET {assignments} WHERE login = {{p}}", account_update),
        (f"INSERT INTO sipwave_account ({', '.join(_ALL_ACCOUNT_COLUMNS)}) "
         f"VALUES ({', '.join(['{p}'] * len(_ALL_ACCOUNT_COLUMNS))})", account_insert),
    ]  # fmt: skip


# One encoder for every audit row: json.dumps(..., sort_keys=True) builds a new one per call,
# a third of the audit's cost for 100,000 rows.
_AUDIT_JSON = json.JSONEncoder(sort_keys=True).encode


def audit_rows(plans: Iterable[AccountPlan], wave: str, run_id: str) -> list[tuple]:
    at = now()
    encode = _AUDIT_JSON
    rows = []
    for plan in plans:
        if not plan.changed:
            continue
        after = plan.after if plan.reason is None else {**(plan.after or {}), "reason": plan.reason}
        if plan.refund is not None and plan.refund_run == run_id:
            after = {**(after or {}), "refund": plan.refund}
        if plan.refund_reversed is not None:
            after = {**(after or {}), "refund_reversed": plan.refund_reversed}
        rows.append(
            (at, run_id, wave, plan.login, plan.action, encode(plan.before), encode(after))
        )  # fmt: skip
    return rows


AUDIT_INSERT = (
    'INSERT INTO sipwave_audit (at, run_id, wave, login, action, "before", "after") '
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
)


def _execute(conn: Database, cursor: Any, statements: Iterable[tuple[str, list[tuple]]]) -> None:
    for statement, rows in statements:
        conn.executemany(cursor, conn.sql(statement), rows)


def snapshot_content(state: State, plans: Iterable[AccountPlan], covered: set[str]) -> dict:
    """The rows of accounts that no earlier run of the wave has recorded yet."""
    content: dict[str, list] = {
        "logins": [], "keys": [], "accounts": [], "numbers": [], "subscribers": [], "aliases": []
    }  # fmt: skip
    for plan in plans:
        if plan.login in covered or plan.action == "kept":
            continue
        login = plan.login
        content["logins"].append(login)
        content["keys"].extend([login, *key] for key in sorted(plan.scope_keys))
        if login in state.accounts:
            content["accounts"].append(list(state.accounts[login]))
        content["numbers"].extend(
            [number, login, kind, number_state]
            for (number, kind), number_state in sorted(state.numbers.get(login, {}).items())
        )
        content["subscribers"].extend(
            [*key, *state.subscribers[key]]
            for key in sorted(plan.scope_keys)
            if key in state.subscribers
        )
        content["aliases"].extend(list(state.aliases[i]) for i in sorted(plan.scope_alias_ids))
    return content


def read_snapshot(cursor: Any, conn: Database, wave: str) -> dict | None:
    cursor.execute(conn.sql("SELECT content FROM sipwave_snapshot WHERE wave = {p} ORDER BY id"),
                   (wave,))  # fmt: skip
    parts = [json.loads(row[0]) for row in cursor.fetchall()]
    if not parts:
        return None
    merged: dict[str, list] = {}
    for part in parts:
        for name, values in part.items():
            merged.setdefault(name, []).extend(values)
    return merged


def apply(
    conn: Database,
    cursor: Any,
    state: State,
    plans: Sequence[AccountPlan],
    settings: Settings,
    check_mode: bool,
    domains: Iterable[str],
    snapshot: dict | None = None,
) -> State:
    """Apply the changed plans: each gets its before and after view; outside check mode their
    rows, the snapshot's new part, the audit rows and the generation count are written and
    committed together, and the state is read back. Returns the state after the run."""
    changed = [p for p in plans if p.changed]
    for plan in changed:
        plan.before = state.view(plan.login, settings.new_identity(plan.login))
    today = settings.today.isoformat()
    statements = _statements(conn, changed, state, settings, today)
    apply_to_state(state, changed, today)
    for plan in changed:
        plan.after = state.view(plan.login, settings.new_identity(plan.login))
    if check_mode:
        return state
    if changed:
        if snapshot and snapshot["logins"]:
            statements.append((
                "INSERT INTO sipwave_snapshot (wave, taken_at, content) VALUES ({p}, {p}, {p})",
                [(settings.wave, now(), json.dumps(snapshot, sort_keys=True))],
            ))  # fmt: skip
        statements.append((AUDIT_INSERT, audit_rows(plans, settings.wave, settings.run_id)))
        statements.append((BUMP_GENERATION, [()]))
        _execute(conn, cursor, statements)
    conn.connection.commit()  # also the CREATE TABLEs of a run that found nothing to do
    return read_state(conn, cursor, domains) if changed else state
