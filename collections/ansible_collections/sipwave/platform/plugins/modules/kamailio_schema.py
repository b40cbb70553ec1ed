#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: kamailio_schema
short_description: Create the proxy database's tables and routing view, or bring them up to date
version_added: 0.6.0
description:
  - Creates every missing table, index, table version row and the routing view of the proxy
    database (Kamailio's tables and the migration engine's), from the one schema description
    of the collection (C(module_utils/kamailio_db/schema.py)), on SQLite or PostgreSQL.
  - Adds to an existing table the columns a later release added to it (C(ADDED_COLUMNS) of
    the schema description, e.g. C(acc.site)) with C(ALTER TABLE ... ADD COLUMN); the rows
    already there take the column's default.
  - Replaces the routing view when its definition changed (a new release); never changes or
    removes a column, a table or its data.
  - Everything happens in one transaction. In check mode the same work is done and rolled
    back, so C(changed) and C(created) say exactly what a real run would do.
  - A SQLite database file that does not exist yet is created (in check mode it is only
    reported).
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sipwave.platform.kamailio_db
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Create or update the proxy's tables
  sipwave.platform.kamailio_schema:
    database: /var/lib/kamailio/sipwave.sqlite

- name: The same on a PostgreSQL database shared by a proxy cluster
  sipwave.platform.kamailio_schema:
    backend: postgres
    db_host: 127.0.0.1
    db_name: kamailio
    db_user: kamailio
    db_password: "{{ kamailio_db_postgres_password }}"
"""

RETURN = r"""
created:
  description:
    - The objects created, added or replaced, e.g. C(table sipwave_audit), C(column acc.site)
      or C(view sipwave_routing).
  type: list
  elements: str
  returned: always
"""

import os  # noqa: E402
import sqlite3  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import (  # noqa: E402
    schema,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    DATABASE_REQUIRED_IF,
    Database,
    DatabaseError,
    connect_with,
    database_argument_spec,
)


def _every_object() -> list[str]:
    """What ensure() creates in an empty database (check mode before the file exists)."""
    with sqlite3.connect(":memory:") as connection:
        return schema.ensure(Database("sqlite", connection, sqlite3.Error), connection.cursor())


# How long the schema step waits for a table that calls are being recorded in (PostgreSQL).
LOCK_TIMEOUT_MS = 5000


def main() -> None:
    module = AnsibleModule(
        argument_spec=database_argument_spec(),
        required_if=list(DATABASE_REQUIRED_IF),
        supports_check_mode=True,
    )
    params = module.params
    if params["backend"] == "sqlite" and not os.path.exists(params["database"]):
        if module.check_mode:
            module.exit_json(changed=True, created=_every_object())
        # connect() opens existing files only: create the empty file it opens.
        sqlite3.connect(params["database"]).close()
    try:
        conn = connect_with(params)
    except DatabaseError as exc:
        module.fail_json(msg=str(exc))
    try:
        cursor = conn.connection.cursor()
        if conn.backend == "sqlite":
            # Python's sqlite3 runs DDL outside a transaction unless one is open.
            cursor.execute("BEGIN IMMEDIATE")
        else:
            # Adding a column locks its table until commit, and Kamailio's acc waits for it
            # with every call: wait for a busy table a bounded time, then give up (the run
            # fails naming the lock; nothing is half done) rather than stall call handling.
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
        created = schema.ensure(conn, cursor)
        if module.check_mode:
            conn.connection.rollback()
        else:
            conn.connection.commit()
    except conn.Error as exc:
        conn.connection.rollback()
        module.fail_json(msg=f"{params['backend']} database error: {exc}")
    finally:
        conn.close()
    module.exit_json(changed=bool(created), created=created)


if __name__ == "__main__":
    main()
