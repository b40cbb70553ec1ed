"""Restoring a proxy's database from its backup on the real proxy (runs after
test_porting.py, which took the first backup): a proxy that lost its accounts gets them back
exactly, serves registrations again, and the database as it was before is kept."""

from conftest import (
    ACCOUNTS,
    LEGACY_DOMAIN,
    PROXY2,
    PROXY2_CONTAINER,
    in_container,
    register,
    sql,
)
from sipwave_testlib.playbooks import run_playbook

TABLES = ("subscriber", "dbaliases", "sipwave_account", "sipwave_number", "sipwave_port_request")
ACCOUNT = ACCOUNTS["481200016"]  # served in phase 1 by wave 1, untouched by porting


def contents() -> dict[str, str]:
    return {
        table: sql(PROXY2_CONTAINER, f"SELECT * FROM {table} ORDER BY 1, 2") for table in TABLES
    }


def test_a_restore_gives_a_proxy_back_exactly_the_database_of_its_backup():
    backup = run_playbook("backup.yml")
    assert backup.returncode == 0, backup.stdout[-3000:]
    saved = contents()
    assert ACCOUNT.login in saved["subscriber"]
    # The proxy loses its accounts and its port requests.
    sql(PROXY2_CONTAINER, "DELETE FROM subscriber; DELETE FROM sipwave_port_request")
    refused = register(ACCOUNT.login, LEGACY_DOMAIN, ACCOUNT.password, "127.0.23.141", proxy=PROXY2)
    assert refused.successful == 0

    restore = run_playbook("restore.yml", options=["--limit", PROXY2_CONTAINER])
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert contents() == saved
    registered = register(
        ACCOUNT.login, LEGACY_DOMAIN, ACCOUNT.password, "127.0.23.142", proxy=PROXY2
    )
    assert registered.successful == 1, registered.output
    kept = in_container(PROXY2_CONTAINER, "sh", "-c", "ls /var/backups/sipwave/pre-restore-*")
    assert kept.returncode == 0 and kept.stdout.strip()


def test_a_restore_without_a_named_host_is_refused():
    run = run_playbook("restore.yml")
    assert run.returncode != 0
    assert "Name the proxy to restore with --limit" in run.stdout
    several = run_playbook("restore.yml", options=["--limit", "proxies"])
    assert several.returncode != 0 and "2 selected" in several.stdout
