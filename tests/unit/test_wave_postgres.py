"""The wave engine on PostgreSQL: a throwaway cluster on a Unix socket (no TCP at all).

Skipped where PostgreSQL's server binaries or psycopg2 are missing.
"""

import time

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import (
    connection as dbconn,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.consent import record_consent
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import Consent, RunResult
from ansible_collections.sipwave.platform.plugins.module_utils.wave.rollback import rollback_wave
from ansible_collections.sipwave.platform.plugins.module_utils.wave.run import run_wave
from pg_cluster import throwaway_cluster
from wave_helpers import (
    CLOSING,
    MOVING,
    TODAY,
    VIEW_ACCOUNTS,
    VIEW_AFTER_PHASE1,
    routing_view,
    settings,
    view_after_closure,
    wave_accounts,
)

psycopg2 = pytest.importorskip("psycopg2")


@pytest.fixture(scope="module")
def cluster():
    yield from throwaway_cluster(5439)


@pytest.fixture
def database(cluster):
    name = f"kamailio_{time.monotonic_ns()}"
    admin = psycopg2.connect(host=cluster, port=5439, dbname="postgres", user="kamailio")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    admin.close()
    connection = psycopg2.connect(host=cluster, port=5439, dbname=name, user="kamailio")
    with connection, connection.cursor() as cursor:
        schema.ensure(Database("postgres", connection, psycopg2.Error), cursor)
    connection.close()
    return {"host": cluster, "port": 5439, "name": name, "user": "kamailio"}


def connect(database):
    return dbconn.connect("postgres", **database)


def run(database, accounts, phase=1, **overrides) -> RunResult:
    conn = connect(database)
    try:
        return run_wave(conn, accounts, {}, settings(phase, **overrides), False)
    finally:
        conn.close()


def dump(database):
    conn = connect(database)
    cursor = conn.connection.cursor()
    tables = {}
    for table, columns in (
        ("subscriber", "username, domain, ha1, ha1b"),
        ("dbaliases", "alias_username, alias_domain, username, domain"),
        ("sipwave_account", "login, state, current_username, current_domain, grace_until"),
        ("sipwave_number", "number, login, kind, state"),
    ):
        cursor.execute("SELECT to_regclass(%s)", (table,))
        if cursor.fetchone()[0] is None:
            tables[table] = []
            continue
        cursor.execute(f"SELECT {columns} FROM {table}")
        tables[table] = sorted(cursor.fetchall())
    conn.close()
    return tables


def test_wave_phase2_grace_and_rollback_on_postgres(database):
    before = dump(database)
    accounts = wave_accounts()
    first = run(database, accounts)
    conn = connect(database)
    record_consent(conn, [Consent(accounts[1].login, "migrate")], "test-run", False)
    conn.close()
    phase2 = run(database, accounts, phase=2)
    again = run(database, accounts, phase=2)
    run(database, accounts, phase=2, today=TODAY.replace(year=2027))

    conn = connect(database)
    rolled_back = rollback_wave(conn, settings(), False)
    conn.close()

    assert first.changed and first.reconciliation["ok"]
    assert phase2.reconciliation["per_state"] == {"phase2": 1, "consent_pending": 5}
    assert not again.changed
    assert rolled_back.changed and rolled_back.reconciliation["ok"]
    assert dump(database) == before


def view_of(database) -> dict:
    conn = connect(database)
    try:
        return routing_view(conn.connection.cursor())
    finally:
        conn.close()


def record(database, **decisions):
    conn = connect(database)
    try:
        record_consent(conn, [Consent(login, d) for login, d in decisions.items()], "t", False)
    finally:
        conn.close()


def test_the_routing_view_on_postgres_after_phase1(database):
    assert view_of(database) == {"g:generation": (1, "0")}

    run(database, VIEW_ACCOUNTS)

    assert view_of(database) == VIEW_AFTER_PHASE1


@pytest.mark.parametrize("closure", ["kept_for_porting", "released"])
def test_the_routing_view_on_postgres_after_a_closure(database, closure):
    run(database, VIEW_ACCOUNTS)
    record(database, **{MOVING.login: "migrate", CLOSING.login: "close"})

    result = run(database, VIEW_ACCOUNTS, phase=2, closure_numbers=closure)

    assert view_of(database) == view_after_closure(closure)
    assert result.routing_generation == 2


def test_the_generation_on_postgres_counts_changing_runs_and_rollback(database):
    generations = [run(database, VIEW_ACCOUNTS).routing_generation]
    generations.append(run(database, VIEW_ACCOUNTS).routing_generation)
    conn = connect(database)
    generations.append(rollback_wave(conn, settings(), False).routing_generation)
    conn.close()

    assert generations == [1, 1, 2]
    assert view_of(database)["g:generation"] == (1, "2")


def test_on_postgres_a_rerun_keeps_the_earlier_closure_its_refund_and_its_numbers(database):
    run(database, VIEW_ACCOUNTS)
    record(database, **{MOVING.login: "migrate", CLOSING.login: "close"})
    run(database, VIEW_ACCOUNTS, phase=2, run_id="closing-run")

    rerun = run(database, VIEW_ACCOUNTS, phase=2, run_id="rerun", closure_numbers="released")

    closed = next(p for p in rerun.plans if p.login == CLOSING.login)
    assert not rerun.changed
    assert (closed.refund, closed.refund_run) == (CLOSING.balance, "closing-run")
    assert closed.closure_numbers == "kept_for_porting"
    assert rerun.reconciliation["ok"]
    assert rerun.reconciliation["closure_numbers_conflicts"]["count"] == 1
    assert view_of(database) == view_after_closure("kept_for_porting")
