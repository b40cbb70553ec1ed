# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One account as customer care sees it, read from the proxy database: its migration state and
identity, numbers, recorded decision, registrations, port requests, cutover and every change
the wave engine audited. Reads only; no secret (no HA1, no secret-code proof) is read."""

from __future__ import annotations

from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.schema import (
    table_exists,
)

_ACCOUNT = ("state", "wave", "legacy_domain", "current_username", "current_domain",
            "grace_until", "department", "updated_at")  # fmt: skip


def _rows(conn: Database, cursor: Any, table: str, sql: str, params: tuple) -> list[tuple]:
    if not table_exists(conn, cursor, table):
        return []
    cursor.execute(conn.sql(sql), params)
    return [tuple(row) for row in cursor.fetchall()]


def account_view(conn: Database, cursor: Any, login: str) -> dict | None:
    """Everything the database holds of ``login``; None when no wave ever touched it."""
    found = _rows(conn, cursor, "sipwave_account",
                  f"SELECT {', '.join(_ACCOUNT)} FROM sipwave_account WHERE login = {{p}}",
                  (login,))  # fmt: skip
    if not found:
        return None
    account = dict(zip(_ACCOUNT, found[0], strict=True))
    identities = {(login, account["legacy_domain"])}
    if account["current_username"]:
        identities.add((account["current_username"], account["current_domain"]))
    registrations = []
    for user, domain in sorted(identities):
        registrations += [
            {"identity": f"{user}@{domain}", "contact": str(contact), "expires": str(expires),
             "user_agent": str(agent or ""), "registered_at": str(modified)}
            for contact, expires, agent, modified in _rows(
                conn, cursor, "location",
                "SELECT contact, expires, user_agent, last_modified FROM location "
                "WHERE username = {p} AND domain = {p} ORDER BY last_modified",
                (user, domain),
            )
        ]  # fmt: skip
    consent = _rows(conn, cursor, "sipwave_consent",
                    "SELECT decision, recorded_at, source FROM sipwave_consent WHERE login = {p}",
                    (login,))  # fmt: skip
    cutover = _rows(conn, cursor, "sipwave_cutover",
                    "SELECT at FROM sipwave_cutover WHERE login = {p}", (login,))  # fmt: skip
    return {
        "login": login,
        **account,
        "identity": (
            f"{account['current_username']}@{account['current_domain']}"
            if account["current_username"]
            else None
        ),
        "numbers": [
            {"number": n, "kind": k, "state": s, "site": site, "carrier": carrier}
            for n, k, s, site, carrier in _rows(
                conn,
                cursor,
                "sipwave_number",
                "SELECT number, kind, state, site, carrier FROM sipwave_number "
                "WHERE login = {p} ORDER BY kind, number",
                (login,),
            )
        ],
        "decision": dict(zip(("decision", "recorded_at", "source"), consent[0], strict=True))
        if consent
        else None,
        "registrations": registrations,
        "port_requests": [
            {"ref": r, "state": s, "reason": why, "requested_date": d, "updated_at": u}
            for r, s, why, d, u in _rows(
                conn,
                cursor,
                "sipwave_port_request",
                "SELECT ref, state, reason, requested_date, updated_at FROM "
                "sipwave_port_request WHERE login = {p} ORDER BY created_at",
                (login,),
            )
        ],
        "cutover_at": cutover[0][0] if cutover else None,
        "history": [
            {"at": at, "run_id": run, "wave": wave, "action": action}
            for at, run, wave, action in _rows(
                conn,
                cursor,
                "sipwave_audit",
                "SELECT at, run_id, wave, action FROM sipwave_audit WHERE login = {p} ORDER BY id",
                (login,),
            )
        ],
    }
