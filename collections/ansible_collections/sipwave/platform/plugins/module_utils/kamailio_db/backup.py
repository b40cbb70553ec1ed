# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copies of the proxy database: a consistent copy of a live SQLite file (online backup API)
or a PostgreSQL dump, and the digest both sides of a backup and a restore compare."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from typing import Any


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_sqlite(database: str, target: str) -> None:
    """A consistent copy of a live SQLite database (online backup API) into ``target``.
    A database that is not there is an error naming it, never an empty copy."""
    if not os.path.isfile(database):
        raise FileNotFoundError(f"{database}: the database to back up does not exist")
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()


def pg_dump_command(pg_dump: str, params: dict, target: str) -> tuple[list[str], dict]:
    """The pg_dump command line (custom format into ``target``) and its environment for the
    database that ``params`` (database_argument_spec) name; the password only in the
    environment, never on the command line."""
    command = [pg_dump, "--format=custom", f"--file={target}", f"--dbname={params['db_name']}"]
    for option, name in (("--host", "db_host"), ("--port", "db_port"), ("--username", "db_user")):
        if params.get(name) not in (None, ""):
            command.append(f"{option}={params[name]}")
    environ = {"PGPASSWORD": params["db_password"]} if params.get("db_password") else {}
    return command, environ


def copy_postgres(module: Any, target: str) -> None:
    """pg_dump in custom format of the database the module's options name."""
    pg_dump = module.get_bin_path("pg_dump", required=True)
    command, environ = pg_dump_command(pg_dump, module.params, target)
    rc, _out, err = module.run_command(command, environ_update=environ)
    if rc != 0:
        module.fail_json(msg=f"pg_dump failed ({rc}): {err.strip()[-500:]}")
