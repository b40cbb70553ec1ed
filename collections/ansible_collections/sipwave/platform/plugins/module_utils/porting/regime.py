# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layout of a migration code, read from a regime file, and what follows from it: checking
a code a customer gives (the error names the field that is wrong), and making the code of a
customer who leaves.

A regime is data, for example (the shipped Italian layout, playbooks/files/porting_regimes):

    name: it
    fields:
      - {name: operator, length: 3, chars: A-Z0-9}        # the donor operator
      - {name: resource, length: [8, 12], chars: A-Z0-9}  # the access resource (its number)
      - {name: service, length: 3, chars: 0-9}            # the service
      - {name: check, length: 1, chars: A-Z0-9}           # check character
    check: {field: check, algorithm: none}
    operator_field: operator
    resource_field: resource
    service_field: service

At most one field has a variable length; the others are read from both ends of the code.
Codes are read in upper case, with spaces, dashes and dots between the parts ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ALPHABET36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Check-character algorithms: "none" accepts any character of the field's class; the
# "sipwave-mod36" character is the weighted sum (position 1, 2, ...) of the values (0-9, A-Z =
# 10-35) of every character before it, modulo 36. Codes sipwave issues always carry it.
CHECK_ALGORITHMS = ("none", "sipwave-mod36")
_CLASS = re.compile(r"(?:[A-Z]-[A-Z]|[0-9]-[0-9]|[A-Z0-9])+")
_IGNORED = re.compile(r"[\s.\-]+")
MAX_CODE = 64


class RegimeError(ValueError):
    """A regime file that cannot be used; the message names the entry."""


class CodeError(ValueError):
    """A migration code that does not fit its regime; the message names the field."""


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    chars: str
    pattern: re.Pattern

    def describe(self) -> str:
        size = str(self.low) if self.low == self.high else f"{self.low} to {self.high}"
        return f"{self.name} ({size} of {self.chars})"


@dataclass(frozen=True)
class Regime:
    name: str
    fields: tuple[Field, ...]
    check_field: str | None
    algorithm: str
    operator_field: str
    resource_field: str
    service_field: str | None

    @property
    def shortest(self) -> int:
        return sum(f.low for f in self.fields)

    @property
    def longest(self) -> int:
        return sum(f.high for f in self.fields)

    def layout(self) -> str:
        return ", ".join(f.describe() for f in self.fields)

    def parse(self, code: Any) -> dict[str, str]:
        """The fields of ``code``, checked; CodeError names what is wrong."""
        text = _IGNORED.sub("", str(code if code is not None else "")).upper()
        if not text:
            raise CodeError("migration code: empty")
        if len(text) > MAX_CODE or not text.isascii() or not text.isalnum():
            raise CodeError(
                "migration code: only letters and digits (spaces, dots and dashes between "
                f"parts are ignored), at most {MAX_CODE}"
            )
        if not self.shortest <= len(text) <= self.longest:
            raise CodeError(
                f"migration code: {len(text)} characters; the {self.name} layout has "
                f"{self.shortest} to {self.longest}: {self.layout()}"
            )
        parts: dict[str, str] = {}
        variable = next((i for i, f in enumerate(self.fields) if f.low != f.high), None)
        head = self.fields if variable is None else self.fields[:variable]
        tail = () if variable is None else self.fields[variable + 1 :]
        start = 0
        for field in head:
            parts[field.name] = text[start : start + field.low]
            start += field.low
        end = len(text)
        for field in reversed(tail):
            parts[field.name] = text[end - field.low : end]
            end -= field.low
        if variable is not None:
            parts[self.fields[variable].name] = text[start:end]
        for field in self.fields:
            value = parts[field.name]
            if not (field.low <= len(value) <= field.high and field.pattern.fullmatch(value)):
                raise CodeError(
                    f"migration code: field {field.name} is {value!r}; it takes "
                    f"{field.describe().split(' (', 1)[1][:-1]}"
                )
        if self.algorithm == "sipwave-mod36" and self.check_field:
            wanted = check_character(self.body(parts))
            if parts[self.check_field] != wanted:
                raise CodeError(
                    f"migration code: field {self.check_field} does not match the rest of the "
                    "code (a character was mistyped)"
                )
        return parts

    def normalised(self, code: Any) -> str:
        parts = self.parse(code)
        return "".join(parts[f.name] for f in self.fields)

    def body(self, parts: dict[str, str]) -> str:
        """The code's characters before its check field."""
        return "".join(parts[f.name] for f in self.fields if f.name != self.check_field)

    def issue(self, operator: str, resource: str, service: str) -> str:
        """The code of a customer who leaves; RegimeError when a part does not fit."""
        parts = {self.operator_field: operator.upper(), self.resource_field: resource.upper()}
        if self.service_field:
            parts[self.service_field] = service.upper()
        if self.check_field:
            parts[self.check_field] = "0"
        for field in self.fields:
            if field.name not in parts:
                raise RegimeError(f"regime {self.name}: no value for field {field.name}")
        if self.check_field:
            parts[self.check_field] = check_character(self.body(parts))
        code = "".join(parts[f.name] for f in self.fields)
        try:
            self.parse(code)
        except CodeError as exc:
            raise RegimeError(f"regime {self.name}: cannot issue a code: {exc}") from None
        return code


