"""sipwave.platform.kamailio_subscribers: HA1-only subscriber accounts, applied in bulk."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import subscriber_db
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import (
    connection as dbconn,
)
from module_runner import run_module_file

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
MODULE = (
    COLLECTIONS / "ansible_collections/sipwave/platform/plugins/modules/kamailio_subscribers.py"
)
SCHEMA = """
CREATE TABLE subscriber (
    id INTEGER PRIMARY KEY,
    username VARCHAR(64) NOT NULL DEFAULT '',
    domain VARCHAR(64) NOT NULL DEFAULT '',
    ha1 VARCHAR(128) NOT NULL DEFAULT '',
    ha1b VARCHAR(128) NOT NULL DEFAULT '',
    UNIQUE (username, domain)
)
"""
DOMAIN = "sip.example.net"
PASSWORD = "S3cret-PW-xyz"
ALICE_HA1 = hashlib.md5(f"alice:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
ALICE_HA1B = hashlib.md5(f"alice@{DOMAIN}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
SECRETS = (PASSWORD, ALICE_HA1, ALICE_HA1B)
OTHER_HA1 = "0123456789abcdef0123456789abcdef"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def rows(database: Path) -> dict[tuple[str, str], tuple[str, str]]:
    with sqlite3.connect(database) as connection:
        found = connection.execute("SELECT username, domain, ha1, ha1b FROM subscriber")
        return {(user, domain): (ha1, ha1b) for user, domain, ha1, ha1b in found}


def insert(database: Path, entries: dict[tuple[str, str], tuple[str, str]]) -> None:
    with sqlite3.connect(database) as connection:
        connection.executemany(
            "INSERT INTO subscriber (username, domain, ha1, ha1b) VALUES (?, ?, ?, ?)",
            [(*key, *credentials) for key, credentials in entries.items()],
        )


def run_module(tmp_path: Path, args: dict, *, check: bool = False, diff: bool = False):
    """Run the module file the way Ansible runs it on a target; return (result, stdout)."""
    completed = run_module_file(MODULE, tmp_path, args, check=check, diff=diff)
    return json.loads(completed.stdout), completed.stdout


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "kamailio.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(SCHEMA)
    return path


@pytest.fixture
def conn(database: Path):
    connection = dbconn.connect("sqlite", database=str(database))
    yield connection
    connection.close()


def test_ha1_is_md5_of_user_realm_password():
    assert subscriber_db.ha1("alice", DOMAIN, PASSWORD) == ALICE_HA1


def test_ha1b_is_md5_of_user_at_domain_realm_password():
    assert subscriber_db.ha1b("alice", DOMAIN, PASSWORD) == ALICE_HA1B


@pytest.mark.parametrize(
    ("current", "desired", "exclusive", "expected"),
    [
        pytest.param({}, {("a", "d"): ("1", "")}, None, ([("a", "d")], [], []), id="add"),
        pytest.param(
            {("a", "d"): ("1", "")}, {("a", "d"): ("2", "")}, None, ([], [("a", "d")], []),
            id="update",
        ),
        pytest.param({("a", "d"): ("1", "")}, {("a", "d"): ("1", "")}, None, ([], [], []),
                     id="unchanged"),
        pytest.param({("a", "d"): ("1", "")}, {}, None, ([], [], []), id="not-exclusive-keeps"),
        pytest.param({("a", "d"): ("1", "")}, {}, {"d"}, ([], [], [("a", "d")]), id="remove"),
        pytest.param(
            {("a", "d"): ("1", ""), ("a", "other"): ("1", "")}, {}, {"d"},
            ([], [], [("a", "d")]), id="other-domain-kept",
        ),
    ],
)  # fmt: skip
def test_plan(current, desired, exclusive, expected):
    todo = subscriber_db.plan(current, desired, exclusive)

    assert (todo.add, todo.update, todo.remove) == expected


def test_apply_adds_updates_and_removes(database, conn):
    insert(database, {("bob", DOMAIN): (OTHER_HA1, ""), ("carol", DOMAIN): (OTHER_HA1, "")})
    desired = {("alice", DOMAIN): (ALICE_HA1, ALICE_HA1B), ("bob", DOMAIN): (ALICE_HA1, "")}
    current = subscriber_db.read_subscribers(conn, {DOMAIN})
    todo = subscriber_db.plan(current, desired, {DOMAIN})

    subscriber_db.apply(conn, todo, desired)

    assert rows(database) == desired


def test_apply_is_all_or_nothing(database, conn):
    insert(database, {("bob", DOMAIN): (OTHER_HA1, "")})
    desired = {("alice", DOMAIN): (ALICE_HA1, ""), ("bob", DOMAIN): (ALICE_HA1, "")}
    stale_plan = subscriber_db.Plan(add=sorted(desired), update=[], remove=[])

    with pytest.raises(sqlite3.IntegrityError):
        subscriber_db.apply(conn, stale_plan, desired)

    assert rows(database) == {("bob", DOMAIN): (OTHER_HA1, "")}


def test_read_subscribers_only_reads_the_given_domains(database, conn):
    insert(database, {("bob", DOMAIN): (OTHER_HA1, ""), ("bob", "other.net"): (OTHER_HA1, "")})

    assert subscriber_db.read_subscribers(conn, [DOMAIN]) == {("bob", DOMAIN): (OTHER_HA1, "")}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"username": "alice", "domain": DOMAIN, "password": PASSWORD, "ha1": ALICE_HA1},
         "either password or ha1"),
        ({"username": "alice", "domain": DOMAIN}, "give password or ha1"),
        ({"username": "alice", "domain": DOMAIN, "ha1": ALICE_HA1.upper()}, "ha1 must be"),
        ({"username": "alice", "domain": DOMAIN, "ha1": ALICE_HA1, "ha1b": PASSWORD},
         "ha1b must be"),
        ({"username": "alice", "domain": DOMAIN, "password": PASSWORD, "ha1b": ALICE_HA1B},
         "only be given together with ha1"),
        ({"username": "alice" * 13, "domain": DOMAIN, "password": PASSWORD}, "longer than 64"),
        ({"username": "alice", "domain": "", "password": PASSWORD}, "domain is required"),
    ],
)  # fmt: skip
def test_invalid_entry_is_reported_by_index_and_username_only(entry, problem):
    entries = [{"username": "bob", "domain": DOMAIN, "password": "other"}, entry]

    with pytest.raises(subscriber_db.SubscriberError) as raised:
        subscriber_db.desired_from_entries(entries)

    message = str(raised.value)
    assert f"subscribers[1] (username '{entry['username']}')" in message
    assert problem in message
    assert_no_secret(message)


def test_duplicate_entry_names_the_first_one():
    entry = {"username": "alice", "domain": DOMAIN, "ha1": OTHER_HA1}

    with pytest.raises(subscriber_db.SubscriberError, match=r"already subscribers\[0\]"):
        subscriber_db.desired_from_entries([entry, entry])


def test_ha1_without_ha1b_stores_an_empty_ha1b():
    entry = {"username": "bob", "domain": DOMAIN, "ha1": OTHER_HA1, "ha1b": None}

    assert subscriber_db.desired_from_entries([entry]) == {("bob", DOMAIN): (OTHER_HA1, "")}


def test_missing_sqlite_database_is_an_error(tmp_path):
    with pytest.raises(dbconn.DatabaseError, match="does not exist"):
        dbconn.connect("sqlite", database=str(tmp_path / "missing.sqlite"))


def test_postgres_without_psycopg2_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)

    with pytest.raises(dbconn.DatabaseError, match="python3-psycopg2"):
        dbconn.connect("postgres", name="kamailio")


def fake_psycopg2(database: Path) -> types.ModuleType:
    """Just enough of psycopg2 over SQLite to check the pyformat SQL and batched writes."""

    class Cursor:
        def __init__(self, cursor):
            self._cursor = cursor

        def execute(self, statement, parameters=()):
            self._cursor.execute(statement.replace("%s", "?"), parameters)

        def fetchall(self):
            return self._cursor.fetchall()

        def close(self):
            self._cursor.close()

    class Connection:
        def __init__(self):
            self._connection = sqlite3.connect(database)
            self.commit = self._connection.commit
            self.rollback = self._connection.rollback
            self.close = self._connection.close

        def cursor(self):
            return Cursor(self._connection.cursor())

    def execute_batch(cursor, statement, rows, page_size):
        for start in range(0, len(rows), page_size):
            for row in rows[start : start + page_size]:
                cursor.execute(statement, row)

    module = types.ModuleType("psycopg2")
    module.Error = sqlite3.Error
    module.connect = lambda **_kwargs: Connection()
    module.extras = types.ModuleType("psycopg2.extras")
    module.extras.execute_batch = execute_batch
    return module


def test_postgres_backend_uses_its_own_parameter_markers(monkeypatch, database):
    psycopg2 = fake_psycopg2(database)
    monkeypatch.setitem(sys.modules, "psycopg2", psycopg2)
    monkeypatch.setitem(sys.modules, "psycopg2.extras", psycopg2.extras)
    insert(database, {("bob", DOMAIN): (OTHER_HA1, ""), ("carol", DOMAIN): (OTHER_HA1, "")})
    desired = {("alice", DOMAIN): (ALICE_HA1, ALICE_HA1B), ("bob", DOMAIN): (ALICE_HA1, "")}
    conn = dbconn.connect("postgres", name="kamailio")

    todo = subscriber_db.plan(subscriber_db.read_subscribers(conn, [DOMAIN]), desired, {DOMAIN})
    subscriber_db.apply(conn, todo, desired)

    assert rows(database) == desired


def test_module_adds_subscribers_with_their_hashes(tmp_path, database):
    subscribers = [
        {"username": "alice", "domain": DOMAIN, "password": PASSWORD},
        {"username": "bob", "domain": DOMAIN, "ha1": OTHER_HA1},
    ]

    result, _ = run_module(tmp_path, {"database": str(database), "subscribers": subscribers})

    assert result["changed"]
    assert result["added"] == [f"alice@{DOMAIN}", f"bob@{DOMAIN}"]
    assert rows(database) == {
        ("alice", DOMAIN): (ALICE_HA1, ALICE_HA1B),
        ("bob", DOMAIN): (OTHER_HA1, ""),
    }


def test_module_second_run_changes_nothing(tmp_path, database):
    args = {
        "database": str(database),
        "subscribers": [{"username": "alice", "domain": DOMAIN, "password": PASSWORD}],
    }
    run_module(tmp_path, args)

    result, _ = run_module(tmp_path, args)

    assert not result["changed"]
    assert result["counts"] == {"added": 0, "updated": 0, "removed": 0, "unchanged": 1}


@pytest.mark.parametrize(
    ("options", "removed"),
    [
        ({}, []),
        ({"exclusive": True}, [f"carol@{DOMAIN}"]),
        ({"exclusive_domains": [DOMAIN]}, [f"carol@{DOMAIN}"]),
        ({"exclusive_domains": ["old.example.net"]}, ["dave@old.example.net"]),
    ],
    ids=["keep-unlisted", "exclusive", "exclusive-domain", "other-domain"],
)
def test_module_updates_and_removes_unlisted_only_when_exclusive(
    tmp_path, database, options, removed
):
    insert(
        database,
        {
            ("alice", DOMAIN): (OTHER_HA1, ""),
            ("carol", DOMAIN): (OTHER_HA1, ""),
            ("dave", "old.example.net"): (OTHER_HA1, ""),
        },
    )
    subscribers = [{"username": "alice", "domain": DOMAIN, "password": PASSWORD}]

    result, _ = run_module(
        tmp_path, {"database": str(database), "subscribers": subscribers, **options}
    )

    assert result["updated"] == [f"alice@{DOMAIN}"]
    assert result["removed"] == removed
    assert rows(database)[("alice", DOMAIN)] == (ALICE_HA1, ALICE_HA1B)
    assert len(rows(database)) == 3 - len(removed)


def test_module_check_mode_writes_nothing(tmp_path, database):
    insert(database, {("carol", DOMAIN): (OTHER_HA1, "")})
    subscribers = [{"username": "alice", "domain": DOMAIN, "password": PASSWORD}]
    args = {"database": str(database), "subscribers": subscribers, "exclusive": True}

    result, _ = run_module(tmp_path, args, check=True)

    assert (result["added"], result["removed"]) == ([f"alice@{DOMAIN}"], [f"carol@{DOMAIN}"])
    assert rows(database) == {("carol", DOMAIN): (OTHER_HA1, "")}


def test_module_check_mode_treats_a_missing_database_as_empty(tmp_path):
    missing = tmp_path / "not-created-yet.sqlite"
    subscribers = [{"username": "alice", "domain": DOMAIN, "password": PASSWORD}]

    result, _ = run_module(
        tmp_path, {"database": str(missing), "subscribers": subscribers}, check=True
    )

    assert result["added"] == [f"alice@{DOMAIN}"]
    assert not missing.exists()


def test_module_diff_marks_updates_without_showing_hashes(tmp_path, database):
    insert(database, {("alice", DOMAIN): (OTHER_HA1, ""), ("carol", DOMAIN): (OTHER_HA1, "")})
    subscribers = [
        {"username": "alice", "domain": DOMAIN, "password": PASSWORD},
        {"username": "bob", "domain": DOMAIN, "password": PASSWORD},
    ]

    result, stdout = run_module(
        tmp_path, {"database": str(database), "subscribers": subscribers}, diff=True
    )

    assert result["diff"] == {
        "before": f"alice@{DOMAIN}\ncarol@{DOMAIN}\n",
        "after": f"alice@{DOMAIN} (credentials changed)\nbob@{DOMAIN}\ncarol@{DOMAIN}\n",
    }
    assert OTHER_HA1 not in stdout


@pytest.mark.parametrize(
    ("args", "failed"),
    [
        pytest.param({"subscribers": [{"username": "alice", "domain": DOMAIN,
                                       "password": PASSWORD}]}, False, id="password"),
        pytest.param({"subscribers": [{"username": "alice", "domain": DOMAIN,
                                       "ha1": ALICE_HA1, "ha1b": ALICE_HA1B}]}, False, id="ha1"),
        pytest.param({"subscribers": [{"username": "alice", "domain": DOMAIN,
                                       "password": PASSWORD, "ha1": ALICE_HA1}]}, True,
                     id="both-password-and-ha1"),
        pytest.param({"subscribers": [{"username": "alice", "domain": DOMAIN,
                                       "ha1": ALICE_HA1[:-1] + "Z", "ha1b": ALICE_HA1B}]}, True,
                     id="malformed-ha1"),
        pytest.param({"subscribers": [{"username": "alice", "password": PASSWORD}]}, True,
                     id="missing-domain"),
        pytest.param({"backend": "mysql", "subscribers": [{"username": "alice", "domain": DOMAIN,
                                                           "password": PASSWORD}]}, True,
                     id="bad-backend"),
    ],
)  # fmt: skip
def test_module_output_never_contains_secrets(tmp_path, database, args, failed):
    result, stdout = run_module(tmp_path, {"database": str(database), **args}, diff=True)

    assert result.get("failed", False) is failed
    assert_no_secret(stdout)


def test_module_error_names_the_entry(tmp_path, database):
    subscribers = [
        {"username": "bob", "domain": DOMAIN, "password": "fine"},
        {"username": "alice", "domain": DOMAIN, "password": PASSWORD, "ha1": ALICE_HA1},
    ]

    result, _ = run_module(tmp_path, {"database": str(database), "subscribers": subscribers})

    assert "subscribers[1] (username 'alice')" in result["msg"]
    assert rows(database) == {}


def test_module_does_not_log_secrets_on_the_target(tmp_path, database):
    log = tmp_path / "syslog.txt"
    args_file = tmp_path / "args.json"
    subscribers = [{"username": "alice", "domain": DOMAIN, "password": PASSWORD}]
    module_args = {"database": str(database), "subscribers": subscribers}
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_args}))
    capture_syslog = (
        "import runpy, sys, syslog\n"
        "import ansible.module_utils.basic as basic\n"
        "basic.has_journal = False\n"
        f"syslog.syslog = lambda *a: open({str(log)!r}, 'a').write(str(a[-1]) + '\\n')\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )

    subprocess.run(
        [sys.executable, "-c", capture_syslog, str(MODULE), str(args_file)],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(COLLECTIONS)},
        check=True,
    )

    assert "Invoked with" in log.read_text()
    assert_no_secret(log.read_text())


def test_module_applies_100000_subscribers(tmp_path, database):
    subscribers = [
        {"username": f"{4930000000 + number}", "domain": DOMAIN, "password": f"pw-{number}"}
        for number in range(100_000)
    ]

    result, _ = run_module(tmp_path, {"database": str(database), "subscribers": subscribers})

    assert result["counts"]["added"] == 100_000
    assert len(rows(database)) == 100_000
