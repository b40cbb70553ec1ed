# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record files two operators exchange during a port (docs/porting.md has the format).

Each file is UTF-8 CSV with one header row and one record per row; every row names both
operators, so a file put in the wrong place is refused, not half applied. The gaining
operator writes request files (phase 2, "preventive communication"), the losing operator
answers with answer files. A reader refuses a whole file that has one bad row (the error names
the file, the line and the field): a half-read answer file would be applied twice.

A request is sent again with a new secret code after a rejection for its secret code: each
sending is an attempt (1, 2, ...), and an answer names the attempt it answers, so that an
answer to an earlier attempt is never taken for the answer to the current one.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Iterable

from ansible_collections.sipwave.platform.plugins.module_utils import control_chars
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import E164_FORM
from ansible_collections.sipwave.platform.plugins.module_utils.porting.secret import (
    SecretError,
    check_proof,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.states import (
    DONOR_REASONS,
)

REQUEST_COLUMNS = ("record", "ref", "attempt", "recipient", "donor", "migration_code",
                   "secret_proof", "numbers", "requested_date")  # fmt: skip
ANSWER_COLUMNS = ("record", "ref", "attempt", "recipient", "donor", "migration_code", "answer",
                  "reason", "date")  # fmt: skip
ATTEMPT_PATTERN = re.compile(r"[1-9][0-9]{0,2}")
REQUEST_RECORDS = ("request", "cancel")
ANSWERS = ("accepted", "rejected")
NUMBER_SEPARATOR = ";"
MAX_RECORDS = 100_000
REF_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
OPERATOR_PATTERN = re.compile(r"[A-Z0-9]{1,16}")
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
CODE_PATTERN = re.compile(r"[A-Z0-9]{1,64}")


FILE_KINDS = ("requests", "answers")


class ExchangeError(ValueError):
    """A record file that cannot be used; the message names file, line and field."""


def file_name(sender: str, receiver: str, run_id: str, kind: str) -> str:
    """``<sender>-<receiver>-<run_id>.<kind>.csv``: who wrote it for whom, and which run."""
    safe_run = re.sub(r"[^A-Za-z0-9_]", "_", run_id)[:64]
    return f"{sender}-{receiver}-{safe_run}.{kind}.csv"


def check_sender(name: str, records: list[dict], sender: str, receiver: str) -> None:
    """A file is named ``<sender>-<receiver>-...``: every record of it must name the same two
    operators, or it was put where it does not belong (or forged in another's name)."""
    parts = name.split("-")
    for record in records:
        if len(parts) < 3 or (record[sender], record[receiver]) != (parts[0], parts[1]):
            raise ExchangeError(
                f"{name}:{record['line']}: {sender} {record[sender]}, {receiver} "
                f"{record[receiver]}: not what the file's name says"
            )


def by_counterpart(rows: Iterable[dict], column: str) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row[column], []).append(row)
    return grouped


