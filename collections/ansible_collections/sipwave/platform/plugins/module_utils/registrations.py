# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which accounts of a wave moved to phase 2 but have no phone registered with their new
identity since: the list customer care calls before the grace period ends (the legacy
identity stops working then).

"Registered since" is what cutover asks too (porting.cutover.registered_since): a contact of
the identity in usrloc's location table whose last_modified is not older than the start of
the account's current phase (its newest phase audit row). A contact expires out of the
table, so an account whose phone registered and then went away for good is listed again.
"""

from __future__ import annotations

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.cutover import (
    phase_started,
    registered_since,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.transaction import (
    transaction,
)

PHASE2 = "phase2"
COLUMNS = ("login", "identity", "phase2_since", "grace_until", "legacy_identity_registered")


def unregistered_in_phase2(conn: Database, wave: str) -> dict:
    """``phase2``: the wave's accounts in phase 2 here; ``unregistered``: those without a phone
    registered with their current identity since phase 2 began (login order), each with the
    identity, when phase 2 began, the end of the grace period and whether a phone still
    registers with the legacy identity (it has the old settings)."""
    found = []
    with transaction(conn) as cursor:
        if not schema.table_exists(conn, cursor, "sipwave_account"):
            conn.connection.rollback()
            return {"phase2": 0, "unregistered": []}
        cursor.execute(
            conn.sql("SELECT login, current_username, current_domain, legacy_domain, grace_until "
                     "FROM sipwave_account WHERE wave = {p} AND state = {p} ORDER BY login"),
            (wave, PHASE2),
        )  # fmt: skip
        accounts = cursor.fetchall()
        for login, user, domain, legacy_domain, grace_until in accounts:
            since = phase_started(conn, cursor, login)
            if registered_since(conn, cursor, user, domain, since):
                continue
            found.append({
                "login": login,
                "identity": f"{user}@{domain}",
                "phase2_since": since or "",
                "grace_until": grace_until or "",
                "legacy_identity_registered": registered_since(
                    conn, cursor, login, legacy_domain, since
                ),
            })  # fmt: skip
        conn.connection.rollback()
    return {"phase2": len(accounts), "unregistered": found}


def on_every_proxy(results: list[dict]) -> list[dict]:
    """The accounts unregistered on every proxy of a run (a phone registers with one proxy of
    the site); a legacy registration seen on any proxy counts. Login order."""
    if not results:
        return []
    common = set.intersection(*({a["login"] for a in r["unregistered"]} for r in results))
    legacy = {a["login"] for r in results for a in r["unregistered"]
              if a["legacy_identity_registered"]}  # fmt: skip
    first = {a["login"]: a for a in results[0]["unregistered"]}
    return [first[login] | {"legacy_identity_registered": login in legacy}
            for login in sorted(common)]  # fmt: skip
