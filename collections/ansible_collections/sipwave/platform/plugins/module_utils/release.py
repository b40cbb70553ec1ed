# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versioned, validated releases of a rendered configuration directory.

Layout under a root directory::

    releases/<id>/   immutable copies of a staging directory
    current  -> releases/<id>
    previous -> releases/<id that was current before>

The release id is derived from the content, so rendering the same files again yields the same
id and changes nothing. Every step is safe to repeat after a crash: temporary copies are
redone, and a missing or dangling ``current`` simply means there is no current release.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from hashlib import sha256

RELEASES = "releases"
CURRENT = "current"
PREVIOUS = "previous"
RELEASE_PLACEHOLDER = "{release}"
VALIDATE_OUTPUT_LINES = 20
_READ_CHUNK = 1 << 20


class ReleaseError(Exception):
    """A release cannot be built, validated or switched; the message is meant for the user."""


@dataclass(frozen=True)
class Entry:
    """What identifies one file or symlink of a release."""

    mode: int = 0
    sha256: str = ""
    link_target: str | None = None

    @property
    def signature(self) -> str:
        if self.link_target is not None:
            return f"-> {self.link_target}"
        return f"{self.mode:04o} {self.sha256}"

    @property
    def summary(self) -> str:
        if self.link_target is not None:
            return f"-> {self.link_target}"
        return self.sha256[:12]


Snapshot = dict[str, Entry]


@dataclass
class Outcome:
    """What a run did, or would do in check mode."""

    changed: bool
    release: str | None
    previous: str | None
    replaced: str | None
    changed_files: list[str]
    before: str
    after: str
    actions: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)

    def diff(self, root: str) -> dict[str, str]:
        return {
            "before": self.before,
            "after": self.after,
            "before_header": f"{os.path.join(root, CURRENT)} ({self.replaced or 'none'})",
            "after_header": f"{os.path.join(root, CURRENT)} ({self.release})",
        }


def is_ignored(name: str) -> bool:
    """Byte-code caches appear when the code runs; they are not part of a release."""
    return name == "__pycache__" or name.endswith(".pyc")


def _file_sha256(path: str) -> str:
    digest = sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan(directory: str) -> Snapshot:
    """Map every file and symlink under ``directory`` (relative, '/'-separated) to its Entry."""
    snapshot: Snapshot = {}

    def walk(path: str, prefix: str) -> None:
        with os.scandir(path) as items:
            for item in items:
                if is_ignored(item.name):
                    continue
                relative = prefix + item.name
                if item.is_symlink():
                    snapshot[relative] = Entry(link_target=os.readlink(item.path))
                elif item.is_dir():
                    walk(item.path, relative + "/")
                elif item.is_file():
                    mode = item.stat().st_mode & 0o777
                    snapshot[relative] = Entry(mode=mode, sha256=_file_sha256(item.path))
                else:
                    raise ReleaseError(
                        f"{item.path}: only regular files, directories and symlinks can be released"
                    )

    walk(directory, "")
    return snapshot


def release_id(snapshot: Snapshot) -> str:
    digest = sha256()
    for path in sorted(snapshot):
        line = f"{path}\0{snapshot[path].signature}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def listing(snapshot: Snapshot) -> str:
    return "".join(f"{path} {snapshot[path].summary}\n" for path in sorted(snapshot))


def changed_paths(old: Snapshot, new: Snapshot) -> list[str]:
    return sorted(path for path in old.keys() | new.keys() if old.get(path) != new.get(path))


def check_python(directory: str, snapshot: Snapshot) -> None:
    """Compile every Python file of ``directory`` in memory; fail listing every syntax error."""
    problems = []
    for relative in sorted(snapshot):
        if not relative.endswith(".py") or snapshot[relative].link_target is not None:
            continue
        path = os.path.join(directory, relative)
        with open(path, "rb") as handle:
            source = handle.read()
        try:
            compile(source, path, "exec", dont_inherit=True)
        except SyntaxError as exc:
            problems.append(f"{relative} line {exc.lineno}: {exc.msg}")
        except ValueError as exc:  # Python < 3.12 reports NUL bytes this way
            problems.append(f"{relative}: {exc}")
    if problems:
        raise ReleaseError("Python syntax errors:\n" + "\n".join(problems))


