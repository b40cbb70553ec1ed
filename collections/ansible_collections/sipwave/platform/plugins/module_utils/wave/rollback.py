# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling a wave back: every account the wave's snapshot records gets exactly the rows it
had before the wave first touched it, applied like a run (one transaction, audited)."""

from __future__ import annotations

import json
from collections import Counter

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.schema import (
    table_exists,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.cutover import cut_over
from ansible_collections.sipwave.platform.plugins.module_utils.subscriber_db import Key
from ansible_collections.sipwave.platform.plugins.module_utils.wave import transaction
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    MAX_REPORTED,
    NUMBER,
    PORTED_STATES,
    TEMPORARY,
    AccountPlan,
    AccountRow,
    AliasRow,
    MigrationError,
    RunResult,
    Settings,
    State,
    alias_user,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (
    lock_for_writing,
    read_state,
    routing_generation,
)


def rollback_wave(
    conn: Database, settings: Settings, check_mode: bool, only: list[str] | None = None
) -> RunResult:
    """Return every account of the wave (``only`` these, when given) to its rows in the wave's
    snapshot; the wave's other accounts stay as they are."""
    with transaction.transaction(conn) as cursor:
        if not table_exists(conn, cursor, "sipwave_snapshot"):
            raise MigrationError(f"wave {settings.wave} was never applied: no snapshot to restore")
        snapshot = transaction.read_snapshot(cursor, conn, settings.wave)
        if snapshot is None:
            raise MigrationError(f"wave {settings.wave} was never applied: no snapshot to restore")
        snapshot = _only(snapshot, only, settings.wave)
        domains = {settings.new_domain} | {d for _login, _u, d in snapshot["keys"]}
        if not check_mode:
            lock_for_writing(conn, cursor)
            # A database of an engine without the generation table gets it.
            schema.ensure(conn, cursor, add_columns=False)
        past = cut_over(conn, cursor, snapshot["logins"])
        if past and not settings.force_after_cutover:
            names = ", ".join(sorted(past)[:MAX_REPORTED])
            raise MigrationError(
                f"wave {settings.wave}: {len(past)} account(s) are past their cutover (their "
                f"numbers are ported and the legacy side is off), a rollback would strand them: "
                f"{names}. Roll back only with -e sipwave_force_after_cutover='<reason>' "
                "(audited)."
            )
        state = read_state(conn, cursor, domains)
        plans = _plan_rollback(state, snapshot, settings, set(past))
        for plan in plans:
            if plan.login in past and plan.changed:
                plan.reason = f"forced after cutover: {settings.force_after_cutover}"
        _reverse_refunds(conn, cursor, state, plans)
        state = transaction.apply(conn, cursor, state, plans, settings, check_mode, domains)
        generation = routing_generation(conn, cursor)
    remaining = _plan_rollback(state, snapshot, settings, set(past))
    differing = [p.login for p in remaining if p.changed]
    reconciliation = {
        "ok": not differing,
        "accounts": len(plans),
        "accounts_as_in_snapshot": len(plans) - len(differing),
        "problems": [f"{login}: differs from the snapshot" for login in differing[:MAX_REPORTED]],
        "problem_count": len(differing),
    }
    changed = any(p.changed for p in plans)
    return RunResult(plans, reconciliation, len(snapshot["logins"]), changed, generation)


def _only(snapshot: dict, only: list[str] | None, wave: str) -> dict:
    """The snapshot of the named accounts only; a login the wave never touched is refused."""
    if only is None:
        return snapshot
    unknown = sorted(set(only) - set(snapshot["logins"]))
    if unknown or not only:
        raise MigrationError(
            f"wave {wave} never touched {', '.join(unknown) or '(no login given)'}: "
            "nothing of theirs to roll back"
        )
    wanted = set(only)
    return {
        **snapshot,
        "logins": [login for login in snapshot["logins"] if login in wanted],
        "keys": [key for key in snapshot["keys"] if key[0] in wanted],
        "accounts": [row for row in snapshot["accounts"] if row[0] in wanted],
        "numbers": [row for row in snapshot["numbers"] if row[1] in wanted],
    }


