# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Port requests of customers coming here, phase by phase: phase 1 (submit, resubmit), phase 2
(the request records for the donors, their answers), phase 3 (schedule, complete), and cancel.

Every step is one transaction under the wave engine's write lock (requests.Step). A step run
again after a crash finds the requests where the committed transaction left them and does
the rest; one run again after success changes nothing.
"""

from __future__ import annotations

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting import states
from ansible_collections.sipwave.platform.plugins.module_utils.porting.exchange import (
    REF_PATTERN,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.regime import (
    Regime,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.requests import (
    COLUMNS,
    PortError,
    Request,
    Step,
    checked_date,
    checked_reason,
    open_step,
    result,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting.secret import (
    bound_proof,
    proof,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    LIVE_STATES,
    now,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.transaction import (
    transaction,
)


def submit(
    conn: Database,
    regime: Regime,
    requests: list[dict],
    *,
    run_id: str,
    actor: str,
    check_mode: bool,
) -> dict:
    """Phase 1: customers' requests, each checked and stored (``requested``, then
    ``validated``), all in one transaction.

    Refused, with nothing stored, when a migration code does not fit the regime (the field is
    named), an account is not served here, or a number is not the account's or not at the old
    operator any more; the message names the request. The same request (same ref and
    content) again changes nothing. Each entry: ref, login, migration_code, secret_code,
    numbers (empty: every number still at the old operator), requested_date.
    """
    with transaction(conn) as cursor:
        step = open_step(conn, cursor, run_id, actor, check_mode)
        touched = []
        for index, entry in enumerate(requests):
            try:
                touched.append(_submit_one(step, regime, entry))
            except ValueError as exc:
                raise PortError(f"requests[{index}] (ref {entry.get('ref')!r}): {exc}") from None
        step.finish()
        return result(step, conn, touched)


def _submit_one(step: Step, regime: Regime, entry: dict) -> Request:
    conn, cursor = step.conn, step.cursor
    ref, login = str(entry.get("ref") or ""), str(entry.get("login") or "")
    numbers = list(dict.fromkeys(entry.get("numbers") or ()))
    if not REF_PATTERN.fullmatch(ref):
        raise PortError("ref: 1 to 40 letters, digits, '.', '_' or '-'")
    requested_date = checked_date(entry.get("requested_date"), "requested_date")
    parts = regime.parse(entry.get("migration_code"))  # CodeError names the field
    code = "".join(parts[f.name] for f in regime.fields)
    secret_proof = proof(entry.get("secret_code"), code)
    if not schema.table_exists(conn, cursor, "sipwave_account"):
        raise PortError(f"account {login}: not served here (no wave has run)")
    cursor.execute(conn.sql("SELECT state FROM sipwave_account WHERE login = {p}"), (login,))
    row = cursor.fetchone()
    if row is None or row[0] not in LIVE_STATES:
        state = row[0] if row else "not migrated"
        raise PortError(f"account {login}: {state}; only an account served here can port")
    held = step.numbers_of(login)
    existing = step.read("WHERE ref = {p}", (ref,))
    if existing:
        same = existing[0]
        if (same.login, same.migration_code, same.numbers) != (
            login,
            code,
            numbers or same.numbers,
        ):
            raise PortError("exists with other content")
        return same
    wanted = numbers or sorted(n for n, s in held.items() if s == "legacy")
    if not wanted:
        raise PortError(f"account {login}: no number at the old operator to port")
    for number in wanted:
        if number not in held:
            raise PortError(f"numbers: {number} is not a number of account {login}")
        if held[number] != "legacy":
            raise PortError(f"numbers: {number} is {held[number]}, not at the old operator")
    stamp = now()
    request = Request(ref, login, code, parts[regime.operator_field], wanted,
                      requested_date, None, states.REQUESTED, "", 0, stamp, stamp)  # fmt: skip
    step.execute(
        f"INSERT INTO sipwave_port_request ({', '.join(COLUMNS)}, secret_proof) VALUES "
        f"({', '.join(['{p}'] * (len(COLUMNS) + 1))})",
        (ref, login, code, request.donor, ";".join(wanted), requested_date, None,
         states.REQUESTED, "", 0, stamp, stamp, secret_proof),
    )  # fmt: skip
    step.event(request, None, states.REQUESTED, "")
    step.move(request, states.VALIDATED)
    return request


def resubmit(
    conn: Database, *, ref: str, secret_code: str, run_id: str, actor: str, check_mode: bool
) -> dict:
    """A new secret code for a request the donor rejected for its secret code."""
    with transaction(conn) as cursor:
        step = open_step(conn, cursor, run_id, actor, check_mode)
        request = step.get(ref)
        states.check(ref, request.state, states.VALIDATED, request.reason)
        step.execute(
            "UPDATE sipwave_port_request SET secret_proof = {p} WHERE ref = {p}",
            (proof(secret_code, request.migration_code), ref),
        )
        step.move(request, states.VALIDATED)
        step.finish()
        return result(step, conn, [request])


def outgoing(conn: Database, recipient: str) -> list[dict]:
    """The request records of every ``validated`` request (phase 2: to its donor)."""
    with transaction(conn) as cursor:
        step = Step(conn, cursor, "read", "sipwave", True)
        records = []
        for request in step.read("WHERE state = {p}", (states.VALIDATED,)):
            cursor.execute(
                conn.sql("SELECT secret_proof FROM sipwave_port_request WHERE ref = {p}"),
                (request.ref,),
            )
            attempt = request.wrong_secrets + 1
            records.append(
                {"record": "request", "ref": request.ref, "recipient": recipient,
                 "attempt": attempt, "donor": request.donor,
                 "migration_code": request.migration_code,
                 "secret_proof": bound_proof(cursor.fetchone()[0], recipient=recipient,
                                             ref=request.ref, attempt=attempt,
                                             code=request.migration_code),
                 "numbers": request.numbers, "requested_date": request.requested_date}
            )  # fmt: skip
        conn.connection.rollback()
        return records


def mark_notified(
    conn: Database, refs: list[str], *, run_id: str, actor: str, check_mode: bool
) -> dict:
    """The records of ``refs`` reached the donors' exchange: ``donor_notified``."""
    with transaction(conn) as cursor:
        step = open_step(conn, cursor, run_id, actor, check_mode)
        moved = []
        for ref in refs:
            request = step.get(ref)
            if request.state == states.VALIDATED:
                step.move(request, states.DONOR_NOTIFIED)
                moved.append(request)
        step.finish()
        return result(step, conn, moved)


