"""Controller-side state the collection's action plugins share: the legacy export parsed once
per file content, within a playbook run and from one run to the next.

The wave step (once per proxy), the dial-in step, the provisioning step and the notifications
all ask for the export, each in a worker process of its own, so an in-memory cache would not
survive from one to the next. The first reader parses the file and leaves the parse's
*skeleton* in the cache root: every account and bad row as parsed, with each password and HA1
left empty. The next readers (also of later playbook runs) read the file's bytes again, and
when the skeleton's key matches them (the SHA-256 of the bytes, the number plan, the parser's
version and the file's name) take each account's password and HA1 from its row in those very
bytes: no secret is ever written to the cache, and a changed file is parsed again.

The cache root is a 0700 directory of the user in /dev/shm where there is one (memory, never
written to a disk); skeletons are 0600 files (marshal data, plain values only), one per export
path, under a SHA-256 of their content that is checked before they are loaded. A skeleton
that is not our own private file, not whole, of other bytes, or whose accounts are not on
their lines in the file is ignored and the file parsed again. Each playbook run also gets a
0700 directory (named after the ansible-playbook process, the workers' parent, and its start
time) holding the lock that makes its workers wait for the first parse; it is removed by the
next run that finds its playbook process gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import marshal
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from ansible.errors import AnsibleActionFail
from ansible_collections.sipwave.platform.plugins.module_utils.bulk import without_cycle_collection
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import NumberPlan
from ansible_collections.sipwave.platform.plugins.module_utils.export_fields import (
    Account,
    Device,
    Dropped,
)
from ansible_collections.sipwave.platform.plugins.module_utils.files import atomic_write
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import (
    BadRow,
    Export,
    ExportError,
    Problem,
    read_export,
    row_secrets,
)

SELECT_BY_COLUMN = "csv-wave-column"
# Counted up whenever read_export's result for the same bytes changes (fields, rules).
PARSER_VERSION = 3
SKELETON_DAYS = 30


def _cache_root() -> Path:
    """SIPWAVE_CONTROLLER_CACHE if set (tests), else a directory of the user in /dev/shm."""
    if os.environ.get("SIPWAVE_CONTROLLER_CACHE"):
        return Path(os.environ["SIPWAVE_CONTROLLER_CACHE"])
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
    return base / f"sipwave-controller-{os.getuid()}"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def _private_directory(path: Path) -> bool:
    """Create ``path`` 0700 if needed; True only if it is ours and nobody else's."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def run_directory() -> Path | None:
    """This playbook run's private directory (None when none can be made safely)."""
    root = _cache_root()
    if not _private_directory(root):
        return None
    playbook = os.getppid()
    started = _start_time(playbook)
    if started is None:
        return None
    directory = root / f"run-{playbook}-{started}"
    if not directory.exists():
        _remove_finished_runs(root)
    return directory if _private_directory(directory) else None


def _remove_finished_runs(root: Path) -> None:
    for entry in root.glob("run-*-*"):
        _prefix, pid, started = entry.name.split("-", 2)
        if not pid.isdigit() or _start_time(int(pid)) != started:
            shutil.rmtree(entry, ignore_errors=True)


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ExportError(f"cannot read the export {path}: {exc.strerror}") from exc


def _export_key(path: str, plan: NumberPlan, data: bytes) -> str:
    """What the parse of ``data`` depends on: the bytes, the number plan, the parser's version,
    the file and the name it was given (which the problems quote)."""
    digest = hashlib.sha256(data)
    digest.update(f"\0{plan!r}\0{PARSER_VERSION}\0{os.path.realpath(path)}\0{path}".encode())
    return digest.hexdigest()


def _plain(export: Export) -> tuple:
    """The export as tuples, lists and strings only, for marshal, every password and HA1 left
    empty: for 100,000 accounts, 0.3 s to write and 0.3 s to read back, against 0.8 s and
    0.4 s for pickling the objects."""
    return (
        export.path,
        export.rows,
        [(*account[:3], "", "", *account[5:-3],
          tuple(map(tuple, account.devices)), account.wave, tuple(map(tuple, account.dropped)))
         for account in export.accounts.values()],
        [(row.line, row.login, row.wave,
          [(p.path, p.line, p.reason, p.message) for p in row.problems], row.email)
         for row in export.bad_rows],
    )  # fmt: skip


def _from_plain(data: tuple, secrets: dict[int, tuple[str, str, str]]) -> Export:
    """The Export of _plain(), each account's password and HA1 from ``secrets`` (row_secrets
    of the same bytes); ValueError if an account's line is not its login's row."""
    path, rows, accounts, bad_rows = data
    device, dropped = Device._make, Dropped._make

    def account(values: tuple) -> Account:
        login, password, ha1 = secrets.get(values[0], ("", "", ""))
        if login != values[1]:
            raise ValueError(f"line {values[0]} is not the row of {values[1]}")
        return Account(*values[:3], password, ha1, *values[5:-3], tuple(map(device, values[-3])),
                       values[-2], tuple(map(dropped, values[-1])))  # fmt: skip

    return Export(
        path=path,
        accounts={values[1]: account(values) for values in accounts},
        bad_rows=[
            BadRow(line, login, wave, [Problem(*p) for p in problems], email)
            for line, login, wave, problems, email in bad_rows
        ],
        rows=rows,
    )


