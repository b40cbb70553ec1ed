# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The legacy platform's account export (CSV, contract in docs/contracts.md), read and validated.

The file is read one physical line at a time and each line is decoded on its own, so a
broken UTF-8 sequence is reported on the line where it is, also inside a quoted field that
spans lines. Every bad row is reported as ``file:line: reason`` and left out; the good rows
are kept. No message ever quotes a password, an HA1 or a row's raw text.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

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
_LOGIN = re.compile(r"[A-Za-z0-9._-]+")
_DOMAIN = re.compile(r"(?=.{1,64}$)[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
_HA1 = re.compile(r"[0-9a-fA-F]{32}")
_MAC_SEPARATORS = str.maketrans("", "", ":-.")
_MAC = re.compile(r"[0-9a-f]{12}")
_QUOTE = ord('"')
_PLAIN_AMOUNT = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,2}))?")


class ExportError(Exception):
    """The export cannot be read at all (missing file, unusable header)."""


@dataclass(frozen=True)
class Device:
    vendor: str
    model: str
    mac: str


@dataclass(frozen=True)
class Account:
    """One good row. The credentials are left out of repr() so that no trace shows them."""

    line: int
    login: str
    domain: str
    password: str = field(repr=False)
    ha1: str = field(repr=False)
    display_name: str
    email: str
    numbers: tuple[str, ...]
    dialin_numbers: tuple[str, ...]
    department: str
    balance: str
    devices: tuple[Device, ...]
    wave: str


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    reason: str  # a short key for the summary, e.g. "number"
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class BadRow:
    """What is known of a rejected row: its line and, when readable, its login and wave."""

    line: int
    login: str | None
    wave: str | None
    problems: list[Problem]


@dataclass
class Export:
    path: str
    accounts: dict[str, Account]
    bad_rows: list[BadRow]
    rows: int

    @property
    def problems(self) -> list[Problem]:
        return sorted(
            (p for row in self.bad_rows for p in row.problems), key=lambda p: (p.line, p.reason)
        )

    def bad_rows_of(self, login: str) -> list[BadRow]:
        return [row for row in self.bad_rows if row.login == login]

    def summary(self) -> dict:
        """Counts of good and bad rows, and of bad rows per reason (a row may have several)."""
        reasons: Counter[str] = Counter()
        for row in self.bad_rows:
            reasons.update({p.reason for p in row.problems})
        return {
            "file": self.path,
            "rows": self.rows,
            "good": len(self.accounts),
            "bad": len(self.bad_rows),
            "bad_per_reason": dict(sorted(reasons.items())),
        }


@dataclass
class _Record:
    """One CSV record: its first physical line, its decoded lines, the decoding failures."""

    line: int
    text_lines: list[str]
    undecodable: list[tuple[int, str]]
    unterminated: bool = False


def _records(handle) -> Iterator[_Record]:
    """CSV records from a binary file, each physical line decoded on its own.

    A record continues onto the next physical line while a quoted field is open. The quote
    character is one byte that never occurs inside a multi-byte UTF-8 sequence, so counting
    it in the raw bytes is right even on a line that does not decode.
    """
    record: _Record | None = None
    open_quotes = False
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if record is None:
            record = _Record(number, [], [])
        try:
            record.text_lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            record.undecodable.append((number, f"broken UTF-8 at byte {exc.start + 1}"))
            record.text_lines.append(raw.decode("utf-8", errors="replace"))
        if raw.count(_QUOTE) % 2:
            open_quotes = not open_quotes
        if not open_quotes:
            yield record
            record = None
    if record is not None:
        record.unterminated = True
        yield record


def _split(value: str) -> list[str]:
    if not value:
        return []
    items = [item.strip() for item in value.split(LIST_SEPARATOR)]
    return [item for item in items if item]


