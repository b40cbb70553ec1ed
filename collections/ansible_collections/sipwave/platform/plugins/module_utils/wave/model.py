# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wave engine's vocabulary: account states, the inputs of a run, the typed rows read
from the database, the plan of one account and the result of a run."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from ansible_collections.sipwave.platform.plugins.module_utils.e164 import E164_FORM
from ansible_collections.sipwave.platform.plugins.module_utils.subscriber_db import (
    Credentials,
    Key,
)

STATES = ("pending", "phase1", "consent_pending", "phase2", "closed", "rejected")
# The states in which an account is served by the new platform: it registers, its numbers
# are routed, its phones are provisioned and its dial-in numbers are active.
LIVE_STATES = frozenset({"phase1", "consent_pending", "phase2"})
DECISIONS = ("migrate", "close")
CLOSURE_NUMBER_STATES = ("kept_for_porting", "released")
# The states of a number in the inventory (sipwave_number.state of kind "number"): legacy
# (still held by the old operator: the parallel run), porting and active (being ported and
# served here: set by porting, never undone by a wave run), kept_for_porting or released (its
# account closed); an account's temporary number is in state temporary.
NUMBER_STATES = ("legacy", "temporary", "porting", "active", *CLOSURE_NUMBER_STATES)
PORTED_STATES = frozenset({"porting", "active"})
# Numbers the old operator still holds (a port request may be under way): they forward there
# to the account's temporary number, which the account keeps meanwhile.
AT_OLD_OPERATOR = frozenset({"legacy", "porting"})
NUMBER = "number"  # sipwave_number.kind of an account's telephone number
DIALIN = "dialin"  # sipwave_number.kind of a caller number allowed to use dial-in
TEMPORARY = "temporary"  # sipwave_number.kind (and state) of an account's temporary number
MAX_REPORTED = 50  # problems and accounts listed in a result, the rest only counted


class MigrationError(Exception):
    """Bad input or an unusable database; the message never holds a secret."""


class AccountRow(NamedTuple):
    """A row of sipwave_account (without its bookkeeping columns updated_at and run_id)."""

    login: str
    state: str
    wave: str
    legacy_domain: str
    current_username: str | None
    current_domain: str | None
    grace_until: str | None
    department: str
    balance: str


ACCOUNT_COLUMNS = AccountRow._fields


class AliasRow(NamedTuple):
    """A row of Kamailio's dbaliases (without its id): a number's user part to an identity."""

    alias_username: str
    alias_domain: str
    username: str
    domain: str


# -- inputs -----------------------------------------------------------------------------------


class WaveAccount(NamedTuple):
    """One good export row as the module receives it: hashes only, never a password.

    A named tuple: a wave reads 100,000 of them from the accounts file, and a tuple is made
    in a fraction of a frozen dataclass's time. repr() leaves the credentials out."""

    login: str
    legacy_domain: str
    department: str
    balance: str
    numbers: tuple[str, ...]
    dialin_numbers: tuple[str, ...]
    legacy_credentials: Credentials
    new_credentials: Credentials
    password_generated: bool = False

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self._fields, self, strict=True)
            if not name.endswith("_credentials")
        )
        return f"WaveAccount({shown})"


class TemporaryPool(NamedTuple):
    """A range of temporary numbers for the accounts whose first number is in ``area`` (an
    E.164 prefix such as +4822); first and last are E.164 numbers of the same length."""

    area: str
    first: str
    last: str
    # The carrier (a kamailio_carriers name) that brings this pool's calls here; "" for none.
    carrier: str = ""

    def holds(self, number: str) -> bool:
        return len(number) == len(self.first) and self.first <= number <= self.last

    def numbers(self) -> list[str]:
        width = len(self.first) - 1
        return [f"+{n:0{width}d}" for n in range(int(self.first[1:]), int(self.last[1:]) + 1)]


MAX_POOL_SIZE = 100_000


