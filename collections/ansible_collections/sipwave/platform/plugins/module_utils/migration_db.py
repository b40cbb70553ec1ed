# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A migration wave applied to the Kamailio database: plan, apply, reconcile, roll back.

Everything a wave run changes (subscribers, aliases, per-account state, numbers, audit rows,
the wave's snapshot) is written in one transaction, so a run killed at any point leaves the
database as it was and the next run starts from there. The tables are described in
the migration contract; only ``subscriber`` belongs to Kamailio's own schema.

Inputs carry HA1 hashes only (computed on the controller); what this file returns or raises
(views, audit rows, diffs, messages) never holds a hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils import subscriber_db
from ansible_collections.sipwave.platform.plugins.module_utils.subscriber_db import (
    Credentials,
    Database,
    Key,
)

STATES = ("pending", "phase1", "consent_pending", "phase2", "closed", "rejected")
LIVE_STATES = frozenset({"phase1", "consent_pending", "phase2"})
DECISIONS = ("migrate", "close")
CLOSURE_NUMBER_STATES = ("kept_for_porting", "released")
NUMBER = "number"
DIALIN = "dialin"
_IN_CHUNK = 500
_MAX_REPORTED = 50

_ACCOUNT_COLUMNS = (
    "login",
    "state",
    "wave",
    "legacy_domain",
    "current_username",
    "current_domain",
    "grace_until",
    "department",
    "balance",
)
# {p} is the backend's parameter marker, {serial} its auto-increment primary key.
_TABLES = (
    """CREATE TABLE IF NOT EXISTS dbaliases (
    id {serial},
    alias_username VARCHAR(64) DEFAULT '' NOT NULL,
    alias_domain VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS alias_idx ON dbaliases (alias_username, alias_domain)",
    "CREATE INDEX IF NOT EXISTS alias_target_idx ON dbaliases (username, domain)",
    """CREATE TABLE IF NOT EXISTS sipwave_account (
    login VARCHAR(64) PRIMARY KEY NOT NULL,
    state VARCHAR(16) NOT NULL,
    wave VARCHAR(64) NOT NULL,
    legacy_domain VARCHAR(64) NOT NULL,
    current_username VARCHAR(64),
    current_domain VARCHAR(64),
    grace_until VARCHAR(10),
    department VARCHAR(128) DEFAULT '' NOT NULL,
    balance VARCHAR(32) DEFAULT '0.00' NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    run_id VARCHAR(64) NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sipwave_number (
    number VARCHAR(16) NOT NULL,
    login VARCHAR(64) NOT NULL,
    kind VARCHAR(8) NOT NULL,
    state VARCHAR(16) NOT NULL,
    PRIMARY KEY (number, login, kind))""",
    "CREATE INDEX IF NOT EXISTS sipwave_number_login_idx ON sipwave_number (login)",
    """CREATE TABLE IF NOT EXISTS sipwave_audit (
    id {serial},
    at VARCHAR(32) NOT NULL,
    run_id VARCHAR(64) NOT NULL,
    wave VARCHAR(64) NOT NULL,
    login VARCHAR(64) NOT NULL,
    action VARCHAR(32) NOT NULL,
    "before" TEXT,
    "after" TEXT)""",
    """CREATE TABLE IF NOT EXISTS sipwave_snapshot (
    id {serial},
    wave VARCHAR(64) NOT NULL,
    taken_at VARCHAR(32) NOT NULL,
    content TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sipwave_consent (
    login VARCHAR(64) PRIMARY KEY NOT NULL,
    decision VARCHAR(16) NOT NULL,
    recorded_at VARCHAR(32) NOT NULL,
    source VARCHAR(255) DEFAULT '' NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sipwave_routing_generation (
    id INTEGER PRIMARY KEY NOT NULL,
    generation INTEGER NOT NULL)""",
    "INSERT INTO sipwave_routing_generation (id, generation) SELECT 1, 0 "
    "WHERE NOT EXISTS (SELECT 1 FROM sipwave_routing_generation)",
)
_ENGINE_TABLES = ("dbaliases", "sipwave_account", "sipwave_number", "sipwave_consent",
                  "sipwave_snapshot", "sipwave_routing_generation")  # fmt: skip
# Every committed change of routing data counts up the generation, which the sipwave_routing
# view hands to Kamailio's routing cache with the data (key g:generation): comparing the two
# tells whether a proxy's cache is older than its database, also after a run that was killed
# between its commit and the reload.
_BUMP_GENERATION = "UPDATE sipwave_routing_generation SET generation = generation + 1 WHERE id = 1"
_SERIAL = {"sqlite": "INTEGER PRIMARY KEY NOT NULL", "postgres": "SERIAL PRIMARY KEY"}
_ADVISORY_LOCK_KEY = 0x51C0A7E  # any constant: every wave run takes the same lock
_ALIAS_TABLE_VERSION = 1  # alias_db's schema version, checked by Kamailio at start


class MigrationError(Exception):
    """Bad input or an unusable database; the message never holds a secret."""


# -- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaveAccount:
    """One good export row as the module receives it: hashes only, never a password."""

    login: str
    legacy_domain: str
    department: str
    balance: str
    numbers: tuple[str, ...]
    dialin_numbers: tuple[str, ...]
    legacy_credentials: Credentials = field(repr=False)
    new_credentials: Credentials = field(repr=False)
    password_generated: bool = False


@dataclass(frozen=True)
class Settings:
    wave: str
    phase: int
    new_domain: str
    login_prefix: str
    grace_days: int
    closure_numbers: str
    today: date
    run_id: str

    def new_identity(self, login: str) -> Key:
        return (f"{self.login_prefix}{login}", self.new_domain)


def generated_password(site_secret: str, login: str, length: int = 16) -> str:
    """The phase-2 password of an account whose export only had an HA1.

    Derived from a site secret so that every run (and the notification that sends it) gets
    the same password without storing it anywhere.
    """
    if not site_secret:
        raise MigrationError("a site secret is needed to generate phase-2 passwords")
    digest = hmac.new(site_secret.encode(), f"phase2:{login}".encode(), hashlib.sha256)
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    value = int.from_bytes(digest.digest(), "big")
    chars = []
    for _ in range(length):
        value, index = divmod(value, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _alias_user(number: str) -> str:
    return number.lstrip("+")


def _label(key: Key | None) -> str | None:
    return None if key is None else f"{key[0]}@{key[1]}"


# -- the database's current content -----------------------------------------------------------


AccountRow = tuple  # the values of _ACCOUNT_COLUMNS, in that order
AliasRow = tuple[str, str, str, str]  # alias_username, alias_domain, username, domain


@dataclass
class State:
    """The rows a wave can touch, as read from the database (or as a plan leaves them)."""

    accounts: dict[str, AccountRow]
    numbers: dict[str, dict[tuple[str, str], str]]  # login -> {(number, kind): state}
    subscribers: dict[Key, Credentials]
    aliases: dict[int, AliasRow]  # by row id
    consent: dict[str, str]

    def aliases_by(self) -> tuple[dict[Key, list[int]], dict[str, list[int]]]:
        by_target: dict[Key, list[int]] = {}
        by_number: dict[str, list[int]] = {}
        for row_id, (alias_user, _alias_domain, user, domain) in self.aliases.items():
            by_target.setdefault((user, domain), []).append(row_id)
            by_number.setdefault(alias_user, []).append(row_id)
        return by_target, by_number


def empty_database() -> Database:
    """An empty in-memory stand-in for a database that does not exist yet (check mode on a
    host where the kamailio role has not created it either)."""
    connection = sqlite3.connect(":memory:")
    connection.execute(
        f"CREATE TABLE {subscriber_db.TABLE} (username TEXT, domain TEXT, ha1 TEXT, ha1b TEXT)"
    )
    return Database("sqlite", connection, sqlite3.Error)


def lock_for_writing(conn: Database, cursor: Any) -> None:
    """Serialise wave runs: a second run waits, then plans from what the first one wrote.

    SQLite's IMMEDIATE transaction takes the write lock at once (readers such as Kamailio
    carry on); PostgreSQL gets a transaction-scoped advisory lock.
    """
    if conn.backend == "sqlite":
        if conn.connection.in_transaction:
            conn.connection.commit()
        cursor.execute("BEGIN IMMEDIATE")
    else:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))


def ensure_tables(conn: Database, cursor: Any) -> None:
    for statement in _TABLES:
        cursor.execute(statement.format(serial=_SERIAL[conn.backend]))
    if _table_exists(conn, cursor, "version"):
        cursor.execute(
            conn.sql(
                "INSERT INTO version (table_name, table_version) SELECT {p}, {p} "
                "WHERE NOT EXISTS (SELECT 1 FROM version WHERE table_name = {p})"
            ),
            ("dbaliases", _ALIAS_TABLE_VERSION, "dbaliases"),
        )


def _table_exists(conn: Database, cursor: Any, name: str) -> bool:
    if conn.backend == "sqlite":
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    else:
        cursor.execute("SELECT 1 FROM information_schema.tables WHERE table_name = %s", (name,))
    return cursor.fetchone() is not None


def routing_generation(conn: Database, cursor: Any) -> int:
    """The generation of the routing data in the database (0 before the first change)."""
    if not _table_exists(conn, cursor, "sipwave_routing_generation"):
        return 0
    cursor.execute("SELECT generation FROM sipwave_routing_generation WHERE id = 1")
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _in_chunks(cursor: Any, conn: Database, select: str, values: Sequence) -> list[tuple]:
    rows: list[tuple] = []
    for start in range(0, len(values), _IN_CHUNK):
        chunk = list(values[start : start + _IN_CHUNK])
        cursor.execute(select.format(markers=", ".join([conn.placeholder] * len(chunk))), chunk)
        rows.extend(cursor.fetchall())
    return rows


def read_state(conn: Database, cursor: Any, domains: Iterable[str]) -> State:
    """Every engine row, and Kamailio's subscriber and alias rows of ``domains``.

    A table that does not exist yet (check mode before the first run) reads as empty.
    """
    present = {name for name in _ENGINE_TABLES if _table_exists(conn, cursor, name)}

    def rows(table: str, select: str) -> list[tuple]:
        if table not in present:
            return []
        cursor.execute(select)
        return cursor.fetchall()

    accounts = {
        row[0]: tuple(row)
        for row in rows(
            "sipwave_account", f"SELECT {', '.join(_ACCOUNT_COLUMNS)} FROM sipwave_account"
        )
    }
    numbers: dict[str, dict[tuple[str, str], str]] = {}
    for number, login, kind, state in rows(
        "sipwave_number", "SELECT number, login, kind, state FROM sipwave_number"
    ):
        numbers.setdefault(login, {})[(number, kind)] = state
    consent = dict(rows("sipwave_consent", "SELECT login, decision FROM sipwave_consent"))
    wanted = sorted(set(domains) | {row[3] for row in accounts.values()} - {""})
    subscribers = {
        (user, domain): (ha1, ha1b)
        for user, domain, ha1, ha1b in _in_chunks(
            cursor,
            conn,
            "SELECT username, domain, ha1, ha1b FROM subscriber WHERE domain IN ({markers})",
            wanted,
        )
    }
    aliases = {}
    if "dbaliases" in present:
        aliases = {
            row[0]: tuple(row[1:])
            for row in _in_chunks(
                cursor,
                conn,
                "SELECT id, alias_username, alias_domain, username, domain FROM dbaliases "
                "WHERE domain IN ({markers})",
                wanted,
            )
        }
    return State(accounts, numbers, subscribers, aliases, consent)


# -- planning ---------------------------------------------------------------------------------


@dataclass(slots=True)
class AccountPlan:
    """What one account looks like before and after, and the rows that make the difference."""

    login: str
    action: str  # phase1, phase2, closed, consent_pending, rejected, grace_ended, updated, ...
    before: dict | None
    after: dict | None
    account_row: AccountRow | None  # desired; None leaves the row alone (or deletes it)
    delete_account: bool = False
    subscribers: dict[Key, Credentials | None] = field(default_factory=dict, repr=False)
    alias_remove: list[int] = field(default_factory=list)
    alias_add: list[AliasRow] = field(default_factory=list)
    numbers: dict[tuple[str, str], str | None] = field(default_factory=dict)
    refund: str | None = None
    # The run that recorded the refund: this run for its own closures, the closing run (from
    # the audit log) for an account an earlier run closed. A refund is recorded once.
    refund_run: str | None = None
    # A closed account's numbers keep the decision recorded at its closure; the numbers whose
    # recorded state differs from this run's closure_numbers setting ({number: recorded}).
    closure_conflicts: dict[str, str] = field(default_factory=dict)
    # A closed account's numbers after the run: kept_for_porting or released (both, comma-
    # separated, when its closure left them apart); None for other accounts.
    closure_numbers: str | None = None
    password_generated: bool = False
    reason: str | None = None
    # The rows this account may own: what the wave's snapshot records and rollback restores.
    scope_keys: set[Key] = field(default_factory=set)
    scope_alias_ids: set[int] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return self.action not in ("unchanged", "kept")

    @property
    def touches_rows(self) -> bool:
        return bool(self.subscribers or self.alias_remove or self.alias_add or self.numbers)


def view(state: State, login: str, settings_new_identity: Key | None = None) -> dict | None:
    """What an operator sees of an account (state, identities, numbers): never a secret."""
    row = state.accounts.get(login)
    if row is None:
        return None
    values = dict(zip(_ACCOUNT_COLUMNS, row, strict=True))
    legacy = (login, values["legacy_domain"])
    current = (values["current_username"], values["current_domain"])
    identities = [
        _label(key)
        for key in (current, legacy, settings_new_identity)
        if key and key[0] and key in state.subscribers
    ]
    numbers = state.numbers.get(login, {})
    return {
        "state": values["state"],
        "identity": _label(current) if current[0] else None,
        "registers_as": sorted(set(identities)),
        "grace_until": values["grace_until"],
        "numbers": {n: s for (n, kind), s in sorted(numbers.items()) if kind == NUMBER},
        "dialin_numbers": {n: s for (n, kind), s in sorted(numbers.items()) if kind == DIALIN},
    }


def _target_state(phase: int, current: str | None, consent: str | None) -> str:
    if current == "closed":
        return "closed"
    if phase == 1:
        return current if current in ("consent_pending", "phase2") else "phase1"
    if consent == "migrate":
        return "phase2"
    if consent == "close":
        return "closed"
    return "consent_pending"


def _desired_rows(
    account: WaveAccount, target: str, grace_until: str | None, settings: Settings
) -> tuple[dict[Key, Credentials], list[AliasRow], dict[tuple[str, str], str], Key | None]:
    legacy = (account.login, account.legacy_domain)
    subscribers: dict[Key, Credentials] = {}
    identity: Key | None = None
    if target in ("phase1", "consent_pending"):
        identity = legacy
        subscribers[legacy] = account.legacy_credentials
    elif target == "phase2":
        identity = settings.new_identity(account.login)
        subscribers[identity] = account.new_credentials
        if grace_until and settings.today.isoformat() < grace_until:
            subscribers[legacy] = account.legacy_credentials
    if identity is not None:
        aliases = [(_alias_user(n), identity[1], *identity) for n in account.numbers]
        number_state = "active"
        dialin_state = "active"
    else:
        aliases = []
        number_state = settings.closure_numbers
        dialin_state = "released"
    numbers = {(n, NUMBER): number_state for n in account.numbers}
    numbers.update({(n, DIALIN): dialin_state for n in account.dialin_numbers})
    return subscribers, aliases, numbers, identity


def plan_wave(
    state: State,
    accounts: Sequence[WaveAccount],
    rejected: Mapping[str, str],
    settings: Settings,
) -> list[AccountPlan]:
    """One AccountPlan per input account (good or rejected), in input order."""
    by_target, by_number = state.aliases_by()
    plans = []
    for account in accounts:
        plans.append(_plan_account(state, account, settings, by_target, by_number))
    for login, reason in rejected.items():
        plans.append(_plan_rejected(state, login, reason, settings))
    return plans


def _grace_until(current: AccountRow | None, target: str, settings: Settings) -> str | None:
    if target != "phase2":
        return None
    if current is not None and current[1] == "phase2" and current[6]:
        return current[6]
    return (settings.today + timedelta(days=settings.grace_days)).isoformat()


def _plan_account(
    state: State,
    account: WaveAccount,
    settings: Settings,
    by_target: dict[Key, list[int]],
    by_number: dict[str, list[int]],
) -> AccountPlan:
    login = account.login
    current = state.accounts.get(login)
    current_state = current[1] if current else None
    target = _target_state(settings.phase, current_state, state.consent.get(login))
    grace_until = _grace_until(current, target, settings)
    want_subs, want_aliases, want_numbers, identity = _desired_rows(
        account, target, grace_until, settings
    )
    row = (
        login,
        target,
        settings.wave,
        account.legacy_domain,
        identity[0] if identity else None,
        identity[1] if identity else None,
        grace_until,
        account.department,
        account.balance,
    )
    plan = AccountPlan(login, "unchanged", None, None, row)
    plan.password_generated = account.password_generated and target == "phase2"

    # This loop runs once per account of a 100,000-account wave: plain lookups, few objects.
    scope = {(login, account.legacy_domain), settings.new_identity(login)}
    if current is not None and current[3]:
        scope.add((login, current[3]))
    subscribers = state.subscribers
    credentials_changed = False
    for key in scope:
        have, want = subscribers.get(key), want_subs.get(key)
        if have != want:
            plan.subscribers[key] = want
            credentials_changed = credentials_changed or (have is not None and want is not None)

    alias_ids: set[int] = set()
    for key in scope:
        alias_ids.update(by_target.get(key, ()))
    for number in account.numbers:
        alias_ids.update(by_number.get(_alias_user(number), ()))
    aliases = state.aliases
    if alias_ids:
        scope_domains = (account.legacy_domain, settings.new_domain, current and current[3])
        alias_ids = {i for i in alias_ids if aliases[i][1] in scope_domains}
    plan.scope_keys, plan.scope_alias_ids = scope, alias_ids
    have_aliases: dict[AliasRow, list[int]] = {}
    for i in sorted(alias_ids):
        have_aliases.setdefault(aliases[i], []).append(i)
    if list(have_aliases) != want_aliases or len(alias_ids) != len(have_aliases):
        for alias, ids in have_aliases.items():
            # Duplicate rows would make Kamailio's alias lookup ambiguous: keep one.
            plan.alias_remove.extend(ids if alias not in want_aliases else ids[1:])
        plan.alias_add = [a for a in dict.fromkeys(want_aliases) if a not in have_aliases]

    have_numbers = state.numbers.get(login, {})
    if current_state == "closed":
        plan.closure_conflicts = _keep_closure_decisions(have_numbers, want_numbers, settings)
    if target == "closed":
        states = {s for (_number, kind), s in want_numbers.items() if kind == NUMBER}
        plan.closure_numbers = ",".join(sorted(states)) or None
    if have_numbers != want_numbers:
        for key in have_numbers.keys() | want_numbers.keys():
            if have_numbers.get(key) != want_numbers.get(key):
                plan.numbers[key] = want_numbers.get(key)

    row_changed = current is None or tuple(current) != row
    if not (row_changed or plan.touches_rows):
        return plan
    plan.action = _action(current_state, target, plan, credentials_changed, settings)
    if target == "closed" and current_state != "closed":
        plan.refund = account.balance
        plan.refund_run = settings.run_id
    return plan


def _keep_closure_decisions(
    have: Mapping[tuple[str, str], str], want: dict[tuple[str, str], str], settings: Settings
) -> dict[str, str]:
    """An already closed account keeps each number as its closure left it (kept for porting
    or released): releasing a kept number cannot be undone, and a released one may be someone
    else's by now, so a later run's closure_numbers setting never flips it. Returns the numbers
    whose recorded state differs from the setting."""
    conflicts = {}
    for key in want:
        recorded = have.get(key)
        if key[1] == NUMBER and recorded in CLOSURE_NUMBER_STATES:
            want[key] = recorded
            if recorded != settings.closure_numbers:
                conflicts[key[0]] = recorded
    return conflicts


def _action(
    current: str | None, target: str, plan: AccountPlan, credentials: bool, settings: Settings
) -> str:
    if current != target:
        return target
    legacy_removed = any(
        want is None and key[1] != settings.new_domain for key, want in plan.subscribers.items()
    )
    if target == "phase2" and legacy_removed:
        return "grace_ended"
    return "credentials_changed" if credentials else "updated"


def _plan_rejected(state: State, login: str, reason: str, settings: Settings) -> AccountPlan:
    current = state.accounts.get(login)
    if current is not None and current[1] not in ("pending", "rejected"):
        # Already served: a bad row in a later export must not take the service away.
        plan = AccountPlan(login, "kept", None, None, None)
        plan.reason = reason
        return plan
    row = (login, "rejected", settings.wave, current[3] if current else "", None, None, None,
           current[7] if current else "", current[8] if current else "0.00")  # fmt: skip
    plan = AccountPlan(login, "unchanged", None, None, row)
    plan.reason = reason
    if current is None or tuple(current) != row:
        plan.action = "rejected"
    return plan


# -- applying ---------------------------------------------------------------------------------


def _apply_to_state(state: State, plans: Iterable[AccountPlan]) -> None:
    """Apply plans to the in-memory state: the after-view of each account, and what check
    mode reconciles against."""
    next_id = max(state.aliases, default=0) + 1
    for plan in plans:
        if plan.delete_account:
            state.accounts.pop(plan.login, None)
        elif plan.account_row is not None:
            state.accounts[plan.login] = tuple(plan.account_row)
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


_WHERE_NUMBER = "number = {p} AND login = {p} AND kind = {p}"
_ALL_ACCOUNT_COLUMNS = (*_ACCOUNT_COLUMNS, "updated_at", "run_id")


def _statements(
    conn: Database, plans: Sequence[AccountPlan], state: State, run_id: str
) -> list[tuple[str, list[tuple]]]:
    """The SQL that turns ``state`` into what the plans describe, as (statement, rows)."""
    sub_remove, sub_update, sub_add = [], [], []
    alias_remove, alias_add = [], []
    number_delete, number_update, number_insert = [], [], []
    account_delete, account_update, account_insert = [], [], []
    now = _now()
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
                number_update.append((want, number, plan.login, kind))
            else:
                number_insert.append((number, plan.login, kind, want))
        current = state.accounts.get(plan.login)
        if plan.delete_account:
            if current is not None:
                account_delete.append((plan.login,))
        elif plan.account_row is not None and current != tuple(plan.account_row):
            values = (*plan.account_row, now, run_id)
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
        (f"UPDATE sipwave_number SET state = {{p}} WHERE {_WHERE_NUMBER}", number_update),
        ("INSERT INTO sipwave_number (number, login, kind, state) VALUES ({p}, {p}, {p}, {p})",
         number_insert),
        ("DELETE FROM sipwave_account WHERE login = {p}", account_delete),
        (f"UPDATE sipwave_account SET {assignments} WHERE login = {{p}}", account_update),
        (f"INSERT INTO sipwave_account ({', '.join(_ALL_ACCOUNT_COLUMNS)}) "
         f"VALUES ({', '.join(['{p}'] * len(_ALL_ACCOUNT_COLUMNS))})", account_insert),
    ]  # fmt: skip


def _audit_rows(plans: Iterable[AccountPlan], wave: str, run_id: str) -> list[tuple]:
    now = _now()
    rows = []
    for plan in plans:
        if not plan.changed:
            continue
        after = plan.after if plan.reason is None else {**(plan.after or {}), "reason": plan.reason}
        if plan.refund is not None and plan.refund_run == run_id:
            after = {**(after or {}), "refund": plan.refund}
        rows.append(
            (now, run_id, wave, plan.login, plan.action, json.dumps(plan.before, sort_keys=True),
             json.dumps(after, sort_keys=True))
        )  # fmt: skip
    return rows


_AUDIT_INSERT = (
    'INSERT INTO sipwave_audit (at, run_id, wave, login, action, "before", "after") '
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
)


def _execute(conn: Database, cursor: Any, statements: Iterable[tuple[str, list[tuple]]]) -> None:
    for statement, rows in statements:
        conn.executemany(cursor, conn.sql(statement), rows)


def _snapshot_content(state: State, plans: Iterable[AccountPlan], covered: set[str]) -> dict:
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


def _read_snapshot(cursor: Any, conn: Database, wave: str) -> dict | None:
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


def _add_recorded_refunds(
    conn: Database, cursor: Any, state: State, plans: Sequence[AccountPlan]
) -> None:
    """Give every account that an earlier run closed the refund that run recorded, so that
    each report accounts for every closure (also one made by a killed run whose report never
    completed) without recording a refund twice. The amount is the audit row's; closures
    audited before refunds were written there fall back to the account row's balance."""
    closed = {
        p.login: p for p in plans
        if p.refund_run is None and p.account_row is not None and p.account_row[1] == "closed"
    }  # fmt: skip
    if not closed:
        return
    recorded: dict[str, tuple[str, str | None]] = {}
    if _table_exists(conn, cursor, "sipwave_audit"):
        rows = _in_chunks(
            cursor,
            conn,
            'SELECT id, login, run_id, "after" FROM sipwave_audit '
            "WHERE action = 'closed' AND login IN ({markers})",
            sorted(closed),
        )
        for _id, login, run_id, after in sorted(rows):  # the latest closure counts
            recorded[login] = (run_id, (json.loads(after or "null") or {}).get("refund"))
    for login, plan in closed.items():
        run_id, amount = recorded.get(login, (None, None))
        current = state.accounts.get(login)
        plan.refund = amount or (current[8] if current else plan.account_row[8])
        plan.refund_run = run_id


def closure_conflicts_summary(kept: Mapping[str, Mapping[str, str]], settings: Settings) -> dict:
    """What the report and the warning say of closed accounts whose numbers keep the decision
    of their closure against this run's closure_numbers setting."""
    logins = sorted(kept)
    return {
        "setting": settings.closure_numbers,
        "count": len(logins),
        "accounts": [
            {"login": login, "numbers": dict(sorted(kept[login].items()))}
            for login in logins[:_MAX_REPORTED]
        ],
    }


def closure_conflicts_message(conflicts: Mapping) -> str:
    """The operator's warning for closure_numbers_conflicts (see closure_conflicts_summary)."""
    shown = [a["login"] for a in conflicts["accounts"][:10]]
    more = conflicts["count"] - len(shown)
    states = sorted({s for a in conflicts["accounts"] for s in a["numbers"].values()})
    return (
        f"closure_numbers is {conflicts['setting']}, but {conflicts['count']} account(s) closed "
        f"earlier keep their numbers {' or '.join(states)} as decided at closure (not changed "
        f"by this run): {', '.join(shown)}" + (f" and {more} more" if more > 0 else "")
    )


@dataclass
class RunResult:
    plans: list[AccountPlan]
    reconciliation: dict
    snapshot_logins: int
    changed: bool
    routing_generation: int = 0


def run_wave(
    conn: Database,
    accounts: Sequence[WaveAccount],
    rejected: Mapping[str, str],
    settings: Settings,
    check_mode: bool,
) -> RunResult:
    """Plan a wave, apply it in one transaction (unless check mode) and reconcile."""
    domains = {settings.new_domain} | {a.legacy_domain for a in accounts}
    cursor = conn.connection.cursor()
    try:
        if not _table_exists(conn, cursor, subscriber_db.TABLE):
            raise MigrationError(
                "the database has no subscriber table: deploy the kamailio role first"
            )
        if not check_mode:
            lock_for_writing(conn, cursor)
            ensure_tables(conn, cursor)
        state = read_state(conn, cursor, domains)
        covered: set[str] = set()
        if _table_exists(conn, cursor, "sipwave_snapshot"):
            covered = set((_read_snapshot(cursor, conn, settings.wave) or {}).get("logins", []))
        plans = plan_wave(state, accounts, rejected, settings)
        _add_recorded_refunds(conn, cursor, state, plans)
        changed_plans = [p for p in plans if p.changed]
        for plan in changed_plans:
            plan.before = view(state, plan.login, settings.new_identity(plan.login))
        snapshot = _snapshot_content(state, plans, covered) if changed_plans else None
        statements = _statements(conn, changed_plans, state, settings.run_id)
        _apply_to_state(state, changed_plans)
        for plan in changed_plans:
            plan.after = view(state, plan.login, settings.new_identity(plan.login))
        if changed_plans and not check_mode:
            if snapshot and snapshot["logins"]:
                statements.append((
                    "INSERT INTO sipwave_snapshot (wave, taken_at, content) VALUES ({p}, {p}, {p})",
                    [(settings.wave, _now(), json.dumps(snapshot, sort_keys=True))],
                ))  # fmt: skip
            statements.append((_AUDIT_INSERT, _audit_rows(plans, settings.wave, settings.run_id)))
            statements.append((_BUMP_GENERATION, [()]))
            _execute(conn, cursor, statements)
            conn.connection.commit()
            state = read_state(conn, cursor, domains)
        elif not check_mode:
            conn.connection.commit()  # the CREATE TABLEs of a first run that found nothing to do
        generation = routing_generation(conn, cursor)
    except BaseException:
        conn.connection.rollback()
        raise
    finally:
        cursor.close()
    kept = {p.login: p.closure_conflicts for p in plans if p.closure_conflicts}
    reconciliation = reconcile(state, accounts, rejected, settings, kept)
    if kept:
        reconciliation["closure_numbers_conflicts"] = closure_conflicts_summary(kept, settings)
    return RunResult(
        plans=plans,
        reconciliation=reconciliation,
        snapshot_logins=len(snapshot["logins"]) if snapshot else 0,
        changed=bool(changed_plans),
        routing_generation=generation,
    )


# -- reconciliation ---------------------------------------------------------------------------


def reconcile(
    state: State,
    accounts: Sequence[WaveAccount],
    rejected: Mapping[str, str],
    settings: Settings,
    kept_decisions: Mapping[str, Mapping[str, str]] | None = None,
) -> dict:
    """Check the result against the input: every account in one state, every number there.

    A closed account's numbers are expected in the state the setting gives, except those in
    ``kept_decisions`` (login -> {number: state}), which keep the decision of their closure.
    """
    kept_decisions = kept_decisions or {}
    problems: list[str] = []
    per_state: Counter[str] = Counter()
    expected = Counter()
    present = Counter()
    aliases = set(state.aliases.values())
    for login in rejected:
        row = state.accounts.get(login)
        if row is None:
            problems.append(f"{login}: no account row")
        else:
            per_state[row[1]] += 1
    for account in accounts:
        row = state.accounts.get(account.login)
        if row is None or row[1] not in STATES:
            problems.append(f"{account.login}: no account row in a known state")
            continue
        account_state = row[1]
        per_state[account_state] += 1
        live = account_state in LIVE_STATES
        identity = (row[4], row[5]) if live else None
        if live and identity not in state.subscribers:
            problems.append(f"{account.login}: {_label(identity)} cannot register")
        numbers = state.numbers.get(account.login, {})
        for kind, wanted, want_state in (
            (NUMBER, account.numbers, "active" if live else settings.closure_numbers),
            (DIALIN, account.dialin_numbers, "active" if live else "released"),
        ):
            for number in wanted:
                expected[kind] += 1
                if kind == NUMBER and not live:
                    want_state = kept_decisions.get(account.login, {}).get(
                        number, settings.closure_numbers
                    )
                if numbers.get((number, kind)) == want_state:
                    present[kind] += 1
                else:
                    problems.append(f"{account.login}: {kind} {number} is not {want_state}")
                if kind == NUMBER and live:
                    expected["alias"] += 1
                    if (_alias_user(number), identity[1], *identity) in aliases:
                        present["alias"] += 1
                    else:
                        problems.append(f"{account.login}: no alias for {number}")
    return {
        "ok": not problems,
        "accounts": len(accounts) + len(rejected),
        "accounts_in_one_state": sum(per_state.values()),
        "per_state": {name: per_state[name] for name in STATES if per_state[name]},
        "numbers_expected": expected[NUMBER],
        "numbers_present": present[NUMBER],
        "dialin_numbers_expected": expected[DIALIN],
        "dialin_numbers_present": present[DIALIN],
        "aliases_expected": expected["alias"],
        "aliases_present": present["alias"],
        "problems": problems[:_MAX_REPORTED],
        "problem_count": len(problems),
    }


# -- rollback ---------------------------------------------------------------------------------


def rollback_wave(conn: Database, settings: Settings, check_mode: bool) -> RunResult:
    """Return every account of the wave to its rows in the wave's snapshot."""
    cursor = conn.connection.cursor()
    try:
        if not _table_exists(conn, cursor, "sipwave_snapshot"):
            raise MigrationError(f"wave {settings.wave} was never applied: no snapshot to restore")
        snapshot = _read_snapshot(cursor, conn, settings.wave)
        if snapshot is None:
            raise MigrationError(f"wave {settings.wave} was never applied: no snapshot to restore")
        domains = {settings.new_domain} | {d for _login, _u, d in snapshot["keys"]}
        if not check_mode:
            lock_for_writing(conn, cursor)
        state = read_state(conn, cursor, domains)
        plans = _plan_rollback(state, snapshot, settings)
        changed_plans = [p for p in plans if p.changed]
        for plan in changed_plans:
            plan.before = view(state, plan.login, settings.new_identity(plan.login))
        statements = _statements(conn, changed_plans, state, settings.run_id)
        _apply_to_state(state, changed_plans)
        for plan in changed_plans:
            plan.after = view(state, plan.login, settings.new_identity(plan.login))
        if changed_plans and not check_mode:
            ensure_tables(conn, cursor)  # a database of an engine without the generation table
            statements.append((_AUDIT_INSERT, _audit_rows(plans, settings.wave, settings.run_id)))
            statements.append((_BUMP_GENERATION, [()]))
            _execute(conn, cursor, statements)
            conn.connection.commit()
            state = read_state(conn, cursor, domains)
        generation = routing_generation(conn, cursor)
    except BaseException:
        conn.connection.rollback()
        raise
    finally:
        cursor.close()
    remaining = _plan_rollback(state, snapshot, settings)
    differing = [p.login for p in remaining if p.changed]
    reconciliation = {
        "ok": not differing,
        "accounts": len(plans),
        "accounts_as_in_snapshot": len(plans) - len(differing),
        "problems": [f"{login}: differs from the snapshot" for login in differing[:_MAX_REPORTED]],
        "problem_count": len(differing),
    }
    return RunResult(plans, reconciliation, len(snapshot["logins"]), bool(changed_plans),
                     generation)  # fmt: skip


def _plan_rollback(state: State, snapshot: dict, settings: Settings) -> list[AccountPlan]:
    keys: dict[str, set[Key]] = {}
    for login, user, domain in snapshot["keys"]:
        keys.setdefault(login, set()).add((user, domain))
    accounts = {row[0]: tuple(row) for row in snapshot["accounts"]}
    numbers: dict[str, dict[tuple[str, str], str]] = {}
    for number, login, kind, number_state in snapshot["numbers"]:
        numbers.setdefault(login, {})[(number, kind)] = number_state
    subscribers = {(u, d): (h, hb) for u, d, h, hb in snapshot["subscribers"]}
    snapshot_aliases = [tuple(alias) for alias in snapshot["aliases"]]
    by_target, by_number = state.aliases_by()
    plans = []
    for login in dict.fromkeys(snapshot["logins"]):
        scope = set(keys.get(login, ())) | {settings.new_identity(login)}
        current = state.accounts.get(login)
        if current is not None:
            scope.add((login, current[3]))
            if current[4]:
                scope.add((current[4], current[5]))
        want_numbers = numbers.get(login, {})
        have_numbers = state.numbers.get(login, {})
        alias_users = {_alias_user(n) for n, _kind in want_numbers.keys() | have_numbers.keys()}
        domains = {key[1] for key in scope}
        alias_ids = {i for key in scope for i in by_target.get(key, ())}
        alias_ids.update(i for user in alias_users for i in by_number.get(user, ()))
        alias_ids = {i for i in alias_ids if state.aliases[i][1] in domains}
        want_aliases = [a for a in snapshot_aliases if (a[2], a[3]) in scope or a[0] in alias_users]
        row = accounts.get(login)
        plan = AccountPlan(login, "unchanged", None, None, row, delete_account=row is None)
        for key in scope:
            have, want = state.subscribers.get(key), subscribers.get(key)
            if have != want:
                plan.subscribers[key] = want
        have_aliases: dict[AliasRow, list[int]] = {}
        for i in sorted(alias_ids):
            have_aliases.setdefault(state.aliases[i], []).append(i)
        wanted_count = Counter(want_aliases)
        for alias, ids in have_aliases.items():
            plan.alias_remove.extend(ids[wanted_count.get(alias, 0) :])
        for alias, count in wanted_count.items():
            plan.alias_add.extend([alias] * max(0, count - len(have_aliases.get(alias, []))))
        for key in have_numbers.keys() | want_numbers.keys():
            if have_numbers.get(key) != want_numbers.get(key):
                plan.numbers[key] = want_numbers.get(key)
        if current != row or plan.touches_rows:
            plan.action = "rollback"
        plans.append(plan)
    return plans


# -- consent ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consent:
    login: str
    decision: str
    source: str = ""


def record_consent(
    conn: Database, decisions: Sequence[Consent], run_id: str, check_mode: bool
) -> list[dict]:
    """Store each customer's decision (migrate or close); returns the decisions that changed."""
    bad = [c for c in decisions if c.decision not in DECISIONS or not c.login]
    if bad:
        raise MigrationError(
            "invalid consent: "
            + "; ".join(f"{c.login!r}: decision {c.decision!r} is not migrate or close"
                        for c in bad[:_MAX_REPORTED])
        )  # fmt: skip
    cursor = conn.connection.cursor()
    try:
        current: dict[str, str] = {}
        if not check_mode:
            lock_for_writing(conn, cursor)
            ensure_tables(conn, cursor)
        if _table_exists(conn, cursor, "sipwave_consent"):
            cursor.execute("SELECT login, decision FROM sipwave_consent")
            current = dict(cursor.fetchall())
        changes = []
        latest = {c.login: c for c in decisions}
        for consent in latest.values():
            before = current.get(consent.login)
            if before != consent.decision:
                changes.append({"login": consent.login, "before": before, "after": consent.decision,
                                "source": consent.source})  # fmt: skip
        if changes and not check_mode:
            now = _now()
            conn.executemany(
                cursor,
                conn.sql("DELETE FROM sipwave_consent WHERE login = {p}"),
                [(c["login"],) for c in changes],
            )
            conn.executemany(
                cursor,
                conn.sql(
                    "INSERT INTO sipwave_consent (login, decision, recorded_at, source) "
                    "VALUES ({p}, {p}, {p}, {p})"
                ),
                [(c["login"], c["after"], now, c["source"]) for c in changes],
            )
            conn.executemany(
                cursor,
                conn.sql(_AUDIT_INSERT),
                [
                    (now, run_id, "", c["login"], f"consent_{c['after']}",
                     json.dumps({"consent": c["before"]}), json.dumps({"consent": c["after"]}))
                    for c in changes
                ],
            )  # fmt: skip
        conn.connection.commit()
    except BaseException:
        conn.connection.rollback()
        raise
    finally:
        cursor.close()
    return changes


def total_refund(plans: Iterable[AccountPlan], run_id: str | None = None) -> str:
    """The refunds' total; with ``run_id``, only of the refunds that run recorded."""
    return str(sum((Decimal(p.refund) for p in plans if p.refund is not None
                    and (run_id is None or p.refund_run == run_id)), Decimal("0.00")))  # fmt: skip
