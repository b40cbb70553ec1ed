# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The routing view: what the router's routing cache loads from the proxy database, one
definition for both backends, and replacing an older definition of it (schema.ensure)."""

from __future__ import annotations

import hashlib
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)

ROUTING_VIEW = "sipwave_routing"
VIEW_MARKER_PREFIX = "sipwave routing view "
# What the router's routing cache (htable "routing") loads, in the htable columns:
#   i:user@domain      an identity served here (it has a subscriber row)
#   n:digits           a number served here (dbaliases), or an account's temporary number
#                      (sipwave_number) -> user@domain
#   a:user@domain      the number an identity presents as caller (dial-in): its first
#                      number (lowest dbaliases id) -> +digits
#   d:user@domain      the department of the account behind an identity, for the call
#                      records: its current identity, and its legacy one when that differs
#                      (phase 2, grace period), and a staff member's identity; accounts
#                      without a department have none
#   t:user@domain      the temporary number of the account behind its current identity,
#                      while its own numbers are still at the old operator -> +digits
#   f:digits           a number the legacy platform forwards -> +digits of the target
#   c:login            a closed account (its requests are refused, 403 Account Closed)
#   p:digits           a closed account's number -> kept_for_porting or released; a number
#                      kept by one closed account and released by another is still kept
#                      (kept_for_porting sorts first)
#   g:generation       the generation of this content (sipwave_routing_generation)
# {text} makes the literal '1' a TEXT column on PostgreSQL, so that CREATE OR REPLACE VIEW
# keeps the column types of the view it replaces.
_ROUTING_SELECT = """
    SELECT 'i:' || username || '@' || lower(domain) AS key_name, 0 AS key_type,
           1 AS value_type, '1'{text} AS key_value, 0 AS expires
    FROM subscriber
    UNION ALL
    SELECT 'n:' || alias_username, 0, 0, username || '@' || lower(domain), 0
    FROM dbaliases
    UNION ALL
    SELECT 'n:' || ltrim(n.number, '+'), 0, 0,
           a.current_username || '@' || lower(a.current_domain), 0
    FROM sipwave_number n JOIN sipwave_account a ON a.login = n.login
    WHERE n.kind = 'temporary' AND a.current_username IS NOT NULL
    UNION ALL
    SELECT 't:' || a.current_username || '@' || lower(a.current_domain), 0, 0, n.number, 0
    FROM sipwave_number n JOIN sipwave_account a ON a.login = n.login
    WHERE n.kind = 'temporary' AND a.current_username IS NOT NULL
    UNION ALL
    SELECT 'a:' || username || '@' || lower(domain), 0, 0, '+' || alias_username, 0
    FROM dbaliases
    WHERE id IN (SELECT MIN(id) FROM dbaliases GROUP BY username, lower(domain))
    UNION ALL
    SELECT 'd:' || current_username || '@' || lower(current_domain), 0, 0, department, 0
    FROM sipwave_account
    WHERE current_username IS NOT NULL AND department <> ''
    UNION ALL
    SELECT 'd:' || login || '@' || lower(legacy_domain), 0, 0, department, 0
    FROM sipwave_account
    WHERE current_username IS NOT NULL AND department <> ''
      AND (current_username <> login OR lower(current_domain) <> lower(legacy_domain))
    UNION ALL
    SELECT 'd:' || login || '@' || lower(domain), 0, 0, department, 0
    FROM sipwave_staff
    WHERE department <> ''
    UNION ALL
    SELECT 'f:' || ltrim(number, '+'), 0, 0, target, 0
    FROM sipwave_forwarding
    UNION ALL
    SELECT 'c:' || login, 0, 1, '1', 0
    FROM sipwave_account WHERE state = 'closed'
    UNION ALL
    SELECT 'p:' || ltrim(number, '+'), 0, 0, MIN(state), 0
    FROM sipwave_number
    WHERE kind = 'number' AND state IN ('kept_for_porting', 'released')
    GROUP BY number
    UNION ALL
    SELECT 'g:generation', 0, 1, CAST(COALESCE(MAX(generation), 0) AS TEXT), 0
    FROM sipwave_routing_generation"""
_TEXT_CAST = {"sqlite": "", "postgres": "::TEXT"}


def routing_view(backend: str) -> str:
    """The CREATE VIEW statement of the routing view (OR REPLACE on PostgreSQL)."""
    verb = "CREATE OR REPLACE VIEW" if backend == "postgres" else "CREATE VIEW"
    return f"{verb} {ROUTING_VIEW} AS{_ROUTING_SELECT.format(text=_TEXT_CAST[backend])}"


def _view_definition(conn: Database, cursor: Any) -> str | None:
    if conn.backend == "sqlite":
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (ROUTING_VIEW,)
        )
    else:
        cursor.execute(
            "SELECT pg_get_viewdef(c.oid) FROM pg_class c WHERE c.relname = %s AND c.relkind = 'v'",
            (ROUTING_VIEW,),
        )
    row = cursor.fetchone()
    return row[0] if row else None


def ensure_routing_view(conn: Database, cursor: Any) -> bool:
    """Create the routing view, or replace an older definition of it; True if it changed."""
    wanted = routing_view(conn.backend)
    if conn.backend == "sqlite":
        if _view_definition(conn, cursor) == wanted:
            return False
        cursor.execute(f"DROP VIEW IF EXISTS {ROUTING_VIEW}")
        cursor.execute(wanted)
        return True
    # PostgreSQL keeps only a normalised text of a view, so the view carries a comment naming
    # the digest of the statement that made it: when it matches, nothing runs, and no wave
    # run holds the view's exclusive lock until its commit. Otherwise the view is replaced;
    # it counts as changed when its normalised text differs from before.
    marker = VIEW_MARKER_PREFIX + hashlib.sha256(wanted.encode()).hexdigest()[:16]
    cursor.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (ROUTING_VIEW,))
    if cursor.fetchone()[0] == marker:
        return False
    before = _view_definition(conn, cursor)
    cursor.execute(wanted)
    cursor.execute(f"COMMENT ON VIEW {ROUTING_VIEW} IS %s", (marker,))
    return _view_definition(conn, cursor) != before
