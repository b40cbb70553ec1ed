# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup set: one directory ``sipwave-backup-<YYYYmmddTHHMMSSZ>`` holding the copies of a
host's data and ``MANIFEST.json`` naming every file with its size and SHA-256. A restore
trusts a set only when every file matches the manifest and no file is missing or extra; the
newest ``keep`` sets are kept. The sets hold HA1 hashes: directories 0700, files 0600."""

from __future__ import annotations

import calendar
import json
import os
import re
import shutil
import tarfile
import time
from collections.abc import Callable

from ansible_collections.sipwave.platform.plugins.module_utils.files import atomic_write, json_text
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.backup import sha256_of

PREFIX = "sipwave-backup-"
MANIFEST = "MANIFEST.json"
SET_NAME = re.compile(r"^sipwave-backup-(\d{8}T\d{6}Z)$")
STAMP = "%Y%m%dT%H%M%SZ"
# A set being written: never counted by retention or the metric, never restored.
PARTIAL_PREFIX = ".partial-"
# A partial set this old was left by a killed run (a pg_dump of a large database may take
# hours, so a younger one may still be written).
STALE_PARTIAL_S = 24 * 3600
SAFE_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class BackupSetError(Exception):
    """A set that must not be used, with the reason naming the set and the file."""


def set_name(taken_at: float) -> str:
    return PREFIX + time.strftime(STAMP, time.gmtime(taken_at))


def taken_at_of(name: str) -> float:
    """The time a set was taken, from its directory name (BackupSetError for other names)."""
    match = SET_NAME.match(os.path.basename(name.rstrip("/")))
    if not match:
        raise BackupSetError(f"{name}: not a backup set name ({PREFIX}YYYYmmddTHHMMSSZ)")
    return float(calendar.timegm(time.strptime(match.group(1), STAMP)))


def _files_under(directory: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            relative = os.path.relpath(os.path.join(root, name), directory)
            if relative != MANIFEST:
                found.append(relative.replace(os.sep, "/"))
    return found


def write_manifest(directory: str, taken_at: float, host: str) -> dict:
    """Digest every file of the set, make them private, and write the manifest last."""
    files = {}
    for relative in _files_under(directory):
        path = os.path.join(directory, relative)
        if os.path.islink(path) or not os.path.isfile(path):
            raise BackupSetError(f"{path}: not a regular file, a set holds only files")
        os.chmod(path, 0o600)
        files[relative] = {"size": os.path.getsize(path), "sha256": sha256_of(path)}
    for root, dirs, _files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
    os.chmod(directory, 0o700)
    if not files:
        raise BackupSetError(f"{directory}: nothing to back up (no database, none of the paths)")
    manifest = {
        "format": 1,
        "host": host,
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(taken_at)),
        "files": files,
    }
    atomic_write(os.path.join(directory, MANIFEST), json_text(manifest))
    return manifest


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise BackupSetError(f"{path}: missing, the set is incomplete") from None
    except (OSError, ValueError) as exc:
        raise BackupSetError(f"{path}: unreadable manifest ({exc})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if manifest.get("format") != 1 or not isinstance(files, dict) or not files:
        raise BackupSetError(f"{path}: not a format 1 manifest naming files")
    for relative, entry in files.items():
        if not SAFE_PATH.match(relative) or ".." in relative.split("/"):
            raise BackupSetError(f"{path}: file name {relative!r} leaves the set or is unsafe")
        digest = str(entry.get("sha256")) if isinstance(entry, dict) else ""
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise BackupSetError(f"{path}: entry {relative!r} has no SHA-256")
    return manifest


def verify(directory: str) -> dict:
    """The manifest when every file matches it; BackupSetError naming the first file that
    differs, is missing, or is not in the manifest."""
    manifest = read_manifest(directory)
    expected = manifest["files"]
    present = set(_files_under(directory))
    for relative in sorted(present - set(expected)):
        raise BackupSetError(f"{directory}/{relative}: not in the manifest")
    for relative, entry in sorted(expected.items()):
        path = os.path.join(directory, relative)
        if relative not in present or os.path.islink(path):
            raise BackupSetError(f"{path}: missing from the set")
        if os.path.getsize(path) != entry.get("size") or sha256_of(path) != entry["sha256"]:
            raise BackupSetError(f"{path}: checksum differs from the manifest, the set is damaged")
    return manifest


def sets_in(directory: str) -> list[str]:
    """Names of the complete-looking sets (with a manifest), oldest first."""
    if not os.path.isdir(directory):
        return []
    return sorted(
        name
        for name in os.listdir(directory)
        if SET_NAME.match(name) and os.path.isfile(os.path.join(directory, name, MANIFEST))
    )


def prune(directory: str, keep: int) -> list[str]:
    """Remove all but the newest ``keep`` sets; returns the removed names."""
    if keep < 1:
        raise BackupSetError(f"keep must be at least 1, not {keep}")
    removed = sets_in(directory)[:-keep]
    for name in removed:
        shutil.rmtree(os.path.join(directory, name))
    return removed


def newest_taken_at(directory: str) -> float:
    """When the newest set was taken (0 when there is none), for the backup-age metric."""
    names = sets_in(directory)
    return taken_at_of(names[-1]) if names else 0.0


def cutover_refusal(taken_at: float, cutover_at: float | None, allow_older: bool) -> str | None:
    """Why a set must not be restored: taken before the last completed cutover (None: may)."""
    if cutover_at is None or allow_older or taken_at >= cutover_at:
        return None

    def when(stamp: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))

    return (
        f"the backup was taken at {when(taken_at)}, before the cutover completed at "
        f"{when(cutover_at)}: restoring it undoes the cutover. Restore it anyway only on "
        "purpose (playbooks/restore.yml -e restore_before_cutover=true)"
    )


def _symlinks(directory: str, names: list[str]) -> list[str]:
    """copytree's ignore: a set holds files, a link (a release's current pointer) is left."""
    return [name for name in names if os.path.islink(os.path.join(directory, name))]


def _remove_stale_partials(directory: str, now: float) -> None:
    """Sets a killed run left half-written (``.partial-<name>``, a database copy among them):
    removed once older than STALE_PARTIAL_S, so that a run still writing one is left alone."""
    for name in os.listdir(directory):
        if name.startswith(PARTIAL_PREFIX) and SET_NAME.match(name[len(PARTIAL_PREFIX) :]):
            path = os.path.join(directory, name)
            if now - os.lstat(path).st_mtime > STALE_PARTIAL_S:
                shutil.rmtree(path, ignore_errors=True)


def take(
    directory: str,
    copy_database: Callable[[str], None],
    paths: list[str],
    keep: int,
    host: str,
    now: float | None = None,
) -> tuple[str, dict, list[str]]:
    """Take one set in ``directory``: ``copy_database(set_directory)`` writes the database
    copy into it, then each existing path of ``paths`` goes under ``files/`` with its
    absolute path (links left out), the manifest last (from the files as written). The set
    is written as ``.partial-<name>`` (never counted, never restored) and renamed into place
    once its manifest is there; retention runs after that, so a failing run never costs a
    good set. A set that fails is removed. Returns the set's name, its manifest and the names
    retention removed."""
    if keep < 1:
        raise BackupSetError(f"keep must be at least 1, not {keep}")
    now = time.time() if now is None else now
    name = set_name(now)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    _remove_stale_partials(directory, time.time())
    target = os.path.join(directory, name)
    if os.path.exists(target):
        raise BackupSetError(f"{target}: a set of this second exists already")
    partial = os.path.join(directory, PARTIAL_PREFIX + name)
    os.mkdir(partial, 0o700)
    try:
        copy_database(partial)
        for path in paths:
            inside = os.path.join(partial, "files", path.lstrip("/"))
            if os.path.islink(path):
                continue
            if os.path.isdir(path):
                shutil.copytree(path, inside, symlinks=True, ignore=_symlinks)
            elif os.path.isfile(path):
                os.makedirs(os.path.dirname(inside), mode=0o700, exist_ok=True)
                shutil.copyfile(path, inside)
        manifest = write_manifest(partial, now, host)
        os.rename(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return name, manifest, prune(directory, keep)


def database_file(manifest: dict) -> str | None:
    """The set's database copy (db.sqlite or db.pgdump), None when it holds none."""
    for candidate in ("db.sqlite", "db.pgdump"):
        if candidate in manifest["files"]:
            return candidate
    return None


