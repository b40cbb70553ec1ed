"""A wave applied to a real SQLite file: phases, grace, closure, rollback, re-runs, crashes."""

import json
import sqlite3
import subprocess
import sys
from datetime import timedelta

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import credentials
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import generated_password
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import (
    connection as dbconn,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave import transaction
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import MigrationError
from ansible_collections.sipwave.platform.plugins.module_utils.wave.plan import (
    closure_conflicts_message,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.reconcile import reconcile
from ansible_collections.sipwave.platform.plugins.module_utils.wave.run import total_refund
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (
    read_state,
)
from wave_helpers import (
    CLOSING,
    LEGACY,
    MOVING,
    NEW,
    PROJECT,
    SITE_SECRET,
    TODAY,
    VIEW_ACCOUNTS,
    VIEW_AFTER_PHASE1,
    account,
    consent,
    count,
    create_database,
    dump,
    rollback,
    routing_view,
    run,
    secrets_of,
    settings,
    view_after_closure,
    wave_accounts,
)

GRACE_OVER = TODAY + timedelta(days=14)


@pytest.fixture
def database(tmp_path):
    return create_database(tmp_path / "kamailio.sqlite")


def account_row(database, login):
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return dict(connection.execute("SELECT * FROM sipwave_account WHERE login = ?", (login,))
                    .fetchone())  # fmt: skip


def test_phase1_serves_the_legacy_identity_with_password_as_ha1(database):
    alice = account("481234001", ("+48221234567",), ("+48600100200",))

    result = run(database, [alice])

    state = dump(database)
    assert state["subscriber"] == [("481234001", LEGACY, *alice.legacy_credentials)]
    assert alice.legacy_credentials[0] == credentials.ha1(
        "481234001", LEGACY, "Pw-481234001-secret"
    )
    assert state["dbaliases"] == [("48221234567", LEGACY, "481234001", LEGACY)]
    assert state["sipwave_number"] == [
        ("+48221234567", "481234001", "number", "legacy"),
        ("+48600100200", "481234001", "dialin", "active"),
    ]
    assert state["sipwave_account"] == [
        ("481234001", "phase1", "wave1", LEGACY, "481234001", LEGACY, None, "sales", "10.00")
    ]
    assert result.changed
    assert result.reconciliation["ok"]


def test_reconciliation_counts_every_account_number_and_dialin(database):
    accounts = wave_accounts()

    reconciliation = run(database, accounts, rejected={"481239999": "line 9: bad"}).reconciliation

    assert reconciliation | {"problems": []} == {
        "ok": True,
        "accounts": 7,
        "accounts_in_one_state": 7,
        "per_state": {"phase1": 6, "rejected": 1},
        "numbers_expected": 9,
        "numbers_present": 9,
        "dialin_numbers_expected": 2,
        "dialin_numbers_present": 2,
        "aliases_expected": 9,
        "aliases_present": 9,
        "temporary_numbers": 0,
        "problems": [],
        "problem_count": 0,
    }


def test_reconciliation_names_what_is_missing(database):
    accounts = wave_accounts(2)
    run(database, accounts)
    with sqlite3.connect(database) as connection:
        connection.execute("DELETE FROM dbaliases WHERE alias_username = '48221230000'")
        connection.execute("DELETE FROM sipwave_number WHERE number = '+48600100000'")
    conn = dbconn.connect("sqlite", database=str(database))
    with conn.connection:
        state = read_state(conn, conn.connection.cursor(), {LEGACY, NEW})
    conn.close()

    reconciliation = reconcile(state, accounts, {}, settings())

    assert not reconciliation["ok"]
    assert reconciliation["problems"] == [
        "481234000: no alias for +48221230000",
        "481234000: dialin +48600100000 is not active",
    ]
    assert (reconciliation["aliases_present"], reconciliation["dialin_numbers_present"]) == (2, 0)


def test_second_run_changes_nothing_and_writes_no_audit_row(database):
    accounts = wave_accounts()
    run(database, accounts)
    before, audit_rows = dump(database, with_times=True), count(database, "sipwave_audit")

    result = run(database, accounts, run_id="second-run")

    assert not result.changed
    assert {p.action for p in result.plans} == {"unchanged"}
    assert dump(database, with_times=True) == before
    assert count(database, "sipwave_audit") == audit_rows


def test_check_mode_plans_the_run_and_writes_nothing(database):
    accounts = wave_accounts()
    untouched = database.read_bytes()

    planned = run(database, accounts, check=True)

    assert database.read_bytes() == untouched
    applied = run(database, accounts)
    assert [(p.login, p.action) for p in planned.plans] == [
        (p.login, p.action) for p in applied.plans
    ]
    assert planned.reconciliation == applied.reconciliation


def test_phase2_with_consent_gives_the_prefixed_login_and_keeps_the_old_one_for_grace(database):
    alice = account("481234001", ("+48221234567",))
    run(database, [alice])
    consent(database, **{"481234001": "migrate"})

    result = run(database, [alice], phase=2)

    state = dump(database)
    assert sorted(state["subscriber"]) == [
        ("481234001", LEGACY, *alice.legacy_credentials),
        ("tnf481234001", NEW, *alice.new_credentials),
    ]
    assert alice.new_credentials[0] == credentials.ha1("tnf481234001", NEW, "Pw-481234001-secret")
    assert state["dbaliases"] == [("48221234567", NEW, "tnf481234001", NEW)]
    row = account_row(database, "481234001")
    assert (row["state"], row["grace_until"]) == ("phase2", GRACE_OVER.isoformat())
    assert [p.action for p in result.plans] == ["phase2"]


def test_ha1_only_account_gets_a_generated_password_flag(database):
    bob = account("481234002", ha1_only=True)
    consent(database, **{"481234002": "migrate"})

    result = run(database, [bob], phase=2)

    assert result.plans[0].password_generated
    generated = generated_password(SITE_SECRET, "481234002")
    assert dump(database)["subscriber"][-1][2] == credentials.ha1("tnf481234002", NEW, generated)


def test_generated_password_is_stable_per_account_and_secret():
    first = generated_password(SITE_SECRET, "481234002")

    assert first == generated_password(SITE_SECRET, "481234002")
    assert first != generated_password(SITE_SECRET, "481234003")
    assert first != generated_password("other-secret", "481234002")
    assert len(first) == 16


@pytest.mark.parametrize(
    ("today", "legacy_registers", "action"),
    [(GRACE_OVER - timedelta(days=1), True, "unchanged"), (GRACE_OVER, False, "grace_ended")],
    ids=["during-grace", "grace-over"],
)
def test_legacy_identity_stops_when_the_grace_period_ends(database, today, legacy_registers,
                                                          action):  # fmt: skip
    alice = account("481234001", ("+48221234567",))
    consent(database, **{"481234001": "migrate"})
    run(database, [alice], phase=2)

    result = run(database, [alice], phase=2, today=today)

    identities = {(user, domain) for user, domain, *_ in dump(database)["subscriber"]}
    assert (("481234001", LEGACY) in identities) is legacy_registers
    assert ("tnf481234001", NEW) in identities
    assert result.plans[0].action == action
    assert not run(database, [alice], phase=2, today=today).changed


def test_without_consent_phase2_leaves_the_account_pending_on_its_legacy_identity(database):
    alice = account("481234001", ("+48221234567",))
    run(database, [alice])

    result = run(database, [alice], phase=2)

    assert result.plans[0].action == "consent_pending"
    assert dump(database)["subscriber"] == [("481234001", LEGACY, *alice.legacy_credentials)]


@pytest.mark.parametrize("closure", ["kept_for_porting", "released"])
def test_closure_removes_the_account_keeps_or_releases_numbers_and_refunds(database, closure):
    alice = account("481234001", ("+48221234567",), ("+48600100200",), balance="42.10")
    run(database, [alice])
    consent(database, **{"481234001": "close"})

    result = run(database, [alice], phase=2, closure_numbers=closure)

    state = dump(database)
    assert state["subscriber"] == []
    assert state["dbaliases"] == []
    assert state["sipwave_number"] == [
        ("+48221234567", "481234001", "number", closure),
        ("+48600100200", "481234001", "dialin", "released"),
    ]
    assert (result.plans[0].refund, result.plans[0].refund_run) == ("42.10", "test-run")
    assert result.plans[0].closure_numbers == closure
    assert total_refund(result.plans) == "42.10"


# -- closures and refunds across runs (a re-run after a kill) ----------------------------------


def closed_alice(database, balance="42.10", **overrides):
    """alice closed by the run ``closing-run`` (numbers as the setting in ``overrides``)."""
    alice = account("481234001", ("+48221234567",), ("+48600100200",), balance=balance)
    run(database, [alice])
    consent(database, **{"481234001": "close"})
    run(database, [alice], phase=2, run_id="closing-run", **overrides)
    return alice


def audit_actions(database, login) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT run_id, action FROM sipwave_audit WHERE login = ? ORDER BY id", (login,)
        ).fetchall()


def test_a_rerun_accounts_for_an_earlier_closure_with_its_refund_recorded_once(database):
    # The closing run was killed after its commit: the re-run has nothing left to change.
    alice = closed_alice(database)
    audit = audit_actions(database, alice.login)

    rerun = run(database, [alice], phase=2, run_id="rerun")

    (plan,) = rerun.plans
    assert not rerun.changed and plan.action == "unchanged"
    assert (plan.account_row[1], plan.refund, plan.refund_run) == ("closed", "42.10", "closing-run")
    assert total_refund(rerun.plans, "rerun") == "0.00"
    assert total_refund(rerun.plans) == "42.10"
    assert audit_actions(database, alice.login) == audit
    assert [a for a in audit if a[1] == "closed"] == [("closing-run", "closed")]
    assert not run(database, [alice], phase=2, run_id="third-run").changed


def test_the_refund_is_the_amount_recorded_at_closure(database):
    alice = closed_alice(database, balance="42.10")
    richer = account("481234001", ("+48221234567",), ("+48600100200",), balance="99.00")

    later = run(database, [richer], phase=2, run_id="later-export")

    (plan,) = later.plans
    assert (plan.refund, plan.refund_run) == ("42.10", "closing-run")
    assert [action for _run, action in audit_actions(database, alice.login)].count("closed") == 1


def test_a_closure_audited_without_its_refund_falls_back_to_the_balance(database):
    alice = closed_alice(database)
    with sqlite3.connect(database) as connection:  # an audit row of an older engine
        connection.execute("UPDATE sipwave_audit SET \"after\" = '{}' WHERE action = 'closed'")

    (plan,) = run(database, [alice], phase=2, run_id="rerun").plans

    assert (plan.refund, plan.refund_run) == ("42.10", "closing-run")


def test_only_closed_accounts_carry_a_refund(database):
    accounts = wave_accounts(3)
    run(database, accounts)
    consent(database, **{accounts[0].login: "close", accounts[1].login: "migrate"})

    result = run(database, accounts, phase=2)

    assert [(p.action, p.refund) for p in result.plans] == [
        ("closed", "10.00"), ("phase2", None), ("consent_pending", None)
    ]  # fmt: skip
    assert [p.closure_numbers for p in result.plans] == ["kept_for_porting", None, None]


# -- a closed account's numbers keep the decision of its closure ---------------------------------


@pytest.mark.parametrize(("decided", "later"), [("kept_for_porting", "released"),
                                                 ("released", "kept_for_porting")])  # fmt: skip
def test_a_later_closure_setting_never_flips_the_numbers_of_a_closed_account(
    database, decided, later
):
    alice = closed_alice(database, closure_numbers=decided)
    before = dump(database, with_times=True)

    result = run(database, [alice], phase=2, run_id="other-setting", closure_numbers=later)

    assert not result.changed
    assert dump(database, with_times=True) == before
    assert ("+48221234567", "481234001", "number", decided) in before["sipwave_number"]
    assert result.plans[0].closure_numbers == decided
    assert result.reconciliation["ok"], result.reconciliation["problems"]
    assert result.reconciliation["closure_numbers_conflicts"] == {
        "setting": later,
        "count": 1,
        "accounts": [{"login": "481234001", "numbers": {"+48221234567": decided}}],
    }


def test_the_conflict_warning_names_the_accounts_and_the_kept_decision(database):
    alice = closed_alice(database)

    result = run(database, [alice], phase=2, closure_numbers="released")

    message = closure_conflicts_message(result.reconciliation["closure_numbers_conflicts"])
    assert message == (
        "closure_numbers is released, but 1 account(s) closed earlier keep their numbers "
        "kept_for_porting as decided at closure (not changed by this run): 481234001"
    )


def test_an_account_closed_by_this_run_follows_this_runs_setting(database):
    alice = closed_alice(database)  # numbers kept for porting
    bob = account("481234002", ("+48221234568",), balance="5.00")
    run(database, [alice, bob])
    consent(database, **{bob.login: "close"})

    result = run(database, [alice, bob], phase=2, run_id="second-close", closure_numbers="released")

    numbers = {(n, login): s for n, login, kind, s in dump(database)["sipwave_number"]
               if kind == "number"}  # fmt: skip
    assert numbers == {("+48221234567", alice.login): "kept_for_porting",
                       ("+48221234568", bob.login): "released"}  # fmt: skip
    assert [(p.login, p.action, p.refund_run) for p in result.plans] == [
        (alice.login, "unchanged", "closing-run"), (bob.login, "closed", "second-close")
    ]  # fmt: skip
    assert result.reconciliation["closure_numbers_conflicts"]["count"] == 1
    assert result.reconciliation["ok"]


def test_without_a_different_setting_there_is_no_conflict(database):
    alice = closed_alice(database)

    result = run(database, [alice], phase=2, closure_numbers="kept_for_porting")

    assert "closure_numbers_conflicts" not in result.reconciliation


def test_rejected_account_is_recorded_with_its_reason(database):
    result = run(database, [], rejected={"481234009": "export.csv:7: malformed MAC"})

    assert account_row(database, "481234009")["state"] == "rejected"
    assert result.plans[0].action == "rejected"
    with sqlite3.connect(database) as connection:
        (after,) = connection.execute('SELECT "after" FROM sipwave_audit').fetchone()
    assert json.loads(after)["reason"] == "export.csv:7: malformed MAC"


def test_a_bad_row_in_a_later_export_does_not_take_service_away(database):
    alice = account("481234001", ("+48221234567",))
    run(database, [alice])
    served = dump(database)

    result = run(database, [], rejected={"481234001": "export.csv:2: bad balance"})

    assert result.plans[0].action == "kept"
    assert dump(database) == served


def pre_existing_rows(database):
    """Rows the wave finds: an old subscriber row of one of its logins, an alias of one of
    its numbers pointing elsewhere, and rows the wave must never touch."""
    with sqlite3.connect(database) as connection:
        connection.executemany(
            "INSERT INTO subscriber (username, domain, ha1, ha1b) VALUES (?, ?, ?, ?)",
            [("481234001", LEGACY, "0" * 32, ""), ("someone", NEW, "1" * 32, ""),
             ("481299999", LEGACY, "2" * 32, "")],
        )  # fmt: skip
    run(database, [], rejected={})  # creates the engine's tables, changes nothing
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO dbaliases (alias_username, alias_domain, username, domain) "
            "VALUES ('48221230000', ?, 'pbx', ?)",
            (LEGACY, LEGACY),
        )


