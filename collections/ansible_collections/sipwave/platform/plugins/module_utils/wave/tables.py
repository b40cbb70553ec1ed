# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's view of the proxy database: the lock a run takes, the routing generation, and
reading the rows a wave can touch into a State. The tables themselves are described once, in
kamailio_db.schema (the kamailio role creates them with the same code)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils import subscriber_db
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
    connect_with,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.schema import (
    table_exists,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    ACCOUNT_COLUMNS,
    AccountRow,
    AliasRow,
    State,
)

IN_CHUNK = 500  # values per IN (...) list

ENGINE_TABLES = ("dbaliases", "sipwave_account", "sipwave_number", "sipwave_consent",
                 "sipwave_snapshot", "sipwave_routing_generation",
                 "sipwave_number_quarantine")  # fmt: skip
# Every committed change of routing data counts up the generation, which the sipwave_routing
# view hands to Kamailio's routing cache with the data (key g:generation): comparing the two
# tells whether a proxy's cache is older than its database, also after a run that was killed
# between its commit and the reload.
BUMP_GENERATION = "UPDATE sipwave_routing_generation SET generation = generation + 1 WHERE id = 1"
ADVISORY_LOCK_KEY = 0x51C0A7E  # any constant: every wave run takes the same lock


def empty_database() -> Database:
    """An empty in-memory stand-in for a database that does not exist yet (check mode on a
    host where the kamailio role has not created it either)."""
    connection = sqlite3.connect(":memory:")
    connection.execute(
        f"CREATE TABLE {subscriber_db.TABLE} (username TEXT, domain TEXT, ha1 TEXT, ha1b TEXT)"
    )
    return Database("sqlite", connection, sqlite3.Error)


def connect_or_empty(params: dict, check_mode: bool) -> Database:
    """The database a module's options name; in check mode a SQLite file that does not exist
    yet (the play that creates it did not run either) reads as empty_database().
    DatabaseError as connect_with raises it."""
    if check_mode and params["backend"] == "sqlite" and not os.path.exists(params["database"]):
        return empty_database()
    return connect_with(params)


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
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))


def routing_generation(conn: Database, cursor: Any) -> int:
    """The generation of the routing data in the database (0 before the first change)."""
    if not table_exists(conn, cursor, "sipwave_routing_generation"):
        return 0
    cursor.execute("SELECT generation FROM sipwave_routing_generation WHERE id = 1")
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def in_chunks(cursor: Any, conn: Database, select: str, values: Sequence) -> list[tuple]:
    rows: list[tuple] = []
    for start in range(0, len(values), IN_CHUNK):
        chunk = list(values[start : start + IN_CHUNK])
        cursor.execute(select.format(markers=", ".join([conn.placeholder] * len(chunk))), chunk)
        rows.extend(cursor.fetchall())
    return rows


def read_state(conn: Database, cursor: Any, domains: Iterable[str]) -> State:
    """Every engine row, and Kamailio's subscriber and alias rows of ``domains``.

    A table that does not exist yet (check mode before the first run) reads as empty.
    """
    present = {name for name in ENGINE_TABLES if table_exists(conn, cursor, name)}

    def rows(table: str, select: str) -> list[tuple]:
        if table not in present:
            return []
        cursor.execute(select)
        return cursor.fetchall()

    accounts = {
        row[0]: AccountRow._make(row)
        for row in rows(
            "sipwave_account", f"SELECT {', '.join(ACCOUNT_COLUMNS)} FROM sipwave_account"
        )
    }
    numbers: dict[str, dict[tuple[str, str], str]] = {}
    for number, login, kind, state in rows(
        "sipwave_number", "SELECT number, login, kind, state FROM sipwave_number"
    ):
        numbers.setdefault(login, {})[(number, kind)] = state
    consent = dict(rows("sipwave_consent", "SELECT login, decision FROM sipwave_consent"))
    returned = dict(
        rows("sipwave_number_quarantine",
             "SELECT number, returned_on FROM sipwave_number_quarantine")
    )  # fmt: skip
    wanted = sorted(set(domains) | {row.legacy_domain for row in accounts.values()} - {""})
    subscribers = {
        (user, domain): (ha1, ha1b)
        for user, domain, ha1, ha1b in in_chunks(
            cursor,
            conn,
            "SELECT username, domain, ha1, ha1b FROM subscriber WHERE domain IN ({markers})",
            wanted,
        )
    }
    aliases = {}
    if "dbaliases" in present:
        aliases = {
            row[0]: AliasRow._make(row[1:])
            for row in in_chunks(
                cursor,
                conn,
                "SELECT id, alias_username, alias_domain, username, domain FROM dbaliases "
                "WHERE domain IN ({markers})",
                wanted,
            )
        }
    return State(accounts, numbers, subscribers, aliases, consent, returned)
