"""sipwave-backup (roles/kamailio/files/sipwave_backup.py), the backup timer's command, run
as the timer runs it on real files: a verified set of the SQLite database and the release
files, retention, and settings that are refused naming the file and the reason."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import backup_set
from module_runner import COLLECTIONS
from wave_helpers import create_database, dump, run, wave_accounts

SCRIPT = Path(__file__).resolve().parents[2] / "roles/kamailio/files/sipwave_backup.py"


def backup(settings: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--settings", str(settings), "--library", str(COLLECTIONS)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def write_settings(tmp_path: Path, **changes) -> Path:
    database = create_database(tmp_path / "proxy.sqlite")
    run(database, wave_accounts())
    releases = tmp_path / "releases"
    (releases / "r1").mkdir(parents=True, exist_ok=True)
    (releases / "r1" / "kamailio.cfg").write_text("loadmodule x\n")
    if not (releases / "current").exists():
        (releases / "current").symlink_to("r1")
    settings = {
        "directory": str(tmp_path / "sets"), "keep": 2, "host": "proxy1",
        "paths": [str(releases)],
        "database": {"backend": "sqlite", "database": str(database)},
        **changes,
    }  # fmt: skip
    path = tmp_path / "backup.json"
    path.write_text(json.dumps(settings))
    return path


def test_the_command_takes_a_verified_set_of_the_database_and_the_releases(tmp_path):
    settings = write_settings(tmp_path)
    names = []
    for _ in range(3):
        done = backup(settings)
        assert done.returncode == 0, done.stderr
        names.append(done.stdout.split("took ")[1].split(" ")[0])
        # A set's name has the second it was taken: the next one in another second.
        time.sleep(1.05)
    sets = tmp_path / "sets"
    assert backup_set.sets_in(str(sets)) == names[1:]  # keep 2
    newest = sets / names[-1]
    manifest = backup_set.verify(str(newest))
    assert sorted(manifest["files"]) == [
        "db.sqlite", f"files/{str(tmp_path / 'releases/r1/kamailio.cfg').lstrip('/')}",
    ]  # fmt: skip
    assert dump(newest / "db.sqlite") == dump(tmp_path / "proxy.sqlite")
    assert "verified" in done.stdout and "HA1" not in done.stdout


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"keep": 0}, "keep at least 1"),
        ({"keep": True}, "keep missing or not a int"),
        ({"paths": ["relative"]}, "paths must be absolute"),
        ({"database": {"backend": "mysql"}}, "backend must be sqlite or postgres"),
        ({"database": {"backend": "sqlite", "shell": "x"}}, "database.shell unknown"),
    ],
)
def test_bad_settings_are_refused_naming_the_file_and_reason(tmp_path, changes, reason):
    settings = write_settings(tmp_path, **changes)
    done = backup(settings)
    assert done.returncode == 1
    assert f"{settings}: " in done.stderr and reason in done.stderr, done.stderr
    assert not (tmp_path / "sets").exists() or not backup_set.sets_in(str(tmp_path / "sets"))