def test_rollback_restores_the_pre_wave_state_exactly(database):
    pre_existing_rows(database)
    before = dump(database)
    accounts = wave_accounts()
    run(database, accounts)
    consent(database, **{"481234001": "migrate", "481234002": "close"})
    run(database, accounts, phase=2)
    run(database, accounts, phase=2, today=GRACE_OVER)

    result = rollback(database)

    assert result.changed
    assert result.reconciliation["ok"]
    assert dump(database) == before


def test_one_account_rolls_back_alone_and_the_others_stay(database):
    """Customer care rolls back one account (rollback_wave.yml -e account=LOGIN): it gets its
    rows from before the wave, every other account of the wave keeps its state."""
    pre_existing_rows(database)
    before = dump(database)
    accounts = wave_accounts()
    run(database, accounts)
    consent(database, **{"481234001": "migrate", "481234002": "migrate"})
    run(database, accounts, phase=2)
    after_phase2 = dump(database)

    result = rollback(database, only=["481234001"])

    assert result.changed and result.reconciliation["ok"]
    assert [(p.login, p.action) for p in result.plans] == [("481234001", "rollback")]
    rolled = dump(database)
    for table, rows in rolled.items():
        mine = [r for r in rows if "481234001" in " ".join(map(str, r))]
        was = [r for r in before[table] if "481234001" in " ".join(map(str, r))]
        assert mine == was, table
    others = {
        table: [r for r in rows if "481234001" not in " ".join(map(str, r))]
        for table, rows in after_phase2.items()
    }
    assert {
        table: [r for r in rows if "481234001" not in " ".join(map(str, r))]
        for table, rows in rolled.items()
    } == others
    with pytest.raises(MigrationError, match="never touched 481299999"):
        rollback(database, only=["481299999"])


