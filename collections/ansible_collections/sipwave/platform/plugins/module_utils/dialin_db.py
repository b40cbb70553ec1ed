# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dial-in authorisation database: accounts, authorised caller numbers, PIN hashes.

Standard library only: the PBX's AGI script imports a flat copy of this file.

Written in bulk by the ``dialin_access`` module, read per call by the PBX's dial-in AGI
script (which also records failed PIN attempts in the ``failure`` table). PINs are stored as
salted scrypt hashes only; nothing in this file puts a PIN or a hash into a message.

Every account has a source: ``inventory`` (the asterisk role's list), ``staff:<login>`` (a staff
member's own account) or ``wave:<name>`` (the live accounts of a migration wave). A run
manages one source only: it never removes, changes or takes a caller number from an account
of another source, and reports such a clash as a conflict instead.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

SQLITE_BUSY_TIMEOUT_MS = 5000
PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 12
# scrypt cost: about 50 ms per check on one core, paid once per dial-in call.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
INVENTORY_SOURCE = "inventory"
WAVE_SOURCE_PREFIX = "wave:"
# A staff member's own account (playbooks/user_add.yml): staff:<login>.
STAFF_SOURCE_PREFIX = "staff:"
_SOURCE = re.compile(r"inventory|(wave|staff):[A-Za-z0-9._-]{1,64}")
# A destination prefix in E.164: "+" and 1 to 15 digits ("+44", "+4930", "+48700").
PREFIX_PATTERN = re.compile(r"\+[0-9]{1,15}")
PREFIX_SEPARATOR = ","

# Schema 2 added account.source, schema 3 allowed_prefixes and daily_minutes (NULL: the
# site's defaults for accounts without a PIN); older databases are upgraded in place.
SCHEMA = """
CREATE TABLE IF NOT EXISTS account (
    id TEXT PRIMARY KEY,
    department TEXT NOT NULL,
    number TEXT NOT NULL,
    pin_hash TEXT,
    max_calls INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT 'inventory',
    allowed_prefixes TEXT,
    daily_minutes INTEGER
);
CREATE TABLE IF NOT EXISTS dialin_number (
    number TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS dialin_number_account ON dialin_number (account_id);
CREATE TABLE IF NOT EXISTS failure (
    caller TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS failure_caller ON failure (caller, at);
"""


class DialinError(Exception):
    """Invalid input or an unusable database; the message never contains a PIN."""


def check_source(source: str) -> str:
    if not _SOURCE.fullmatch(source or ""):
        raise DialinError(
            f"source {source!r} must be {INVENTORY_SOURCE!r}, '{WAVE_SOURCE_PREFIX}<wave name>' "
            f"or '{STAFF_SOURCE_PREFIX}<login>'"
        )
    return source


def wave_source(wave: str) -> str:
    return check_source(f"{WAVE_SOURCE_PREFIX}{wave}")


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(
            pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest)


@dataclass(frozen=True)
class Account:
    id: str
    department: str
    number: str
    max_calls: int
    dialin_numbers: frozenset[str]
    source: str = INVENTORY_SOURCE
    # Destination prefixes this account may call (None: the site's default). Without a PIN
    # they are all it may call; with or without, one at least as long as a blocked prefix
    # lifts that block for the account.
    allowed_prefixes: tuple[str, ...] | None = None
    # Minutes of dial-in calls per day (None: the site's default for accounts without a PIN,
    # no cap with one).
    daily_minutes: int | None = None
    # Only on desired accounts: the PIN to set (never stored as such), or None for no PIN.
    pin: str | None = field(default=None, repr=False, compare=False)
    # Only on stored accounts.
    pin_hash: str | None = field(default=None, repr=False, compare=False)

    @property
    def has_pin(self) -> bool:
        return self.pin is not None or self.pin_hash is not None

    def summary(self) -> str:
        numbers = ",".join(sorted(self.dialin_numbers)) or "-"
        allowed = "default" if self.allowed_prefixes is None else ",".join(self.allowed_prefixes)
        minutes = "default" if self.daily_minutes is None else self.daily_minutes
        return (
            f"{self.id} department={self.department} number={self.number} "
            f"max_calls={self.max_calls} pin={'set' if self.has_pin else 'none'} "
            f"dialin={numbers} source={self.source} allowed={allowed or '-'} "
            f"daily_minutes={minutes}"
        )


def connect(path: str) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        connection.execute("PRAGMA foreign_keys = ON")
        connection.executescript(SCHEMA)
    except sqlite3.Error as exc:
        raise DialinError(f"cannot open the dial-in database {path}: {exc}") from None
    return connection


def lock_for_writing(connection: sqlite3.Connection) -> None:
    """Take the write lock before reading: two runs (the inventory's and a wave's) then
    serialise, and neither plans from rows the other is about to change. The AGI script's
    reads carry on meanwhile."""
    if connection.in_transaction:
        connection.commit()
    connection.execute("BEGIN IMMEDIATE")


# Columns added after schema 1, with what an older row reads as: every account that exists
# before sources came from the inventory; before schema 3 every account had the defaults.
_ADDED_COLUMNS = {
    "source": ("TEXT NOT NULL DEFAULT 'inventory'", f"'{INVENTORY_SOURCE}'"),
    "allowed_prefixes": ("TEXT", "NULL"),
    "daily_minutes": ("INTEGER", "NULL"),
}


def _columns(connection: sqlite3.Connection) -> set[str]:
    return {row[1] for row in connection.execute("PRAGMA table_info(account)")}


def needs_upgrade(connection: sqlite3.Connection) -> bool:
    return not set(_ADDED_COLUMNS) <= _columns(connection)


def upgrade(connection: sqlite3.Connection) -> bool:
    """Older schemas to 3 in place, inside the caller's transaction. Returns whether
    anything changed."""
    present = _columns(connection)
    missing = [name for name in _ADDED_COLUMNS if name not in present]
    for name in missing:
        connection.execute(f"ALTER TABLE account ADD COLUMN {name} {_ADDED_COLUMNS[name][0]}")
    connection.execute("CREATE INDEX IF NOT EXISTS account_source ON account (source)")
    return bool(missing)


def read_accounts(connection: sqlite3.Connection) -> dict[str, Account]:
    """Every account of every source (an older database reads as inventory, defaults)."""
    present = _columns(connection)
    added = ", ".join(
        name if name in present else fallback for name, (_, fallback) in _ADDED_COLUMNS.items()
    )
    numbers: dict[str, set[str]] = {}
    for number, account_id in connection.execute("SELECT number, account_id FROM dialin_number"):
        numbers.setdefault(account_id, set()).add(number)
    return {
        row[0]: Account(
            id=row[0],
            department=row[1],
            number=row[2],
            pin_hash=row[3],
            max_calls=row[4],
            dialin_numbers=frozenset(numbers.get(row[0], ())),
            source=row[5],
            allowed_prefixes=split_prefixes(row[6]),
            daily_minutes=row[7],
        )
        for row in connection.execute(
            f"SELECT id, department, number, pin_hash, max_calls, {added} FROM account"
        )
    }


def join_prefixes(prefixes: tuple[str, ...] | None) -> str | None:
    return None if prefixes is None else PREFIX_SEPARATOR.join(prefixes)


def split_prefixes(stored: str | None) -> tuple[str, ...] | None:
    if stored is None:
        return None
    return tuple(p for p in stored.split(PREFIX_SEPARATOR) if p)


@dataclass(frozen=True)
class Conflict:
    """A caller number (or an account id) this run wants that another source holds."""

    account: str
    number: str | None  # None: the account id itself belongs to another source
    held_by: str
    held_by_source: str

    def __str__(self) -> str:
        if self.number is None:
            return f"account {self.account} belongs to source {self.held_by_source}"
        return (
            f"caller number {self.number} of account {self.account} is authorised for "
            f"account {self.held_by} of source {self.held_by_source}"
        )

    def as_dict(self) -> dict:
        return {
            "account": self.account,
            "number": self.number,
            "held_by": self.held_by,
            "held_by_source": self.held_by_source,
        }


def without_conflicts(
    current: Mapping[str, Account], desired: Mapping[str, Account], source: str
) -> tuple[dict[str, Account], list[Conflict]]:
    """``desired`` minus whatever another source holds: accounts whose id another source
    owns are left out, and numbers another source's account has are dropped from the
    account that wants them. The clashes are returned; nothing is taken over."""
    owner = {
        number: account
        for account in current.values()
        if account.source != source
        for number in account.dialin_numbers
    }
    accepted: dict[str, Account] = {}
    conflicts: list[Conflict] = []
    for account_id, wanted in sorted(desired.items()):
        existing = current.get(account_id)
        if existing is not None and existing.source != source:
            conflicts.append(Conflict(account_id, None, account_id, existing.source))
            continue
        taken = sorted(number for number in wanted.dialin_numbers if number in owner)
        conflicts.extend(Conflict(account_id, n, owner[n].id, owner[n].source) for n in taken)
        if taken:
            wanted = replace(wanted, dialin_numbers=wanted.dialin_numbers - set(taken))
        accepted[account_id] = wanted
    return accepted, conflicts


@dataclass
class Plan:
    add: list[str] = field(default_factory=list)
    update: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    # Accounts whose PIN hash must be written (a new PIN, a changed PIN, or none any more).
    pin_changes: set[str] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return bool(self.add or self.update or self.remove)


def _pin_unchanged(current: Account, wanted: Account) -> bool:
    if wanted.pin is None:
        return current.pin_hash is None
    return current.pin_hash is not None and pin_matches(wanted.pin, current.pin_hash)


def plan(
    current: Mapping[str, Account],
    desired: Mapping[str, Account],
    exclusive: bool,
    source: str = INVENTORY_SOURCE,
    keep: Collection[str] = (),
) -> Plan:
    """What turns ``current`` into ``desired`` for one source. Exclusive removes only that
    source's unlisted accounts, except those in ``keep``. ``desired`` must be free of
    conflicts (without_conflicts)."""
    todo = Plan()
    for account_id, wanted in sorted(desired.items()):
        existing = current.get(account_id)
        if existing is None:
            todo.add.append(account_id)
            todo.pin_changes.add(account_id)
            continue
        same_pin = _pin_unchanged(existing, wanted)
        if not same_pin:
            todo.pin_changes.add(account_id)
        if existing != wanted or not same_pin:
            todo.update.append(account_id)
    if exclusive:
        todo.remove = sorted(
            account_id
            for account_id, account in current.items()
            if account.source == source and account_id not in desired and account_id not in keep
        )
    return todo


def apply(
    connection: sqlite3.Connection,
    todo: Plan,
    current: Mapping[str, Account],
    desired: Mapping[str, Account],
) -> None:
    """Everything in one transaction: a reader sees the old or the new list, never a mix."""
    rows = []
    for account_id in todo.add + todo.update:
        wanted = desired[account_id]
        if account_id in todo.pin_changes:
            pin_hash = hash_pin(wanted.pin) if wanted.pin is not None else None
        else:
            pin_hash = current[account_id].pin_hash
        rows.append(
            (account_id, wanted.department, wanted.number, pin_hash, wanted.max_calls,
             wanted.source, join_prefixes(wanted.allowed_prefixes), wanted.daily_minutes)
        )  # fmt: skip
    touched = todo.add + todo.update + todo.remove
    with connection:
        connection.executemany(
            "DELETE FROM dialin_number WHERE account_id = ?", [(a,) for a in touched]
        )
        connection.executemany("DELETE FROM account WHERE id = ?", [(a,) for a in todo.remove])
        connection.executemany(
            "INSERT INTO account (id, department, number, pin_hash, max_calls, source,"
            " allowed_prefixes, daily_minutes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET"
            " department = excluded.department, number = excluded.number,"
            " pin_hash = excluded.pin_hash, max_calls = excluded.max_calls,"
            " allowed_prefixes = excluded.allowed_prefixes,"
            " daily_minutes = excluded.daily_minutes",
            rows,
        )
        connection.executemany(
            # A number moved from another account of the same source is taken over (other
            # sources' numbers were left out as conflicts before).
            "INSERT INTO dialin_number (number, account_id) VALUES (?, ?)"
            " ON CONFLICT (number) DO UPDATE SET account_id = excluded.account_id",
            [
                (number, account_id)
                for account_id in todo.add + todo.update
                for number in sorted(desired[account_id].dialin_numbers)
            ],
        )
