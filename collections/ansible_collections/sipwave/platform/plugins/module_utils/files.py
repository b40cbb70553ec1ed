# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing files so that a reader or a crash never sees half of one: the one implementation
of an atomic replace, and of a locked read-modify-write of a JSON document.

atomic_write writes ``.<name>.tmp`` (or ``<temp_prefix><name>.tmp``) beside the target with
its final mode and owner, optionally fsyncs it, renames it over the target and fsyncs the
directory. The temporary name is fixed per target, so a crash leaves at most one stray file,
which the next write replaces; two writers of one target must hold a lock
(locked_json_update takes one).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PRIVATE = 0o600  # the default: anything sipwave writes may hold account data


def _fsync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write(
    path: str,
    data: bytes | str,
    mode: int = PRIVATE,
    uid: int = -1,
    gid: int = -1,
    fsync: bool = True,
    temp_prefix: str = ".",
) -> None:
    """Replace ``path`` with ``data``: readers see the old or the new file, never a part.

    ``mode`` is set explicitly (the umask does not apply); ``uid``/``gid`` -1 keep the
    writer's. With ``fsync`` the file and its directory reach the disk before this returns,
    so the new content also survives a power loss; bulk writers of many small files that can
    be rewritten (phone configurations) pass False.
    """
    content = data.encode("utf-8") if isinstance(data, str) else data
    directory = os.path.dirname(path) or "."
    temporary = os.path.join(directory, f"{temp_prefix}{os.path.basename(path)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    try:
        try:
            os.fchmod(descriptor, mode)
            if uid != -1 or gid != -1:
                os.fchown(descriptor, uid, gid)
            view = memoryview(content)
            while view:
                view = view[os.write(descriptor, view) :]
            if fsync:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    if fsync:
        _fsync_directory(directory)


def remove(path: str, fsync: bool = True) -> bool:
    """Remove ``path`` if it exists (and make the removal durable); True if it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    if fsync:
        _fsync_directory(os.path.dirname(path) or ".")
    return True


@contextmanager
def directory_lock(directory: str) -> Iterator[None]:
    """An exclusive flock on ``directory`` itself, held for the block: every writer of a file
    in it that uses this lock waits for the others (also across processes and hosts' forks)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def json_text(document: Any) -> str:
    """The project's JSON file layout: one-space indent, sorted keys, a final newline."""
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def locked_json_update(
    path: str, update: Callable[[Any], Any], mode: int = PRIVATE, missing_ok: bool = True
) -> Any:
    """Read the JSON document at ``path`` (None when it does not exist and ``missing_ok``),
    pass it to ``update`` and write what it returns atomically, all under the lock of the
    file's directory, so concurrent updaters never lose each other's changes. Returns the
    document written. ``update`` may raise to leave the file untouched."""
    directory = os.path.dirname(path) or "."
    with directory_lock(directory):
        try:
            with open(path, encoding="utf-8") as handle:
                current = json.load(handle)
        except FileNotFoundError:
            if not missing_ok:
                raise
            current = None
        document = update(current)
        atomic_write(path, json_text(document), mode)
    return document
