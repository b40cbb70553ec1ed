"""kamailio_db.schema: one description of the proxy database for SQLite and PostgreSQL."""

import json
import sqlite3
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from pg_cluster import throwaway_cluster
from schema_listing import postgres_listing, sqlite_listing
from wave_helpers import VIEW_ACCOUNTS, VIEW_AFTER_PHASE1, routing_view, run

EVERY_OBJECT = (
    [f"table {name}" for name, _ in schema.TABLES]
    + [f"index {name}" for name, _, _ in schema.INDEXES]
    + [f"index {name}" for name, _, _, _ in schema.UNIQUE_INDEXES]
    + [f"version of {table}" for table in schema.TABLE_VERSIONS]
    + ["routing generation", "view sipwave_routing"]
)

# Recorded from the role's removed SQL files plus the engine's former ensure_tables, and checked
# equal to what ensure() created then (see schema_listing.py). Added later, with nothing else
# changed: the call record tables (acc, sipwave_call_end), the temporary numbers' quarantine
# table and unique index, the legacy platform's forwarding table, and the routing view's d:,
# t:, f: and temporary n: keys, and the porting tables (requests, their events, codes issued,
# answers given, cutovers), and the call records' site column (schema.ADDED_COLUMNS), and
# the staff members' table with the routing view's d: keys of their identities.
RECORDED = Path(__file__).parent / "golden" / "kamailio_schema"


def recorded(backend: str) -> dict:
    return json.loads((RECORDED / f"{backend}.json").read_text())


