# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning a wave run: for each account of the wave, the state it should be in and the rows
(subscribers, aliases, numbers, account row) that differ from what the database holds.
Nothing here touches the database; ``transaction`` applies the plans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from ansible_collections.sipwave.platform.plugins.module_utils.subscriber_db import (
    Credentials,
    Key,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    AT_OLD_OPERATOR,
    CLOSURE_NUMBER_STATES,
    DIALIN,
    MAX_REPORTED,
    NUMBER,
    PORTED_STATES,
    TEMPORARY,
    UNDECIDED_CLOSE,
    UNDECIDED_STAY,
    AccountPlan,
    AccountRow,
    AliasRow,
    Settings,
    State,
    WaveAccount,
    alias_user,
)


def _target_state(
    phase: int, current: str | None, consent: str | None, undecided: str | None = None
) -> str:
    if current == "closed":
        return "closed"
    if phase == 1:
        return current if current in ("consent_pending", "phase2") else "phase1"
    if consent == "migrate":
        return "phase2"
    if consent == "close":
        return "closed"
    # The decision window is over (undecided is the policy then): the account stays on its
    # legacy identity for good, or is closed and refunded like a customer who chose to.
    if undecided == UNDECIDED_CLOSE:
        return "closed"
    if undecided == UNDECIDED_STAY:
        return current if current == "phase2" else "phase1"
    return "consent_pending"


def _desired_rows(
    account: WaveAccount, target: str, grace_until: str | None, settings: Settings
) -> tuple[dict[Key, Credentials], list[AliasRow], dict[tuple[str, str], str], Key | None]:
    legacy = (account.login, account.legacy_domain)
    identity: Key | None = None
    if target in ("phase1", "consent_pending"):
        identity = legacy
        subscribers = {legacy: account.legacy_credentials}
    elif target == "phase2":
        identity = settings.new_identity(account.login)
        subscribers = {identity: account.new_credentials}
        if grace_until and settings.today.isoformat() < grace_until:
            subscribers[legacy] = account.legacy_credentials
    else:
        subscribers = {}
    if identity is not None:
        user, domain = identity
        aliases = [AliasRow(alias_user(n), domain, user, domain) for n in account.numbers]
        # Still at the old operator: porting (later) makes a number porting, then active.
        number_state = "legacy"
        dialin_state = "active"
    else:
        aliases = []
        number_state = settings.closure_numbers
        dialin_state = "released"
    numbers = {(n, NUMBER): number_state for n in account.numbers}
    for n in account.dialin_numbers:
        numbers[(n, DIALIN)] = dialin_state
    return subscribers, aliases, numbers, identity


class TemporaryNumbers:
    """The free numbers of the temporary pools, handed out lowest first.

    Free is a number of a configured range that no account holds (as its temporary number or
    as one of its own numbers), that no alias routes, and that was not given back within the
    quarantine.
    """

    def __init__(self, state: State, settings: Settings):
        taken = {number for numbers in state.numbers.values() for number, _kind in numbers}
        # and every number an alias routes (one the engine did not write either)
        taken.update("+" + alias.alias_username for alias in state.aliases.values())
        rested = (settings.today - timedelta(days=settings.quarantine_days)).isoformat()
        self._free: dict[str, list[str]] = {}
        for pool in settings.temporary_pools:
            free = self._free.setdefault(pool.area, [])
            free.extend(
                n for n in pool.numbers() if n not in taken and state.returned.get(n, "") <= rested
            )
        for free in self._free.values():
            free.sort(reverse=True)  # pop() takes the lowest
        # Longest area first: +48225 wins over +4822 for +48225550100.
        self._areas = sorted(self._free, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._areas)

    def take(self, first_number: str) -> str | None:
        """A free number of the pool of ``first_number``'s area (None: no pool, or empty)."""
        for area in self._areas:
            if first_number.startswith(area):
                free = self._free[area]
                return free.pop() if free else None
        return None

    def take_lowest(self) -> str | None:
        """The lowest free number of every pool (one account's number, not by area: a staff
        member's), None when every pool is used up."""
        tails = [(free[-1], area) for area, free in self._free.items() if free]
        if not tails:
            return None
        return self._free[min(tails)[1]].pop()

    def is_free(self, number: str) -> bool:
        return any(number in free for free in self._free.values())


def plan_wave(
    state: State,
    accounts: Sequence[WaveAccount],
    rejected: Mapping[str, str],
    settings: Settings,
) -> list[AccountPlan]:
    """One AccountPlan per input account (good or rejected), in input order."""
    by_target, by_number = state.aliases_by()
    temporary = TemporaryNumbers(state, settings)
    plans = []
    for account in accounts:
        plans.append(_plan_account(state, account, settings, by_target, by_number, temporary))
    for login, reason in rejected.items():
        plans.append(_plan_rejected(state, login, reason, settings))
    return plans


