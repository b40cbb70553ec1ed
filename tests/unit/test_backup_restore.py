"""backup_set and kamailio_restore on real SQLite files, run as Ansible runs them (as
playbooks/restore.yml does: the set checked, then its database restored): a copy that restores
exactly, the database as it was kept before the restore, and copies that are
refused before anything is touched (wrong digest, damaged file, not a proxy database)."""

import json
import re
import sqlite3
from hashlib import sha256
from pathlib import Path

from module_runner import COLLECTIONS, run_module_file
from wave_helpers import create_database, dump, run, wave_accounts

MODULES = COLLECTIONS / "ansible_collections/sipwave/platform/plugins/modules"


def module(name: str, tmp_path: Path, args: dict, check: bool = False) -> dict:
    completed = run_module_file(MODULES / f"{name}.py", tmp_path, args, check=check)
    return json.loads(completed.stdout)


def backed_up(tmp_path: Path) -> tuple[Path, dict]:
    """A proxy database after a wave, and its set's database copy (path and SHA-256) as the
    checked set names it."""
    database = create_database(tmp_path / "proxy.sqlite")
    run(database, wave_accounts())
    sets = tmp_path / "sets"
    taken = module("backup_set", tmp_path, {"database": str(database), "directory": str(sets)})
    assert taken["changed"], taken
    verify = {"database": str(database), "directory": str(sets), "state": "verified",
              "name": taken["name"]}  # fmt: skip
    checked = module("backup_set", tmp_path, verify)
    copy = sets / taken["name"] / checked["database"]
    assert copy.stat().st_mode & 0o777 == 0o600
    return database, {"path": str(copy), "sha256": checked["database_sha256"]}


def test_a_backup_restores_exactly_and_keeps_the_database_as_it_was(tmp_path):
    database, copy = backed_up(tmp_path)
    before = dump(database)
    with sqlite3.connect(database) as connection:
        connection.execute("DELETE FROM subscriber")
        connection.execute("UPDATE sipwave_account SET state = 'closed'")
    damaged = dump(database)
    restored = module("kamailio_restore", tmp_path, {
        "database": str(database), "source": copy["path"], "sha256": copy["sha256"],
        "directory": str(tmp_path / "copies")})  # fmt: skip
    assert restored["changed"], restored
    assert dump(database) == before
    kept = Path(restored["before_restore"])
    assert dump(kept) == damaged and kept.stat().st_mode & 0o777 == 0o600


def test_a_copy_whose_digest_differs_is_refused_and_nothing_changes(tmp_path):
    database, copy = backed_up(tmp_path)
    with sqlite3.connect(database) as connection:
        connection.execute("DELETE FROM subscriber")
    now = dump(database)
    result = module("kamailio_restore", tmp_path, {
        "database": str(database), "source": copy["path"], "sha256": "0" * 64})  # fmt: skip
    assert result["failed"] and "SHA-256 differs" in result["msg"]
    assert dump(database) == now


def test_a_damaged_copy_or_another_database_is_refused(tmp_path):
    database, copy = backed_up(tmp_path)
    source = Path(copy["path"])
    data = bytearray(source.read_bytes())
    data[200:4096] = b"\xff" * (4096 - 200)
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(bytes(data))
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    for path, reason in ((broken, "not a readable SQLite database|integrity check"),
                         (other, "is no proxy database: no subscriber")):  # fmt: skip
        digest = sha256(path.read_bytes()).hexdigest()
        result = module("kamailio_restore", tmp_path, {
            "database": str(database), "source": str(path), "sha256": digest})  # fmt: skip
        assert result["failed"], result
        assert re.search(reason, result["msg"]), result["msg"]
