"""Controller-side state the collection's action plugins share within one playbook run.

The legacy export is read once per playbook run: the wave step (once per proxy), the dial-in
step, the provisioning step and the notifications all ask for it, each in a worker process
of its own, so an in-memory cache would not survive from one to the next. The first reader
parses the file and leaves the result in the run's private directory; the others load it.

The run's directory is named after the ansible-playbook process (the workers' parent) and
its start time, lives in /dev/shm where there is one (memory, never written to a disk), is
0700 inside a 0700 directory of the user, and holds 0600 files (marshal data, plain values
only); it is removed by the next run that finds its playbook process gone. A cached export
is keyed by the SHA-256 of the file's bytes, the number plan and the parser's version, so a
changed file is read again.
"""

from __future__ import annotations

import fcntl
import hashlib
import marshal
import os
import shutil
import stat
import tempfile
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
)

SELECT_BY_COLUMN = "csv-wave-column"
# Counted up whenever read_export's result for the same bytes changes (fields, rules).
PARSER_VERSION = 3
_READ_CHUNK = 1 << 20


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


def _export_key(path: str, plan: NumberPlan) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_READ_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise ExportError(f"cannot read the export {path}: {exc.strerror}") from exc
    digest.update(f"\0{plan!r}\0{PARSER_VERSION}\0{os.path.realpath(path)}".encode())
    return digest.hexdigest()


def _plain(export: Export) -> tuple:
    """The export as tuples, lists and strings only, for marshal: for 100,000 accounts,
    0.3 s to write and 0.3 s to read back, against 0.8 s and 0.4 s for pickling the objects."""
    return (
        export.path,
        export.rows,
        [(*account[:-3], tuple(map(tuple, account.devices)), account.wave,
          tuple(map(tuple, account.dropped)))
         for account in export.accounts.values()],
        [(row.line, row.login, row.wave,
          [(p.path, p.line, p.reason, p.message) for p in row.problems], row.email)
         for row in export.bad_rows],
    )  # fmt: skip


def _from_plain(data: tuple) -> Export:
    path, rows, accounts, bad_rows = data
    device, dropped = Device._make, Dropped._make
    return Export(
        path=path,
        accounts={
            values[1]: Account(
                *values[:-3],
                tuple(map(device, values[-3])),
                values[-2],
                tuple(map(dropped, values[-1])),
            )
            for values in accounts
        },
        bad_rows=[
            BadRow(line, login, wave, [Problem(*p) for p in problems], email)
            for line, login, wave, problems, email in bad_rows
        ],
        rows=rows,
    )


def read_export_once(path: str, plan: NumberPlan) -> Export:
    """read_export(path, plan), parsed once per playbook run and file content.

    Raises ExportError exactly as read_export does; an unreadable or foreign cache is ignored
    (the file is parsed again), never trusted."""
    path = str(path)  # a plain str: Ansible hands over its own str subclass, which marshal refuses
    directory = run_directory()
    if directory is None:
        with without_cycle_collection():
            return read_export(path, plan)
    cached = directory / f"export-{_export_key(path, plan)}.marshal"
    with open(directory / "lock", "a") as lock, without_cycle_collection():
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(cached, "rb") as handle:
                if os.fstat(handle.fileno()).st_uid == os.getuid():
                    # Our own 0600 file (see above), written by this Python for this run.
                    return _from_plain(marshal.load(handle))
        except (OSError, EOFError, ValueError, TypeError):
            pass
        export = read_export(path, plan)
        atomic_write(str(cached), marshal.dumps(_plain(export)))
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