def ensure_sqlite(path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return schema.ensure(Database("sqlite", connection, sqlite3.Error), connection.cursor())


def test_a_new_database_gets_every_object_once(tmp_path):
    database = tmp_path / "proxy.sqlite"

    assert ensure_sqlite(database) == EVERY_OBJECT
    assert ensure_sqlite(database) == []


def test_kamailio_finds_the_table_versions_it_checks(tmp_path):
    database = tmp_path / "proxy.sqlite"
    ensure_sqlite(database)
    with sqlite3.connect(database) as connection:
        versions = dict(connection.execute("SELECT table_name, table_version FROM version"))

    assert versions == {"subscriber": 7, "location": 9, "location_attrs": 1, "dbaliases": 1}


def test_the_subscriber_table_has_no_password_column(tmp_path):
    database = tmp_path / "proxy.sqlite"
    ensure_sqlite(database)
    with sqlite3.connect(database) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(subscriber)")]

    assert columns == ["id", "username", "domain", "ha1", "ha1b"]


def test_a_missing_table_is_created_and_the_data_of_the_others_stays(tmp_path):
    database = tmp_path / "proxy.sqlite"
    ensure_sqlite(database)
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO subscriber (username, domain) VALUES ('a', 'b')")
        connection.execute("DROP TABLE sipwave_audit")

    assert ensure_sqlite(database) == ["table sipwave_audit"]
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT username FROM subscriber").fetchall() == [("a",)]


def test_an_older_routing_view_is_replaced_and_reported(tmp_path):
    database = tmp_path / "proxy.sqlite"
    ensure_sqlite(database)
    run(database, VIEW_ACCOUNTS)
    with sqlite3.connect(database) as connection:
        connection.executescript(
            "DROP VIEW sipwave_routing; CREATE VIEW sipwave_routing AS"
            " SELECT 'n:' || alias_username AS key_name, 0 AS key_type, 0 AS value_type,"
            " username || '@' || lower(domain) AS key_value, 0 AS expires FROM dbaliases;"
        )

    assert ensure_sqlite(database) == ["view sipwave_routing"]
    with sqlite3.connect(database) as connection:
        assert routing_view(connection.cursor()) == VIEW_AFTER_PHASE1


def older_call_record_tables(connection, backend: str) -> None:
    """acc and sipwave_call_end as released before ADDED_COLUMNS, with one call in each, and
    sipwave_number before its site and carrier columns, with one number."""
    cursor = connection.cursor()
    for column in ("site", "carrier"):
        cursor.execute(f"ALTER TABLE sipwave_number DROP COLUMN {column}")
    cursor.execute("INSERT INTO sipwave_number VALUES ('+48225550100', 'a', 'number', 'legacy')")
    for table in ("acc", "sipwave_call_end"):
        cursor.execute(f"DROP TABLE {table}")
        cursor.execute(schema.create_table(backend, table).split(",\n    site ")[0] + "\n)")
        cursor.execute(
            f"INSERT INTO {table} (method, callid, sip_code, time, account)"
            " VALUES ('INVITE', 'call-1', '200', '2026-12-04 10:00:00', 'a@b')"
        )
    for name, table, columns in schema.INDEXES:
        if table in ("acc", "sipwave_call_end"):
            cursor.execute(f"CREATE INDEX {name} ON {table} ({columns})")


ADDED = [f"column {table}.{column}" for table, column, _ in schema.ADDED_COLUMNS]
CALL = [("call-1", "a@b", None)]


def test_every_added_column_has_a_default_for_the_rows_already_there():
    assert ADDED == [
        "column acc.site",
        "column sipwave_call_end.site",
        "column sipwave_number.site",
        "column sipwave_number.carrier",
    ]
    assert all(" DEFAULT " in f" {definition} " for _, _, definition in schema.ADDED_COLUMNS)


def test_an_older_call_record_table_gains_the_site_column_and_keeps_its_rows(tmp_path):
    database = tmp_path / "proxy.sqlite"
    ensure_sqlite(database)
    with sqlite3.connect(database) as connection:
        older_call_record_tables(connection, "sqlite")

    assert ensure_sqlite(database) == ADDED
    assert ensure_sqlite(database) == []
    with sqlite3.connect(database) as connection:
        for table in ("acc", "sipwave_call_end"):
            rows = connection.execute(f"SELECT callid, account, site FROM {table}").fetchall()
            assert rows == CALL
            connection.execute(f"DELETE FROM {table}")
        numbers = connection.execute("SELECT number, state, site, carrier FROM sipwave_number")
        assert numbers.fetchall() == [("+48225550100", "legacy", "", "")]
        connection.execute("DELETE FROM sipwave_number")
        # Once its rows are gone, the upgraded database lists as a new one.
        assert sqlite_listing(connection) == recorded("sqlite")


def test_check_mode_can_roll_back_what_ensure_did(tmp_path):
    """What kamailio_schema does in check mode: an explicit transaction (Python's sqlite3
    would run DDL outside one), ensure, roll back."""
    database = tmp_path / "proxy.sqlite"
    with sqlite3.connect(database) as connection:
        connection.execute("BEGIN")
        done = schema.ensure(Database("sqlite", connection, sqlite3.Error), connection.cursor())
        connection.rollback()
        tables = connection.execute("SELECT name FROM sqlite_master").fetchall()

    assert done == EVERY_OBJECT
    assert tables == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_each_backend_gets_the_same_tables_from_the_one_description(backend):
    for name, _columns in schema.TABLES:
        statement = schema.create_table(backend, name)
        assert statement.startswith(f"CREATE TABLE IF NOT EXISTS {name} (")
        assert "{" not in statement
    view = schema.routing_view(backend)
    assert ("::TEXT" in view) == (backend == "postgres")
    assert view.startswith("CREATE OR REPLACE VIEW" if backend == "postgres" else "CREATE VIEW")


def test_ensure_creates_on_sqlite_the_objects_the_role_sql_file_created(tmp_path):
    database = tmp_path / "proxy.sqlite"
    ensure_sqlite(database)
    with sqlite3.connect(database) as connection:
        assert sqlite_listing(connection) == recorded("sqlite")


@pytest.fixture(scope="module")
def cluster():
    yield from throwaway_cluster(5438)


def test_ensure_creates_on_postgres_the_objects_the_role_sql_file_created(cluster):
    import psycopg2

    admin = psycopg2.connect(host=cluster, port=5438, dbname="postgres", user="kamailio")
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE schema_objects")
    admin.close()
    connection = psycopg2.connect(host=cluster, port=5438, dbname="schema_objects", user="kamailio")
    try:
        with connection, connection.cursor() as cursor:
            assert schema.ensure(Database("postgres", connection, psycopg2.Error), cursor) == (
                EVERY_OBJECT
            )
        assert postgres_listing(connection) == recorded("postgres")
        with connection, connection.cursor() as cursor:
            assert schema.ensure(Database("postgres", connection, psycopg2.Error), cursor) == []
    finally:
        connection.close()


def test_on_postgres_an_older_call_record_table_gains_the_site_column_in_the_transaction(
    cluster,
):
    import psycopg2

    admin = psycopg2.connect(host=cluster, port=5438, dbname="postgres", user="kamailio")
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE schema_added_columns")
    admin.close()
    connection = psycopg2.connect(
        host=cluster, port=5438, dbname="schema_added_columns", user="kamailio"
    )
    database = Database("postgres", connection, psycopg2.Error)
    try:
        with connection, connection.cursor() as cursor:
            schema.ensure(database, cursor)
            older_call_record_tables(connection, "postgres")
        with connection.cursor() as cursor:  # check mode: ensure, then roll back
            assert schema.ensure(database, cursor) == ADDED
        connection.rollback()
        with connection, connection.cursor() as cursor:
            assert not schema.column_exists(database, cursor, "acc", "site")
            assert schema.ensure(database, cursor) == ADDED
        with connection, connection.cursor() as cursor:
            assert schema.ensure(database, cursor) == []
            for table in ("acc", "sipwave_call_end"):
                cursor.execute(f"SELECT callid, account, site FROM {table}")
                assert cursor.fetchall() == CALL
                cursor.execute(f"DELETE FROM {table}")
            cursor.execute("SELECT number, state, site, carrier FROM sipwave_number")
            assert cursor.fetchall() == [("+48225550100", "legacy", "", "")]
            cursor.execute("DELETE FROM sipwave_number")
        listing, expected = postgres_listing(connection), recorded("postgres")
        # sipwave_number's re-added columns come after the dropped ones' positions: the same
        # columns, positions aside.
        for found in (listing, expected):
            numbers = [c for c in found["columns"] if c[0] == "sipwave_number"]
            found["columns"] = [c for c in found["columns"] if c[0] != "sipwave_number"]
            found["sipwave_number"] = sorted(c[2:] for c in numbers)
        # The serial sequences were created again with the older tables: same names, values.
        assert listing == expected
    finally:
        connection.close()


def test_on_postgres_an_up_to_date_view_is_left_alone_and_an_older_one_replaced(cluster):
    """ensure() runs in every wave's transaction: an up-to-date view must not be replaced
    (CREATE OR REPLACE would hold its exclusive lock until the wave commits, stalling every
    reader such as a proxy reloading its routing cache); an older definition is replaced."""
    import psycopg2

    admin = psycopg2.connect(host=cluster, port=5438, dbname="postgres", user="kamailio")
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE schema_view_lock")
    admin.close()

    def connect():
        return psycopg2.connect(host=cluster, port=5438, dbname="schema_view_lock", user="kamailio")

    writer, reader = connect(), connect()
    try:
        with writer, writer.cursor() as cursor:
            schema.ensure(Database("postgres", writer, psycopg2.Error), cursor)
        with reader.cursor() as read:
            read.execute("SELECT count(*) FROM sipwave_routing")  # holds ACCESS SHARE until commit
            with writer, writer.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '1s'")
                assert schema.ensure(Database("postgres", writer, psycopg2.Error), cursor) == []
        reader.rollback()
        with writer, writer.cursor() as cursor:
            cursor.execute(
                "DROP VIEW sipwave_routing; CREATE VIEW sipwave_routing AS SELECT"
                " 'n:' || alias_username AS key_name, 0 AS key_type, 0 AS value_type,"
                " (username || '@' || lower(domain))::TEXT AS key_value, 0 AS expires"
                " FROM dbaliases"
            )
        with writer, writer.cursor() as cursor:
            done = schema.ensure(Database("postgres", writer, psycopg2.Error), cursor)
            cursor.execute("SELECT pg_get_viewdef('sipwave_routing')")
            definition = cursor.fetchone()[0]
        assert done == ["view sipwave_routing"]
        assert "'a:'" in definition
    finally:
        writer.close()
        reader.close()


def test_on_postgres_a_busy_call_record_table_is_never_locked_by_a_wave(cluster, tmp_path):
    """Kamailio writes acc with every call. A wave's long transaction never alters it (its
    ensure() adds no column), and the role's schema step waits for a busy acc a bounded time,
    then fails naming the lock with nothing changed, instead of holding up every call."""
    import time

    import psycopg2
    from module_runner import COLLECTIONS, run_module_file

    admin = psycopg2.connect(host=cluster, port=5438, dbname="postgres", user="kamailio")
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE schema_busy_acc")
    admin.close()

    def connect():
        return psycopg2.connect(host=cluster, port=5438, dbname="schema_busy_acc", user="kamailio")

    connection, kamailio = connect(), connect()
    database = Database("postgres", connection, psycopg2.Error)
    try:
        with connection, connection.cursor() as cursor:
            schema.ensure(database, cursor)
            older_call_record_tables(connection, "postgres")
        # A call being recorded: Kamailio's open insert into acc.
        held = kamailio.cursor()
        held.execute("INSERT INTO acc (method, callid, sip_code, time) "
                     "VALUES ('INVITE', 'busy', '200', now())")  # fmt: skip
        with connection, connection.cursor() as cursor:  # a wave's transaction
            cursor.execute("SET LOCAL lock_timeout = '1s'")  # would raise if it waited
            assert schema.ensure(database, cursor, add_columns=False) == []
        module = (
            COLLECTIONS / "ansible_collections/sipwave/platform/plugins/modules/kamailio_schema.py"
        )
        args = {"backend": "postgres", "db_host": cluster, "db_port": 5438,
                "db_name": "schema_busy_acc", "db_user": "kamailio"}  # fmt: skip
        started = time.monotonic()
        result = run_module_file(module, tmp_path, args)
        waited = time.monotonic() - started
        outcome = json.loads(result.stdout)
        assert outcome.get("failed"), outcome
        assert "lock timeout" in outcome["msg"]
        assert 4 < waited < 30
        kamailio.commit()  # the call is recorded; the step run again adds the columns
        outcome = json.loads(run_module_file(module, tmp_path, args).stdout)
        assert outcome["created"] == ADDED
    finally:
        connection.close()
        kamailio.close()
