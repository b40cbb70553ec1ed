# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wave engine's vocabulary: account states, the inputs of a run, the typed rows read
from the database, the plan of one account and the result of a run."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

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
NUMBER = "number"  # sipwave_number.kind of an account's telephone number
DIALIN = "dialin"  # sipwave_number.kind of a caller number allowed to use dial-in
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


@dataclass(frozen=True)
class WaveAccount:
    """One good export row as the module receives it: hashes only, never a password."""

    login: str
    legacy_domain: str
    department: str
    balance: str
    numbers: tuple[str, ...]
    dialin_numbers: tuple[str, ...]
    legacy_credentials: Credentials = field(repr=False)
    new_credentials: Credentials = field(repr=False)
    password_generated: bool = False


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

    def new_identity(self, login: str) -> Key:
        return (f"{self.login_prefix}{login}", self.new_domain)


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
    # A closed account's numbers keep the decision recorded at its closure; the numbers whose
    # recorded state differs from this run's closure_numbers setting ({number: recorded}).
    closure_conflicts: dict[str, str] = field(default_factory=dict)
    # A closed account's numbers after the run: kept_for_porting or released (both, comma-
    # separated, when its closure left them apart); None for other accounts.
    closure_numbers: str | None = None
    password_generated: bool = False
    reason: str | None = None
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
