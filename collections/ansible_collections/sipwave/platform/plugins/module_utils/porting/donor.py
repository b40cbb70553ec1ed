# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sipwave as the losing operator: migration codes for customers who leave with their numbers,
and the answers to the requests other operators send for them.

A code is issued once per account (``issued``); its secret code is derived from the site
secret (credentials.port_secret), so only its hash is stored and the mail that shows it to
the customer derives it again. A code whose account is live again (a rollback reopened it)
is ``withdrawn`` and answers ``not_closed``; one that got more than WRONG_SECRET_LIMIT wrong
secret codes is ``blocked``; one that was accepted is ``accepted`` and answers every other
request ``already_ported``. Each attempt of a request (its sending with one secret code) is
answered once: the same attempt again gets the same answer and counts nothing twice.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.credentials import port_secret
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting import states
from ansible_collections.sipwave.platform.plugins.module_utils.porting.regime import (
    Regime,
    RegimeError,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.requests import (
    PortError,
    today,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.secret import (
    proof,
    proofs_match,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import NUMBER, now
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (
    lock_for_writing,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.transaction import (
    transaction,
)

ISSUED, ACCEPTED, BLOCKED, WITHDRAWN = "issued", "accepted", "blocked", "withdrawn"


def _closed_accounts(conn: Database, cursor: Any) -> dict[str, list[str]] | None:
    """Closed accounts with numbers kept for porting (None: no wave engine tables here)."""
    if not schema.table_exists(conn, cursor, "sipwave_account"):
        return None
    cursor.execute(
        conn.sql("SELECT n.login, n.number FROM sipwave_number n JOIN sipwave_account a "
                 "ON a.login = n.login WHERE a.state = 'closed' AND n.kind = {p} "
                 "AND n.state = 'kept_for_porting' ORDER BY n.login, n.number"),
        (NUMBER,),
    )  # fmt: skip
    accounts: dict[str, list[str]] = {}
    for login, number in cursor.fetchall():
        accounts.setdefault(login, []).append(number)
    return accounts


def _codes(conn: Database, cursor: Any) -> dict[str, dict]:
    cursor.execute(
        "SELECT code, login, numbers, state, wrong_secrets, secret_proof FROM sipwave_port_code"
    )
    return {
        code: {"code": code, "login": login, "numbers": [n for n in numbers.split(";") if n],
               "state": state, "wrong_secrets": int(wrong), "secret_proof": hashed}
        for code, login, numbers, state, wrong, hashed in cursor.fetchall()
    }  # fmt: skip


def issue(
    conn: Database,
    regime: Regime,
    *,
    operator: str,
    service: str,
    country_code: str,
    site_secret: str,
    accounts: list[dict] | None,
    check_mode: bool,
) -> dict:
    """Codes for every closed account whose numbers are kept for porting (or, on a platform
    without the wave engine's tables, the lab's legacy one, for ``accounts``: login and
    numbers of customers who asked to leave). Codes of accounts no longer closed are
    withdrawn. Returns the codes issued, the codes withdrawn, and the accounts that could
    not get one (their number does not fit the regime's resource field)."""
    with transaction(conn) as cursor:
        if not check_mode:
            lock_for_writing(conn, cursor)
            schema.ensure(conn, cursor)
        leaving = _closed_accounts(conn, cursor)
        if accounts is not None:
            leaving = {str(a["login"]): list(a["numbers"]) for a in accounts}
        elif leaving is None:
            leaving = {}
        codes = (
            _codes(conn, cursor) if schema.table_exists(conn, cursor, "sipwave_port_code") else {}
        )
        by_login = {c["login"]: c for c in codes.values() if c["state"] != WITHDRAWN}
        issued, withdrawn, problems = [], [], []
        stamp = now()
        for login, numbers in sorted(leaving.items()):
            if login in by_login:
                continue
            if not numbers:
                problems.append({"login": login, "reason": "no number to port"})
                continue
            first = numbers[0]
            resource = (
                first[1 + len(country_code) :]
                if first.startswith("+" + country_code)
                else first[1:]
            )
            try:
                code = regime.issue(operator, resource, service)
            except RegimeError as exc:
                problems.append({"login": login, "reason": str(exc)})
                continue
            hashed = proof(port_secret(site_secret, code), code)
            row = (";".join(numbers), hashed, ISSUED, 0, stamp, code)
            if code in codes:  # withdrawn before: issued again, with the same secret code
                statement = (
                    "UPDATE sipwave_port_code SET numbers = {p}, secret_proof = {p}, state = {p}, "
                    "wrong_secrets = {p}, updated_at = {p} WHERE code = {p}"
                )
            else:
                statement = ("INSERT INTO sipwave_port_code (numbers, secret_proof, state, "
                             "wrong_secrets, updated_at, code, login, issued_at) "
                             "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})")  # fmt: skip
                row = (*row, login, stamp)
            if not check_mode:
                cursor.execute(conn.sql(statement), row)
            issued.append({"login": login, "migration_code": code, "numbers": numbers})
        if accounts is None:
            for code in codes.values():
                if code["state"] == ISSUED and code["login"] not in leaving:
                    if not check_mode:
                        cursor.execute(
                            conn.sql("UPDATE sipwave_port_code SET state = {p}, updated_at = {p} "
                                     "WHERE code = {p}"),
                            (WITHDRAWN, stamp, code["code"]),
                        )  # fmt: skip
                    withdrawn.append({"login": code["login"], "migration_code": code["code"]})
        if not check_mode:
            conn.connection.commit()
        gone = {w["migration_code"] for w in withdrawn}
        in_force = [
            {"login": c["login"], "migration_code": c["code"], "numbers": c["numbers"]}
            for c in codes.values()
            if c["state"] == ISSUED and c["code"] not in gone
        ]
        return {"changed": bool(issued or withdrawn), "issued": issued, "withdrawn": withdrawn,
                "problems": problems,
                "codes": sorted(in_force + issued, key=lambda c: c["login"])}  # fmt: skip


def answer(conn: Database, requests: list[dict], *, operator: str, check_mode: bool) -> dict:
    """Answer the request records (exchange.parse_requests) addressed to ``operator``."""
    with transaction(conn) as cursor:
        if not check_mode:
            lock_for_writing(conn, cursor)
            schema.ensure(conn, cursor)
        present = schema.table_exists(conn, cursor, "sipwave_port_code")
        codes = _codes(conn, cursor) if present else {}
        accounts = _account_states(conn, cursor)
        answered: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        if present:
            cursor.execute(
                "SELECT recipient, ref, attempt, answer, reason, answered_at "
                "FROM sipwave_port_answer"
            )
            answered = {
                (r, ref, attempt): (a, why, at[:10])
                for r, ref, attempt, a, why, at in cursor.fetchall()
            }
        latest: dict[tuple[str, str], dict] = {}
        new = 0
        stamp = now()
        for record in requests:
            where = f"{record.get('file', 'requests')}:{record['line']}"
            if record["donor"] != operator:
                raise PortError(f"{where}: request for operator {record['donor']}, not {operator}")
            if record["record"] != "request":
                continue
            # An attempt is this request, this code and this proof: a record that copies the
            # reference of another operator's request cannot take that request's answer.
            digest = hashlib.sha256(
                f"{record['migration_code']}|{record['secret_proof']}".encode()
            ).hexdigest()[:24]
            key = (record["recipient"], record["ref"], f"{record['attempt']}:{digest}")
            if key in answered:
                result, reason, date = answered[key]
            else:
                result, reason = _decide(record, codes.get(record["migration_code"]), accounts)
                date = today()
                code = codes.get(record["migration_code"])
                if code is not None and not check_mode:
                    cursor.execute(
                        conn.sql("UPDATE sipwave_port_code SET state = {p}, wrong_secrets = {p}, "
                                 "updated_at = {p} WHERE code = {p}"),
                        (code["state"], code["wrong_secrets"], stamp, code["code"]),
                    )  # fmt: skip
                if not check_mode:
                    cursor.execute(
                        conn.sql("INSERT INTO sipwave_port_answer (recipient, ref, attempt, code, "
                                 "answer, reason, answered_at) "
                                 "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"),
                        (*key, record["migration_code"], result, reason, stamp),
                    )  # fmt: skip
                answered[key] = (result, reason, date)
                new += 1
            # One answer per request: its latest attempt's (files are read oldest first).
            latest[(record["recipient"], record["ref"])] = {
                "record": "answer", "ref": record["ref"], "attempt": record["attempt"],
                "recipient": record["recipient"], "donor": operator,
                "migration_code": record["migration_code"], "answer": result, "reason": reason,
                "date": date}  # fmt: skip
        if not check_mode:
            conn.connection.commit()
        return {"changed": new > 0, "answers": list(latest.values()), "new_answers": new}


def _account_states(conn: Database, cursor: Any) -> dict[str, str]:
    """The wave engine's accounts and their states (none on the lab's legacy platform)."""
    if not schema.table_exists(conn, cursor, "sipwave_account"):
        return {}
    cursor.execute("SELECT login, state FROM sipwave_account")
    return dict(cursor.fetchall())


def _decide(record: dict, code: dict | None, accounts: dict[str, str]) -> tuple[str, str]:
    """accepted/rejected and the reason; updates the code's counters and state in place."""
    if code is None:
        return "rejected", "unknown_code"
    if code["state"] == BLOCKED:
        return "rejected", "blocked"
    if code["state"] == ACCEPTED:
        return "rejected", "already_ported"
    if code["state"] == WITHDRAWN:
        return "rejected", "not_closed"
    request = {"recipient": record["recipient"], "ref": record["ref"],
               "attempt": record["attempt"], "code": code["code"]}  # fmt: skip
    if not proofs_match(record["secret_proof"], code["secret_proof"], **request):
        code["wrong_secrets"] += 1
        if code["wrong_secrets"] > states.WRONG_SECRET_LIMIT:
            code["state"] = BLOCKED
        return "rejected", states.SECRET_REASON
    if not set(record["numbers"]) <= set(code["numbers"]):
        return "rejected", "numbers"
    # An account the wave engine serves must be closed; a customer of a platform without it
    # (the lab's legacy operator) was given the code because they asked to leave.
    if accounts.get(code["login"], "closed") != "closed":
        return "rejected", "not_closed"
    code["state"] = ACCEPTED
    return "accepted", ""
