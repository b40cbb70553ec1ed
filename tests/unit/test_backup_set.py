"""module_utils/backup_set.py on real files: a set's manifest, the damage it catches (one
byte changed, a file missing or added, a name leaving the set), retention, the age the
backup metric reads, and the refusal of a set older than a completed cutover."""

import calendar
import json
import os
import stat
import time

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import backup_set
from ansible_collections.sipwave.platform.plugins.module_utils.backup_set import BackupSetError
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.backup import sha256_of
from module_runner import COLLECTIONS, run_module_file
from wave_helpers import create_database, dump, run, wave_accounts

MODULES = COLLECTIONS / "ansible_collections/sipwave/platform/plugins/modules"

TAKEN = calendar.timegm((2026, 12, 4, 3, 15, 0, 0, 0, 0))


def make_set(root, taken_at=TAKEN):
    directory = root / backup_set.set_name(taken_at)
    (directory / "releases" / "r1").mkdir(parents=True)
    (directory / "db.sqlite").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    (directory / "releases" / "r1" / "kamailio.cfg").write_text("loadmodule x\n")
    (directory / "sent-log.jsonl").write_text('{"to": "a"}\n')
    manifest = backup_set.write_manifest(str(directory), taken_at, "proxy1")
    return directory, manifest


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_manifest_names_every_file_with_its_digest_and_makes_the_set_private(tmp_path):
    directory, manifest = make_set(tmp_path)
    assert directory.name == "sipwave-backup-20261204T031500Z"
    assert sorted(manifest["files"]) == ["db.sqlite", "releases/r1/kamailio.cfg", "sent-log.jsonl"]
    assert manifest["taken_at"] == "2026-12-04T03:15:00Z" and manifest["host"] == "proxy1"
    assert manifest["files"]["sent-log.jsonl"]["size"] == 12
    assert json.loads((directory / "MANIFEST.json").read_text()) == manifest
    assert backup_set.verify(str(directory)) == manifest
    for path in directory.rglob("*"):
        assert mode_of(path) == (0o700 if path.is_dir() else 0o600), path
    assert mode_of(directory) == 0o700


def test_one_byte_changed_is_refused_naming_the_file(tmp_path):
    directory, _ = make_set(tmp_path)
    database = directory / "db.sqlite"
    data = bytearray(database.read_bytes())
    data[100] ^= 0x01
    database.write_bytes(bytes(data))
    with pytest.raises(BackupSetError, match=r"db\.sqlite: checksum differs"):
        backup_set.verify(str(directory))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda d: (d / "sent-log.jsonl").unlink(), r"sent-log\.jsonl: missing"),
        (lambda d: (d / "extra.sql").write_text("DROP TABLE subscriber;"), r"extra\.sql: not in"),
        (lambda d: (d / "MANIFEST.json").unlink(), r"MANIFEST\.json: missing"),
        (lambda d: (d / "MANIFEST.json").write_text("{not json"), r"unreadable manifest"),
    ],
)
def test_a_set_with_a_file_missing_added_or_no_manifest_is_refused(tmp_path, damage, reason):
    directory, _ = make_set(tmp_path)
    damage(directory)
    with pytest.raises(BackupSetError, match=reason):
        backup_set.verify(str(directory))


@pytest.mark.parametrize("name", ["../../etc/shadow", "/etc/passwd", "a/../../b", "a b"])
def test_a_manifest_naming_a_file_outside_the_set_is_refused(tmp_path, name):
    directory, manifest = make_set(tmp_path)
    manifest["files"][name] = {"size": 1, "sha256": "0" * 64}
    (directory / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupSetError, match="leaves the set or is unsafe"):
        backup_set.verify(str(directory))


def test_a_symlink_is_never_put_in_a_set(tmp_path):
    directory = tmp_path / backup_set.set_name(TAKEN)
    directory.mkdir()
    (directory / "link").symlink_to("/etc/hostname")
    with pytest.raises(BackupSetError, match="not a regular file"):
        backup_set.write_manifest(str(directory), TAKEN, "proxy1")