def _render(columns: tuple[str, ...], rows: Iterable[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    return out.getvalue()


def render_requests(rows: Iterable[dict]) -> str:
    """Request records: ``numbers`` is a list, the rest text."""
    return _render(
        REQUEST_COLUMNS,
        ({**r, "numbers": NUMBER_SEPARATOR.join(r.get("numbers", ()))} for r in rows),
    )


def render_answers(rows: Iterable[dict]) -> str:
    return _render(ANSWER_COLUMNS, rows)


def _rows(name: str, text: str, columns: tuple[str, ...]) -> Iterable[tuple[int, dict]]:
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ExchangeError(f"{name}:1: {exc}") from None
    if header is None:
        raise ExchangeError(f"{name}: empty, not even a header row")
    names = [h.strip().lower() for h in header]
    if sorted(names) != sorted(columns):
        raise ExchangeError(f"{name}:1: the header must name {', '.join(columns)} once each")
    count = 0
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            count += 1
            if count > MAX_RECORDS:
                raise ExchangeError(f"{name}:{line}: more than {MAX_RECORDS} records")
            if len(values) != len(names):
                raise ExchangeError(
                    f"{name}:{line}: {len(values)} fields, the header has {len(names)}"
                )
            row = {n: v.strip() for n, v in zip(names, values, strict=True)}
            for column, value in row.items():
                bad = control_chars.first(value)
                if bad is not None:
                    raise ExchangeError(f"{name}:{line}: {column}: control character {bad}")
            yield line, row
    except csv.Error as exc:
        raise ExchangeError(f"{name}:{reader.line_num}: {exc}") from None


def _need(name: str, line: int, row: dict, column: str, pattern: re.Pattern) -> str:
    value = row[column]
    if not pattern.fullmatch(value):
        raise ExchangeError(
            f"{name}:{line}: {column} {control_chars.printable(value)[:80]!r} is not valid"
        )
    return value


def _common(name: str, line: int, row: dict) -> dict:
    return {
        "line": line,
        "ref": _need(name, line, row, "ref", REF_PATTERN),
        "attempt": int(_need(name, line, row, "attempt", ATTEMPT_PATTERN)),
        "recipient": _need(name, line, row, "recipient", OPERATOR_PATTERN),
        "donor": _need(name, line, row, "donor", OPERATOR_PATTERN),
        "migration_code": _need(name, line, row, "migration_code", CODE_PATTERN),
    }


def _plausible(text: str) -> bool:
    """A real calendar date within ten years of today."""
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return abs((day - datetime.date.today()).days) <= 3653


def parse_requests(name: str, text: str) -> list[dict]:
    """The request records of one file (the donor reads them)."""
    records = []
    seen = set()
    for line, row in _rows(name, text, REQUEST_COLUMNS):
        record = _common(name, line, row)
        kind = row["record"]
        if kind not in REQUEST_RECORDS:
            raise ExchangeError(
                f"{name}:{line}: record must be one of {', '.join(REQUEST_RECORDS)}"
            )
        record["record"] = kind
        if kind == "request":
            try:
                record["secret_proof"] = check_proof(row["secret_proof"])
            except SecretError as exc:
                raise ExchangeError(f"{name}:{line}: {exc}") from None
            numbers = [n.strip() for n in row["numbers"].split(NUMBER_SEPARATOR) if n.strip()]
            if not numbers or not all(E164_FORM.fullmatch(n) for n in numbers):
                raise ExchangeError(f"{name}:{line}: numbers must be E.164 numbers separated by ;")
            record["numbers"] = numbers
            record["requested_date"] = _need(name, line, row, "requested_date", DATE_PATTERN)
            if not _plausible(record["requested_date"]):
                raise ExchangeError(f"{name}:{line}: requested_date is no date within ten years")
        key = (record["recipient"], record["ref"], kind)
        if key in seen:
            raise ExchangeError(f"{name}:{line}: {kind} {record['ref']} appears twice")
        seen.add(key)
        records.append(record)
    return records


def parse_answers(name: str, text: str) -> list[dict]:
    """The answer records of one file (the recipient reads them)."""
    records = []
    seen = set()
    for line, row in _rows(name, text, ANSWER_COLUMNS):
        record = _common(name, line, row)
        if row["record"] != "answer":
            raise ExchangeError(f"{name}:{line}: record must be answer")
        answer = row["answer"]
        if answer not in ANSWERS:
            raise ExchangeError(f"{name}:{line}: answer must be accepted or rejected")
        reason = row["reason"]
        if answer == "rejected" and reason not in DONOR_REASONS:
            raise ExchangeError(f"{name}:{line}: reason must be one of {', '.join(DONOR_REASONS)}")
        if answer == "accepted" and reason:
            raise ExchangeError(f"{name}:{line}: an accepted request has no reason")
        record.update(answer=answer, reason=reason)
        record["date"] = _need(name, line, row, "date", DATE_PATTERN)
        if not _plausible(record["date"]):
            raise ExchangeError(f"{name}:{line}: date {record['date']} is no date within ten years")
        if record["ref"] in seen:
            raise ExchangeError(f"{name}:{line}: answer {record['ref']} appears twice")
        seen.add(record["ref"])
        records.append(record)
    return records


# A batch of customers' requests (phase 1) as customer care collects them: one per row.
CUSTOMER_COLUMNS = ("ref", "login", "migration_code", "secret_code", "numbers", "requested_date")


def parse_customer_requests(name: str, text: str) -> list[dict]:
    """Rows of a customer request file for port_request's submit; each value is checked
    there, with the row named (``requests[<row>]``). Numbers are E.164, ``;``-separated."""
    requests = []
    for _line, row in _rows(name, text, CUSTOMER_COLUMNS):
        numbers = [n.strip() for n in row["numbers"].split(NUMBER_SEPARATOR) if n.strip()]
        requests.append({**row, "numbers": numbers})
    return requests
