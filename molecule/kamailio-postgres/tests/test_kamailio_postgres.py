"""Kamailio on a real PostgreSQL server: digest auth, usrloc, secrets and reconnects."""

import pytest
from conftest import (
    ACCOUNTS,
    DB_ADDRESS,
    DB_CONTAINER,
    DB_PASSWORD,
    PROXY_CONTAINER,
    ha1,
    in_container,
    psql,
    register,
    run_playbook,
    wait_until,
)

BACKUP_SETTINGS = "/etc/sipwave/backup.json"
# usrloc's write-back timer interval (kamailio.cfg) and some slack for a busy machine.
WRITE_BACK_S = 45


def test_postgres_listens_only_on_its_lab_address():
    sockets = in_container(DB_CONTAINER, "sh", "-c", "ss -Hlntp | grep '\"postgres\"'")
    assert [line.split()[3] for line in sockets.stdout.splitlines()] == [f"{DB_ADDRESS}:5432"]


def test_kamailio_runs_on_postgres():
    active = in_container(PROXY_CONTAINER, "systemctl", "is-active", "kamailio")
    assert active.stdout.strip() == "active"
    cfg = in_container(PROXY_CONTAINER, "cat", "/etc/kamailio/sipwave/current/kamailio.cfg")
    assert 'loadmodule "db_postgres.so"' in cfg.stdout
    assert 'include_file "/etc/kamailio/sipwave-db.cfg"' in cfg.stdout


def test_subscribers_are_in_postgres_as_ha1_only():
    columns = psql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'subscriber'"
    )
    assert "password" not in {row[0] for row in columns}
    rows = {(u, d): h for u, d, h in psql("SELECT username, domain, ha1 FROM subscriber")}
    assert rows == {(u, d): ha1(u, d, p) for u, d, p in ACCOUNTS.values()}


@pytest.mark.parametrize("account", ["legacy-a", "new"])
def test_subscriber_registers_with_digest_auth(account):
    result = register(account, "127.0.24.101")
    assert result.successful == 1, result.output


def test_wrong_password_is_refused_never_accepted():
    result = register("legacy-b", "127.0.24.102", "not-it", scenario="register_refused.xml")
    assert (result.successful, result.failed) == (1, 0), result.output
    assert "SIP/2.0 200" not in result.messages


def test_digest_auth_reads_the_ha1_from_postgres():
    user, domain, password = ACCOUNTS["legacy-b"]
    changed = "Changed-In-Postgres-1"
    psql(f"UPDATE subscriber SET ha1 = '{ha1(user, domain, changed)}' WHERE username = '{user}'")
    try:
        new_password = register("legacy-b", "127.0.24.103", changed)
        old_password = register("legacy-b", "127.0.24.103", scenario="register_refused.xml")
    finally:
        psql(
            f"UPDATE subscriber SET ha1 = '{ha1(user, domain, password)}' WHERE username = '{user}'"
        )
    assert new_password.successful == 1, new_password.output
    assert old_password.successful == 1, old_password.output
    assert "SIP/2.0 200" not in old_password.messages


def location_rows(user: str, contact_host: str) -> list[list[str]]:
    return psql(
        "SELECT username, domain, contact, user_agent FROM location "
        f"WHERE username = '{user}' AND contact LIKE '%@{contact_host}:5099%'"
    )


def test_contact_is_written_to_the_location_table():
    user, domain, _ = ACCOUNTS["new"]
    result = register("new", "127.0.24.104")
    assert result.successful == 1, result.output
    # usrloc db_mode 2 (write-back) writes on its timer (timer_interval 30 s). The ul.flush
    # RPC is no shortcut: it runs in the ctl process, which has no usrloc database handle.
    rows = wait_until(lambda: location_rows(user, "127.0.24.104"), timeout_s=WRITE_BACK_S)
    assert rows == [[user, domain, f"sip:{user}@127.0.24.104:5099", "sipwave-tests"]]