def test_rollback_twice_changes_nothing_and_migrating_forward_again_works(database):
    pre_existing_rows(database)
    accounts = wave_accounts()
    run(database, accounts)
    migrated = dump(database)
    rollback(database)
    rolled_back = dump(database)

    again = rollback(database)
    forward = run(database, accounts)

    assert not again.changed
    assert forward.changed and forward.reconciliation["ok"]
    assert dump(database) == migrated
    assert rolled_back != migrated


def test_rollback_check_mode_writes_nothing(database):
    run(database, wave_accounts())
    untouched = database.read_bytes()

    result = rollback(database, check=True)

    assert result.changed
    assert database.read_bytes() == untouched


def test_rollback_of_a_wave_never_applied_is_an_error(database):
    with pytest.raises(MigrationError, match="never applied"):
        rollback(database)


def test_snapshot_is_written_once_per_account(database):
    accounts = wave_accounts()
    run(database, accounts[:3])
    run(database, accounts[:3], phase=2)
    run(database, accounts)

    with sqlite3.connect(database) as connection:
        contents = [json.loads(c) for (c,) in connection.execute(
            "SELECT content FROM sipwave_snapshot ORDER BY id")]  # fmt: skip
    assert [c["logins"] for c in contents] == [
        [a.login for a in accounts[:3]],
        [a.login for a in accounts[3:]],
    ]


