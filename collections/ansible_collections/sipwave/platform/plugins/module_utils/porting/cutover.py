# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cutover, the point of no return: the conditions an account must meet before its legacy side
is switched off, recording that it was, and the guard every rollback asks.

An account may be cut over when it is served here, every one of its own numbers is
``active`` (ported), one of its phones registered with its current identity since it reached
its current phase, and the proxy's newest backup is recent (the controller passes its time).
"""

from __future__ import annotations

import json
import time
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.times import (  # noqa: F401 (JULIAN_DAY_OF_EPOCH for callers)
    JULIAN_DAY_OF_EPOCH,
    epoch_of,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    LIVE_STATES,
    NUMBER,
    now,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (
    BUMP_GENERATION,
    in_chunks,
    lock_for_writing,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.transaction import (
    transaction,
)

PHASE_ACTIONS = ("phase1", "phase2", "rollback")
MAX_BLOCKERS = 200


def _epoch(stamp: Any) -> float:
    """A stored time (kamailio_db.times); one that cannot be read is an error here."""
    seconds = epoch_of(stamp)
    if seconds is None:
        raise ValueError(f"time {stamp!r} cannot be read")
    return seconds


def cut_over(conn: Database, cursor: Any, logins: list[str]) -> dict[str, str]:
    """login -> when, for the ``logins`` that are past the point of no return."""
    if not logins or not schema.table_exists(conn, cursor, "sipwave_cutover"):
        return {}
    rows = in_chunks(
        cursor, conn, "SELECT login, at FROM sipwave_cutover WHERE login IN ({markers})",
        sorted(set(logins)),
    )  # fmt: skip
    return dict(rows)


def blockers(
    conn: Database, logins: list[str], *, backup_at: str | None, backup_max_age_hours: float,
    clock: float | None = None,
) -> dict:  # fmt: skip
    """What stops each of ``logins`` from being cut over on this proxy: ``accounts`` (login ->
    problems), ``unregistered`` (login -> why: a phone registered on another proxy of the
    site counts, so the caller decides), ``general`` (the backup) and ``already``."""
    clock = time.time() if clock is None else clock
    found: dict[str, list[str]] = {}
    unregistered: dict[str, str] = {}
    general: list[str] = []
    if not backup_at:
        general.append("no backup of this proxy's database: run playbooks/backup.yml")
    else:
        age = (clock - _epoch(backup_at)) / 3600
        if age > backup_max_age_hours:
            general.append(
                f"the newest backup ({backup_at}) is {age:.1f} h old, more than "
                f"{backup_max_age_hours:g} h: run playbooks/backup.yml"
            )
    with transaction(conn) as cursor:
        already = cut_over(conn, cursor, logins)
        engine = schema.table_exists(conn, cursor, "sipwave_account")
        for login in logins:
            problems = found.setdefault(login, [])
            if login in already:
                continue
            if not engine:
                problems.append("not served here")
                continue
            cursor.execute(
                conn.sql("SELECT state, current_username, current_domain FROM sipwave_account "
                         "WHERE login = {p}"),
                (login,),
            )  # fmt: skip
            row = cursor.fetchone()
            if row is None or row[0] not in LIVE_STATES:
                problems.append(f"{row[0] if row else 'not migrated'}, not served here")
                continue
            _state, user, domain = row
            cursor.execute(
                conn.sql("SELECT number, state FROM sipwave_number "
                         "WHERE login = {p} AND kind = {p} ORDER BY number"),
                (login, NUMBER),
            )  # fmt: skip
            owned = cursor.fetchall()
            if not owned:
                problems.append("has no number of its own: nothing was ported")
            for number, state in owned:
                if state != "active":
                    problems.append(f"{number} is {state}, not ported")
            since = phase_started(conn, cursor, login)
            if not registered_since(conn, cursor, user, domain, since):
                unregistered[login] = (
                    f"no phone registered as {user}@{domain} since {since or 'its migration'}"
                )
        conn.connection.rollback()
    return {
        "general": general,
        "accounts": {login: p[:MAX_BLOCKERS] for login, p in found.items() if p},
        "unregistered": unregistered,
        "already": already,
    }


def phase_started(conn: Database, cursor: Any, login: str) -> str | None:
    if not schema.table_exists(conn, cursor, "sipwave_audit"):
        return None
    marks = ", ".join(["{p}"] * len(PHASE_ACTIONS))
    cursor.execute(
        conn.sql(f"SELECT MAX(at) FROM sipwave_audit WHERE login = {{p}} AND action IN ({marks})"),
        (login, *PHASE_ACTIONS),
    )
    row = cursor.fetchone()
    return row[0] if row and row[0] else None


def registered_since(
    conn: Database, cursor: Any, user: str, domain: str, since: str | None
) -> bool:
    cursor.execute(
        conn.sql("SELECT last_modified FROM location WHERE username = {p} AND lower(domain) = {p}"),
        (user, (domain or "").lower()),
    )
    threshold = _epoch(since) if since else 0.0
    return any(_epoch(stamp) >= threshold for (stamp,) in cursor.fetchall())


def record(
    conn: Database, logins: list[str], *, run_id: str, actor: str, wave: str, check_mode: bool
) -> list[str]:
    """Mark ``logins`` as cut over (one row each, one audit row each); returns the new ones."""
    with transaction(conn) as cursor:
        if not check_mode:
            lock_for_writing(conn, cursor)
            schema.ensure(conn, cursor)
        already = cut_over(conn, cursor, logins)
        new = [login for login in dict.fromkeys(logins) if login not in already]
        stamp = now()
        for login in new:
            cursor.execute(
                conn.sql("SELECT number FROM sipwave_number WHERE login = {p} AND kind = {p} "
                         "ORDER BY number"),
                (login, NUMBER),
            )  # fmt: skip
            numbers = [n for (n,) in cursor.fetchall()]
            if check_mode:
                continue
            cursor.execute(
                conn.sql("INSERT INTO sipwave_cutover (login, at, run_id, actor, numbers) "
                         "VALUES ({p}, {p}, {p}, {p}, {p})"),
                (login, stamp, run_id, actor, ";".join(numbers)),
            )  # fmt: skip
            cursor.execute(
                conn.sql('INSERT INTO sipwave_audit (at, run_id, wave, login, action, "before", '
                         '"after") VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})'),
                (stamp, run_id, wave, login, "cutover", None,
                 json.dumps({"cut_over": True, "by": actor, "numbers": numbers})),
            )  # fmt: skip
        if not check_mode:
            conn.connection.commit()
        return new


def retire_legacy(conn: Database, logins: list[str], domain: str, check_mode: bool) -> list[str]:
    """On the legacy platform (the lab's): the accounts' subscriber and alias rows go, so that
    it no longer knows them; the routing generation counts up. Returns the logins removed."""
    removed = []
    with transaction(conn) as cursor:
        if not check_mode:
            lock_for_writing(conn, cursor)
            schema.ensure(conn, cursor)
        for login in dict.fromkeys(logins):
            key = (login, domain.lower())
            cursor.execute(
                conn.sql("SELECT 1 FROM subscriber WHERE username = {p} AND lower(domain) = {p}"),
                key,
            )
            present = cursor.fetchone() is not None
            cursor.execute(
                conn.sql("SELECT 1 FROM dbaliases WHERE username = {p} AND lower(domain) = {p}"),
                key,
            )
            present = cursor.fetchone() is not None or present
            if not present:
                continue
            removed.append(login)
            if check_mode:
                continue
            for table in ("subscriber", "dbaliases"):
                cursor.execute(
                    conn.sql(
                        f"DELETE FROM {table} WHERE username = {{p}} AND lower(domain) = {{p}}"
                    ),
                    key,
                )
        if removed and not check_mode:
            cursor.execute(BUMP_GENERATION)
        if not check_mode:
            conn.connection.commit()
    return removed
