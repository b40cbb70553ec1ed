# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kamailio's subscriber table: HA1 hashing, validation, planning and bulk application.

The table holds HA1 hashes only. Nothing in this file puts a password or a hash into an
exception message, so callers may show every message to the user.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.credentials import ha1, ha1b

TABLE = "subscriber"
MAX_NAME_LENGTH = 64
SQLITE_BUSY_TIMEOUT_MS = 5000
_HA1_PATTERN = re.compile(r"[0-9a-f]{32}")
_DOMAINS_PER_QUERY = 500  # stays far below SQLite's limit on bound parameters
_POSTGRES_PAGE_SIZE = 1000
_MAX_REPORTED_PROBLEMS = 20
# {p} stands for the backend's parameter marker.
_DELETE = f"DELETE FROM {TABLE} WHERE username = {{p}} AND domain = {{p}}"
_UPDATE = f"UPDATE {TABLE} SET ha1 = {{p}}, ha1b = {{p}} WHERE username = {{p}} AND domain = {{p}}"
_INSERT = f"INSERT INTO {TABLE} (username, domain, ha1, ha1b) VALUES ({{p}}, {{p}}, {{p}}, {{p}})"

Key = tuple[str, str]  # (username, domain)
Credentials = tuple[str, str]  # (ha1, ha1b)


class SubscriberError(Exception):
    """Invalid input or an unusable database; the message never contains a secret."""


def label(key: Key) -> str:
    return f"{key[0]}@{key[1]}"


class Database:
    """A DB-API connection plus what differs between the backends."""

    def __init__(self, backend: str, connection: Any, error: type[Exception]) -> None:
        self.backend = backend
        self.connection = connection
        self.Error = error
        self.placeholder = "?" if backend == "sqlite" else "%s"

    def sql(self, template: str) -> str:
        return template.format(p=self.placeholder)

    def executemany(self, cursor: Any, statement: str, rows: list[tuple]) -> None:
        if not rows:
            return
        if self.backend == "postgres":
            # psycopg2's executemany makes one round trip per row.
            from psycopg2.extras import execute_batch

            execute_batch(cursor, statement, rows, page_size=_POSTGRES_PAGE_SIZE)
        else:
            cursor.executemany(statement, rows)

    def close(self) -> None:
        self.connection.close()


def database_argument_spec() -> dict:
    """The database options of every module that opens this database (fresh dicts)."""
    return {
        "backend": {"type": "str", "default": "sqlite", "choices": ["sqlite", "postgres"]},
        "database": {"type": "path"},
        "db_host": {"type": "str"},
        "db_port": {"type": "int", "default": 5432},
        "db_name": {"type": "str"},
        "db_user": {"type": "str"},
        "db_password": {"type": "str", "no_log": True},
    }


# required_if entries that go with database_argument_spec().
DATABASE_REQUIRED_IF = (("backend", "sqlite", ("database",)), ("backend", "postgres", ("db_name",)))


def connect_with(params: dict) -> Database:
    """connect() with a module's database options (database_argument_spec())."""
    return connect(
        params["backend"],
        database=params["database"],
        host=params["db_host"],
        port=params["db_port"],
        name=params["db_name"],
        user=params["db_user"],
        password=params["db_password"],
    )


def connect(
    backend: str,
    database: str | None = None,
    host: str | None = None,
    port: int = 5432,
    name: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> Database:
    if backend == "sqlite":
        if not database:
            raise SubscriberError("the sqlite backend needs the path of the database file")
        if not os.path.exists(database):
            raise SubscriberError(f"SQLite database {database} does not exist")
        try:
            connection = sqlite3.connect(database)
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise SubscriberError(f"cannot open SQLite database {database}: {exc}") from exc
        return Database(backend, connection, sqlite3.Error)
    if backend == "postgres":
        try:
            import psycopg2
        except ImportError as exc:
            raise SubscriberError(
                "the postgres backend needs psycopg2 on the target host (Debian: python3-psycopg2)"
            ) from exc
        try:
            connection = psycopg2.connect(
                host=host, port=port, dbname=name, user=user, password=password
            )
        except psycopg2.Error as exc:
            raise SubscriberError(f"cannot connect to PostgreSQL database {name}: {exc}") from exc
        return Database(backend, connection, psycopg2.Error)
    raise SubscriberError(f"unknown backend {backend!r}; use sqlite or postgres")


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