def _grace_until(current: AccountRow | None, target: str, settings: Settings) -> str | None:
    if target != "phase2":
        return None
    if current is not None and current.state == "phase2" and current.grace_until:
        return current.grace_until
    return (settings.today + timedelta(days=settings.grace_days)).isoformat()


def _plan_account(
    state: State,
    account: WaveAccount,
    settings: Settings,
    by_target: dict[Key, list[int]],
    by_number: dict[str, list[int]],
    temporary: TemporaryNumbers,
) -> AccountPlan:
    # This runs once per account of a 100,000-account wave: plain lookups, few objects.
    login, legacy_domain = account.login, account.legacy_domain
    current = state.accounts.get(login)
    current_state = current.state if current else None
    consent = state.consent.get(login)
    target = _target_state(settings.phase, current_state, consent, settings.undecided)
    grace_until = _grace_until(current, target, settings)
    want_subs, want_aliases, want_numbers, identity = _desired_rows(
        account, target, grace_until, settings
    )
    user, domain = identity if identity else (None, None)
    row = AccountRow(login, target, settings.wave, legacy_domain, user, domain, grace_until,
                     account.department, account.balance)  # fmt: skip
    plan = AccountPlan(login, "unchanged", None, None, row)
    plan.password_generated = account.password_generated and target == "phase2"

    scope = {(login, legacy_domain), settings.new_identity(login)}
    if current is not None and current.legacy_domain:
        scope.add((login, current.legacy_domain))
    subscribers = state.subscribers
    credentials_changed = False
    alias_ids: set[int] = set()
    for key in scope:
        have, want = subscribers.get(key), want_subs.get(key)
        if have != want:
            plan.subscribers[key] = want
            credentials_changed = credentials_changed or (have is not None and want is not None)
        ids = by_target.get(key)
        if ids:
            alias_ids.update(ids)
    for number in account.numbers:
        ids = by_number.get(alias_user(number))
        if ids:
            alias_ids.update(ids)
    if alias_ids:
        _plan_aliases(
            plan,
            state.aliases,
            alias_ids,
            want_aliases,
            (legacy_domain, settings.new_domain, current and current.legacy_domain),
        )
    elif want_aliases:
        plan.alias_add = list(dict.fromkeys(want_aliases))
    plan.scope_keys = scope

    have_numbers = state.numbers.get(login, {})
    if identity is not None:
        if have_numbers:
            _keep_ported(have_numbers, want_numbers)
        _temporary_number(plan, account, have_numbers, want_numbers, temporary)
    else:
        plan.temporary_returned = next((n for n, kind in have_numbers if kind == TEMPORARY), None)
    if current_state == "closed":
        plan.closure_conflicts = _keep_closure_decisions(have_numbers, want_numbers, settings)
    if target == "closed":
        states = {s for (_number, kind), s in want_numbers.items() if kind == NUMBER}
        plan.closure_numbers = ",".join(sorted(states)) or None
    if have_numbers != want_numbers:
        for key in have_numbers.keys() | want_numbers.keys():
            if have_numbers.get(key) != want_numbers.get(key):
                plan.numbers[key] = want_numbers.get(key)

    if current == row and not plan.touches_rows:
        return plan
    plan.action = _action(current_state, target, plan, credentials_changed, settings)
    if settings.undecided and consent is None and settings.phase == 2 and current_state != target:
        plan.reason = f"no decision by {settings.decide_by}: policy {settings.undecided}"
    if target == "closed" and current_state != "closed":
        plan.refund = account.balance
        plan.refund_run = settings.run_id
    return plan


def _plan_aliases(
    plan: AccountPlan,
    aliases: Mapping[int, AliasRow],
    alias_ids: set[int],
    want_aliases: list[AliasRow],
    scope_domains: tuple,
) -> None:
    """The alias rows of the account's scope (in ``scope_domains``) to remove and to add."""
    ordered = sorted(alias_ids)
    rows = [aliases[i] for i in ordered]
    if rows == want_aliases and (len(rows) < 2 or len(set(rows)) == len(rows)):
        # As it should be (the common case of a re-run): every row is the account's, in the
        # identity's domain, none twice.
        plan.scope_alias_ids = alias_ids
        return
    alias_ids = {i for i in alias_ids if aliases[i].alias_domain in scope_domains}
    plan.scope_alias_ids = alias_ids
    have_aliases: dict[AliasRow, list[int]] = {}
    for i in sorted(alias_ids):
        have_aliases.setdefault(aliases[i], []).append(i)
    if list(have_aliases) != want_aliases or len(alias_ids) != len(have_aliases):
        for alias, ids in have_aliases.items():
            # Duplicate rows would make Kamailio's alias lookup ambiguous: keep one.
            plan.alias_remove.extend(ids if alias not in want_aliases else ids[1:])
        plan.alias_add = [a for a in dict.fromkeys(want_aliases) if a not in have_aliases]


