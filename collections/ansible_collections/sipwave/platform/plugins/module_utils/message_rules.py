# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who writes to a customer of a wave, and when (the notify action's rules).

Sender. Until a customer consents to the new operator (a recorded ``migrate`` decision, which
is the consent to the new operator processing their data), the customer is the legacy
operator's: every message to them comes from the legacy operator. Afterwards they come from
the new operator. So the new operator never writes to a customer who did not consent.

Schedule. A wave's notice and reminder go out in their window: from a configured number of
days before the wave date (21 for the notice, 5 for the reminder) until the day before it.
A run before the window or on or after the wave date is refused, naming the window.
The decision reminder goes to the customers who have not decided yet, in the last days of the
wave's decision window (7 by default, to its ``decide_by`` day), never after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from email.utils import formataddr
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils import control_chars

LEGACY, NEW = "legacy", "new"
# Notifications sent before a wave, with their default number of days before its date.
SCHEDULED = {"notice": 21, "reminder": 5}
# Sent before the end of a wave's decision window (its decide_by day), with its default
# number of days before that day.
DECISION_REMINDER = "decision_reminder"
DECISION_REMINDER_DAYS = 7
_ADDRESS = re.compile(r"[^@\s<>\"]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


class MessageRuleError(ValueError):
    """A setting or a run the rules refuse; the message names it."""


def operators(value: Any) -> dict[str, str]:
    """The From header of each operator (``legacy``, ``new``), each given as name and address."""
    if not isinstance(value, Mapping) or set(value) != {LEGACY, NEW}:
        raise MessageRuleError("mail operators: give legacy and new, each {name, address}")
    found = {}
    for role in (LEGACY, NEW):
        entry = value[role]
        name = str(entry.get("name") or "") if isinstance(entry, Mapping) else ""
        address = str(entry.get("address") or "") if isinstance(entry, Mapping) else ""
        if not _ADDRESS.fullmatch(address) or control_chars.first(name + address) is not None:
            raise MessageRuleError(
                f"mail operators: {role}.address {address!r} is not an e-mail address "
                "(and the name may hold no control character)"
            )
        found[role] = formataddr((name, address))
    return found


def sender_for(login: str, consented: Iterable[str] | set[str], senders: Mapping[str, str]) -> str:
    """The operator who writes to ``login``: the new one only after the customer consented."""
    return senders[NEW] if login in consented else senders[LEGACY]


def window(notification: str, wave_date: date, days_before: Mapping[str, Any]) -> tuple[date, date]:
    """[first day, wave date) in which ``notification`` of a wave may be sent."""
    days = days_before.get(notification, SCHEDULED[notification])
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
        raise MessageRuleError(
            f"{notification}: days before the wave must be 1 to 365 (got {days!r})"
        )
    return wave_date - timedelta(days=days), wave_date


def check_schedule(
    notification: str, wave: str, wave_date: date, today: date, days_before: Mapping[str, Any]
) -> None:
    """Refuse a notice or reminder outside its window; other notifications have none."""
    if notification not in SCHEDULED:
        return
    first, last_excluded = window(notification, wave_date, days_before)
    if today >= last_excluded:
        raise MessageRuleError(
            f"the {notification} of wave {wave} is sent before the wave date {wave_date}, "
            f"never on or after it (today is {today})"
        )
    if today < first:
        raise MessageRuleError(
            f"the {notification} of wave {wave} is due from {first} (its window is {first} "
            f"to {last_excluded - timedelta(days=1)}; today is {today})"
        )


def check_decision_reminder(
    wave: str, decide_by: date | None, today: date, days_before: Mapping[str, Any]
) -> None:
    """Refuse the decision reminder of a wave without a decision window, or outside its last
    days (``days_before`` key decision_reminder, 7 by default, to decide_by included)."""
    if decide_by is None:
        raise MessageRuleError(
            f"wave {wave} has no decide_by: there is no decision window to remind of"
        )
    days = days_before.get(DECISION_REMINDER, DECISION_REMINDER_DAYS)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
        raise MessageRuleError(
            f"{DECISION_REMINDER}: days before decide_by must be 1 to 365 (got {days!r})"
        )
    first = decide_by - timedelta(days=days)
    if today > decide_by:
        raise MessageRuleError(
            f"the decision window of wave {wave} ended on {decide_by}: its reminder is sent "
            f"before, never after (today is {today})"
        )
    if today < first:
        raise MessageRuleError(
            f"the {DECISION_REMINDER} of wave {wave} is due from {first} (its window is "
            f"{first} to {decide_by}; today is {today})"
        )
