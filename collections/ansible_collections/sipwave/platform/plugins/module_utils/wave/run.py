# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A wave run: plan every account of the wave, apply the plans in one transaction (unless
check mode), reconcile the result with the input; and the refunds of closed accounts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils import subscriber_db
from ansible_collections.sipwave.platform.plugins.module_utils.bulk import Aside
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.schema import (
    table_exists,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave import transaction
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    AccountPlan,
    MigrationError,
    RunResult,
    Settings,
    State,
    WaveAccount,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.plan import (
    closure_conflicts_summary,
    plan_wave,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.reconcile import reconcile
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (
    in_chunks,
    lock_for_writing,
    read_state,
    routing_generation,
)

# From this many accounts a wave run reconciles in a forked child while it plans (see Aside):
# below it the fork costs more than it saves.
RECONCILE_ASIDE_FROM = 5000


def run_wave(
    conn: Database,
    accounts: Sequence[WaveAccount],
    rejected: Mapping[str, str],
    settings: Settings,
    check_mode: bool,
) -> RunResult:
    """Plan a wave, apply it in one transaction (unless check mode) and reconcile."""
    domains = {settings.new_domain} | {a.legacy_domain for a in accounts}
    early: Aside | None = None
    try:
        with transaction.transaction(conn) as cursor:
            if not table_exists(conn, cursor, subscriber_db.TABLE):
                raise MigrationError(
                    "the database has no subscriber table: deploy the kamailio role first"
                )
            if not check_mode:
                lock_for_writing(conn, cursor)
                schema.ensure(conn, cursor, add_columns=False)
            state = read_state(conn, cursor, domains)
            covered: set[str] = set()
            if table_exists(conn, cursor, "sipwave_snapshot"):
                snapshot = transaction.read_snapshot(cursor, conn, settings.wave) or {}
                covered = set(snapshot.get("logins", []))
            # Reconciled aside while planning: if the plans change nothing, the state just
            # read is the state after the run (100,000 accounts: 0.45 s of the re-run).
            if len(accounts) >= RECONCILE_ASIDE_FROM:
                early = Aside(reconcile, state, accounts, rejected, settings)
            plans = plan_wave(state, accounts, rejected, settings)
            _add_recorded_refunds(conn, cursor, state, plans)
            changed = any(p.changed for p in plans)
            snapshot = transaction.snapshot_content(state, plans, covered) if changed else None
            state = transaction.apply(
                conn, cursor, state, plans, settings, check_mode, domains, snapshot
            )
            generation = routing_generation(conn, cursor)
        kept = {p.login: p.closure_conflicts for p in plans if p.closure_conflicts}
        reconciliation = None
        if early is not None and not changed and not kept:
            reconciliation, early = early.result(), None
    finally:
        if early is not None:
            early.cancel()
    if reconciliation is None:
        reconciliation = reconcile(state, accounts, rejected, settings, kept)
    if kept:
        reconciliation["closure_numbers_conflicts"] = closure_conflicts_summary(kept, settings)
    return RunResult(
        plans=plans,
        reconciliation=reconciliation,
        snapshot_logins=len(snapshot["logins"]) if snapshot else 0,
        changed=changed,
        routing_generation=generation,
    )


def _add_recorded_refunds(
    conn: Database, cursor: Any, state: State, plans: Sequence[AccountPlan]
) -> None:
    """Give every account that an earlier run closed the refund that run recorded, so that
    each report accounts for every closure (also one made by a killed run whose report never
    completed) without recording a refund twice. The amount is the audit row's; closures
    audited before refunds were written there fall back to the account row's balance."""
    closed = {
        p.login: p for p in plans
        if p.refund_run is None and p.account_row is not None and p.account_row.state == "closed"
    }  # fmt: skip
    if not closed:
        return
    recorded: dict[str, tuple[str, str | None]] = {}
    if table_exists(conn, cursor, "sipwave_audit"):
        rows = in_chunks(
            cursor,
            conn,
            'SELECT id, login, run_id, "after" FROM sipwave_audit '
            "WHERE action = 'closed' AND login IN ({markers})",
            sorted(closed),
        )
        for _id, login, run_id, after in sorted(rows):  # the latest closure counts
            recorded[login] = (run_id, (json.loads(after or "null") or {}).get("refund"))
    for login, plan in closed.items():
        run_id, amount = recorded.get(login, (None, None))
        current = state.accounts.get(login)
        plan.refund = amount or (current.balance if current else plan.account_row.balance)
        plan.refund_run = run_id


def total_refund(plans: Iterable[AccountPlan], run_id: str | None = None) -> str:
    """The refunds' total; with ``run_id``, only of the refunds that run recorded."""
    return str(sum((Decimal(p.refund) for p in plans if p.refund is not None
                    and (run_id is None or p.refund_run == run_id)), Decimal("0.00")))  # fmt: skip
