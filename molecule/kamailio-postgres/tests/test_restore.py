"""Backup sets on the real proxy and PostgreSQL server (runs after test_kamailio_postgres.py):
the host's backup timer takes verified sets; a set taken by playbooks/backup.yml brings a
destroyed and recreated proxy back (accounts, counts, routing generation, routing cache);
a damaged set and a set older than a completed cutover are refused on the host. Nothing here
prints a row of the database: the sets hold HA1 hashes, compared by digest only."""

import hashlib
import json
import os
import re
import subprocess
import time

import pytest
from conftest import (
    ACCOUNTS,
    DB_PASSWORD,
    LEGACY_DOMAIN,
    PROXY,
    PROXY_CONTAINER,
    ha1,
    in_container,
    psql,
    register,
    run_playbook,
)
from sipwave_testlib import sipp
from sipwave_testlib.playbooks import ephemeral_directory
from sipwave_testlib.playbooks import run_playbook as run_project_playbook

SETS = "/var/backups/sipwave"
# An account only the database knows (not in the inventory): a converge does not bring it
# back, only a restore does.
EXTRA = ("481240009", LEGACY_DOMAIN, "Restore-Pw-481240009")
GENERATION = 41
COUNTED = ("subscriber", "dbaliases", "sipwave_account", "sipwave_number")
SET_NAME = re.compile(r"sipwave-backup-\d{8}T\d{6}Z")


def restore(*options: str, **extra) -> subprocess.CompletedProcess:
    extra_vars = (extra,) if extra else ()
    return run_project_playbook(
        "restore.yml", *extra_vars, options=("--limit", PROXY_CONTAINER, *options)
    )


def register_extra(address: str):
    user, domain, password = EXTRA
    row = [user, domain, sipp.credentials(user, password), f"{address}:5099"]
    return sipp.run("register.xml", PROXY, address, rows=[row])


def register_again(account: str, fresh_address: str):
    """The account's phone registers again: from a contact address the restored location
    table holds for it (a proxy takes at most kamailio_registrar_max_contacts per account),
    else from ``fresh_address``."""
    user = ACCOUNTS[account][0]
    contacts = psql(f"SELECT contact FROM location WHERE username = '{user}' ORDER BY contact")
    hosts = re.findall(r"@(127\.[0-9.]+):5099", " ".join(row[0] for row in contacts))
    return register(account, hosts[0] if hosts else fresh_address)


def state() -> dict:
    """Per table its row count and a digest of its rows (never the rows), and the generation."""
    found = {}
    for table in COUNTED:
        rows = sorted(psql(f"SELECT * FROM {table}"))
        text = "\n".join("|".join(row) for row in rows)
        found[table] = (len(rows), hashlib.sha256(text.encode()).hexdigest())
    found["generation"] = psql("SELECT generation FROM sipwave_routing_generation WHERE id = 1")
    return found


def cached_generation() -> str:
    loaded = in_container(
        PROXY_CONTAINER, "kamcmd", "-s", "unix:/run/kamailio/kamailio_ctl",
        "htable.get", "routing", "g:generation",
    )  # fmt: skip
    found = re.findall(r"value:\s*(\d+)", loaded.stdout)
    return found[0] if found else f"none ({loaded.returncode})"


def sets_on_host() -> list[str]:
    listed = in_container(PROXY_CONTAINER, "ls", SETS)
    return sorted(SET_NAME.findall(listed.stdout))


def timer_set() -> str:
    """Start the timer's service as the timer does; the set it took."""
    before = sets_on_host()
    started = in_container(PROXY_CONTAINER, "systemctl", "start", "sipwave-backup.service")
    assert started.returncode == 0, started.stderr
    (new,) = [name for name in sets_on_host() if name not in before]
    return new


