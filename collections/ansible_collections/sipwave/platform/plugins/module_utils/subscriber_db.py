# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kamailio's subscriber table: HA1 hashing, validation, planning and bulk application.

The table holds HA1 hashes only. Nothing in this file puts a password or a hash into an
exception message, so callers may show every message to the user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.credentials import ha1, ha1b
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
    DatabaseError,
)

TABLE = "subscriber"
MAX_NAME_LENGTH = 64
_HA1_PATTERN = re.compile(r"[0-9a-f]{32}")
_DOMAINS_PER_QUERY = 500  # stays far below SQLite's limit on bound parameters
_MAX_REPORTED_PROBLEMS = 20
# {p} stands for the backend's parameter marker.
_DELETE = f"DELETE FROM {TABLE} WHERE username = {{p}} AND domain = {{p}}"
_UPDATE = f"UPDATE {TABLE} SET ha1 = {{p}}, ha1b = {{p}} WHERE username = {{p}} AND domain = {{p}}"
_INSERT = f"INSERT INTO {TABLE} (username, domain, ha1, ha1b) VALUES ({{p}}, {{p}}, {{p}}, {{p}})"

Key = tuple[str, str]  # (username, domain)
Credentials = tuple[str, str]  # (ha1, ha1b)


class SubscriberError(DatabaseError):
    """Invalid input or an unusable database; the message never contains a secret."""


def label(key: Key) -> str:
    return f"{key[0]}@{key[1]}"


def read_subscribers(
    conn: Database, domains: Iterable[str] | None = None
) -> dict[Key, Credentials]:
    """All subscribers, or those of ``domains`` (an empty collection reads nothing)."""
    select = f"SELECT username, domain, ha1, ha1b FROM {TABLE}"
    cursor = conn.connection.cursor()
    rows: list[tuple] = []
    try:
        if domains is None:
            cursor.execute(select)
            rows = cursor.fetchall()
        else:
            wanted = sorted(set(domains))
            for start in range(0, len(wanted), _DOMAINS_PER_QUERY):
                chunk = wanted[start : start + _DOMAINS_PER_QUERY]
                markers = ", ".join([conn.placeholder] * len(chunk))
                cursor.execute(f"{select} WHERE domain IN ({markers})", chunk)
                rows.extend(cursor.fetchall())
    finally:
        cursor.close()
    return {(username, domain): (ha1, ha1b) for username, domain, ha1, ha1b in rows}


@dataclass(frozen=True)
class Plan:
    add: list[Key]
    update: list[Key]
    remove: list[Key]

    @property
    def changed(self) -> bool:
        return bool(self.add or self.update or self.remove)


def plan(
    current: Mapping[Key, Credentials],
    desired: Mapping[Key, Credentials],
    exclusive_domains: Iterable[str] | None = None,
) -> Plan:
    """What turns ``current`` into ``desired``; only exclusive domains lose unlisted rows."""
    exclusive = set(exclusive_domains or ())
    return Plan(
        add=sorted(key for key in desired if key not in current),
        update=sorted(key for key in desired if key in current and current[key] != desired[key]),
        remove=sorted(key for key in current if key[1] in exclusive and key not in desired),
    )


def write(conn: Database, cursor: Any, todo: Plan, desired: Mapping[Key, Credentials]) -> None:
    """Execute a plan's statements inside the caller's transaction (no commit)."""
    conn.executemany(cursor, conn.sql(_DELETE), list(todo.remove))
    conn.executemany(cursor, conn.sql(_UPDATE), [(*desired[key], *key) for key in todo.update])
    conn.executemany(cursor, conn.sql(_INSERT), [(*key, *desired[key]) for key in todo.add])


def apply(conn: Database, todo: Plan, desired: Mapping[Key, Credentials]) -> None:
    """Apply a plan in one transaction; on any error nothing is changed."""
    cursor = conn.connection.cursor()
    try:
        write(conn, cursor, todo, desired)
        conn.connection.commit()
    except BaseException:
        conn.connection.rollback()
        raise
    finally:
        cursor.close()


def _entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, Mapping):
        return "must be a dictionary"
    for name in ("username", "domain"):
        value = entry.get(name)
        if not isinstance(value, str) or not value:
            return f"{name} is required"
        if len(value) > MAX_NAME_LENGTH:
            return f"{name} is longer than {MAX_NAME_LENGTH} characters"
    password, given_ha1, given_ha1b = entry.get("password"), entry.get("ha1"), entry.get("ha1b")
    if password is not None and given_ha1 is not None:
        return "give either password or ha1, not both"
    if password is None and given_ha1 is None:
        return "give password or ha1"
    if password is not None:
        if not isinstance(password, str) or not password:
            return "password must be a non-empty string"
        if given_ha1b is not None:
            return "ha1b can only be given together with ha1"
        return None
    for name, value in (("ha1", given_ha1), ("ha1b", given_ha1b)):
        if value is not None and not (isinstance(value, str) and _HA1_PATTERN.fullmatch(value)):
            return f"{name} must be 32 lowercase hexadecimal characters"
    return None


def _describe(index: int, entry: Any) -> str:
    username = entry.get("username") if isinstance(entry, Mapping) else None
    return f"subscribers[{index}] (username {username!r})"


def desired_from_entries(entries: Sequence[Any]) -> dict[Key, Credentials]:
    """Validate subscriber entries and turn them into stored credentials.

    Problems are reported by list index and username, never by a secret.
    """
    desired: dict[Key, Credentials] = {}
    first_index: dict[Key, int] = {}
    problems = []
    for index, entry in enumerate(entries):
        problem = _entry_problem(entry)
        if problem is not None:
            problems.append(f"{_describe(index, entry)}: {problem}")
            continue
        key = (entry["username"], entry["domain"])
        if key in first_index:
            duplicate = f"{label(key)} is already subscribers[{first_index[key]}]"
            problems.append(f"{_describe(index, entry)}: {duplicate}")
            continue
        first_index[key] = index
        password = entry.get("password")
        if password is not None:
            desired[key] = (ha1(*key, password), ha1b(*key, password))
        else:
            desired[key] = (entry["ha1"], entry.get("ha1b") or "")
    if problems:
        shown = problems[:_MAX_REPORTED_PROBLEMS]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more")
        raise SubscriberError("invalid subscribers:\n" + "\n".join(shown))
    return desired
