# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The phones still owed a check-sync NOTIFY, kept in a file on the provisioning host.

A phone whose files changed must be told to fetch them again. The rendering module records
the phone here *before* it overwrites any of its files, and an entry goes only once every
proxy gave a definite answer for it (the phone answered or had its time, or it had no
registered contact: sipwave.platform.check_sync's outcomes).
A run killed between the two leaves the entries behind, so the next run sends what is owed
although it changes no file.

The file is JSON, replaced atomically (temporary file, fsync, rename); no entry holds a
secret (MAC, vendor and the SIP identities the phone may be registered as).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ansible_collections.sipwave.platform.plugins.module_utils.files import atomic_write, remove

FORMAT_VERSION = 1


class PendingError(Exception):
    """An unreadable or malformed pending file; the message names the file and the reason."""


@dataclass(frozen=True)
class OwedResync:
    mac: str
    vendor: str
    identities: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"mac": self.mac, "vendor": self.vendor, "identities": list(self.identities)}


Pending = dict[str, OwedResync]


def _entry(path: str, position: int, raw) -> OwedResync:
    if not isinstance(raw, dict) or not isinstance(raw.get("mac"), str):
        raise PendingError(f"{path}: entry {position} is not an object with a mac")
    identities = raw.get("identities") or []
    if not isinstance(identities, list) or not all(isinstance(i, str) for i in identities):
        raise PendingError(f"{path}: entry {position} ({raw['mac']}): identities is not a list")
    return OwedResync(raw["mac"], str(raw.get("vendor") or ""), tuple(identities))


def load_pending(path: str) -> Pending:
    """The owed re-syncs recorded in ``path``; none when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise PendingError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", "?")
        raise PendingError(f"{path}:{line}: not JSON: {getattr(exc, 'msg', exc)}") from exc
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise PendingError(f"{path}: not a pending re-sync file of version {FORMAT_VERSION}")
    devices = document.get("devices")
    if not isinstance(devices, list):
        raise PendingError(f"{path}: 'devices' is not a list")
    entries = [_entry(path, position, raw) for position, raw in enumerate(devices, 1)]
    return {entry.mac: entry for entry in entries}


def save_pending(path: str, pending: Pending) -> None:
    """Replace ``path`` atomically with ``pending``; an empty set removes the file.

    Either the old or the new list survives a crash, never a part of one."""
    if not pending:
        remove(path)
        return
    document = {
        "version": FORMAT_VERSION,
        "devices": [pending[mac].as_dict() for mac in sorted(pending)],
    }
    atomic_write(path, json.dumps(document, indent=1) + "\n")


def with_owed(pending: Pending, owed: Iterable[OwedResync]) -> Pending:
    """``pending`` plus ``owed``; a phone already listed takes the newer vendor and identities."""
    merged = dict(pending)
    for entry in owed:
        merged[entry.mac] = entry
    return merged


def without(pending: Pending, macs: Iterable[str]) -> Pending:
    gone = set(macs)
    return {mac: entry for mac, entry in pending.items() if mac not in gone}


def settled_macs(proxy_results: Iterable[Mapping]) -> set[str]:
    """MACs that every proxy settled, from each proxy's check_sync task result.

    A proxy that failed, was skipped or has no result settles nothing, so the phones stay
    owed until a run reaches every proxy: a phone may be registered on any of them."""
    settled: set[str] | None = None
    for result in proxy_results:
        if not result or result.get("failed") or result.get("skipped"):
            return set()
        here = {
            str(device["mac"])
            for device in result.get("devices") or []
            if device.get("mac") and device.get("settled") is True
        }
        settled = here if settled is None else settled & here
    return settled or set()
