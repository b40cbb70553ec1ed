# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proxy database's schema, the one description of every table, index and view for both
backends: Kamailio's own tables (columns as in Kamailio's schema for the table versions
recorded in ``version``), the migration engine's tables, and the routing view the router's
routing cache loads.

ensure() creates what is missing, adds the columns of ADDED_COLUMNS that an older table
lacks, and replaces the routing view when its definition changed, inside the caller's
transaction; it returns what it created or changed (empty when the database was already up
to date), so a module can report ``changed`` truthfully and check mode can run it and roll
back. Data is never touched: tables are only ever created, columns only ever added (each
with a default, which the rows already there take).
"""

from __future__ import annotations

from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.routing_view import (  # noqa: F401 (re-exported)
    ROUTING_VIEW,
    VIEW_MARKER_PREFIX,
    ensure_routing_view,
    routing_view,
)

# {serial} is the backend's auto-increment primary key.
SERIAL = {"sqlite": "INTEGER PRIMARY KEY NOT NULL", "postgres": "SERIAL PRIMARY KEY NOT NULL"}

# Kamailio acc's columns, then the router's (acc db_extra in kamailio.cfg): account, its
# department, the carrier, caller and callee in E.164, direction and the INVITE's arrival;
# NULL where the call has none (acc writes an unset AVP, and the To tag of a call refused
# here, as NULL).
_CALL_RECORD_COLUMNS = """
    id {serial},
    method VARCHAR(16) DEFAULT '' NOT NULL,
    from_tag VARCHAR(128),
    to_tag VARCHAR(128),
    callid VARCHAR(255) DEFAULT '' NOT NULL,
    sip_code VARCHAR(3) DEFAULT '' NOT NULL,
    sip_reason VARCHAR(128),
    time TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    account VARCHAR(128),
    department VARCHAR(128),
    carrier VARCHAR(64),
    caller VARCHAR(64),
    callee VARCHAR(64),
    direction VARCHAR(16),
    start_time VARCHAR(32)"""

# (name, columns and constraints). The subscriber table has no password column on purpose:
# only HA1 hashes are stored.
TABLES: tuple[tuple[str, str], ...] = (
    ("version", """
    id {serial},
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)"""),
    ("subscriber", """
    id {serial},
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL,
    ha1 VARCHAR(128) DEFAULT '' NOT NULL,
    ha1b VARCHAR(128) DEFAULT '' NOT NULL,
    CONSTRAINT subscriber_account_idx UNIQUE (username, domain)"""),
    ("location", """
    id {serial},
    ruid VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT NULL,
    contact VARCHAR(512) DEFAULT '' NOT NULL,
    received VARCHAR(128) DEFAULT NULL,
    path VARCHAR(512) DEFAULT NULL,
    expires TIMESTAMP WITHOUT TIME ZONE DEFAULT '2030-05-28 21:32:15' NOT NULL,
    q REAL DEFAULT 1.0 NOT NULL,
    callid VARCHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    cseq INTEGER DEFAULT 1 NOT NULL,
    last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    cflags INTEGER DEFAULT 0 NOT NULL,
    user_agent VARCHAR(255) DEFAULT '' NOT NULL,
    socket VARCHAR(64) DEFAULT NULL,
    methods INTEGER DEFAULT NULL,
    instance VARCHAR(255) DEFAULT NULL,
    reg_id INTEGER DEFAULT 0 NOT NULL,
    server_id INTEGER DEFAULT 0 NOT NULL,
    connection_id INTEGER DEFAULT 0 NOT NULL,
    keepalive INTEGER DEFAULT 0 NOT NULL,
    partition INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT location_ruid_idx UNIQUE (ruid)"""),
    ("location_attrs", """
    id {serial},
    ruid VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT NULL,
    aname VARCHAR(64) DEFAULT '' NOT NULL,
    atype INTEGER DEFAULT 0 NOT NULL,
    avalue VARCHAR(512) DEFAULT '' NOT NULL,
    last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL"""),
    # The numbers served here (Kamailio's alias_db table, written by the migration engine):
    # alias_username is the number in E.164 without "+".
    ("dbaliases", """
    id {serial},
    alias_username VARCHAR(64) DEFAULT '' NOT NULL,
    alias_domain VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL"""),
    # The migration engine's tables (module_utils/wave).
    ("sipwave_account", """
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
    run_id VARCHAR(64) NOT NULL"""),
    # The number inventory: an account's numbers (kind number; state legacy, porting, active,
    # kept_for_porting or released), its dial-in caller numbers (kind dialin) and its
    # temporary number (kind and state temporary; one account per number, see INDEXES).
    ("sipwave_number", """
    number VARCHAR(16) NOT NULL,
    login VARCHAR(64) NOT NULL,
    kind VARCHAR(8) NOT NULL,
    state VARCHAR(16) NOT NULL,
    PRIMARY KEY (number, login, kind)"""),
    # On the legacy platform (lab): its calls to a migrated account's number go to the
    # account's temporary number (module number_forwarding fills it from the wave's proxies).
    ("sipwave_forwarding", """
    number VARCHAR(16) PRIMARY KEY NOT NULL,
    target VARCHAR(16) NOT NULL"""),
    # Temporary numbers given back to their pool, and when: they rest before reuse.
    ("sipwave_number_quarantine", """
    number VARCHAR(16) PRIMARY KEY NOT NULL,
    returned_on VARCHAR(10) NOT NULL"""),
    ("sipwave_audit", """
    id {serial},
    at VARCHAR(32) NOT NULL,
    run_id VARCHAR(64) NOT NULL,
    wave VARCHAR(64) NOT NULL,
    login VARCHAR(64) NOT NULL,
    action VARCHAR(32) NOT NULL,
    "before" TEXT,
    "after" TEXT"""),
    ("sipwave_snapshot", """
    id {serial},
    wave VARCHAR(64) NOT NULL,
    taken_at VARCHAR(32) NOT NULL,
    content TEXT NOT NULL"""),
    ("sipwave_consent", """
    login VARCHAR(64) PRIMARY KEY NOT NULL,
    decision VARCHAR(16) NOT NULL,
    recorded_at VARCHAR(32) NOT NULL,
    source VARCHAR(255) DEFAULT '' NOT NULL"""),
    # Staff members' accounts (module_utils/staff.py, playbooks/user_add.yml): who they are
    # and their phones (vendor:model:mac, ";"-separated), which the provisioning renders
    # next to the customers'. Their subscriber, dbaliases and sipwave_number rows are keyed
    # by this login; their SIP password is derived from the site secret, never stored.
    ("sipwave_staff", """
    login VARCHAR(64) PRIMARY KEY NOT NULL,
    domain VARCHAR(64) NOT NULL,
    display_name VARCHAR(128) DEFAULT '' NOT NULL,
    email VARCHAR(255) DEFAULT '' NOT NULL,
    department VARCHAR(128) DEFAULT '' NOT NULL,
    devices TEXT DEFAULT '' NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    run_id VARCHAR(64) NOT NULL"""),
    # Number porting (module_utils/porting). Port requests of customers coming here: their
    # state (porting.states), the hash of the secret code (never the code), the numbers.
    ("sipwave_port_request", """
    ref VARCHAR(40) PRIMARY KEY NOT NULL,
    login VARCHAR(64) NOT NULL,
    migration_code VARCHAR(64) NOT NULL,
    donor VARCHAR(16) NOT NULL,
    secret_proof VARCHAR(256) NOT NULL,
    numbers TEXT NOT NULL,
    requested_date VARCHAR(10) NOT NULL,
    scheduled_date VARCHAR(10),
    state VARCHAR(16) NOT NULL,
    reason VARCHAR(128) DEFAULT '' NOT NULL,
    wrong_secrets INTEGER DEFAULT 0 NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL"""),
    # One row per transition of a port request: who, when, why.
    ("sipwave_port_event", """
    id {serial},
    ref VARCHAR(40) NOT NULL,
    at VARCHAR(32) NOT NULL,
    run_id VARCHAR(64) NOT NULL,
    actor VARCHAR(64) NOT NULL,
    from_state VARCHAR(16),
    to_state VARCHAR(16) NOT NULL,
    reason VARCHAR(128) DEFAULT '' NOT NULL"""),
    # As donor: the migration codes issued to customers who leave (state issued, blocked or
    # withdrawn), the hash of each one's secret code, and the answers given to requests (one
    # per attempt: a request sent again with another secret code is a new attempt).
    ("sipwave_port_code", """
    code VARCHAR(64) PRIMARY KEY NOT NULL,
    login VARCHAR(64) NOT NULL,
    numbers TEXT NOT NULL,
    secret_proof VARCHAR(256) NOT NULL,
    state VARCHAR(16) NOT NULL,
    wrong_secrets INTEGER DEFAULT 0 NOT NULL,
    issued_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL"""),
    ("sipwave_port_answer", """
    recipient VARCHAR(16) NOT NULL,
    ref VARCHAR(40) NOT NULL,
    attempt VARCHAR(32) NOT NULL,
    code VARCHAR(64) NOT NULL,
    answer VARCHAR(16) NOT NULL,
    reason VARCHAR(32) DEFAULT '' NOT NULL,
    answered_at VARCHAR(32) NOT NULL,
    PRIMARY KEY (recipient, ref, attempt)"""),
    # The point of no return: accounts whose legacy side was switched off after their numbers
    # were ported. Rollbacks refuse them.
    ("sipwave_cutover", """
    login VARCHAR(64) PRIMARY KEY NOT NULL,
    at VARCHAR(32) NOT NULL,
    run_id VARCHAR(64) NOT NULL,
    actor VARCHAR(64) NOT NULL,
    numbers TEXT NOT NULL"""),
    # Call records (Kamailio's acc, one row per INVITE transaction: answered, failed or
    # cancelled) with the router's columns after Kamailio's own; time is the final answer's.
    ("acc", _CALL_RECORD_COLUMNS),
    # The end of an answered call: its BYE (acc_db_request from the router), by Call-ID.
    ("sipwave_call_end", _CALL_RECORD_COLUMNS),
    # One row: counted up by every engine run that changes routing data.
    ("sipwave_routing_generation", """
    id INTEGER PRIMARY KEY NOT NULL,
    generation INTEGER NOT NULL"""),
)  # fmt: skip

_COLUMNS = dict(TABLES)

# Columns added to a table after it was first released: (table, column, definition). A new
# table gets them at its end (create_table); ensure() adds them to an older table with ALTER
# TABLE ... ADD COLUMN, so both end up alike. Append only, never reorder or remove: the
# definition must carry a DEFAULT (the value of the rows already there; SQLite refuses to add
# a NOT NULL column without one).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # The site (kamailio_sites) of the call's account: the caller's for an outbound call,
    # the called account's for an inbound one; NULL for a call of no site.
    ("acc", "site", "VARCHAR(64) DEFAULT NULL"),
    ("sipwave_call_end", "site", "VARCHAR(64) DEFAULT NULL"),
    # A number's site (kamailio_sites, by the longest area prefix) and the carrier that brings
    # its calls here (a temporary number's pool's); "" for none. Written by the wave.
    ("sipwave_number", "site", "VARCHAR(64) DEFAULT '' NOT NULL"),
    ("sipwave_number", "carrier", "VARCHAR(64) DEFAULT '' NOT NULL"),
)

# (name, table, columns)
INDEXES: tuple[tuple[str, str, str], ...] = (
    ("subscriber_username_idx", "subscriber", "username"),
    ("location_account_contact_idx", "location", "username, domain, contact"),
    ("location_expires_idx", "location", "expires"),
    ("alias_idx", "dbaliases", "alias_username, alias_domain"),
    ("alias_target_idx", "dbaliases", "username, domain"),
    ("sipwave_number_login_idx", "sipwave_number", "login"),
    ("acc_callid_idx", "acc", "callid"),
    ("sipwave_call_end_callid_idx", "sipwave_call_end", "callid"),
    ("sipwave_port_request_login_idx", "sipwave_port_request", "login"),
    ("sipwave_port_event_ref_idx", "sipwave_port_event", "ref"),
    ("sipwave_port_code_login_idx", "sipwave_port_code", "login"),
)

# (name, table, columns, condition): unique among the rows that meet the condition.
UNIQUE_INDEXES: tuple[tuple[str, str, str, str], ...] = (
    # A temporary number belongs to one account at a time, whatever a run or rollback does.
    ("sipwave_temporary_number_idx", "sipwave_number", "number", "kind = 'temporary'"),
)

# Kamailio checks these versions at start (the modules' "table version mismatch").
TABLE_VERSIONS = {"subscriber": 7, "location": 9, "location_attrs": 1, "dbaliases": 1}


def create_table(backend: str, name: str) -> str:
    """The table's CREATE statement; its added columns come before its table constraints."""
    added = "".join(
        f"\n    {column} {definition},"
        for table, column, definition in ADDED_COLUMNS
        if table == name
    )
    columns = _COLUMNS[name]
    if added:
        head, _sep, tail = columns.rpartition(",\n")
        if tail.lstrip().startswith(("PRIMARY KEY (", "CONSTRAINT ")):
            columns = f"{head},{added}\n{tail}"
        else:
            columns = f"{columns},{added.rstrip(',')}"
    return f"CREATE TABLE IF NOT EXISTS {name} ({columns.format(serial=SERIAL[backend])}\n)"