def temporary_pools(
    entries: list, quarantine_days: int = 0, carriers: Iterable[str] | None = None
) -> tuple[TemporaryPool, ...]:
    """The temporary_numbers setting as pools; MigrationError names each bad entry. An entry's
    optional carrier must be one of ``carriers`` (kamailio_carriers names) when given."""
    pools, problems = [], []
    known = None if carriers is None else set(carriers)
    if quarantine_days < 0:
        problems.append(f"temporary_quarantine_days {quarantine_days} is negative")
    for index, entry in enumerate(entries):
        where = f"temporary_numbers[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not a mapping with area, first and last")
            continue
        area, first, last = (str(entry.get(key) or "") for key in ("area", "first", "last"))
        bad = [
            f"{key} {value!r} is not an E.164 number (+ and digits)"
            for key, value in (("area", area), ("first", first), ("last", last))
            if not E164_FORM.fullmatch(value)
        ]
        if not bad:
            if not (first.startswith(area) and last.startswith(area)):
                bad.append(f"first and last must be numbers of area {area}")
            elif len(first) != len(last) or first > last:
                bad.append("first and last must be of one length, first not after last")
            elif int(last[1:]) - int(first[1:]) >= MAX_POOL_SIZE:
                bad.append(f"a pool holds at most {MAX_POOL_SIZE} numbers")
        carrier = entry.get("carrier") or ""
        if not isinstance(carrier, str) or (carrier and known is not None and carrier not in known):
            bad.append(f"carrier {carrier!r} is not a name of kamailio_carriers")
        problems.extend(f"{where}: {reason}" for reason in bad)
        if not bad:
            pools.append(TemporaryPool(area, first, last, carrier))
    for a, b in ((a, b) for i, a in enumerate(pools) for b in pools[i + 1 :]):
        if len(a.first) == len(b.first) and a.first <= b.last and b.first <= a.last:
            problems.append(f"temporary_numbers: {a.first}-{a.last} and {b.first}-{b.last} overlap")
    if problems:
        raise MigrationError("invalid temporary_numbers:\n" + "\n".join(problems))
    return tuple(pools)


@dataclass(frozen=True)
class Settings:
    wave: str
    phase: int
    new_domain: str
    login_prefix: str
    grace_days: int
    closure_numbers: str
    today: date
    run_id: str
    temporary_pools: tuple[TemporaryPool, ...] = ()
    # Days a returned temporary number rests before another account gets it.
    quarantine_days: int = 30
    # A rollback of accounts past their cutover runs only with a reason (it is audited).
    force_after_cutover: str | None = None
    # The last day of the wave's decision window (None: the window never ends), and what a
    # phase-2 run after it does with the accounts that never decided (stay, close), or None
    # while the window is open.
    decide_by: date | None = None
    undecided: str | None = None
    # (area, site) of kamailio_sites, longest area first: a number's site (site_of).
    site_areas: tuple[tuple[str, str], ...] = ()

    def new_identity(self, login: str) -> Key:
        return (f"{self.login_prefix}{login}", self.new_domain)

    def site_of(self, number: str) -> str:
        """The site whose area is the longest prefix of ``number`` (the router's rule)."""
        return next((site for area, site in self.site_areas if number.startswith(area)), "")

    def number_columns(self, number: str, kind: str) -> tuple[str, str]:
        """A sipwave_number row's (site, carrier): a temporary number's carrier is its pool's;
        an own number's is "" (at the old operator until its cutover, which names none)."""
        carrier = ""
        if kind == "temporary":
            carrier = next((p.carrier for p in self.temporary_pools if p.holds(number)), "")
        return self.site_of(number), carrier


def site_areas(entries: list) -> tuple[tuple[str, str], ...]:
    """kamailio_sites as (area, site), longest area first; MigrationError names a bad entry."""
    pairs, problems = [], []
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        areas = entry.get("areas") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or not isinstance(areas, list):
            problems.append(f"kamailio_sites[{index}]: needs a name and a list of areas")
            continue
        for area in areas:
            if not isinstance(area, str) or not E164_FORM.fullmatch(area):
                problems.append(f"kamailio_sites[{index}]: area {area!r} is not + and digits")
            else:
                pairs.append((area, name))
    if problems:
        raise MigrationError("invalid kamailio_sites:\n" + "\n".join(problems))
    return tuple(sorted(pairs, key=lambda pair: -len(pair[0])))


def settings_from_params(params: dict, wave: str, today: date, run_id: str) -> Settings:
    """The wave module's parameters as Settings; MigrationError for bad temporary pools."""
    return Settings(
        wave=wave,
        phase=params["phase"],
        new_domain=params["new_domain"],
        login_prefix=params["login_prefix"],
        grace_days=params["grace_days"],
        closure_numbers=params["closure_numbers"],
        today=today,
        run_id=run_id,
        temporary_pools=temporary_pools(
            params["temporary_numbers"],
            params["temporary_quarantine_days"],
            None if params.get("carriers") is None else params["carriers"],
        ),
        site_areas=site_areas(params.get("sites") or []),
        quarantine_days=params["temporary_quarantine_days"],
        force_after_cutover=params.get("force_after_cutover") or None,
        decide_by=(decide_by := wave_day(params.get("decide_by"), wave, "decide_by")),
        undecided=(
            params.get("undecided_policy") or UNDECIDED_STAY
            if decide_by is not None and today > decide_by
            else None
        ),
    )


UNDECIDED_STAY, UNDECIDED_CLOSE = "stay", "close"
UNDECIDED_POLICIES = (UNDECIDED_STAY, UNDECIDED_CLOSE)


