"""Shared by the wave tests: a real SQLite file with the proxy's schema, accounts, dumps."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

from ansible_collections.sipwave.platform.plugins.module_utils import credentials
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import generated_password
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import (
    connection as dbconn,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.consent import record_consent
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    Consent,
    Settings,
    WaveAccount,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.rollback import rollback_wave
from ansible_collections.sipwave.platform.plugins.module_utils.wave.run import run_wave

PROJECT = Path(__file__).resolve().parents[2]
LEGACY = "ip.tanifon.pl"
NEW = "sip.sipwave.test"
TODAY = date(2026, 11, 22)
SITE_SECRET = "test-site-secret"


def password_of(login: str) -> str:
    return f"Pw-{login}-secret"


def create_database(path: Path) -> Path:
    """The proxy database as the kamailio role creates it (kamailio_db.schema.ensure)."""
    with sqlite3.connect(path) as connection:
        schema.ensure(Database("sqlite", connection, sqlite3.Error), connection.cursor())
    return path


def account(
    login: str,
    numbers: tuple[str, ...] = (),
    dialin: tuple[str, ...] = (),
    *,
    ha1_only: bool = False,
    balance: str = "10.00",
) -> WaveAccount:
    """What the action plugin makes of a good export row: hashes of both identities."""
    password = password_of(login)
    new_login = f"tnf{login}"
    new_password = generated_password(SITE_SECRET, login) if ha1_only else password
    return WaveAccount(
        login=login,
        legacy_domain=LEGACY,
        department="sales",
        balance=balance,
        numbers=numbers,
        dialin_numbers=dialin,
        legacy_credentials=(
            credentials.ha1(login, LEGACY, password),
            "" if ha1_only else credentials.ha1b(login, LEGACY, password),
        ),
        new_credentials=(
            credentials.ha1(new_login, NEW, new_password),
            credentials.ha1b(new_login, NEW, new_password),
        ),
        password_generated=ha1_only,
    )


def wave_accounts(count: int = 6) -> list[WaveAccount]:
    return [
        account(
            f"4812340{index:02d}",
            numbers=(f"+4822123{index:04d}", f"+4858123{index:04d}")[: 1 + index % 2],
            dialin=(f"+48600100{index:03d}",) if index % 3 == 0 else (),
            ha1_only=index == 5,
        )
        for index in range(count)
    ]


def secrets_of(accounts) -> list[str]:
    """Every password and hash the accounts stand for: none may show anywhere."""
    found = []
    for acc in accounts:
        found.extend(h for h in (*acc.legacy_credentials, *acc.new_credentials) if h)
        found.append(password_of(acc.login))
        if acc.password_generated:
            found.append(generated_password(SITE_SECRET, acc.login))
    return found


def settings(phase: int = 1, today: date = TODAY, **overrides) -> Settings:
    values = {
        "wave": "wave1",
        "phase": phase,
        "new_domain": NEW,
        "login_prefix": "tnf",
        "grace_days": 14,
        "closure_numbers": "kept_for_porting",
        "today": today,
        "run_id": "test-run",
    }
    return Settings(**(values | overrides))


def run(database: Path, accounts, phase: int = 1, rejected=None, check=False, **overrides):
    conn = dbconn.connect("sqlite", database=str(database))
    try:
        return run_wave(conn, accounts, rejected or {}, settings(phase, **overrides), check)
    finally:
        conn.close()


def consent(database: Path, **decisions: str) -> list[dict]:
    conn = dbconn.connect("sqlite", database=str(database))
    try:
        return record_consent(
            conn,
            [Consent(login, decision) for login, decision in decisions.items()],
            "test-run",
            False,
        )
    finally:
        conn.close()


def rollback(database: Path, check=False, only=None, **overrides):
    conn = dbconn.connect("sqlite", database=str(database))
    try:
        return rollback_wave(conn, settings(**overrides), check, only)
    finally:
        conn.close()


def dump(database: Path, *, with_times: bool = False) -> dict[str, list[tuple]]:
    """What Kamailio and the engine see, without row ids (and without run times)."""
    queries = {
        "subscriber": "SELECT username, domain, ha1, ha1b FROM subscriber",
        "dbaliases": "SELECT alias_username, alias_domain, username, domain FROM dbaliases",
        "sipwave_account": "SELECT login, state, wave, legacy_domain, current_username, "
        "current_domain, grace_until, department, balance"
        + (", updated_at, run_id" if with_times else "")
        + " FROM sipwave_account",
        "sipwave_number": "SELECT number, login, kind, state FROM sipwave_number",
    }
    with sqlite3.connect(database) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        return {
            table: sorted(connection.execute(query).fetchall()) if table in tables else []
            for table, query in queries.items()
        }


def count(database: Path, table: str) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- the routing view, the same expectations on every backend ----------------------------------

# Three accounts: one stays in phase 1, one moves to phase 2 (grace running), one closes.
STAYING = account("481234101", ("+48221234101",), ("+48600100101",))
MOVING = account("481234102", ("+48221234102",))
CLOSING = account("481234103", ("+48221234103", "+48581234103"), ("+48600100103",))
VIEW_ACCOUNTS = [STAYING, MOVING, CLOSING]


def routing_view(cursor) -> dict[str, tuple[int, str]]:
    """The sipwave_routing view as Kamailio's htable loads it: key -> (value type, value)."""
    cursor.execute("SELECT key_name, key_type, value_type, key_value, expires FROM sipwave_routing")
    view = {}
    for key_name, key_type, value_type, key_value, expires in cursor.fetchall():
        assert (key_type, expires) == (0, 0), key_name
        assert key_name not in view, f"{key_name} twice"
        view[key_name] = (int(value_type), str(key_value))
    return view


