# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The legacy export's columns and the rules for each field of a row (docs/export-format.md):
one row's values checked on their own, every problem collected as (reason, message) without
a password, an HA1 or the row's text, and a good row turned into an Account.

The optional parts of a row (each dial-in number, each device) are dropped on their own: a
row whose only problems are there still migrates without them, and the Account lists each
dropped part (``dropped``) for customer care. A problem anywhere else rejects the row."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from ansible_collections.sipwave.platform.plugins.module_utils import control_chars
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    NumberError,
    NumberPlan,
    normalise,
)

COLUMNS = (
    "login",
    "password",
    "ha1",
    "domain",
    "display_name",
    "email",
    "numbers",
    "dialin_numbers",
    "department",
    "balance",
    "devices",
    "wave",
)
OPTIONAL_COLUMNS = frozenset({"wave"})
# Vendor names as written in exports, to the name the provisioning templates use.
VENDORS = {
    "yealink": "yealink",
    "polycom": "polycom",
    "poly": "polycom",
    "grandstream": "grandstream",
    "snom": "snom",
    "cisco": "cisco",
    "fanvil": "fanvil",
    "gigaset": "gigaset",
}
MAX_LOGIN_LENGTH = 64
LIST_SEPARATOR = ";"
LOGIN_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
_DOMAIN = re.compile(r"(?=.{1,64}$)[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
_HA1 = re.compile(r"[0-9a-fA-F]{32}")
_MAC_SEPARATORS = str.maketrans("", "", ":-.")
_MAC = re.compile(r"[0-9a-f]{12}")
_PLAIN_AMOUNT = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,2}))?")


# Named tuples, not dataclasses: an export of 100,000 accounts is pickled for the playbook
# run's other readers (plugin_utils/controller.py), and tuples pickle in a third of the time.
class Device(NamedTuple):
    vendor: str
    model: str
    mac: str


class Dropped(NamedTuple):
    """An optional part of a row left out: its column, the item as written, the reason key
    and the message (never a secret: only dial-in numbers and devices are dropped)."""

    column: str
    item: str
    reason: str
    message: str


# The columns whose items are optional: a bad item is dropped, the row migrates.
OPTIONAL_PARTS = ("dialin_numbers", "devices")


class Account(NamedTuple):
    """One good row. The credentials are left out of repr() so that no trace shows them."""

    line: int
    login: str
    domain: str
    password: str
    ha1: str
    display_name: str
    email: str
    numbers: tuple[str, ...]
    dialin_numbers: tuple[str, ...]
    department: str
    balance: str
    devices: tuple[Device, ...]
    wave: str
    dropped: tuple[Dropped, ...] = ()

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self._fields, self, strict=True)
            if name not in SECRET_FIELDS
        )
        return f"Account({shown})"


SECRET_FIELDS = frozenset({"password", "ha1"})


def _split(value: str) -> list[str]:
    if not value:
        return []
    items = [item.strip() for item in value.split(LIST_SEPARATOR)]
    return [item for item in items if item]