class _RowChecker:
    """Validates one row's fields; collects (reason, message) problems without secrets."""

    def __init__(self, plan: NumberPlan) -> None:
        self.plan = plan
        self.problems: list[tuple[str, str]] = []

    def problem(self, reason: str, message: str) -> None:
        self.problems.append((reason, message))

    def login(self, login: str) -> None:
        if not login:
            self.problem("login", "login is empty")
        elif len(login) > MAX_LOGIN_LENGTH or not _LOGIN.fullmatch(login):
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
                self.problem("number", f"{column}: {exc}")
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
        for column in COLUMNS:
            control = control_chars.first(values.get(column) or "")
            if control is not None:
                self.problem("control", f"{column} holds a control character ({control})")

    def devices(self, value: str) -> tuple[Device, ...]:
        found = []
        for written in _split(value):
            parts = [part.strip() for part in written.split(":", 2)]
            if len(parts) != 3 or not all(parts):
                self.problem("device", f"device {written!r} is not vendor:model:mac")
                continue
            vendor, model, mac = parts
            known = VENDORS.get(vendor.lower())
            if known is None:
                self.problem(
                    "vendor",
                    f"unknown vendor {vendor!r} (known: {', '.join(sorted(VENDORS))})",
                )
            compact = mac.lower().translate(_MAC_SEPARATORS)
            if not _MAC.fullmatch(compact):
                self.problem("mac", f"malformed MAC {mac!r} (12 hexadecimal digits expected)")
            if known and _MAC.fullmatch(compact):
                found.append(Device(known, model, compact))
        return tuple(found)


def _header(path: str, record: _Record | None) -> list[str]:
    if record is None:
        raise ExportError(f"{path}: the file is empty (a header row is expected)")
    if record.undecodable:
        raise ExportError(f"{path}:{record.line}: header: {record.undecodable[0][1]}")
    header = [name.strip().lower() for name in next(csv.reader(record.text_lines), [])]
    missing = [name for name in COLUMNS if name not in header and name not in OPTIONAL_COLUMNS]
    unknown = [name for name in header if name not in COLUMNS]
    repeated = sorted({name for name in header if header.count(name) > 1})
    for what, names in (("lacks", missing), ("has unknown", unknown), ("repeats", repeated)):
        if names:
            raise ExportError(
                f"{path}:{record.line}: header {what} column(s) {', '.join(names)}; "
                f"expected {','.join(COLUMNS)}"
            )
    return header


def read_export(path: str, plan: NumberPlan) -> Export:
    """Read and validate the export at ``path``; ExportError if it is unreadable as a whole."""
    accounts: dict[str, Account] = {}
    bad_rows: list[BadRow] = []
    first_line_of: dict[str, int] = {}
    bad_by_line: dict[int, BadRow] = {}
    owner_of_number: dict[str, Account] = {}
    rows = 0

    def reject(line: int, login: str | None, wave: str | None, problems) -> None:
        row = bad_by_line.get(line)
        if row is None:
            row = bad_by_line[line] = BadRow(line, login, wave, [])
            bad_rows.append(row)
        row.problems.extend(Problem(path, line, reason, message) for reason, message in problems)

    try:
        handle = open(path, "rb")  # noqa: SIM115  # closed below; records stream from it
    except OSError as exc:
        raise ExportError(f"cannot read the export {path}: {exc.strerror}") from exc
    with handle:
        records = _records(handle)
        header = _header(path, next(records, None))
        password_column = header.index("password")
        for record in records:
            if len(record.text_lines) == 1 and not record.text_lines[0].strip():
                continue
            rows += 1
            if record.unterminated:
                reject(record.line, None, None, [("columns", "a quoted field is never closed")])
                continue
            fields = next(csv.reader(record.text_lines), [])
            # Whose row it is, when that can still be read: the wave then reports the
            # account as rejected with this reason instead of not knowing it.
            login, wave = _identify(header, fields)
            if record.undecodable:
                for line, message in record.undecodable:
                    reject(line, login, wave, [("utf8", message)])
                continue
            if len(fields) != len(header):
                reject(
                    record.line,
                    login,
                    None,
                    [("columns", f"expected {len(header)} fields, found {len(fields)}")],
                )
                continue
            # A password may begin or end with a space; every other field is trimmed.
            values = dict(zip(header, [value.strip() for value in fields], strict=True))
            values["password"] = fields[password_column]
            account = _account(record.line, values, plan, reject)
            login = values["login"]
            if login in first_line_of:
                first = first_line_of[login]
                reject(
                    record.line,
                    login,
                    values.get("wave") or None,
                    [("duplicate_login", f"login {login!r} is also on line {first}")],
                )
                earlier = accounts.pop(login, None)
                if earlier is not None:
                    for number in earlier.numbers:
                        owner_of_number.pop(number, None)
                reject(
                    first,
                    login,
                    earlier.wave or None if earlier else None,
                    [("duplicate_login", f"login {login!r} is also on line {record.line}")],
                )
                continue
            if login:
                first_line_of[login] = record.line
            if account is None:
                continue
            taken = [n for n in account.numbers if n in owner_of_number]
            if taken:
                owner = owner_of_number[taken[0]]
                reject(
                    record.line,
                    login,
                    account.wave or None,
                    [
                        (
                            "duplicate_number",
                            f"number {taken[0]} already belongs to login {owner.login!r} "
                            f"(line {owner.line})",
                        )
                    ],
                )
                continue
            for number in account.numbers:
                owner_of_number[number] = account
            accounts[login] = account
    return Export(path=path, accounts=accounts, bad_rows=bad_rows, rows=rows)