def _plan_rollback(
    state: State, snapshot: dict, settings: Settings, forced: set[str] = frozenset()
) -> list[AccountPlan]:
    """The plans that restore the snapshot; ``forced`` accounts (past their cutover, rolled
    back with a reason) lose their ported numbers' protection, no other account does."""
    keys: dict[str, set[Key]] = {}
    for login, user, domain in snapshot["keys"]:
        keys.setdefault(login, set()).add((user, domain))
    accounts = {row[0]: AccountRow._make(row) for row in snapshot["accounts"]}
    numbers: dict[str, dict[tuple[str, str], str]] = {}
    for number, login, kind, number_state in snapshot["numbers"]:
        numbers.setdefault(login, {})[(number, kind)] = number_state
    subscribers = {(u, d): (h, hb) for u, d, h, hb in snapshot["subscribers"]}
    snapshot_aliases = [AliasRow._make(alias) for alias in snapshot["aliases"]]
    by_target, by_number = state.aliases_by()
    # A temporary number the snapshot gave back to one account may be another's by now (the
    # quarantine passed): that account keeps it, and the next wave run finds this one another.
    temporary_holder = {
        number: login
        for login, held in state.numbers.items()
        for number, kind in held
        if kind == TEMPORARY
    }
    plans = []
    for login in dict.fromkeys(snapshot["logins"]):
        scope = set(keys.get(login, ())) | {settings.new_identity(login)}
        current = state.accounts.get(login)
        if current is not None:
            scope.add((login, current.legacy_domain))
            if current.current_username:
                scope.add((current.current_username, current.current_domain))
        want_numbers = {
            (number, kind): number_state
            for (number, kind), number_state in numbers.get(login, {}).items()
            if kind != TEMPORARY or temporary_holder.get(number, login) == login
        }
        have_numbers = state.numbers.get(login, {})
        # A rollback never takes a number back from the port (porting, active) and never
        # brings a released number back into service: those stay as they are, and a
        # released number gets no alias again. An account with numbers in the port is not
        # rolled back at all, unless forced after its cutover.
        kept = {
            key: have
            for key, have in have_numbers.items()
            if key[1] == NUMBER and (have in PORTED_STATES or have == "released")
        }
        ported = sorted(n for (n, _kind), have in kept.items() if have in PORTED_STATES)
        if ported and login not in forced:
            # Its numbers are (being) ported here: rolling the account back to the old
            # operator would strand them. It stays; the port request must end first.
            reason = "not rolled back, numbers porting or ported here: " + ", ".join(ported)
            plans.append(AccountPlan(login, "kept", None, None, current, reason=reason))
            continue
        want_numbers.update(kept)
        released = {alias_user(n) for (n, _kind), have in kept.items() if have == "released"}
        alias_users = {alias_user(n) for n, _kind in want_numbers.keys() | have_numbers.keys()}
        domains = {key[1] for key in scope}
        alias_ids = {i for key in scope for i in by_target.get(key, ())}
        alias_ids.update(i for user in alias_users for i in by_number.get(user, ()))
        alias_ids = {i for i in alias_ids if state.aliases[i].alias_domain in domains}
        want_aliases = [
            a
            for a in snapshot_aliases
            if ((a.username, a.domain) in scope or a.alias_username in alias_users)
            and a.alias_username not in released
        ]
        row = accounts.get(login)
        plan = AccountPlan(login, "unchanged", None, None, row, delete_account=row is None)
        for key in scope:
            have, want = state.subscribers.get(key), subscribers.get(key)
            if have != want:
                plan.subscribers[key] = want
        have_aliases: dict[AliasRow, list[int]] = {}
        for i in sorted(alias_ids):
            have_aliases.setdefault(state.aliases[i], []).append(i)
        wanted_count = Counter(want_aliases)
        for alias, ids in have_aliases.items():
            plan.alias_remove.extend(ids[wanted_count.get(alias, 0) :])
        for alias, count in wanted_count.items():
            plan.alias_add.extend([alias] * max(0, count - len(have_aliases.get(alias, []))))
        for key in have_numbers.keys() | want_numbers.keys():
            if have_numbers.get(key) != want_numbers.get(key):
                plan.numbers[key] = want_numbers.get(key)
        if current != row or plan.touches_rows:
            plan.action = "rollback"
        if kept and plan.action == "rollback":
            plan.reason = "numbers kept: " + ", ".join(
                f"{n} {have}" for (n, _kind), have in sorted(kept.items())
            )
        plans.append(plan)
    return plans


def _reverse_refunds(conn: Database, cursor, state: State, plans: list[AccountPlan]) -> None:
    """An account the rollback reopens had a refund recorded at its closure: the rollback
    records taking it back (its audit row and outcome), so that a later closure's refund is
    the only one that stands."""
    for plan in plans:
        current = state.accounts.get(plan.login)
        reopened = plan.account_row is None or plan.account_row.state != "closed"
        if current is None or current.state != "closed" or not reopened:
            continue
        cursor.execute(
            conn.sql("SELECT run_id, \"after\" FROM sipwave_audit WHERE login = {p} "
                     "AND action = 'closed' ORDER BY id DESC"),
            (plan.login,),
        )  # fmt: skip
        row = cursor.fetchone()
        amount = (json.loads(row[1] or "null") or {}).get("refund") if row else None
        plan.refund_reversed = str(amount if amount is not None else current.balance)
