# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Forwarding the old numbers during the parallel run: which number of a migrated account,
still at the old operator (legacy, or porting while a port request is under way), forwards
to the account's temporary number (read from the new proxy's number inventory), and keeping
the legacy platform's forwarding table equal to that list (the lab's legacy platform; a real
old operator gets the same list from the report)."""

from __future__ import annotations

from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.e164 import E164_FORM
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    AT_OLD_OPERATOR,
    LIVE_STATES,
    NUMBER,
    TEMPORARY,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (
    BUMP_GENERATION,
    lock_for_writing,
    routing_generation,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.transaction import (
    transaction,
)

_LIVE = ", ".join(f"'{state}'" for state in sorted(LIVE_STATES))
_AT_OLD = ", ".join(f"'{state}'" for state in sorted(AT_OLD_OPERATOR))
_PAIRS = f"""
    SELECT n.number, t.number FROM sipwave_number n
    JOIN sipwave_number t ON t.login = n.login AND t.kind = '{TEMPORARY}'
    JOIN sipwave_account a ON a.login = n.login
    WHERE n.kind = '{NUMBER}' AND n.state IN ({_AT_OLD}) AND a.state IN ({_LIVE})
    ORDER BY n.number"""


class ForwardingError(ValueError):
    """A bad pair; the message names it."""


def read_pairs(conn: Database) -> list[tuple[str, str]]:
    """(old number, temporary number) of every served account whose number is still at the
    old operator; empty before the first wave created the tables."""
    cursor = conn.connection.cursor()
    try:
        if not schema.table_exists(conn, cursor, "sipwave_number"):
            return []
        cursor.execute(_PAIRS)
        return [(number, target) for number, target in cursor.fetchall()]
    finally:
        cursor.close()


def checked_pairs(pairs: Any) -> dict[str, str]:
    """The pairs as number -> target; ForwardingError names each bad one."""
    if not isinstance(pairs, list):
        raise ForwardingError("forwarding must be a list of [number, target] pairs")
    wanted: dict[str, str] = {}
    problems = []
    for index, pair in enumerate(pairs):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            problems.append(f"forwarding[{index}]: not a [number, target] pair")
            continue
        number, target = (str(value) for value in pair)
        bad = [v for v in (number, target) if not E164_FORM.fullmatch(v)]
        if bad:
            problems.append(f"forwarding[{index}]: {', '.join(map(repr, bad))} not E.164")
        elif number == target:
            problems.append(f"forwarding[{index}]: {number} forwards to itself")
        elif wanted.setdefault(number, target) != target:
            problems.append(f"forwarding[{index}]: {number} forwards to two targets")
    if problems:
        raise ForwardingError("\n".join(problems[:20]))
    return wanted


def apply_pairs(conn: Database, wanted: dict[str, str], check_mode: bool) -> dict:
    """Make the forwarding table exactly ``wanted`` in one transaction; the routing
    generation counts up when anything changed. Returns what changed."""
    with transaction(conn) as cursor:
        if not check_mode:
            lock_for_writing(conn, cursor)
            schema.ensure(conn, cursor, add_columns=False)
        have: dict[str, str] = {}
        if schema.table_exists(conn, cursor, "sipwave_forwarding"):
            cursor.execute("SELECT number, target FROM sipwave_forwarding")
            have = dict(cursor.fetchall())
        added = sorted(n for n in wanted if n not in have)
        moved = sorted(n for n in wanted if n in have and have[n] != wanted[n])
        removed = sorted(n for n in have if n not in wanted)
        changes = {
            "added": [[n, wanted[n]] for n in added],
            "changed": [[n, have[n], wanted[n]] for n in moved],
            "removed": [[n, have[n]] for n in removed],
        }
        if not check_mode and (added or moved or removed):
            statements = (
                ("DELETE FROM sipwave_forwarding WHERE number = {p}",
                 [(n,) for n in removed + moved]),
                ("INSERT INTO sipwave_forwarding (number, target) VALUES ({p}, {p})",
                 [(n, wanted[n]) for n in added + moved]),
                (BUMP_GENERATION, [()]),
            )  # fmt: skip
            for statement, rows in statements:
                conn.executemany(cursor, conn.sql(statement), rows)
        if not check_mode:
            conn.connection.commit()
        changes["routing_generation"] = routing_generation(conn, cursor)
        return changes
