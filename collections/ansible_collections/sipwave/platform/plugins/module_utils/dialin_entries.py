# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dialin_access module's side of the dial-in database: its ``accounts`` validated and
normalised into dial-in Accounts (every problem names the entry; PINs are checked, never
echoed), and what it reports of a plan (the accounts after it, presence, diff)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ansible_collections.sipwave.platform.plugins.module_utils import control_chars
from ansible_collections.sipwave.platform.plugins.module_utils.dialin_db import (
    INVENTORY_SOURCE,
    PIN_MAX_DIGITS,
    PIN_MIN_DIGITS,
    PREFIX_PATTERN,
    Account,
    DialinError,
    Plan,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    NumberError,
    NumberPlan,
    normalise,
)


def _number(value: object, plan: NumberPlan, where: str) -> str:
    try:
        return normalise(str(value), plan)
    except NumberError as exc:
        raise DialinError(f"{where}: {exc}") from None


def desired_from_entries(
    entries: Sequence[Mapping],
    plan: NumberPlan,
    source: str = INVENTORY_SOURCE,
    clip_no_screening: bool = True,
) -> dict[str, Account]:
    """Validate and normalise the module's ``accounts``; every problem names the entry.

    Without ``clip_no_screening`` (the PBX's carrier accepts only numbers it holds), an entry's
    ``screened_number`` (its temporary number, while its own are at the old operator) is the
    number presented instead of ``number``.
    """
    accounts: dict[str, Account] = {}
    owner_of: dict[str, str] = {}
    problems: list[str] = []
    for index, entry in enumerate(entries):
        account_id = str(entry.get("id") or "").strip()
        where = f"accounts[{index}] ({account_id or 'no id'})"
        try:
            if not account_id:
                raise DialinError(f"{where}: id is empty")
            if account_id in accounts:
                raise DialinError(f"{where}: id is listed twice")
            department = str(entry.get("department") or "").strip()
            if not department:
                raise DialinError(f"{where}: department is empty")
            # Both go into the PBX's channel variables, CDRs and log lines.
            for name, text in (("id", account_id), ("department", department)):
                control = control_chars.first(text)
                if control is not None:
                    raise DialinError(f"{where}: {name} holds a control character ({control})")
            max_calls = int(entry.get("max_calls", 1))
            if max_calls < 1:
                raise DialinError(f"{where}: max_calls must be at least 1")
            pin = entry.get("pin")
            if pin is not None:
                pin = str(pin)
                if not (pin.isascii() and pin.isdigit()) or not (
                    PIN_MIN_DIGITS <= len(pin) <= PIN_MAX_DIGITS
                ):
                    raise DialinError(
                        f"{where}: pin must be {PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits"
                    )
            allowed = _prefixes(entry.get("allowed_prefixes"), where)
            daily_minutes = entry.get("daily_minutes")
            if daily_minutes is not None:
                daily_minutes = int(daily_minutes)
                if daily_minutes < 0:
                    raise DialinError(f"{where}: daily_minutes must be 0 or more")
            number = _number(entry.get("number", ""), plan, f"{where}: number")
            screened = entry.get("screened_number")
            if screened:
                screened = _number(screened, plan, f"{where}: screened_number")
                if not clip_no_screening:
                    number = screened
            dialin = set()
            for raw in entry.get("dialin_numbers") or []:
                caller = _number(raw, plan, f"{where}: dialin_numbers {raw!r}")
                other = owner_of.get(caller)
                if other is not None and other != account_id:
                    raise DialinError(f"{where}: dialin number {caller} is already {other}'s")
                owner_of[caller] = account_id
                dialin.add(caller)
        except (DialinError, ValueError, TypeError) as exc:
            problems.append(str(exc) if isinstance(exc, DialinError) else f"{where}: {exc}")
            continue
        accounts[account_id] = Account(
            id=account_id,
            department=department,
            number=number,
            max_calls=max_calls,
            dialin_numbers=frozenset(dialin),
            source=source,
            allowed_prefixes=allowed,
            daily_minutes=daily_minutes,
            pin=pin,
        )
    if problems:
        raise DialinError("; ".join(problems))
    return accounts


def _prefixes(value: object, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise DialinError(f"{where}: allowed_prefixes must be a list")
    prefixes = []
    for prefix in value:
        text = str(prefix).strip()
        if not PREFIX_PATTERN.fullmatch(text):
            raise DialinError(
                f"{where}: allowed prefix {text!r} is not '+' and 1 to 15 digits (E.164)"
            )
        prefixes.append(text)
    return tuple(sorted(set(prefixes)))


def plan_result(current: dict[str, Account], desired: dict[str, Account], todo: Plan) -> dict:
    """The accounts as the plan leaves them (what check mode reports as present)."""
    moved = {n for a in todo.add + todo.update for n in desired[a].dialin_numbers}
    after = {
        account_id: replace(account, dialin_numbers=account.dialin_numbers - moved)
        for account_id, account in current.items()
        if account_id not in todo.remove
    }
    after.update({a: desired[a] for a in todo.add + todo.update})
    return after


def presence(listed: dict[str, Account], after: dict[str, Account], source: str) -> dict:
    """How many of the listed accounts and numbers the database holds for ``source``."""
    present = {"accounts": 0, "numbers": 0}
    for account_id, wanted in listed.items():
        stored = after.get(account_id)
        if stored is not None and stored.source == source:
            present["accounts"] += 1
            present["numbers"] += len(wanted.dialin_numbers & stored.dialin_numbers)
    held = [a for a in after.values() if a.source == source]
    rows = {"accounts": len(held), "numbers": sum(len(a.dialin_numbers) for a in held)}
    return {"present": present, "source_rows": rows}


def diff(current: dict[str, Account], after: dict[str, Account], todo: Plan, source: str) -> dict:
    """One line per account of the run's source (other sources are not its business)."""

    def line(account: Account) -> str:
        note = " (PIN changed)" if account.id in todo.pin_changes - set(todo.add) else ""
        return account.summary() + note + "\n"

    def lines(accounts: dict[str, Account], render) -> str:
        return "".join(
            render(accounts[a]) for a in sorted(accounts) if accounts[a].source == source
        )

    return {
        "before": lines(current, lambda account: account.summary() + "\n"),
        "after": lines(after, line),
    }