SERVED = (1, "1")

# After phase 1: every account's legacy identity and numbers are served here.
VIEW_AFTER_PHASE1 = {
    f"i:481234101@{LEGACY}": SERVED,
    f"i:481234102@{LEGACY}": SERVED,
    f"i:481234103@{LEGACY}": SERVED,
    "n:48221234101": (0, f"481234101@{LEGACY}"),
    "n:48221234102": (0, f"481234102@{LEGACY}"),
    "n:48221234103": (0, f"481234103@{LEGACY}"),
    "n:48581234103": (0, f"481234103@{LEGACY}"),
    # The number each identity presents as dial-in caller: its account's first number.
    f"a:481234101@{LEGACY}": (0, "+48221234101"),
    f"a:481234102@{LEGACY}": (0, "+48221234102"),
    f"a:481234103@{LEGACY}": (0, "+48221234103"),
    # The department of each identity's account, for the call records.
    f"d:481234101@{LEGACY}": (0, "sales"),
    f"d:481234102@{LEGACY}": (0, "sales"),
    f"d:481234103@{LEGACY}": (0, "sales"),
    "g:generation": (1, "1"),
}


def view_after_closure(closure_numbers: str) -> dict[str, tuple[int, str]]:
    """Phase 2 with MOVING consented and CLOSING closed (numbers kept or released)."""
    return {
        f"i:481234101@{LEGACY}": SERVED,
        f"i:481234102@{LEGACY}": SERVED,  # grace period: the legacy identity still works
        f"i:tnf481234102@{NEW}": SERVED,
        "n:48221234101": (0, f"481234101@{LEGACY}"),
        "n:48221234102": (0, f"tnf481234102@{NEW}"),
        # Phase 2: the new login presents the account's number (the legacy one, in its
        # grace period, has no alias left and presents its numeric login).
        f"a:481234101@{LEGACY}": (0, "+48221234101"),
        f"a:tnf481234102@{NEW}": (0, "+48221234102"),
        # Both identities of the account in its grace period call for its department; a
        # closed account has none.
        f"d:481234101@{LEGACY}": (0, "sales"),
        f"d:481234102@{LEGACY}": (0, "sales"),
        f"d:tnf481234102@{NEW}": (0, "sales"),
        "c:481234103": SERVED,
        "p:48221234103": (0, closure_numbers),
        "p:48581234103": (0, closure_numbers),
        "g:generation": (1, "2"),
    }
