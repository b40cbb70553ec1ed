# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What sipwave.platform.check_sync decides without talking to Kamailio: the contacts in an
``ul.lookup`` answer, the NOTIFY's headers, the replies of a batch of RPC commands, and each
phone's outcome in the report.

Outcomes of one contact: ``answered`` (a final SIP status came back, read from the proxy's
``checksync`` htable), ``timed_out`` (none before the run's deadline) and ``error`` (the
NOTIFY could not be started). A device is ``answered`` when one of its contacts answered,
``no_contact`` when none of its identities is registered, ``error`` when a NOTIFY could not
be started or an identity could not be looked up, else ``timed_out``. Only ``error`` leaves
the device owed a re-sync (as a failed control-socket call did before): a phone that does
not answer is not told again, it fetches its files at its next periodic check.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Shared with the router's sipwave_router/checksync.py (a unit test holds them equal).
HTABLE_CHECK_SYNC = "checksync"
CALL_ID_PREFIX = "sipwave-checksync-"

ANSWERED = "answered"
TIMED_OUT = "timed_out"
NO_CONTACT = "no_contact"
ERROR = "error"
UNSENT = "not_sent"  # check mode
DEVICE_OUTCOMES = (ANSWERED, TIMED_OUT, NO_CONTACT, ERROR, UNSENT)

# An identity as the rendering module lists it (user@domain): it becomes an RPC argument and
# a To header, so anything else (spaces, line breaks, quotes) is refused, not sent.
IDENTITY = re.compile(r"[A-Za-z0-9._~!$&'*+=%-]{1,64}@[A-Za-z0-9.-]{1,253}")
EVENT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FIELD = re.compile(r"^\s*(Address|Received|Socket):\s*(.*?)\s*$")
_VALUE = re.compile(r"^\s*value:\s*([0-9]{3})\s*$", re.M)
NOT_SET = "[not set]"
MARK = "sipwave-checksync-mark-"


def new_call_id() -> str:
    return CALL_ID_PREFIX + secrets.token_hex(16)


def valid_identity(identity: str) -> bool:
    return bool(IDENTITY.fullmatch(identity))


def parse_contacts(output: str) -> list[dict]:
    """Contacts (address, received, socket) from kamcmd's ``ul.lookup`` output."""
    contacts: list[dict] = []
    for text in output.splitlines():
        found = _FIELD.match(text)
        if not found:
            continue
        name, value = found.groups()
        if name == "Address":
            contacts.append({"address": value, "received": None, "socket": None})
        elif contacts and value and value != NOT_SET:
            contacts[-1][name.lower()] = value
    return contacts


def lookup_answer(output: str) -> list[dict] | None:
    """The contacts of one ``ul.lookup`` answer; none when the identity is not registered,
    None when the lookup failed."""
    answer = output.strip()
    if answer.startswith("error:"):
        return [] if "AOR not found" in answer else None
    return parse_contacts(output)


def answered_status(output: str) -> int | None:
    """The status an ``htable.get checksync <Call-ID>`` answer holds; None when not there."""
    found = _VALUE.search(output)
    return int(found.group(1)) if found else None


def notify_headers(from_uri: str, identity: str, event: str, call_id: str) -> str:
    return (
        f"From: <{from_uri}>;tag={secrets.token_hex(6)}\r\n"
        f"To: <sip:{identity}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"Event: {event}\r\n"
        "Subscription-State: terminated\r\n"
        "Max-Forwards: 70\r\n"
    )


def batch_script(commands: Sequence[str]) -> str:
    """kamcmd's standard input for ``commands`` (one RPC a line, arguments without line
    breaks): an echoed mark before the first answer (after kamcmd's banner) and after each
    answer splits them apart."""
    lines = [f"core.echo {MARK}start"]
    for position, command in enumerate(commands):
        lines.append(command)
        lines.append(f"core.echo {MARK}{position}")
    return "\n".join(lines) + "\n"


def split_batch(output: str, count: int) -> list[str]:
    """The answer to each of ``count`` commands of a batch_script run, in order; a command
    whose mark never came back (kamcmd stopped) gets an error answer."""
    answers: list[str] = []
    current: list[str] | None = None  # None: still in the banner
    for line in output.splitlines():
        if line == f"{MARK}start":
            current = []
        elif current is None or line.startswith("kamcmd> "):
            continue
        elif line == f"{MARK}{len(answers)}":
            answers.append("\n".join(current))
            current = []
        else:
            current.append(line)
    missing = count - len(answers)
    return answers[:count] + ["error: no answer from the control socket"] * max(0, missing)


@dataclass
class Notified:
    """One NOTIFY: the contact it went to and what became of it."""

    contact: str
    event: str
    call_id: str = ""
    outcome: str = UNSENT
    status: str = ""

    def as_dict(self) -> dict:
        return {
            "contact": self.contact,
            "event": self.event,
            "outcome": self.outcome,
            "status": self.status,
        }


@dataclass
class DeviceReport:
    mac: str
    vendor: str = ""
    contacts: list[Notified] = field(default_factory=list)
    lookup_failed: bool = False

    @property
    def outcome(self) -> str:
        outcomes = {notified.outcome for notified in self.contacts}
        if ANSWERED in outcomes:
            return ANSWERED
        if self.lookup_failed or ERROR in outcomes:
            return ERROR
        if not self.contacts:
            return NO_CONTACT
        if UNSENT in outcomes:
            return UNSENT
        return TIMED_OUT

    @property
    def settled(self) -> bool:
        """The re-sync is done with: every contact answered or had its time, or there is
        none. An error (or check mode) leaves the phone owed for the next run."""
        return self.outcome in (ANSWERED, TIMED_OUT, NO_CONTACT)

    def as_dict(self) -> dict:
        return {
            "mac": self.mac,
            "outcome": self.outcome,
            "settled": self.settled,
            "contacts": [notified.as_dict() for notified in self.contacts],
        }


def counts(devices: Iterable[DeviceReport]) -> dict:
    """Devices per outcome, and NOTIFYs: sent, answered with 2xx (notified), answered with
    another final status (refused), timed out, not started (failed)."""
    devices = list(devices)
    contacts = [notified for device in devices for notified in device.contacts]
    result = {"devices": len(devices), "contacts": len(contacts)}
    result.update({outcome: 0 for outcome in DEVICE_OUTCOMES})
    for device in devices:
        result[device.outcome] += 1
    answered = [n for n in contacts if n.outcome == ANSWERED]
    result["notified"] = sum(1 for n in answered if n.status.startswith("2"))
    result["refused"] = len(answered) - result["notified"]
    result["timed_out_contacts"] = sum(1 for n in contacts if n.outcome == TIMED_OUT)
    result["failed"] = sum(1 for n in contacts if n.outcome == ERROR) + sum(
        1 for d in devices if d.lookup_failed
    )
    result["unregistered"] = result[NO_CONTACT]
    return result