# A skeleton (see above) starts with _SKELETON, then the export's real path (hexadecimal:
# a name may hold a line break), the parse's key (_export_key) and the SHA-256 of the marshal
# data after it, each on a line of its own.
_SKELETON = b"sipwave export skeleton 2\n"


def _skeleton_head(path: str, key: str) -> bytes:
    return b"".join((_SKELETON, os.fsencode(os.path.realpath(path)).hex().encode(), b"\n",
                     key.encode(), b"\n"))  # fmt: skip


def _skeleton_path(root: Path, path: str) -> Path:
    name = hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()[:32]
    return root / f"skeleton-{name}.marshal"


def _own_private_file(handle) -> bool:
    info = os.fstat(handle.fileno())
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_uid == os.getuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def _from_skeleton(skeleton: Path, key: str, path: str, data: bytes) -> Export | None:
    """The export from its skeleton and the secrets of ``data``; None unless the skeleton is
    our own private file, whole (its digest), of these very bytes (its key) and every account
    is found on its line in them. Anything else is ignored: the file is parsed again."""
    try:
        descriptor = os.open(skeleton, os.O_RDONLY | os.O_NOFOLLOW)
        with open(descriptor, "rb") as handle:
            if not _own_private_file(handle):
                return None
            content = handle.read()
    except OSError:
        return None
    head = _skeleton_head(path, key)
    if not content.startswith(head):
        return None
    digest, payload = content[len(head) : len(head) + 64], content[len(head) + 65 :]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        return None
    try:
        return _from_plain(marshal.loads(payload), row_secrets(path, data))
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, ExportError):
        return None


def _write_skeleton(skeleton: Path, path: str, key: str, export: Export) -> None:
    """Replace the export's skeleton (under a lock of the cache root: runs of other playbooks
    may write it too) and remove the skeletons of exports that are gone or were not read for
    SKELETON_DAYS."""
    payload = marshal.dumps(_plain(export))
    digest = hashlib.sha256(payload).hexdigest().encode()
    content = b"".join((_skeleton_head(path, key), digest, b"\n", payload))
    root = skeleton.parent
    with open(root / "skeleton.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        atomic_write(str(skeleton), content)
        for other in root.glob("skeleton-*.marshal"):
            if other != skeleton and not _in_use(other):
                with contextlib.suppress(OSError):
                    other.unlink()


def _in_use(skeleton: Path) -> bool:
    """Whether a skeleton's export still exists and it was read within SKELETON_DAYS."""
    try:
        info = skeleton.lstat()
        with open(skeleton, "rb") as handle:
            magic, hex_path = handle.read(8192).split(b"\n", 2)[:2]
        export = os.fsdecode(bytes.fromhex(hex_path.decode("ascii")))
    except (OSError, ValueError):
        return False
    unused = time.time() - SKELETON_DAYS * 86400
    recent = info.st_atime >= unused or info.st_mtime >= unused
    return magic + b"\n" == _SKELETON and recent and os.path.exists(export)


def read_export_once(path: str, plan: NumberPlan) -> Export:
    """read_export(path, plan), parsed once per file content, in this playbook run and the
    next ones.

    Raises ExportError exactly as read_export does; an unreadable or foreign cache is ignored
    (the file is parsed again), never trusted. The bytes hashed for the cache's key are the
    ones parsed, or the ones a skeleton takes its passwords and HA1s from."""
    path = str(path)  # a plain str: Ansible hands over its own str subclass, which marshal refuses
    directory = run_directory()
    data = _read_bytes(path)
    if directory is None:
        with without_cycle_collection():
            return read_export(path, plan, data=data)
    key = _export_key(path, plan, data)
    skeleton = _skeleton_path(directory.parent, path)
    with open(directory / "lock", "a") as lock, without_cycle_collection():
        fcntl.flock(lock, fcntl.LOCK_EX)
        export = _from_skeleton(skeleton, key, path, data)
        if export is None:
            export = read_export(path, plan, data=data)
            _write_skeleton(skeleton, path, key, export)
        return export


def selected_logins(wave: dict, export: Export) -> list[str]:
    """The logins the wave takes: listed in the inventory, or pinned by the export's column."""
    if wave.get("accounts") is not None and wave.get("select") is not None:
        raise AnsibleActionFail(f"wave {wave['name']}: give accounts or select, not both")
    if wave.get("accounts") is not None:
        return list(dict.fromkeys(str(login) for login in wave["accounts"]))
    if wave.get("select") != SELECT_BY_COLUMN:
        raise AnsibleActionFail(
            f"wave {wave['name']}: needs accounts (a list of logins) or select: {SELECT_BY_COLUMN}"
        )
    logins = [a.login for a in export.accounts.values() if a.wave == wave["name"]]
    logins += [row.login for row in export.bad_rows if row.login and row.wave == wave["name"]]
    return list(dict.fromkeys(logins))