@pytest.mark.parametrize("failing_call", range(1, 12))
def test_a_failure_between_statements_leaves_the_database_as_it_was(
    database, monkeypatch, failing_call
):
    accounts = wave_accounts()
    run(database, accounts[:2])
    before = dump(database, with_times=True)
    calls = []
    real = dbconn.Database.executemany

    def failing(self, cursor, statement, rows):
        calls.append(statement)
        if len(calls) == failing_call:
            raise sqlite3.OperationalError("injected failure")
        return real(self, cursor, statement, rows)

    monkeypatch.setattr(dbconn.Database, "executemany", failing)
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        run(database, accounts)
    monkeypatch.undo()

    assert dump(database, with_times=True) == before
    assert run(database, accounts).reconciliation["ok"]
    assert not run(database, accounts).changed


KILLER = """
import json, os, signal, sys
from datetime import date
import ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection as dbconn
sys.path.insert(0, {tests!r})
from wave_helpers import run, wave_accounts
kill_at = int(sys.argv[2])
statements = 0

def count(statement):
    global statements
    statements += 1
    if statements == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

real_connect = dbconn.connect
def connect(*args, **kwargs):
    conn = real_connect(*args, **kwargs)
    conn.connection.set_trace_callback(count)
    return conn
dbconn.connect = connect
from pathlib import Path
run(Path(sys.argv[1]), wave_accounts(40))
print(statements)
"""