def apply_answers(
    conn: Database, answers: list[dict], recipient: str, *, run_id: str, actor: str,
    check_mode: bool,
) -> dict:  # fmt: skip
    """The donors' answers (exchange.parse_answers): accepted or rejected with a reason. An
    answer to a request that is not waiting for one (answered before, cancelled) is skipped
    and listed; an answer naming another recipient, or a code other than the request's, is
    refused."""
    with transaction(conn) as cursor:
        step = open_step(conn, cursor, run_id, actor, check_mode)
        moved, skipped, unknown = [], [], []
        for answer in answers:
            where = f"{answer.get('file', 'answers')}:{answer['line']}"
            if answer["recipient"] != recipient:
                raise PortError(f"{where}: answer for {answer['recipient']}, not {recipient}")
            found = step.read("WHERE ref = {p}", (answer["ref"],))
            if not found:
                unknown.append(f"{where}: {answer['ref']}")  # not ours: listed, not applied
                continue
            request = found[0]
            if (answer["migration_code"], answer["donor"]) != (
                request.migration_code,
                request.donor,
            ):
                raise PortError(
                    f"{where}: migration code or donor differ from request {request.ref}"
                )
            stale = answer["attempt"] != request.wrong_secrets + 1
            if request.state != states.DONOR_NOTIFIED or stale:
                skipped.append(request.ref)  # answered before, or an earlier attempt's answer
                continue
            if answer["answer"] == "accepted":
                request.scheduled_date = max(request.requested_date, answer["date"])
                step.move(request, states.DONOR_ACCEPTED)
            elif answer["reason"] == states.SECRET_REASON:
                request.wrong_secrets += 1
                step.move(request, states.DONOR_REJECTED, states.SECRET_REASON)
                if request.wrong_secrets > states.WRONG_SECRET_LIMIT:
                    step.move(request, states.FAILED, states.BLOCKED_REASON)
            else:
                step.move(request, states.DONOR_REJECTED, answer["reason"])
            moved.append(request)
        step.finish()
        done = result(step, conn, moved)
        done["skipped"] = skipped
        done["unknown"] = unknown
        return done