def _exists(conn: Database, cursor: Any, kind: str, name: str) -> bool:
    if conn.backend == "sqlite":
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", (kind, name))
        return cursor.fetchone() is not None
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    return bool(cursor.fetchone()[0])


def table_exists(conn: Database, cursor: Any, name: str) -> bool:
    return _exists(conn, cursor, "table", name)


def column_exists(conn: Database, cursor: Any, table: str, column: str) -> bool:
    if conn.backend == "sqlite":
        cursor.execute("SELECT 1 FROM pragma_table_info(?) WHERE name = ?", (table, column))
    else:
        cursor.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s AND column_name = %s",
            (table, column),
        )
    return cursor.fetchone() is not None


def _insert_missing(conn: Database, cursor: Any, table: str, key: str, row: dict) -> bool:
    columns = ", ".join(row)
    cursor.execute(
        conn.sql(
            f"INSERT INTO {table} ({columns}) SELECT {', '.join(['{p}'] * len(row))} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {key} = {{p}})"
        ),
        (*row.values(), row[key]),
    )
    return cursor.rowcount > 0


def ensure(conn: Database, cursor: Any, *, add_columns: bool = True) -> list[str]:
    """Create every missing table, column (ADDED_COLUMNS), index, version row and the
    generation row, and the routing view (replaced when its definition changed). Runs in the
    caller's transaction; committing is the caller's. Returns the objects created or changed,
    e.g. ``["table sipwave_audit", "column acc.site"]``; a table created here comes with its
    added columns, which are not listed again.

    ``add_columns=False`` leaves older tables as they are. The wave steps pass it: on
    PostgreSQL, ALTER TABLE holds an exclusive lock on the table until the transaction ends,
    and a wave's transaction is long; Kamailio writes to acc with every call and would wait
    for it. The columns are added by the role's schema step (kamailio_schema), in a short
    transaction of its own that waits for the table a bounded time."""
    done = []
    created = set()
    for name, _columns in TABLES:
        if not table_exists(conn, cursor, name):
            cursor.execute(create_table(conn.backend, name))
            done.append(f"table {name}")
            created.add(name)
    for table, column, definition in ADDED_COLUMNS if add_columns else ():
        if table not in created and not column_exists(conn, cursor, table, column):
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            done.append(f"column {table}.{column}")
    for name, table, columns in INDEXES:
        if not _exists(conn, cursor, "index", name):
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})")
            done.append(f"index {name}")
    for name, table, columns, where in UNIQUE_INDEXES:
        if not _exists(conn, cursor, "index", name):
            cursor.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table} ({columns}) WHERE {where}"
            )
            done.append(f"index {name}")
    for table, version in TABLE_VERSIONS.items():
        row = {"table_name": table, "table_version": version}
        if _insert_missing(conn, cursor, "version", "table_name", row):
            done.append(f"version of {table}")
    if _insert_missing(
        conn, cursor, "sipwave_routing_generation", "id", {"id": 1, "generation": 0}
    ):
        done.append("routing generation")
    if ensure_routing_view(conn, cursor):
        done.append(f"view {ROUTING_VIEW}")
    return done
