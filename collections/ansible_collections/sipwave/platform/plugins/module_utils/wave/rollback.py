# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling a wave back: every account the wave's snapshot records gets exactly the rows it
had before the wave first touched it, applied like a run (one transaction, audited)."""

from __future__ import annotations

from collections import Counter

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.schema import (
    table_exists,
)
from ansible_collections.sipwave.platform.plugins.module_utils.subscriber_db import Key
from ansible_collections.sipwave.platform.plugins.module_utils.wave import transaction
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    MAX_REPORTED,
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


def rollback_wave(conn: Database, settings: Settings, check_mode: bool) -> RunResult:
    """Return every account of the wave to its rows in the wave's snapshot."""
    with transaction.transaction(conn) as cursor:
        if not table_exists(conn, cursor, "sipwave_snapshot"):
            raise MigrationError(f"wave {settings.wave} was never applied: no snapshot to restore")
        snapshot = transaction.read_snapshot(cursor, conn, settings.wave)
        if snapshot is None:
            raise MigrationError(f"wave {settings.wave} was never applied: no snapshot to restore")
        domains = {settings.new_domain} | {d for _login, _u, d in snapshot["keys"]}
        if not check_mode:
            lock_for_writing(conn, cursor)
            schema.ensure(conn, cursor)  # a database of an engine without the generation table
        state = read_state(conn, cursor, domains)
        plans = _plan_rollback(state, snapshot, settings)
        state = transaction.apply(conn, cursor, state, plans, settings, check_mode, domains)
        generation = routing_generation(conn, cursor)
    remaining = _plan_rollback(state, snapshot, settings)
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


def _plan_rollback(state: State, snapshot: dict, settings: Settings) -> list[AccountPlan]:
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
        alias_users = {alias_user(n) for n, _kind in want_numbers.keys() | have_numbers.keys()}
        domains = {key[1] for key in scope}
        alias_ids = {i for key in scope for i in by_target.get(key, ())}
        alias_ids.update(i for user in alias_users for i in by_number.get(user, ()))
        alias_ids = {i for i in alias_ids if state.aliases[i].alias_domain in domains}
        want_aliases = [
            a
            for a in snapshot_aliases
            if (a.username, a.domain) in scope or a.alias_username in alias_users
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
        plans.append(plan)
    return plans