def test_the_backup_timer_is_active_and_its_service_takes_a_verified_set():
    active = in_container(PROXY_CONTAINER, "systemctl", "is-active", "sipwave-backup.timer")
    assert active.stdout.strip() == "active"
    name = timer_set()
    directory = f"{SETS}/{name}"
    manifest = json.loads(in_container(PROXY_CONTAINER, "cat", f"{directory}/MANIFEST.json").stdout)
    assert manifest["host"] == PROXY_CONTAINER and "db.pgdump" in manifest["files"]
    assert any(path.endswith("/kamailio.cfg") for path in manifest["files"]), sorted(manifest)
    # Checked here with the host's own tools, not the code that wrote the manifest.
    sums = in_container(
        PROXY_CONTAINER, "sh", "-c", 'cd "$0" && sha256sum -- "$@"', directory, *manifest["files"]
    )
    assert sums.returncode == 0, sums.stderr
    digests = {line.split(None, 1)[1].strip(): line.split()[0] for line in sums.stdout.splitlines()}
    assert digests == {path: entry["sha256"] for path, entry in manifest["files"].items()}
    modes = in_container(PROXY_CONTAINER, "find", directory, "-printf", "%y %m\n")
    assert set(modes.stdout.split("\n")) - {""} == {"d 700", "f 600"}, modes.stdout
    journal = in_container(
        PROXY_CONTAINER, "journalctl", "-u", "sipwave-backup.service", "-o", "cat", "--no-pager"
    )
    assert f"took {name}" in journal.stdout and "verified" in journal.stdout


