"""The proxy's backup timer on the real proxy and PostgreSQL server: the timer is active and
its service takes a backup set whose files match its manifest, checked with the host's own
sha256sum. Nothing here prints a row of the database: the sets hold HA1 hashes."""

import json
import re

from conftest import PROXY_CONTAINER, in_container

SETS = "/var/backups/sipwave"
SET_NAME = re.compile(r"sipwave-backup-\d{8}T\d{6}Z")


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
