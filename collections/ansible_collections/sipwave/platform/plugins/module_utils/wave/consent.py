# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recording the customers' decisions (migrate or close) that phase 2 applies."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.schema import (
    table_exists,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave import transaction
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    DECISIONS,
    MAX_REPORTED,
    Consent,
    MigrationError,
    now,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (
    lock_for_writing,
)


def record_consent(
    conn: Database, decisions: Sequence[Consent], run_id: str, check_mode: bool
) -> list[dict]:
    """Store each customer's decision (migrate or close); returns the decisions that changed."""
    bad = [c for c in decisions if c.decision not in DECISIONS or not c.login]
    if bad:
        raise MigrationError(
            "invalid consent: "
            + "; ".join(f"{c.login!r}: decision {c.decision!r} is not migrate or close"
                        for c in bad[:MAX_REPORTED])
        )  # fmt: skip
    with transaction.transaction(conn) as cursor:
        current: dict[str, str] = {}
        if not check_mode:
            lock_for_writing(conn, cursor)
            schema.ensure(conn, cursor, add_columns=False)
        if table_exists(conn, cursor, "sipwave_consent"):
            cursor.execute("SELECT login, decision FROM sipwave_consent")
            current = dict(cursor.fetchall())
        changes = []
        latest = {c.login: c for c in decisions}
        for consent in latest.values():
            before = current.get(consent.login)
            if before != consent.decision:
                changes.append({"login": consent.login, "before": before, "after": consent.decision,
                                "source": consent.source})  # fmt: skip
        if changes and not check_mode:
            at = now()
            conn.executemany(
                cursor,
                conn.sql("DELETE FROM sipwave_consent WHERE login = {p}"),
                [(c["login"],) for c in changes],
            )
            conn.executemany(
                cursor,
                conn.sql(
                    "INSERT INTO sipwave_consent (login, decision, recorded_at, source) "
                    "VALUES ({p}, {p}, {p}, {p})"
                ),
                [(c["login"], c["after"], at, c["source"]) for c in changes],
            )
            conn.executemany(
                cursor,
                conn.sql(transaction.AUDIT_INSERT),
                [
                    (at, run_id, "", c["login"], f"consent_{c['after']}",
                     json.dumps({"consent": c["before"]}), json.dumps({"consent": c["after"]}))
                    for c in changes
                ],
            )  # fmt: skip
        conn.connection.commit()
    return changes


def consent_result(
    conn: Database, entries: Sequence[dict], run_id: str, check_mode: bool, want_diff: bool
) -> dict:
    """The wave module's result of recording the decisions given as its ``consent`` argument
    (``login``, ``decision``, ``source``), with a diff of the decisions when asked."""
    decisions = [
        Consent(str(c.get("login") or ""), str(c.get("decision") or ""),
                str(c.get("source") or ""))
        for c in entries
    ]  # fmt: skip
    changes = record_consent(conn, decisions, run_id, check_mode)
    result: dict = {"changed": bool(changes), "consent": changes}
    if want_diff:
        result["diff"] = {
            "before": "".join(f"{c['login']}: {c['before']}\n" for c in changes),
            "after": "".join(f"{c['login']}: {c['after']}\n" for c in changes),
        }
    return result