class RowChecker:
    """Validates one row's fields; collects (reason, message) problems without secrets."""

    def __init__(self, plan: NumberPlan) -> None:
        self.plan = plan
        self.problems: list[tuple[str, str]] = []
        self.dropped: list[Dropped] = []

    def problem(self, reason: str, message: str) -> None:
        self.problems.append((reason, message))

    def bad_item(self, column: str, item: str, reason: str, message: str) -> None:
        """A bad item of a list column: dropped when the column is optional, else a problem
        of the row."""
        if column in OPTIONAL_PARTS:
            self.dropped.append(Dropped(column, item, reason, message))
        else:
            self.problem(reason, message)

    def login(self, login: str) -> None:
        if not login:
            self.problem("login", "login is empty")
        elif len(login) > MAX_LOGIN_LENGTH or not LOGIN_PATTERN.fullmatch(login):
            self.problem(
                "login",
                f"login {login!r} must be 1 to {MAX_LOGIN_LENGTH} letters, digits, '.', '_' or '-'",
            )

    def domain(self, domain: str) -> None:
        if not _DOMAIN.fullmatch(domain):
            self.problem("domain", f"domain {domain!r} is not a SIP domain name")

    def credentials(self, login: str, domain: str, password: str, ha1: str) -> str:
        if not password and not ha1:
            self.problem("credentials", "neither password nor ha1 is given")
            return ""
        if not ha1:
            return ""
        if not _HA1.fullmatch(ha1):
            self.problem("ha1", "ha1 is not 32 hexadecimal digits")
            return ""
        ha1 = ha1.lower()
        if password and domain:
            expected = hashlib.md5(
                f"{login}:{domain}:{password}".encode(), usedforsecurity=False
            ).hexdigest()
            if expected != ha1:
                self.problem("ha1", "ha1 does not match MD5(login:domain:password)")
        return ha1

    def numbers(self, column: str, value: str) -> tuple[str, ...]:
        found = []
        for written in _split(value):
            try:
                number = normalise(written, self.plan)
            except NumberError as exc:
                self.bad_item(column, written, "number", f"{column}: {exc}")
                continue
            if number not in found:
                found.append(number)
        return tuple(found)

    def balance(self, value: str) -> str:
        if not value:
            return "0.00"
        plain = _PLAIN_AMOUNT.fullmatch(value)
        if plain:  # the usual case, without Decimal's cost
            units, cents = plain.groups()
            return f"{int(units)}.{(cents or '').ljust(2, '0')}"
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            self.problem("balance", f"balance {value!r} is not a decimal number")
            return ""
        if not amount.is_finite() or amount < 0:
            self.problem("balance", f"balance {value!r} must be zero or more")
            return ""
        if amount != amount.quantize(Decimal("0.01")):
            self.problem("balance", f"balance {value!r} has more than 2 decimal places")
            return ""
        return str(amount.quantize(Decimal("0.01")))

    def no_control_characters(self, values: dict[str, str]) -> None:
        """Every field is free of control characters: a line break in a department, a name
        or a device model would start a new AGI command, phone-config key or mail header.
        The message names the column and the character, never the value (a password)."""
        if control_chars.first("".join(values.values())) is None:
            return  # the usual row: one scan instead of one per column
        for column in COLUMNS:
            control = control_chars.first(values.get(column) or "")
            if control is not None:
                self.problem("control", f"{column} holds a control character ({control})")

    def devices(self, value: str) -> tuple[Device, ...]:
        found = []
        for written in _split(value):
            device = self._device(written)
            if device is not None:
                found.append(device)
        return tuple(found)

    def _device(self, written: str) -> Device | None:
        device, reason, message = parse_device(written)
        if device is None:
            self.bad_item("devices", written, reason, message)
        return device


def parse_device(written: str) -> tuple[Device | None, str, str]:
    """A device written vendor:model:mac as a Device (vendor as the templates name it, MAC in
    lower case without separators), or None with the problem's reason and message."""
    parts = [part.strip() for part in written.split(":", 2)]
    if len(parts) != 3 or not all(parts):
        return None, "device", f"device {written!r} is not vendor:model:mac"
    vendor, model, mac = parts
    known = VENDORS.get(vendor.lower())
    if known is None:
        return None, "vendor", f"unknown vendor {vendor!r} (known: {', '.join(sorted(VENDORS))})"
    compact = mac.lower().translate(_MAC_SEPARATORS)
    if not _MAC.fullmatch(compact):
        return None, "mac", f"malformed MAC {mac!r} (12 hexadecimal digits expected)"
    return Device(known, model, compact), "", ""


def account_from_row(
    line: int, values: dict[str, str], plan: NumberPlan, reject, *, checked_text: bool = False
) -> Account | None:
    """The row as an Account, or None after ``reject(line, login, wave, problems)``. A row
    rejected for a problem of its own also lists the optional parts it would have dropped.
    ``checked_text``: the caller found no control character in the row's whole text."""
    check = RowChecker(plan)
    if not checked_text:
        check.no_control_characters(values)
    login, domain = values["login"], values["domain"].lower()
    check.login(login)
    check.domain(domain)
    ha1 = check.credentials(login, domain, values["password"], values["ha1"])
    numbers = check.numbers("numbers", values["numbers"])
    dialin = check.numbers("dialin_numbers", values["dialin_numbers"])
    balance = check.balance(values["balance"])
    devices = check.devices(values["devices"])
    wave = values.get("wave", "")
    if check.problems:
        reject(
            line, login or None, wave or None,
            check.problems + [(d.reason, d.message) for d in check.dropped],
        )  # fmt: skip
        return None
    return Account(
        line=line,
        login=login,
        domain=domain,
        password=values["password"],
        ha1=ha1,
        display_name=values["display_name"],
        email=values["email"],
        numbers=numbers,
        dialin_numbers=dialin,
        department=values["department"],
        balance=balance,
        devices=devices,
        wave=wave,
        dropped=tuple(check.dropped),
    )