def pack(set_directory: str, archive: str) -> None:
    """One uncompressed tar of a set (its name as the top directory), mode 0600, for the
    controller's copy."""
    name = os.path.basename(set_directory.rstrip("/"))
    partial = archive + ".partial"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle, tarfile.open(fileobj=handle, mode="w") as tar:
            tar.add(set_directory, arcname=name, recursive=True)
        os.replace(partial, archive)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise


def unpack(archive: str, into: str) -> str:
    """Unpack a set's tar into ``into`` (replacing a set of the same name there) and return
    the set's directory. Only directories and regular files with safe names under one set
    directory, each named once, are accepted: anything else refuses the archive, naming the
    entry. So is an archive whose files would not fit on the file system of ``into``."""
    with tarfile.open(archive, mode="r:") as tar:
        members = tar.getmembers()
        names = {member.name.split("/", 1)[0] for member in members}
        if len(names) != 1:
            raise BackupSetError(f"{archive}: not one backup set ({len(names)} top entries)")
        (name,) = names
        taken_at_of(name)
        seen: set[str] = set()
        for member in members:
            if not (member.isdir() or member.isfile()) or not SAFE_PATH.match(member.name):
                raise BackupSetError(f"{archive}: entry {member.name!r} is not a plain file")
            if ".." in member.name.split("/"):
                raise BackupSetError(f"{archive}: entry {member.name!r} leaves the set")
            if member.name.rstrip("/") in seen:
                raise BackupSetError(f"{archive}: entry {member.name!r} appears twice")
            seen.add(member.name.rstrip("/"))
        os.makedirs(into, mode=0o700, exist_ok=True)
        needed = sum(member.size for member in members if member.isfile())
        free = shutil.disk_usage(into).free
        if needed > free:
            raise BackupSetError(
                f"{archive}: its files take {needed} bytes, {into} has {free} bytes free"
            )
        staging = os.path.join(into, f".unpacking-{name}")
        shutil.rmtree(staging, ignore_errors=True)
        os.mkdir(staging, 0o700)
        try:
            for member in members:
                path = os.path.join(staging, member.name)
                if member.isdir():
                    os.makedirs(path, mode=0o700, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
                source = tar.extractfile(member)
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with source, os.fdopen(descriptor, "wb") as handle:
                    shutil.copyfileobj(source, handle)
            target = os.path.join(into, name)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(os.path.join(staging, name), target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
