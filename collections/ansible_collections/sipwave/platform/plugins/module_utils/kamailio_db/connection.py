# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connections to the proxy database (Kamailio's tables and the engine's), for both backends:
SQLite (one file on the proxy) and PostgreSQL (shared by a proxy cluster). Every module that
opens the database takes the options of database_argument_spec() (documented once in the
kamailio_db doc fragment) and connects with connect_with()."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

SQLITE_BUSY_TIMEOUT_MS = 5000
_POSTGRES_PAGE_SIZE = 1000


class DatabaseError(Exception):
    """The database cannot be opened; the message never holds a password."""


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
            raise DatabaseError("the sqlite backend needs the path of the database file")
        if not os.path.exists(database):
            raise DatabaseError(f"SQLite database {database} does not exist")
        try:
            connection = sqlite3.connect(database)
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open SQLite database {database}: {exc}") from exc
        return Database(backend, connection, sqlite3.Error)
    if backend == "postgres":
        try:
            import psycopg2
        except ImportError as exc:
            raise DatabaseError(
                "the postgres backend needs psycopg2 on the target host (Debian: python3-psycopg2)"
            ) from exc
        try:
            connection = psycopg2.connect(
                host=host, port=port, dbname=name, user=user, password=password
            )
        except psycopg2.Error as exc:
            raise DatabaseError(f"cannot connect to PostgreSQL database {name}: {exc}") from exc
        return Database(backend, connection, psycopg2.Error)
    raise DatabaseError(f"unknown backend {backend!r}; use sqlite or postgres")


def connect_for(module: Any) -> Database:
    """The database a module's options name (database_argument_spec), or the module fails:
    a missing SQLite file names the role that creates it, a connection error its reason."""
    params = module.params
    if params["backend"] == "sqlite" and not os.path.exists(params["database"]):
        module.fail_json(msg=f"{params['database']} does not exist: deploy the kamailio role")
    try:
        return connect_with(params)
    except DatabaseError as exc:
        module.fail_json(msg=str(exc))
        raise  # fail_json exits; this line keeps the type checker sure of the return