def test_retention_keeps_the_newest_sets_and_ignores_incomplete_ones(tmp_path):
    stamps = [TAKEN + day * 86400 for day in range(5)]
    for stamp in stamps:
        make_set(tmp_path, stamp)
    (tmp_path / "sipwave-backup-20991231T000000Z").mkdir()  # no manifest: still being written
    removed = backup_set.prune(str(tmp_path), keep=2)
    assert removed == [backup_set.set_name(stamp) for stamp in stamps[:3]]
    assert backup_set.sets_in(str(tmp_path)) == [backup_set.set_name(s) for s in stamps[3:]]
    assert (tmp_path / "sipwave-backup-20991231T000000Z").is_dir()
    assert backup_set.newest_taken_at(str(tmp_path)) == stamps[-1]
    with pytest.raises(BackupSetError, match="keep must be at least 1"):
        backup_set.prune(str(tmp_path), keep=0)


def test_the_age_of_no_backup_is_zero_and_names_are_parsed_strictly(tmp_path):
    assert backup_set.newest_taken_at(str(tmp_path / "none")) == 0.0
    assert backup_set.taken_at_of("sipwave-backup-20261204T031500Z/") == TAKEN
    with pytest.raises(BackupSetError, match="not a backup set name"):
        backup_set.taken_at_of("sipwave-backup-latest")


def test_a_set_older_than_the_cutover_is_refused_naming_both_times_unless_told():
    cutover = TAKEN + 3600
    reason = backup_set.cutover_refusal(TAKEN, cutover, allow_older=False)
    assert "2026-12-04T03:15:00Z" in reason and "2026-12-04T04:15:00Z" in reason
    assert "restore_before_cutover=true" in reason
    assert backup_set.cutover_refusal(TAKEN, cutover, allow_older=True) is None
    assert backup_set.cutover_refusal(cutover, cutover, allow_older=False) is None
    assert backup_set.cutover_refusal(TAKEN, None, allow_older=False) is None
    assert time.gmtime(TAKEN).tm_hour == 3


def run_module(tmp_path, args, check=False):
    completed = run_module_file(MODULES / "backup_set.py", tmp_path, args, check=check)
    return json.loads(completed.stdout)


def test_the_module_takes_a_set_of_the_database_and_files_that_restores(tmp_path):
    database = create_database(tmp_path / "proxy.sqlite")
    run(database, wave_accounts())
    releases = tmp_path / "releases" / "20261204T000000Z"
    releases.mkdir(parents=True)
    (releases / "kamailio.cfg").write_text("loadmodule x\n")
    sets = tmp_path / "sets"
    args = {"database": str(database), "directory": str(sets), "keep": 1, "host": "proxy1",
            "paths": [str(tmp_path / "releases"), str(tmp_path / "absent.jsonl")]}  # fmt: skip
    taken = run_module(tmp_path, args)
    assert taken["changed"] and taken["files"] == 2 and taken["removed"] == []
    directory = sets / taken["name"]
    assert dump(directory / "db.sqlite") == dump(database)
    copied = directory / "files" / str(releases).lstrip("/") / "kamailio.cfg"
    assert copied.read_text() == "loadmodule x\n" and mode_of(copied) == 0o600
    checked = run_module(tmp_path, {"state": "verified", "directory": str(sets),
                                    "name": taken["name"]})  # fmt: skip
    assert checked == {"changed": False, "name": taken["name"], "taken_at": taken["taken_at"],
                       "files": 2, "database": "db.sqlite", "cutover_at": "",
                       "database_sha256": sha256_of(str(directory / "db.sqlite")),
                       "invocation": checked["invocation"]}  # fmt: skip
    data = bytearray((directory / "db.sqlite").read_bytes())
    data[-1] ^= 0xFF
    (directory / "db.sqlite").write_bytes(bytes(data))
    refused = run_module(tmp_path, {"state": "verified", "directory": str(sets),
                                    "name": taken["name"]})  # fmt: skip
    assert refused["failed"] and "db.sqlite: checksum differs" in refused["msg"]


