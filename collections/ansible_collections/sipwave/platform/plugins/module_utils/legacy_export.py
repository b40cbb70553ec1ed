# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The legacy platform's account export (CSV, contract in docs/contracts.md), read and validated.

The file is read one physical line at a time and each line is decoded on its own, so a
broken UTF-8 sequence is reported on the line where it is, also inside a quoted field that
spans lines. Every bad row is reported as ``file:line: reason`` and left out; the good rows
are kept, a row whose only problems are optional parts (a dial-in number, a device) without
them (``Export.dropped_parts``). No message ever quotes a password, an HA1 or a row's raw text.
"""

from __future__ import annotations

import functools
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ansible_collections.sipwave.platform.plugins.module_utils import control_chars
from ansible_collections.sipwave.platform.plugins.module_utils.csv_records import Record, records
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    NumberPlan,
)
from ansible_collections.sipwave.platform.plugins.module_utils.export_fields import (
    COLUMNS,
    LOGIN_PATTERN,
    OPTIONAL_COLUMNS,
    Account,
    account_from_row,
)


class ExportError(Exception):
    """The export cannot be read at all (missing file, unusable header)."""


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
    """What is known of a rejected row: its line and, when readable, its login, wave and
    e-mail address (whom customer care calls)."""

    line: int
    login: str | None
    wave: str | None
    problems: list[Problem]
    email: str | None = None


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

    def dropped_parts(self, logins: Iterable[str] | None = None) -> list[Problem]:
        """The optional parts left out of rows that migrate without them (of ``logins`` only,
        when given), in line order."""
        wanted = None if logins is None else set(logins)
        return sorted(
            (
                Problem(self.path, account.line, part.reason,
                        f"{part.message}: dropped, the account migrates without it")
                for account in self.accounts.values()
                if wanted is None or account.login in wanted
                for part in account.dropped
            ),
            key=lambda p: (p.line, p.reason),
        )  # fmt: skip

    def care_actions(self, logins: Iterable[str]) -> list[dict]:
        """What customer care must take up for these logins: each account that migrates
        without an optional part (what was dropped and why), and each rejected row (not
        migrated, no mail sent: why, and whom to contact)."""
        actions = []
        for login in logins:
            account = self.accounts.get(login)
            if account is not None:
                if account.dropped:
                    actions.append({
                        "login": login, "email": account.email, "line": account.line,
                        "action": "migrated without these parts",
                        "dropped": [{"column": d.column, "item": d.item, "reason": d.reason,
                                     "why": d.message} for d in account.dropped],
                    })  # fmt: skip
                continue
            for row in self.bad_rows_of(login):
                actions.append({
                    "login": login, "email": row.email or "", "line": row.line,
                    "action": "not migrated: the row was rejected (no mail sent)",
                    "why": [p.message for p in row.problems],
                })  # fmt: skip
        return actions

    def summary(self) -> dict:
        """Counts of good and bad rows, and of bad rows per reason (a row may have several)."""
        reasons: Counter[str] = Counter()
        for row in self.bad_rows:
            reasons.update({p.reason for p in row.problems})
        dropped: Counter[str] = Counter()
        partial = 0
        for account in self.accounts.values():
            if account.dropped:
                partial += 1
                dropped.update(part.reason for part in account.dropped)
        return {
            "file": self.path,
            "rows": self.rows,
            "good": len(self.accounts),
            "bad": len(self.bad_rows),
            "bad_per_reason": dict(sorted(reasons.items())),
            "partial": partial,
            "dropped_per_reason": dict(sorted(dropped.items())),
        }


def _header(path: str, record: Record | None) -> list[str]:
    if record is None:
        raise ExportError(f"{path}: the file is empty (a header row is expected)")
    if record.undecodable:
        raise ExportError(f"{path}:{record.line}: header: {record.undecodable[0][1]}")
    header = [name.strip().lower() for name in record.fields]
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


def read_export(path: str, plan: NumberPlan, data: bytes | None = None) -> Export:
    """Read and validate the export at ``path`` (or its content ``data``, already read, named
    by ``path``); ExportError if it is unreadable as a whole."""
    accounts: dict[str, Account] = {}
    bad_rows: list[BadRow] = []
    first_line_of: dict[str, int] = {}
    bad_by_line: dict[int, BadRow] = {}
    owner_of_number: dict[str, Account] = {}
    rows = 0

    def reject(line: int, login: str | None, wave: str | None, problems, email=None) -> None:
        row = bad_by_line.get(line)
        if row is None:
            row = bad_by_line[line] = BadRow(line, login, wave, [], email)
            bad_rows.append(row)
        row.problems.extend(Problem(path, line, reason, message) for reason, message in problems)

    try:
        # closed below; records stream from it
        handle = open(path, "rb") if data is None else io.BytesIO(data)  # noqa: SIM115
    except OSError as exc:
        raise ExportError(f"cannot read the export {path}: {exc.strerror}") from exc
    with handle:
        pending = records(handle)
        header = _header(path, next(pending, None))
        password_column = header.index("password")
        login_at = header.index("login")
        wave_at = header.index("wave") if "wave" in header else None
        email_at = header.index("email")
        columns = len(header)
        for record in pending:
            if len(record.text_lines) == 1 and not record.text_lines[0].strip():
                continue
            rows += 1
            if record.unterminated:
                reject(record.line, None, None, [("columns", "a quoted field is never closed")])
                continue
            fields = record.fields
            if record.undecodable or len(fields) != columns:
                # Whose row it is, when that can still be read: the wave then reports the
                # account as rejected with this reason instead of not knowing it.
                login, wave = _identify(columns, login_at, wave_at, fields)
                if not record.undecodable:
                    message = f"expected {columns} fields, found {len(fields)}"
                    reject(record.line, login, None, [("columns", message)])
                    continue
                email = _contact(columns, email_at, fields)
                for line, message in record.undecodable:
                    reject(line, login, wave, [("utf8", message)], email)
                continue
            # A password may begin or end with a space; every other field is trimmed.
            values = dict(zip(header, [value.strip() for value in fields], strict=True))
            values["password"] = fields[password_column]
            # One scan of a one-line row's text instead of one per field (see RowChecker).
            clean = len(record.text_lines) == 1 and control_chars.first(record.text) is None
            email = values["email"] if clean or control_chars.first(values["email"]) is None else ""
            account = account_from_row(
                record.line, values, plan,
                functools.partial(reject, email=email or None), checked_text=clean,
            )  # fmt: skip
            login = values["login"]
            if login in first_line_of:
                first = first_line_of[login]
                reject(
                    record.line,
                    login,
                    values.get("wave") or None,
                    [("duplicate_login", f"login {login!r} is also on line {first}")],
                    email,
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
                    earlier.email if earlier else None,
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
                    email,
                )
                continue
            for number in account.numbers:
                owner_of_number[number] = account
            accounts[login] = account
    return Export(path=path, accounts=accounts, bad_rows=bad_rows, rows=rows)


def row_secrets(path: str, data: bytes) -> dict[int, tuple[str, str, str]]:
    """For each complete record of the export's content ``data``: its first line -> (login,
    password, ha1) as read_export keeps them in a good row's Account (the password as written,
    the HA1 trimmed and lower-cased). Lets a cached Account without its secrets get them back
    from the very bytes that were validated (plugin_utils/controller.py)."""
    pending = records(io.BytesIO(data))
    header = _header(path, next(pending, None))
    login_at, password_at, ha1_at = (header.index(c) for c in ("login", "password", "ha1"))
    columns = len(header)
    return {
        record.line: (fields[login_at].strip(), fields[password_at], fields[ha1_at].strip().lower())
        for record in pending
        if len(fields := record.fields) == columns and not record.unterminated
    }


def _contact(columns: int, email_at: int, fields: list[str]) -> str | None:
    """A rejected row's e-mail address, when its fields can be told apart and it holds no
    control character (it is shown to customer care, never written to)."""
    if len(fields) != columns:
        return None
    email = fields[email_at].strip()
    return email if email and control_chars.first(email) is None else None


def _identify(
    columns: int, login_at: int, wave_at: int | None, fields: list[str]
) -> tuple[str | None, str | None]:
    """The row's login and wave where they can be read (``columns`` in the header)."""
    login = fields[login_at].strip() if login_at < len(fields) else ""
    wave = ""
    if wave_at is not None and len(fields) == columns:
        wave = fields[wave_at].strip()
    return (login if LOGIN_PATTERN.fullmatch(login) else None), (wave or None)