def wave_day(value: object, wave: object, key: str) -> date | None:
    """A day setting of a wave (``key``: date, decide_by) as a date, None when it is not set;
    MigrationError names the wave and the setting when it is not YYYY-MM-DD."""
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise MigrationError(f"wave {wave}: {key} {value!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Consent:
    login: str
    decision: str
    source: str = ""


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def alias_user(number: str) -> str:
    """The user part of a number's alias: the E.164 digits without the +."""
    return number.lstrip("+")


def label(key: Key | None) -> str | None:
    return None if key is None else f"{key[0]}@{key[1]}"


# -- the database's current content, and what a run makes of it -----------------------------


@dataclass
class State:
    """The rows a wave can touch, as read from the database (or as a plan leaves them)."""

    accounts: dict[str, AccountRow]
    numbers: dict[str, dict[tuple[str, str], str]]  # login -> {(number, kind): state}
    subscribers: dict[Key, Credentials]
    aliases: dict[int, AliasRow]  # by row id
    consent: dict[str, str]
    # Temporary numbers given back, and when (sipwave_number_quarantine): number -> date.
    returned: dict[str, str] = field(default_factory=dict)

    def aliases_by(self) -> tuple[dict[Key, list[int]], dict[str, list[int]]]:
        by_target: dict[Key, list[int]] = {}
        by_number: dict[str, list[int]] = {}
        for row_id, (alias_username, _alias_domain, user, domain) in self.aliases.items():
            by_target.setdefault((user, domain), []).append(row_id)
            by_number.setdefault(alias_username, []).append(row_id)
        return by_target, by_number

    def view(self, login: str, new_identity: Key | None = None) -> dict | None:
        """What an operator sees of an account (state, identities, numbers): never a secret."""
        row = self.accounts.get(login)
        if row is None:
            return None
        legacy = (login, row.legacy_domain)
        current = (row.current_username, row.current_domain)
        identities = [
            label(key)
            for key in (current, legacy, new_identity)
            if key and key[0] and key in self.subscribers
        ]
        numbers = sorted(self.numbers.get(login, {}).items())
        return {
            "state": row.state,
            "identity": label(current) if current[0] else None,
            "registers_as": sorted(set(identities)),
            "grace_until": row.grace_until,
            "numbers": {n: s for (n, kind), s in numbers if kind == NUMBER},
            "dialin_numbers": {n: s for (n, kind), s in numbers if kind == DIALIN},
            "temporary_number": next((n for (n, kind), _s in numbers if kind == TEMPORARY), None),
        }


@dataclass(slots=True)
class AccountPlan:
    """What one account looks like before and after, and the rows that make the difference."""

    login: str
    action: str  # phase1, phase2, closed, consent_pending, rejected, grace_ended, updated, ...
    before: dict | None
    after: dict | None
    account_row: AccountRow | None  # desired; None leaves the row alone (or deletes it)
    delete_account: bool = False
    subscribers: dict[Key, Credentials | None] = field(default_factory=dict, repr=False)
    alias_remove: list[int] = field(default_factory=list)
    alias_add: list[AliasRow] = field(default_factory=list)
    numbers: dict[tuple[str, str], str | None] = field(default_factory=dict)
    refund: str | None = None
    # The run that recorded the refund: this run for its own closures, the closing run (from
    # the audit log) for an account an earlier run closed. A refund is recorded once.
    refund_run: str | None = None
    # A rollback that reopens a closed account takes back the refund its closure recorded:
    # the amount, and the run that had recorded it.
    refund_reversed: str | None = None
    # A closed account's numbers keep the decision recorded at its closure; the numbers whose
    # recorded state differs from this run's closure_numbers setting ({number: recorded}).
    closure_conflicts: dict[str, str] = field(default_factory=dict)
    # A closed account's numbers after the run: kept_for_porting or released (both, comma-
    # separated, when its closure left them apart); None for other accounts.
    closure_numbers: str | None = None
    password_generated: bool = False
    reason: str | None = None
    # A temporary number this run gave back to its pool (it rests in quarantine).
    temporary_returned: str | None = None
    # The account needed a temporary number and its area's pool had none free (or no pool).
    temporary_missing: bool = False
    # The temporary number the account holds after the run (given now or before): what a
    # carrier that screens caller numbers is shown while its own numbers are at the old
    # operator (the proxy's router, and the PBXs' dial-in rows).
    temporary_held: str | None = None
    # The rows this account may own: what the wave's snapshot records and rollback restores.
    scope_keys: set[Key] = field(default_factory=set)
    scope_alias_ids: set[int] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return self.action not in ("unchanged", "kept")

    @property
    def touches_rows(self) -> bool:
        return bool(self.subscribers or self.alias_remove or self.alias_add or self.numbers)


@dataclass
class RunResult:
    plans: list[AccountPlan]
    reconciliation: dict
    snapshot_logins: int
    changed: bool
    routing_generation: int = 0