def _keep_ported(have: Mapping[tuple[str, str], str], want: dict[tuple[str, str], str]) -> None:
    """A served account's numbers that porting moved on (porting, active) stay so."""
    for key, recorded in have.items():
        if key[1] == NUMBER and recorded in PORTED_STATES and key in want:
            want[key] = recorded


def _temporary_number(
    plan: AccountPlan,
    account: WaveAccount,
    have: Mapping[tuple[str, str], str],
    want: dict[tuple[str, str], str],
    temporary: TemporaryNumbers,
) -> None:
    """A served account whose numbers are still at the old operator keeps (or gets) one
    temporary number of its first number's area; once none is at the old operator any more
    (legacy, or porting: a port request is under way), it gives it back."""
    held = None
    for number, kind in have:  # plain loops: this runs for every account of a wave
        if kind == TEMPORARY:
            held = number
            break
    needed = False
    for (_number, kind), state in want.items():
        if kind == NUMBER and state in AT_OLD_OPERATOR:
            needed = True
            break
    if needed and held is not None:
        want[(held, TEMPORARY)] = TEMPORARY
        plan.temporary_held = held
    elif needed and temporary:
        number = temporary.take(account.numbers[0])
        if number is None:
            plan.temporary_missing = True
        else:
            want[(number, TEMPORARY)] = TEMPORARY
            plan.temporary_held = number
    elif held is not None:
        plan.temporary_returned = held


def _keep_closure_decisions(
    have: Mapping[tuple[str, str], str], want: dict[tuple[str, str], str], settings: Settings
) -> dict[str, str]:
    """An already closed account keeps each number as its closure left it (kept for porting
    or released): releasing a kept number cannot be undone, and a released one may be someone
    else's by now, so a later run's closure_numbers setting never flips it. Returns the numbers
    whose recorded state differs from the setting."""
    conflicts = {}
    for key in want:
        recorded = have.get(key)
        if key[1] == NUMBER and recorded in CLOSURE_NUMBER_STATES:
            want[key] = recorded
            if recorded != settings.closure_numbers:
                conflicts[key[0]] = recorded
    return conflicts


def _action(
    current: str | None, target: str, plan: AccountPlan, credentials: bool, settings: Settings
) -> str:
    if current != target:
        return target
    legacy_removed = any(
        want is None and key[1] != settings.new_domain for key, want in plan.subscribers.items()
    )
    if target == "phase2" and legacy_removed:
        return "grace_ended"
    return "credentials_changed" if credentials else "updated"


def _plan_rejected(state: State, login: str, reason: str, settings: Settings) -> AccountPlan:
    current = state.accounts.get(login)
    if current is not None and current.state not in ("pending", "rejected"):
        # Already served: a bad row in a later export must not take the service away.
        plan = AccountPlan(login, "kept", None, None, None)
        plan.reason = reason
        return plan
    row = AccountRow(
        login=login,
        state="rejected",
        wave=settings.wave,
        legacy_domain=current.legacy_domain if current else "",
        current_username=None,
        current_domain=None,
        grace_until=None,
        department=current.department if current else "",
        balance=current.balance if current else "0.00",
    )
    plan = AccountPlan(login, "unchanged", None, None, row)
    plan.reason = reason
    if current is None or current != row:
        plan.action = "rejected"
    return plan


def closure_conflicts_summary(kept: Mapping[str, Mapping[str, str]], settings: Settings) -> dict:
    """What the report and the warning say of closed accounts whose numbers keep the decision
    of their closure against this run's closure_numbers setting."""
    logins = sorted(kept)
    return {
        "setting": settings.closure_numbers,
        "count": len(logins),
        "accounts": [
            {"login": login, "numbers": dict(sorted(kept[login].items()))}
            for login in logins[:MAX_REPORTED]
        ],
    }


def closure_conflicts_message(conflicts: Mapping) -> str:
    """The operator's warning for closure_numbers_conflicts (see closure_conflicts_summary)."""
    shown = [a["login"] for a in conflicts["accounts"][:10]]
    more = conflicts["count"] - len(shown)
    states = sorted({s for a in conflicts["accounts"] for s in a["numbers"].values()})
    return (
        f"closure_numbers is {conflicts['setting']}, but {conflicts['count']} account(s) closed "
        f"earlier keep their numbers {' or '.join(states)} as decided at closure (not changed "
        f"by this run): {', '.join(shown)}" + (f" and {more} more" if more > 0 else "")
    )