@pytest.fixture(scope="module")
def restored_proxy():
    """A set with an account only the database knows and a known generation; then the
    proxy's container destroyed with the account's row, recreated and converged."""
    user, domain, _ = EXTRA
    digest = ha1(*EXTRA)
    psql(
        "INSERT INTO subscriber (username, domain, ha1, ha1b) "
        f"VALUES ('{user}', '{domain}', '{digest}', '')"
    )
    psql(f"UPDATE sipwave_routing_generation SET generation = {GENERATION} WHERE id = 1")
    started = time.monotonic()
    backup = run_project_playbook("backup.yml")
    assert backup.returncode == 0, backup.stdout[-3000:]
    saved = state()
    latest = json.loads(
        (ephemeral_directory() / "backups" / PROXY_CONTAINER / "latest.json").read_text()
    )
    copy = ephemeral_directory() / "backups" / PROXY_CONTAINER / latest["file"]
    assert copy.stat().st_mode & 0o077 == 0

    # The proxy is lost, and the account's row with it.
    psql(f"DELETE FROM subscriber WHERE username = '{user}'")
    psql("UPDATE sipwave_routing_generation SET generation = 0 WHERE id = 1")
    removed = subprocess.run(["podman", "rm", "-f", PROXY_CONTAINER], capture_output=True,
                             text=True, timeout=120, check=False)  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    cgroup = os.environ["SIPWAVE_CGROUP_SOURCE"]
    created = subprocess.run(
        ["podman", "run", "-d", "--name", PROXY_CONTAINER, "--hostname", PROXY_CONTAINER,
         "--label", "owner=molecule", "--label", "io.sipwave.lab=molecule", "--network", "host",
         "--privileged", "--systemd", "always", "--cgroupns=host",
         "-v", f"{cgroup}:/sys/fs/cgroup:rw", "localhost/sipwave-lab:latest", "/sbin/init"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    in_container(PROXY_CONTAINER, "timeout", "60", "systemctl", "is-system-running", "--wait")
    converged = run_playbook(options=("--limit", PROXY_CONTAINER))
    assert converged.returncode == 0, converged.stdout[-3000:]
    assert sets_on_host() == []
    refused = register_extra("127.0.24.120")
    assert refused.successful == 0, "the fresh proxy knows the account before the restore"
    run = restore()
    print(f"backup, new proxy and restore took {time.monotonic() - started:.0f} s")
    return saved, run, backup.stdout + backup.stderr + run.stdout + run.stderr


def test_a_fresh_proxy_restored_from_the_controllers_copy_serves_every_account(restored_proxy):
    saved, run, printed = restored_proxy
    assert run.returncode == 0, run.stdout[-3000:]
    # The runs at -vvvv print no HA1 and no database password.
    hashes = [ha1(*account) for account in (*ACCOUNTS.values(), EXTRA)]
    assert not [secret for secret in (*hashes, DB_PASSWORD) if secret in printed]
    assert state() == saved
    assert saved["generation"] == [[str(GENERATION)]]
    assert cached_generation() == str(GENERATION)
    results = {name: register_again(name, f"127.0.24.{121 + n}") for n, name in enumerate(ACCOUNTS)}
    results["extra"] = register_extra("127.0.24.125")
    assert {name: r.successful for name, r in results.items()} == dict.fromkeys(results, 1), {
        name: r.output for name, r in results.items() if r.successful != 1
    }
    kept = in_container(PROXY_CONTAINER, "sh", "-c", f"ls {SETS}/pre-restore-*.pgdump")
    assert kept.returncode == 0 and kept.stdout.strip()
    assert in_container(PROXY_CONTAINER, "test", "-e", f"{SETS}/restore").returncode != 0


def test_a_damaged_set_is_refused_on_the_host_naming_the_file(restored_proxy):
    name = timer_set()
    before = state()
    flipped = in_container(
        PROXY_CONTAINER, "sh", "-c",
        'printf X | dd of="$0" bs=1 seek=64 conv=notrunc status=none', f"{SETS}/{name}/db.pgdump",
    )  # fmt: skip
    assert flipped.returncode == 0, flipped.stderr
    run = restore(backup_set=name)
    assert run.returncode != 0
    assert f"{name}/db.pgdump: checksum differs from the manifest" in run.stdout, run.stdout[-3000:]
    assert "Stop Kamailio" not in run.stdout
    assert state() == before
    active = in_container(PROXY_CONTAINER, "systemctl", "is-active", "kamailio")
    assert active.stdout.strip() == "active"


def test_a_damaged_controller_copy_is_refused_before_the_host_is_touched(restored_proxy):
    directory = ephemeral_directory() / "backups" / PROXY_CONTAINER
    latest = json.loads((directory / "latest.json").read_text())
    copy = directory / latest["file"]
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    try:
        run = restore()
    finally:
        data[len(data) // 2] ^= 0x01
        copy.write_bytes(bytes(data))
    assert run.returncode != 0
    assert "SHA-256 differs from the one recorded beside it" in " ".join(run.stdout.split())
    assert "Copy the set's tar to the host" not in run.stdout


def test_a_set_older_than_the_cutover_is_refused_unless_told(restored_proxy):
    name = timer_set()
    time.sleep(1.1)
    cut_over = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    psql(
        "INSERT INTO sipwave_cutover (login, at, run_id, actor, numbers) "
        f"VALUES ('{ACCOUNTS['legacy-a'][0]}', '{cut_over}', 'test', 'test', '')"
    )
    try:
        refused = restore(backup_set=name)
        assert refused.returncode != 0
        said = " ".join(refused.stdout.split())
        taken = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.strptime(name.split("-")[-1], "%Y%m%dT%H%M%SZ")
        )
        assert f"taken at {taken}, before the cutover completed at {cut_over}" in said, said[-3000:]
        assert "restore_before_cutover=true" in said
        assert "Stop Kamailio" not in refused.stdout
        told = restore(backup_set=name, restore_before_cutover=True)
        assert told.returncode == 0, told.stdout[-3000:]
    finally:
        psql("DELETE FROM sipwave_cutover WHERE run_id = 'test'")
    # The set had no cutover: restoring it on purpose took the cutover back.
    assert psql("SELECT count(*) FROM sipwave_cutover") == [["0"]]
    assert register_again("legacy-a", "127.0.24.126").successful == 1