def test_the_module_refuses_a_set_older_than_the_cutover_unless_told(tmp_path):
    sets = tmp_path / "sets"
    sets.mkdir()
    directory, _ = make_set(sets)
    args = {"state": "verified", "directory": str(sets), "name": directory.name,
            "cutover_at": "2026-12-04T05:00:00Z"}  # fmt: skip
    refused = run_module(tmp_path, args)
    assert refused["failed"]
    assert "2026-12-04T03:15:00Z" in refused["msg"] and "2026-12-04T05:00:00Z" in refused["msg"]
    assert not run_module(tmp_path, {**args, "allow_older_than_cutover": True}).get("failed")
    bad = run_module(tmp_path, {**args, "name": "../../etc"})
    assert bad["failed"] and "not a backup set name" in bad["msg"]


def test_a_packed_set_unpacks_into_the_same_verified_set(tmp_path):
    directory, manifest = make_set(tmp_path / "sets")
    archive = tmp_path / "set.tar"
    backup_set.pack(str(directory), str(archive))
    assert mode_of(archive) == 0o600
    unpacked = backup_set.unpack(str(archive), str(tmp_path / "restore"))
    assert unpacked == str(tmp_path / "restore" / directory.name)
    assert backup_set.verify(unpacked) == manifest
    for path in (tmp_path / "restore").rglob("*"):
        assert mode_of(path) == (0o700 if path.is_dir() else 0o600), path
    # Unpacking again replaces the set (a damaged copy left by an earlier restore).
    (tmp_path / "restore" / directory.name / "sent-log.jsonl").write_text("changed\n")
    backup_set.unpack(str(archive), str(tmp_path / "restore"))
    assert backup_set.verify(unpacked) == manifest