def check_character(body: str) -> str:
    total = sum((i + 1) * ALPHABET36.index(c) for i, c in enumerate(body))
    return ALPHABET36[total % 36]


def _length(entry: dict, where: str) -> tuple[int, int]:
    length = entry.get("length")
    if isinstance(length, int) and not isinstance(length, bool):
        low = high = length
    elif (
        isinstance(length, list)
        and len(length) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in length)
    ):
        low, high = length
    else:
        raise RegimeError(f"{where}: length must be a number or [shortest, longest]")
    if not 1 <= low <= high <= MAX_CODE:
        raise RegimeError(f"{where}: length {length} must be 1 to {MAX_CODE}, shortest first")
    return low, high


def load(data: Any, source: str = "regime") -> Regime:
    """A Regime from the parsed regime file; RegimeError names the file and entry."""
    if not isinstance(data, dict):
        raise RegimeError(f"{source}: not a mapping")
    name = str(data.get("name") or "")
    if not re.fullmatch(r"[a-z0-9_-]{1,32}", name):
        raise RegimeError(f"{source}: name must be 1 to 32 of a-z, 0-9, _ and -")
    entries = data.get("fields")
    if not isinstance(entries, list) or not entries:
        raise RegimeError(f"{source}: fields must be a non-empty list")
    fields = []
    for index, entry in enumerate(entries):
        where = f"{source}: fields[{index}]"
        if not isinstance(entry, dict):
            raise RegimeError(f"{where}: not a mapping")
        field_name = str(entry.get("name") or "")
        if not re.fullmatch(r"[a-z_]{1,32}", field_name):
            raise RegimeError(f"{where}: name must be 1 to 32 of a-z and _")
        if any(f.name == field_name for f in fields):
            raise RegimeError(f"{where}: field {field_name} is named twice")
        chars = str(entry.get("chars") or "")
        if not _CLASS.fullmatch(chars):
            raise RegimeError(f"{where}: chars must be ranges like A-Z0-9 (upper case, digits)")
        low, high = _length(entry, where)
        pattern = re.compile(f"[{chars}]{{{low},{high}}}")
        fields.append(Field(field_name, low, high, chars, pattern))
    if sum(1 for f in fields if f.low != f.high) > 1:
        raise RegimeError(f"{source}: at most one field may have a variable length")
    names = {f.name for f in fields}
    check = data.get("check") or {}
    if not isinstance(check, dict):
        raise RegimeError(f"{source}: check must be a mapping")
    algorithm = str(check.get("algorithm", "none"))
    if algorithm not in CHECK_ALGORITHMS:
        raise RegimeError(f"{source}: check.algorithm must be one of {', '.join(CHECK_ALGORITHMS)}")
    check_field = check.get("field")
    if check_field is not None and check_field not in names:
        raise RegimeError(f"{source}: check.field {check_field!r} is not a field")
    if check_field is not None:
        field = next(f for f in fields if f.name == check_field)
        if field.low != 1 or field.high != 1 or not field.pattern.fullmatch("0"):
            raise RegimeError(f"{source}: check field {check_field} must be 1 of a class with 0-9")
    roles = {}
    for role in ("operator_field", "resource_field", "service_field"):
        value = data.get(role)
        if value is None and role == "service_field":
            roles[role] = None
            continue
        if value not in names:
            raise RegimeError(f"{source}: {role} {value!r} is not a field")
        roles[role] = value
    return Regime(name, tuple(fields), check_field, algorithm, **roles)