def validation_argv(command: list, directory: str) -> list[str]:
    if not command:
        raise ReleaseError("a validate command must list at least the program to run")
    return [str(argument).replace(RELEASE_PLACEHOLDER, directory) for argument in command]


def run_validation(commands: list[list], directory: str) -> None:
    """Run each command in order; the first that fails raises with the tail of its output."""
    for command in commands:
        argv = validation_argv(command, directory)
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=False,
            )
        except OSError as exc:
            raise ReleaseError(
                f"validation command {shlex.join(argv)} could not run: {exc.strerror}"
            ) from exc
        if result.returncode != 0:
            tail = result.stdout.decode("utf-8", "replace").splitlines()[-VALIDATE_OUTPUT_LINES:]
            raise ReleaseError(
                f"validation command {shlex.join(argv)} failed with rc {result.returncode}:\n"
                + "\n".join(tail)
            )


def release_path(root: str, release: str) -> str:
    return os.path.join(root, RELEASES, release)


def read_pointer(root: str, name: str) -> str | None:
    """The release a pointer symlink names, or None if it is missing or dangling."""
    path = os.path.join(root, name)
    if not os.path.islink(path):
        if os.path.lexists(path):
            raise ReleaseError(f"{path} exists but is not a symlink; move it out of the way")
        return None
    target = os.path.realpath(path)
    releases = os.path.realpath(os.path.join(root, RELEASES))
    if os.path.dirname(target) != releases or not os.path.isdir(target):
        return None
    return os.path.basename(target)


def _point(root: str, name: str, release: str) -> None:
    """Atomically make root/<name> a relative symlink to releases/<release>."""
    temporary = os.path.join(root, f".{name}.tmp")
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(f"{RELEASES}/{release}", temporary)
    os.replace(temporary, os.path.join(root, name))


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _ignore_names(_directory: str, names: list[str]) -> set[str]:
    return {name for name in names if is_ignored(name)}


def install(staging: str, root: str, release: str) -> bool:
    """Copy staging to releases/<release>; return False if an intact copy was already there."""
    releases = os.path.join(root, RELEASES)
    os.makedirs(releases, exist_ok=True)
    for name in os.listdir(releases):
        if name.startswith(".") and name.endswith(".tmp"):
            _remove(os.path.join(releases, name))  # left over by an interrupted run
    final = os.path.join(releases, release)
    reusable = os.path.isdir(final) and not os.path.islink(final)
    if reusable and release_id(scan(final)) == release:
        os.utime(final)  # prune by mtime: a reused release counts as new
        return False
    temporary = os.path.join(releases, f".{release}.tmp")
    shutil.copytree(staging, temporary, symlinks=True, ignore=_ignore_names)
    if release_id(scan(temporary)) != release:
        shutil.rmtree(temporary)
        raise ReleaseError(f"{staging} changed while it was being copied; run again")
    if os.path.lexists(final):
        _remove(final)
    os.rename(temporary, final)
    os.utime(final)  # copytree copied the staging directory's mtime
    return True


def select_prunable(mtimes: dict[str, float], keep: int, protected: set[str]) -> list[str]:
    """Releases to delete so that ``keep`` remain, newest first, never a protected one."""
    kept = protected & mtimes.keys()
    prunable = []
    for release in sorted(mtimes, key=lambda name: (mtimes[name], name), reverse=True):
        if release in kept:
            continue
        if len(kept) < keep:
            kept.add(release)
        else:
            prunable.append(release)
    return sorted(prunable)


