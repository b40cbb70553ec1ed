# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phone numbers to E.164: the one implementation used everywhere.

The migration engine reads it as a module_utils file; the KEMI router imports the same file
(roles/kamailio/files/router/sipwave_router/e164.py is a symlink to this one). It therefore
imports nothing from Ansible and only the standard library.

Accepted notations, for a configured country code such as 48:
``+48221234567``, ``0048221234567``, ``48221234567``, ``221234567`` (a national number of one
of the configured national lengths), with spaces, dashes, dots, slashes and parentheses
ignored, and a national trunk prefix (``0`` in many countries, none in Poland) when one is
configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

E164_MAX_DIGITS = 15
# A number or prefix as configuration writes it, already in E.164: "+" and at most 15
# digits, the first not 0 (how many a whole number needs is normalise()'s to check).
E164_FORM = re.compile(r"\+[1-9][0-9]{1,14}")
E164_MIN_DIGITS = 8
INTERNATIONAL_PREFIX = "00"
_SEPARATORS = str.maketrans("", "", " -./()\t")
# A number already written as E.164, the usual case: the checks below would all pass.
_PLAIN_E164 = re.compile(rf"\+[1-9][0-9]{{{E164_MIN_DIGITS - 1},{E164_MAX_DIGITS - 1}}}")


class NumberError(ValueError):
    """A number that cannot be read as E.164; the message says why."""


@dataclass(frozen=True)
class NumberPlan:
    """How national numbers of the platform's country look."""

    country_code: str
    national_lengths: frozenset[int] = frozenset({9})
    trunk_prefix: str = ""

    def __post_init__(self) -> None:
        if not self.country_code.isdigit() or not 1 <= len(self.country_code) <= 3:
            raise NumberError(f"country code {self.country_code!r} is not 1 to 3 digits")
        if self.trunk_prefix and not self.trunk_prefix.isdigit():
            raise NumberError(f"trunk prefix {self.trunk_prefix!r} is not digits")


def plan_from_dict(data: dict) -> NumberPlan:
    """A NumberPlan from settings such as ``{"country_code": "48", "national_lengths": [9]}``."""
    return NumberPlan(
        country_code=str(data["country_code"]),
        national_lengths=frozenset(int(n) for n in data.get("national_lengths", [9])),
        trunk_prefix=str(data.get("trunk_prefix", "")),
    )


def normalise(number: str, plan: NumberPlan) -> str:
    """``number`` as ``+<digits>``; NumberError (with the reason) when it cannot be read."""
    if _PLAIN_E164.fullmatch(number):
        return number
    text = number.strip().translate(_SEPARATORS)
    if not text:
        raise NumberError("empty number")
    if text.startswith("+"):
        digits = text[1:]
        _require_digits(number, digits)
    else:
        _require_digits(number, text)
        digits = _international_digits(text, plan)
    if not E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS:
        raise NumberError(
            f"{number!r} has {len(digits)} digits in E.164, "
            f"expected {E164_MIN_DIGITS} to {E164_MAX_DIGITS}"
        )
    if digits.startswith("0"):
        raise NumberError(f"{number!r}: a country code never starts with 0")
    return "+" + digits


def normalise_or_none(number: str, plan: NumberPlan) -> str | None:
    """For the router: the E.164 form, or None for anything that is not a phone number."""
    try:
        return normalise(number, plan)
    except NumberError:
        return None


def _require_digits(original: str, digits: str) -> None:
    if not digits.isdigit() or not digits.isascii():
        raise NumberError(f"{original!r} holds characters other than digits")


def _international_digits(text: str, plan: NumberPlan) -> str:
    if text.startswith(INTERNATIONAL_PREFIX):
        return text[len(INTERNATIONAL_PREFIX) :]
    if plan.trunk_prefix and text.startswith(plan.trunk_prefix):
        national = text[len(plan.trunk_prefix) :]
        if len(national) in plan.national_lengths:
            return plan.country_code + national
    if len(text) in plan.national_lengths:
        return plan.country_code + text
    if text.startswith(plan.country_code) and (
        len(text) - len(plan.country_code) in plan.national_lengths
    ):
        return text
    raise NumberError(
        f"{text!r} is neither international (+, 00, or the country code {plan.country_code} "
        f"and a national number) nor a national number of "
        f"{'/'.join(str(n) for n in sorted(plan.national_lengths))} digits"
    )
