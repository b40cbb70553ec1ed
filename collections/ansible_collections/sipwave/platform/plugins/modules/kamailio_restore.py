#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: kamailio_restore
short_description: Put a backup set's database copy back as the proxy database
version_added: 0.5.0
description:
  - Checks the copy O(source) on the host before it touches anything. Its SHA-256 must be
    O(sha256). A SQLite copy must also pass C(PRAGMA integrity_check) and hold the
    subscriber and wave engine tables.
  - Keeps the database as it is now in O(directory) (C(pre-restore-<time>)) first, so that
    a restore can itself be undone.
  - SQLite is restored with the online backup API from the copy into the database file.
    PostgreSQL is restored with C(pg_restore --clean --if-exists --single-transaction),
    which is needed on the host. Both are whole or nothing.
  - Stop Kamailio before and start it after, as C(playbooks/restore.yml) does. Its
    registrations and routing cache are then loaded from the restored database.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sipwave.platform.kamailio_db
attributes:
  check_mode:
    support: full
    details: Checks the copy and reports what would be restored; nothing is written.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  source:
    description: The copy on the host (the database of a set made by
      M(sipwave.platform.backup_set)).
    type: path
    required: true
  sha256:
    description: Its expected SHA-256 (from the backup's C(latest.json) or result).
    type: str
    required: true
  directory:
    description: Where the copy of the database as it was before the restore is kept.
    type: path
    default: /var/backups/sipwave
"""

EXAMPLES = r"""
- name: Put the backup back
  sipwave.platform.kamailio_restore:
    source: /var/backups/sipwave/restore/sipwave-db-20261204T120000Z.sqlite
    sha256: "{{ backup.sha256 }}"
"""

RETURN = r"""
before_restore:
  description: The copy of the database as it was before the restore.
  type: str
  returned: success
routing_generation:
  description: The restored database's routing generation (PostgreSQL's read after the
    restore, so none in check mode).
  type: int
  returned: success
"""

import hmac  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.backup import (  # noqa: E402
    copy_postgres,
    copy_sqlite,
    sha256_of,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    DatabaseError,
    connect_with,
    database_argument_spec,
)

REQUIRED_TABLES = ("subscriber", "dbaliases", "sipwave_account", "sipwave_number")


def generation_of(cursor) -> int:
    """The routing generation a database holds (0 without its row)."""
    cursor.execute("SELECT generation FROM sipwave_routing_generation WHERE id = 1")
    found = cursor.fetchone()
    return int(found[0]) if found else 0


def check_sqlite_copy(path: str) -> int:
    """Fails (ValueError) unless the copy is a whole SQLite database of the proxy; returns its
    routing generation."""
    copy = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (verdict,) = copy.execute("PRAGMA integrity_check").fetchone()
        if verdict != "ok":
            raise ValueError(f"{path} fails the integrity check: {verdict}")
        tables = {name for (name,) in copy.execute("SELECT name FROM sqlite_master")}
        missing = [t for t in REQUIRED_TABLES if t not in tables]
        if missing:
            raise ValueError(f"{path} is no proxy database: no {', '.join(missing)}")
        return generation_of(copy.cursor())
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path} is not a readable SQLite database: {exc}") from None
    finally:
        copy.close()


def restored_generation(params: dict) -> int:
    """The routing generation of the restored PostgreSQL database (0 without one)."""
    database = connect_with(params)
    try:
        return generation_of(database.connection.cursor())
    except database.Error as exc:
        raise DatabaseError(f"the restored database has no routing generation: {exc}") from None
    finally:
        database.close()


def restore_sqlite(source: str, database: str) -> None:
    copy = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        live = sqlite3.connect(database, timeout=30)
        try:
            copy.backup(live)
        finally:
            live.close()
    finally:
        copy.close()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "source": {"type": "path", "required": True},
            "sha256": {"type": "str", "required": True},
            "directory": {"type": "path", "default": "/var/backups/sipwave"},
            **database_argument_spec(),
        },
        required_if=list(DATABASE_REQUIRED_IF),
        supports_check_mode=True,
    )
    params = module.params
    source = params["source"]
    if not os.path.isfile(source):
        module.fail_json(msg=f"{source}: no such backup on the host")
    if not hmac.compare_digest(sha256_of(source), params["sha256"].lower()):
        module.fail_json(msg=f"{source}: SHA-256 differs from the backup's; not restored")
    generation = None
    try:
        if params["backend"] == "sqlite":
            generation = check_sqlite_copy(source)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    suffix = "sqlite" if params["backend"] == "sqlite" else "pgdump"
    before = os.path.join(params["directory"], f"pre-restore-{stamp}.{suffix}")
    if module.check_mode:
        module.exit_json(changed=True, before_restore=before, routing_generation=generation)
    os.makedirs(params["directory"], mode=0o700, exist_ok=True)
    try:
        if params["backend"] == "sqlite":
            if os.path.exists(params["database"]):
                copy_sqlite(params["database"], before)
                os.chmod(before, 0o600)
            restore_sqlite(source, params["database"])
        else:
            copy_postgres(module, before)
            pg_restore = module.get_bin_path("pg_restore", required=True)
            command = [pg_restore, "--clean", "--if-exists", "--single-transaction",
                       "--no-owner", f"--dbname={params['db_name']}"]  # fmt: skip
            for option, name in (("--host", "db_host"), ("--port", "db_port"),
                                 ("--username", "db_user")):  # fmt: skip
                if params[name] not in (None, ""):
                    command.append(f"{option}={params[name]}")
            environ = {"PGPASSWORD": params["db_password"]} if params["db_password"] else {}
            rc, _out, err = module.run_command([*command, source], environ_update=environ)
            if rc != 0:
                module.fail_json(msg=f"pg_restore failed ({rc}): {err.strip()[-500:]}")
            generation = restored_generation(params)
    except (OSError, sqlite3.Error, DatabaseError) as exc:
        module.fail_json(msg=f"restore of the proxy database failed: {exc}")
    module.exit_json(changed=True, before_restore=before, routing_generation=generation)


if __name__ == "__main__":
    main()