def _select(step: Step, refs: list[str] | None, state: str) -> list[Request]:
    if refs:
        return [step.get(ref) for ref in refs]
    return step.read("WHERE state = {p}", (state,))


def schedule(
    conn: Database, refs: list[str] | None, date: str | None, *, run_id: str, actor: str,
    check_mode: bool,
) -> dict:  # fmt: skip
    """Phase 3: accepted requests get their provisioning date (by default the later of the
    requested date and the donor's)."""
    with transaction(conn) as cursor:
        step = open_step(conn, cursor, run_id, actor, check_mode)
        moved = []
        for request in _select(step, refs, states.DONOR_ACCEPTED):
            if request.state in (states.SCHEDULED, states.PORTED):
                continue  # done before: the same command again changes nothing
            if date:
                request.scheduled_date = checked_date(date, "date")
            step.move(request, states.SCHEDULED)
            moved.append(request)
        step.finish()
        return result(step, conn, moved)


def complete(
    conn: Database, refs: list[str] | None, outcome: str, reason: str, *, on: str,
    run_id: str, actor: str, check_mode: bool,
) -> dict:  # fmt: skip
    """Phase 3's end: ``ported`` (the numbers are active here) or ``failed(reason)``. Without
    refs, every scheduled request whose date has come."""
    with transaction(conn) as cursor:
        step = open_step(conn, cursor, run_id, actor, check_mode)
        moved = []
        chosen = _select(step, refs, states.SCHEDULED)
        if not refs:
            chosen = [r for r in chosen if (r.scheduled_date or "") <= on]
        for request in chosen:
            if request.state == outcome:
                continue
            if request.state != states.SCHEDULED:
                raise PortError(f"port request {request.ref}: {request.state}, not scheduled")
            if outcome == states.FAILED:
                step.move(request, states.FAILED, checked_reason(reason) or "provisioning failed")
            else:
                step.move(request, states.PORTED)
            moved.append(request)
        step.finish()
        return result(step, conn, moved)


def cancel(
    conn: Database, refs: list[str], reason: str, *, run_id: str, actor: str, check_mode: bool
) -> dict:
    """The customer or operator withdraws: ``cancelled``, the numbers back to ``legacy``."""
    with transaction(conn) as cursor:
        step = open_step(conn, cursor, run_id, actor, check_mode)
        moved = []
        for ref in refs:
            request = step.get(ref)
            if request.state == states.CANCELLED:
                continue
            step.move(request, states.CANCELLED, checked_reason(reason))
            moved.append(request)
        step.finish()
        return result(step, conn, moved)


def listing(conn: Database, login: str | None = None) -> list[dict]:
    """Every request (of one account), with its events."""
    with transaction(conn) as cursor:
        step = Step(conn, cursor, "read", "sipwave", True)
        requests = step.read("WHERE login = {p}", (login,)) if login else step.read()
        views = []
        for request in requests:
            cursor.execute(
                conn.sql("SELECT at, actor, from_state, to_state, reason FROM sipwave_port_event "
                         "WHERE ref = {p} ORDER BY id"),
                (request.ref,),
            )  # fmt: skip
            events = [dict(zip(("at", "actor", "from", "to", "reason"), row, strict=True))
                      for row in cursor.fetchall()]  # fmt: skip
            views.append({**request.view(), "events": events})
        conn.connection.rollback()
        return views