def prune(
    root: str,
    keep: int,
    protected: set[str],
    *,
    incoming: str | None = None,
    check_mode: bool = False,
) -> list[str]:
    """Delete the oldest releases beyond ``keep``; ``incoming`` counts as the newest."""
    releases = os.path.join(root, RELEASES)
    mtimes: dict[str, float] = {}
    if os.path.isdir(releases):
        with os.scandir(releases) as items:
            for item in items:
                if not item.name.startswith(".") and item.is_dir(follow_symlinks=False):
                    mtimes[item.name] = item.stat(follow_symlinks=False).st_mtime
    if incoming is not None:
        mtimes[incoming] = math.inf
    prunable = select_prunable(mtimes, keep, protected)
    if not check_mode:
        for release in prunable:
            shutil.rmtree(os.path.join(releases, release))
    return prunable


def present(
    staging: str,
    root: str,
    *,
    validate: list[list] | None = None,
    compile_python: bool = True,
    keep: int = 3,
    check_mode: bool = False,
) -> Outcome:
    """Make the content of ``staging`` the current release, validated first."""
    if not os.path.isdir(staging):
        if check_mode:
            # A dry run on a fresh host: the tasks that fill staging did not write either.
            current = read_pointer(root, CURRENT)
            return Outcome(
                changed=True,
                release=None,
                previous=current,
                replaced=current,
                changed_files=[],
                before=listing(scan(release_path(root, current))) if current else "",
                after="",
            )
        raise ReleaseError(f"staging directory {staging} does not exist")
    if keep < 1:
        raise ReleaseError("keep must be at least 1")
    snapshot = scan(staging)
    release = release_id(snapshot)
    current = read_pointer(root, CURRENT)
    previous = read_pointer(root, PREVIOUS)
    if current == release:
        unchanged = listing(snapshot)
        return Outcome(
            changed=False,
            release=release,
            previous=previous,
            replaced=current,
            changed_files=[],
            before=unchanged,
            after=unchanged,
        )

    old = scan(release_path(root, current)) if current else {}
    outcome = Outcome(
        changed=True,
        release=release,
        previous=current or previous,
        replaced=current,
        changed_files=changed_paths(old, snapshot),
        before=listing(old),
        after=listing(snapshot),
    )
    if compile_python:
        check_python(staging, snapshot)
        outcome.actions.append("compile Python files")
    for command in validate or ():
        outcome.actions.append(f"validate: {shlex.join(validation_argv(command, staging))}")
    copied = True
    if not check_mode:
        run_validation(validate or [], staging)
        copied = install(staging, root, release)
    outcome.actions.append(f"{'install' if copied else 'reuse'} {RELEASES}/{release}")
    if current:
        outcome.actions.append(f"point {PREVIOUS} at {current}")
        if not check_mode:
            _point(root, PREVIOUS, current)
    outcome.actions.append(f"point {CURRENT} at {release}")
    if not check_mode:
        _point(root, CURRENT, release)
    protected = {release} | ({outcome.previous} if outcome.previous else set())
    outcome.pruned = prune(root, keep, protected, incoming=release, check_mode=check_mode)
    outcome.actions.extend(f"prune {name}" for name in outcome.pruned)
    return outcome


def rollback(root: str, *, check_mode: bool = False) -> Outcome:
    """Swap current and previous."""
    current = read_pointer(root, CURRENT)
    previous = read_pointer(root, PREVIOUS)
    if previous is None:
        raise ReleaseError(f"{root} has no previous release to roll back to")
    old = scan(release_path(root, current)) if current else {}
    new = scan(release_path(root, previous))
    outcome = Outcome(
        changed=True,
        release=previous,
        previous=current,
        replaced=current,
        changed_files=changed_paths(old, new),
        before=listing(old),
        after=listing(new),
        actions=[f"point {CURRENT} at {previous}"],
    )
    if not check_mode:
        _point(root, CURRENT, previous)
    if current:
        outcome.actions.append(f"point {PREVIOUS} at {current}")
        if not check_mode:
            _point(root, PREVIOUS, current)
    else:
        outcome.actions.append(f"remove {PREVIOUS}")
        if not check_mode:
            os.unlink(os.path.join(root, PREVIOUS))
    return outcome
