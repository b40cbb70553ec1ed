# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a running nginx has loaded, read from /proc and its error log.

A reload (SIGHUP) makes the master read the configuration again and, when it accepts it,
start new worker processes with it while the old ones finish their requests. When it refuses
it (for example a shared memory zone that cannot be re-created with a new size, a key a
limit_req zone changed), it logs an ``[emerg]`` line and keeps the old workers: the reload
command itself still succeeds. New workers under the same master are therefore the sign that
a configuration generation was taken.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

WORKER_TITLE = "nginx: worker process"
SHUTTING_DOWN = "is shutting down"
# Levels at which nginx reports a configuration it could not load.
_FAILURE = re.compile(r"\[(emerg|alert|crit)\]")
# A refusal a restart cannot cure: the new master could not bind either, and nginx would be
# down instead of serving the previous configuration.
_RESTART_WOULD_FAIL = re.compile(r"bind\(\) to \S+ failed")
# Anything shaped like a device token is masked before a line is shown.
_TOKEN = re.compile(r"[0-9a-fA-F]{32}")
MAX_LINES = 5
MAX_LINE_LENGTH = 300


def read_master_pid(pid_file: str) -> int | None:
    """The master's pid when the pid file names a running process."""
    try:
        with open(pid_file, encoding="ascii") as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return pid if os.path.exists(f"/proc/{pid}") else None


def _stat_fields(stat_text: str) -> list[str]:
    """/proc/<pid>/stat after "pid (comm)": comm may hold spaces and parentheses. The first
    field returned is the state (field 3 of proc(5))."""
    return stat_text.rsplit(")", 1)[1].split()


def _parent_pid(stat_text: str) -> int:
    return int(_stat_fields(stat_text)[1])


def started_at(pid: int, proc_root: str = "/proc") -> float:
    """When a process started, in seconds since the epoch (its starttime after boot)."""
    with open(os.path.join(proc_root, str(pid), "stat"), encoding="utf-8") as handle:
        ticks = int(_stat_fields(handle.read())[19])
    with open(os.path.join(proc_root, "stat"), encoding="ascii") as handle:
        boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def restart_would_fail(failures: list[str]) -> bool:
    return any(_RESTART_WOULD_FAIL.search(line) for line in failures)


def worker_pids(master: int, proc_root: str = "/proc") -> set[int]:
    """Pids of the master's worker processes that serve (not those shutting down)."""
    workers = set()
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, name, "stat"), encoding="utf-8") as handle:
                if _parent_pid(handle.read()) != master:
                    continue
            with open(os.path.join(proc_root, name, "cmdline"), "rb") as handle:
                title = handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not readable
        if title.startswith(WORKER_TITLE) and SHUTTING_DOWN not in title:
            workers.add(int(name))
    return workers


def log_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def failures_since(path: str, offset: int) -> list[str]:
    """The error log's failure lines written after ``offset`` (all of them when the log was
    rotated meanwhile), shortened and with token-shaped strings masked."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(offset if handle.tell() >= offset else 0)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    found = [_TOKEN.sub("-", line)[:MAX_LINE_LENGTH] for line in text.splitlines()
             if _FAILURE.search(line)]  # fmt: skip
    return list(dict.fromkeys(found))[-MAX_LINES:]  # nginx repeats a failed bind()


@dataclass(frozen=True)
class Generation:
    """The master and its serving workers at one moment."""

    master: int | None
    workers: frozenset[int]

    @classmethod
    def read(cls, pid_file: str, proc_root: str = "/proc") -> Generation:
        master = read_master_pid(pid_file)
        workers = frozenset(worker_pids(master, proc_root)) if master else frozenset()
        return cls(master, workers)

    def loaded_since(self, moment: float, proc_root: str = "/proc") -> bool:
        """True when every serving worker started after ``moment`` (so the configuration it
        runs was read after then)."""
        if not self.workers:
            return False
        try:
            return min(started_at(pid, proc_root) for pid in self.workers) > moment
        except (OSError, ValueError, IndexError, StopIteration):
            return False  # a worker went away meanwhile: read again by reloading

    def replaced_by(self, later: Generation) -> bool:
        """True when ``later`` runs a newer configuration: new workers under the same master
        (a reload taken), or a new master with workers (a restart)."""
        if later.master is None or not later.workers:
            return False
        if later.master != self.master:
            return True
        return bool(later.workers - self.workers)