@pytest.mark.parametrize(
    "entry, reason",
    [
        ("link", "is not a plain file"),
        ("../escape", "not one backup set"),
        ("sipwave-backup-20261204T031500Z/../../x", "leaves the set"),
    ],
)
def test_a_hostile_archive_is_refused_naming_the_entry(tmp_path, entry, reason):
    import io
    import tarfile

    archive = tmp_path / "hostile.tar"
    with tarfile.open(archive, "w") as tar:
        top = tarfile.TarInfo("sipwave-backup-20261204T031500Z")
        top.type = tarfile.DIRTYPE
        tar.addfile(top)
        if entry == "link":
            link = tarfile.TarInfo("sipwave-backup-20261204T031500Z/db.sqlite")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
            tar.addfile(link)
        else:
            member = tarfile.TarInfo(entry)
            member.size = 2
            tar.addfile(member, io.BytesIO(b"x\n"))
    with pytest.raises(BackupSetError, match=reason):
        backup_set.unpack(str(archive), str(tmp_path / "restore"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "escape").exists()


def hostile_set(archive, *entries: tuple[str, int]) -> None:
    """A tar of one set directory holding ``entries`` (name, size claimed in the header)."""
    import io
    import tarfile

    with tarfile.open(archive, "w") as tar:
        top = tarfile.TarInfo("sipwave-backup-20261204T031500Z")
        top.type = tarfile.DIRTYPE
        tar.addfile(top)
        for name, size in entries:
            member = tarfile.TarInfo(f"sipwave-backup-20261204T031500Z/{name}")
            member.size = size
            tar.addfile(member, io.BytesIO(b"x" * size))


def test_an_entry_written_twice_is_refused_naming_it(tmp_path):
    archive = tmp_path / "twice.tar"
    hostile_set(archive, ("manifest.json", 2), ("manifest.json", 3))
    with pytest.raises(BackupSetError, match=r"'sipwave-backup-20261204T031500Z/manifest.json'"
                       r" appears twice"):  # fmt: skip
        backup_set.unpack(str(archive), str(tmp_path / "restore"))
    assert not (tmp_path / "restore" / "sipwave-backup-20261204T031500Z").exists()


def test_an_archive_larger_than_the_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    archive = tmp_path / "big.tar"
    hostile_set(archive, ("db.sqlite", 4096))
    usage = backup_set.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(backup_set.shutil, "disk_usage", lambda _path: usage._replace(free=4095))
    with pytest.raises(BackupSetError, match=r"take 4096 bytes, .* has 4095 bytes free"):
        backup_set.unpack(str(archive), str(tmp_path / "restore"))
    assert list((tmp_path / "restore").iterdir()) == []


def test_the_module_refuses_a_set_older_than_the_live_databases_cutover(tmp_path):
    import sqlite3

    database = create_database(tmp_path / "proxy.sqlite")
    sets = tmp_path / "sets"
    taken = run_module(tmp_path, {"database": str(database), "directory": str(sets)})
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(
            "INSERT INTO sipwave_cutover (login, at, run_id, actor, numbers) "
            "VALUES ('481200001', '2099-01-01T00:00:00Z', 'r', 'a', '')"
        )
    connection.close()
    args = {"state": "verified", "directory": str(sets), "name": taken["name"],
            "database": str(database)}  # fmt: skip
    refused = run_module(tmp_path, args)
    assert refused["failed"] and "2099-01-01T00:00:00Z" in refused["msg"], refused
    allowed = run_module(tmp_path, {**args, "allow_older_than_cutover": True})
    assert not allowed.get("failed") and allowed["cutover_at"] == "2099-01-01T00:00:00Z"


def copies(content: bytes):
    def copy(target: str) -> None:
        with open(os.path.join(target, "db.sqlite"), "wb") as handle:
            handle.write(content)

    return copy


def test_a_failing_run_costs_no_good_set_and_leaves_nothing_half_written(tmp_path):
    stamps = [TAKEN + day * 86400 for day in range(3)]
    for stamp in stamps:
        backup_set.take(str(tmp_path), copies(b"good"), [], keep=3, host="p", now=stamp)

    def fails(target: str) -> None:
        copies(b"half")(target)
        raise OSError("the disk is full")

    with pytest.raises(OSError, match="disk is full"):
        backup_set.take(str(tmp_path), fails, [], keep=3, host="p", now=TAKEN + 9 * 86400)
    # nothing to back up at all is refused the same way, before retention runs
    with pytest.raises(BackupSetError, match="nothing to back up"):
        backup_set.take(str(tmp_path), lambda target: None, [str(tmp_path / "none")], keep=3,
                        host="p", now=TAKEN + 10 * 86400)  # fmt: skip
    assert backup_set.sets_in(str(tmp_path)) == [backup_set.set_name(s) for s in stamps]
    assert sorted(os.listdir(tmp_path)) == [backup_set.set_name(s) for s in stamps]


def test_a_set_a_killed_run_left_is_never_counted_and_removed_once_stale(tmp_path):
    fresh = tmp_path / (backup_set.PARTIAL_PREFIX + backup_set.set_name(TAKEN + 86400))
    stale = tmp_path / (backup_set.PARTIAL_PREFIX + backup_set.set_name(TAKEN))
    for partial in (fresh, stale):
        partial.mkdir()
        (partial / "db.sqlite").write_bytes(b"half a database")
    old = time.time() - backup_set.STALE_PARTIAL_S - 60
    os.utime(stale, (old, old))
    name, _, _ = backup_set.take(str(tmp_path), copies(b"db"), [], keep=1, host="p")
    assert backup_set.sets_in(str(tmp_path)) == [name]
    assert not stale.exists() and fresh.exists()  # a run may still be writing it


def test_the_module_refuses_a_database_that_is_not_there(tmp_path):
    result = json.loads(run_module_file(MODULES / "backup_set.py", tmp_path, {
        "database": str(tmp_path / "missing.sqlite"), "directory": str(tmp_path / "sets"),
    }).stdout)  # fmt: skip
    assert result["failed"], result
    assert "missing.sqlite: the database to back up does not exist" in result["msg"]
    assert backup_set.sets_in(str(tmp_path / "sets")) == []