def run_killable(database, kill_at: int) -> subprocess.CompletedProcess:
    script = KILLER.format(tests=str(PROJECT / "tests/unit"))
    return subprocess.run(
        [sys.executable, "-c", script, str(database), str(kill_at)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(PROJECT / "collections"), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_a_run_killed_anywhere_re_runs_to_the_same_result(tmp_path):
    clean = create_database(tmp_path / "clean.sqlite")
    completed = run_killable(clean, 0)
    assert completed.returncode == 0, completed.stderr
    total = int(completed.stdout)
    expected = dump(clean)
    assert total > 100
    empty = dump(create_database(tmp_path / "empty.sqlite"))
    outcomes = []

    for kill_at in (1, total // 4, total // 2, 3 * total // 4, total - 1):
        database = create_database(tmp_path / f"killed-{kill_at}.sqlite")
        killed = run_killable(database, kill_at)
        assert killed.returncode == -9, f"not killed at statement {kill_at}: {killed.stderr}"
        # Killed before the commit nothing is there, after it everything: never a half wave.
        outcomes.append(dump(database) == expected)
        assert dump(database) in (empty, expected)

        rerun = run(database, wave_accounts(40))

        assert rerun.reconciliation["ok"]
        assert dump(database) == expected
        assert not run(database, wave_accounts(40)).changed
    assert outcomes[:4] == [False] * 4, "the first kills must land before the commit"


def test_no_secret_in_views_audit_or_snapshot_views(database):
    accounts = wave_accounts()
    consent(database, **{a.login: "migrate" for a in accounts})
    result = run(database, accounts, phase=2)

    with sqlite3.connect(database) as connection:
        audit = json.dumps(connection.execute("SELECT * FROM sipwave_audit").fetchall())
        accounts_table = json.dumps(connection.execute("SELECT * FROM sipwave_account").fetchall())
    shown = json.dumps([[p.login, p.action, p.before, p.after] for p in result.plans])
    shown += json.dumps(result.reconciliation) + audit + accounts_table
    for secret in secrets_of(accounts):
        assert secret not in shown
    assert accounts[0].legacy_credentials[0] not in repr(result.plans[0]) + repr(accounts[0])


def test_consent_is_recorded_once(database):
    assert consent(database, **{"481234001": "migrate"}) == [
        {"login": "481234001", "before": None, "after": "migrate", "source": ""}
    ]
    assert consent(database, **{"481234001": "migrate"}) == []
    assert [c["after"] for c in consent(database, **{"481234001": "close"})] == ["close"]


def test_invalid_consent_decision_is_refused(database):
    with pytest.raises(MigrationError, match="'maybe' is not migrate or close"):
        consent(database, **{"481234001": "maybe"})


def test_two_runs_at_once_wait_for_each_other_and_write_the_wave_once(tmp_path):
    clean = create_database(tmp_path / "clean.sqlite")
    assert run_killable(clean, 0).returncode == 0
    database = create_database(tmp_path / "twice.sqlite")
    script = KILLER.format(tests=str(PROJECT / "tests/unit"))
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(database), "0"],
            env={"PYTHONPATH": str(PROJECT / "collections"), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]

    assert [process.wait(timeout=120) for process in runs] == [0, 0]
    assert dump(database) == dump(clean)
    assert count(database, "sipwave_snapshot") == 1


# -- the routing view Kamailio's cache loads ----------------------------------------------------


def view_of(database) -> dict:
    with sqlite3.connect(database) as connection:
        return routing_view(connection.cursor())


def test_the_routing_view_of_an_empty_database_holds_only_its_generation(database):
    assert view_of(database) == {"g:generation": (1, "0")}


def test_the_routing_view_after_phase1_serves_identities_and_numbers(database):
    run(database, VIEW_ACCOUNTS)

    assert view_of(database) == VIEW_AFTER_PHASE1


@pytest.mark.parametrize("closure", ["kept_for_porting", "released"])
def test_the_routing_view_after_a_closure_marks_the_account_and_its_numbers(database, closure):
    run(database, VIEW_ACCOUNTS)
    consent(database, **{MOVING.login: "migrate", CLOSING.login: "close"})

    run(database, VIEW_ACCOUNTS, phase=2, closure_numbers=closure)

    assert view_of(database) == view_after_closure(closure)


def test_the_generation_counts_changing_runs_only(database):
    generations = [run(database, VIEW_ACCOUNTS).routing_generation]
    generations.append(run(database, VIEW_ACCOUNTS).routing_generation)
    generations.append(run(database, VIEW_ACCOUNTS, check=True, phase=2).routing_generation)
    consent(database, **{CLOSING.login: "close"})
    generations.append(run(database, VIEW_ACCOUNTS, phase=2).routing_generation)
    generations.append(rollback(database).routing_generation)

    assert generations == [1, 1, 1, 2, 3]
    assert view_of(database)["g:generation"] == (1, "3")


def test_a_run_failing_at_its_last_statement_leaves_routing_and_generation_as_they_were(
    database, monkeypatch
):
    run(database, VIEW_ACCOUNTS)
    # The generation is counted up last in the transaction: fail there.
    monkeypatch.setattr(transaction, "BUMP_GENERATION", "UPDATE no_such_table SET x = 1")

    with pytest.raises(sqlite3.OperationalError):
        run(database, [*VIEW_ACCOUNTS, account("481234104", ("+48221234104",))])

    assert view_of(database) == VIEW_AFTER_PHASE1