def _identify(header: list[str], fields: list[str]) -> tuple[str | None, str | None]:
    position = header.index("login")
    login = fields[position].strip() if position < len(fields) else ""
    wave = ""
    if "wave" in header and len(fields) == len(header):
        wave = fields[header.index("wave")].strip()
    return (login if _LOGIN.fullmatch(login) else None), (wave or None)


def _account(line: int, values: dict[str, str], plan: NumberPlan, reject) -> Account | None:
    check = _RowChecker(plan)
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
        reject(line, login or None, wave or None, check.problems)
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
    )


CONSENT_COLUMNS = ("login", "decision")
CONSENT_DECISIONS = ("migrate", "close")


@dataclass(frozen=True)
class ConsentDecision:
    login: str
    decision: str
    source: str


def read_consent(path: str) -> list[ConsentDecision]:
    """Decisions from a customer-panel CSV (login, decision[, source]); ExportError on any
    bad row, naming file and line, because a consent must never be guessed."""
    try:
        handle = open(path, "rb")  # noqa: SIM115  # closed below; records stream from it
    except OSError as exc:
        raise ExportError(f"cannot read the consent file {path}: {exc.strerror}") from exc
    problems: list[str] = []
    decisions: dict[str, tuple[int, ConsentDecision]] = {}
    with handle:
        records = _records(handle)
        first = next(records, None)
        if first is None or first.undecodable:
            raise ExportError(f"{path}:1: a header row login,decision[,source] is expected")
        header = [name.strip().lower() for name in next(csv.reader(first.text_lines), [])]
        if any(name not in header for name in CONSENT_COLUMNS):
            raise ExportError(f"{path}:{first.line}: header must name login and decision")
        for record in records:
            if len(record.text_lines) == 1 and not record.text_lines[0].strip():
                continue
            if record.undecodable or record.unterminated:
                message = record.undecodable[0][1] if record.undecodable else "open quote"
                problems.append(f"{path}:{record.line}: {message}")
                continue
            fields = next(csv.reader(record.text_lines), [])
            if len(fields) != len(header):
                problems.append(
                    f"{path}:{record.line}: expected {len(header)} fields, found {len(fields)}"
                )
                continue
            values = {name: value.strip() for name, value in zip(header, fields, strict=True)}
            login, decision = values["login"], values["decision"].lower()
            if not _LOGIN.fullmatch(login):
                problems.append(f"{path}:{record.line}: login {login!r} is not a login")
            elif decision not in CONSENT_DECISIONS:
                problems.append(
                    f"{path}:{record.line}: decision {values['decision']!r} is not "
                    f"{' or '.join(CONSENT_DECISIONS)}"
                )
            elif login in decisions and decisions[login][1].decision != decision:
                problems.append(
                    f"{path}:{record.line}: login {login!r} decided otherwise on line "
                    f"{decisions[login][0]}"
                )
            else:
                source = values.get("source") or f"{path}:{record.line}"
                decisions.setdefault(login, (record.line, ConsentDecision(login, decision, source)))
    if problems:
        raise ExportError("invalid consent file:\n" + "\n".join(problems))
    return [decision for _line, decision in decisions.values()]