def test_db_cfg_file_is_not_world_readable():
    stat = in_container(PROXY_CONTAINER, "stat", "-c", "%a %U %G", "/etc/kamailio/sipwave-db.cfg")
    assert stat.stdout.split() == ["640", "root", "kamailio"]
    places = ["/etc", "/usr/share/sipwave", "/var/lib/kamailio", "/var/log", "/tmp"]
    holders = in_container(PROXY_CONTAINER, "grep", "-rlF", "-e", DB_PASSWORD, *places)
    # Kamailio's database settings, and the backup timer's (pg_dump), root only.
    assert sorted(holders.stdout.split()) == ["/etc/kamailio/sipwave-db.cfg", BACKUP_SETTINGS]
    stat = in_container(PROXY_CONTAINER, "stat", "-c", "%a %U %G", BACKUP_SETTINGS)
    assert stat.stdout.split() == ["600", "root", "root"]


@pytest.mark.parametrize("container", [PROXY_CONTAINER, DB_CONTAINER])
def test_db_password_is_in_no_journal_or_log(container):
    # Searched through podman exec, not Ansible: a module invocation carrying the password
    # would itself be logged to the journal.
    journal = in_container(
        container, "sh", "-c", 'journalctl -o cat --no-pager | grep -cF -e "$0"', DB_PASSWORD
    )
    logs = in_container(container, "grep", "-rlF", "-e", DB_PASSWORD, "/var/log")
    assert journal.stdout.strip() == "0"
    assert logs.stdout == ""


def test_rerun_recreates_missing_tables_and_prints_no_secret():
    # As after a run that stopped between installing the schema file and applying it. The
    # tasks that handle the database password run at the verbosity that prints module
    # arguments and results.
    psql("DROP VIEW sipwave_routing")
    run = run_playbook(
        options=("--tags", "lab_postgres_user,kamailio_database,kamailio_subscribers")
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, run.stdout[-3000:]
    assert psql("SELECT to_regclass('sipwave_routing') IS NOT NULL") == [["t"]]
    assert "Create the Kamailio user" in output and "Create the tables in PostgreSQL" in output
    assert DB_PASSWORD not in output
    assert not [password for _, _, password in ACCOUNTS.values() if password in output]
    recaps = {
        line.split()[0]: line
        for line in run.stdout.splitlines()
        if "pgsql" in line and " ok=" in line
    }
    assert "changed=0" in recaps[DB_CONTAINER], recaps
    assert "changed=1" in recaps[PROXY_CONTAINER], recaps


def test_password_that_cannot_go_into_the_url_is_refused_by_name_not_by_value():
    bad = 'Quote"In-It-24'
    run = run_playbook(
        {"kamailio_db_postgres_password": bad}, options=("--tags", "kamailio_preflight")
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, run.stdout[-2000:]
    assert "the password must not contain a double quote" in " ".join(output.split())
    assert bad not in output


def postmaster_started() -> str:
    return psql("SELECT pg_postmaster_start_time()")[0][0]


def test_kamailio_authenticates_again_after_a_postgres_restart():
    before = postmaster_started()
    pid = in_container(PROXY_CONTAINER, "systemctl", "show", "kamailio", "-p", "MainPID", "--value")
    restart = in_container(DB_CONTAINER, "systemctl", "restart", "postgresql")
    assert restart.returncode == 0, restart.stderr
    assert postmaster_started() != before
    # Every worker holds its own connection; four registrations reach both UDP workers.
    results = [register("legacy-a", f"127.0.24.{110 + n}") for n in range(4)]
    assert [r.successful for r in results] == [1, 1, 1, 1], [r.output for r in results]
    wrong = register("legacy-b", "127.0.24.115", "not-it", scenario="register_refused.xml")
    assert wrong.successful == 1 and "SIP/2.0 200" not in wrong.messages, wrong.output
    # The usrloc writer reconnects too.
    user = ACCOUNTS["legacy-a"][0]
    assert wait_until(lambda: location_rows(user, "127.0.24.113"), timeout_s=WRITE_BACK_S)
    after = in_container(
        PROXY_CONTAINER, "systemctl", "show", "kamailio", "-p", "MainPID", "--value"
    )
    assert after.stdout == pid.stdout, "Kamailio restarted instead of reconnecting"
