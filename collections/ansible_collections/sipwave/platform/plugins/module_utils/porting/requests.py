# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The port request table and the one way to move a request: Step, a step's transaction, which
checks each transition against the state machine, writes the request row and its event row,
and keeps the number inventory following the port (``porting`` while a request is open,
``active`` once ported, ``legacy`` again when it ends otherwise)."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.porting import states
from ansible_collections.sipwave.platform.plugins.module_utils.porting.exchange import (
    DATE_PATTERN,
    REF_PATTERN,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    AT_OLD_OPERATOR,
    NUMBER,
    TEMPORARY,
    now,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (
    BUMP_GENERATION,
    lock_for_writing,
    routing_generation,
)

COLUMNS = ("ref", "login", "migration_code", "donor", "numbers", "requested_date",
           "scheduled_date", "state", "reason", "wrong_secrets", "created_at",
           "updated_at")  # fmt: skip
ACTOR_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
REASON_MAX = 128


class PortError(ValueError):
    """A step that cannot be made; the message names the request, field or number."""


@dataclass
class Request:
    ref: str
    login: str
    migration_code: str
    donor: str
    numbers: list[str]
    requested_date: str
    scheduled_date: str | None
    state: str
    reason: str
    wrong_secrets: int
    created_at: str
    updated_at: str

    def view(self) -> dict:
        """What a result or report shows (the secret's hash is not part of it)."""
        return asdict(self)


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def checked_date(value: Any, what: str) -> str:
    text = str(value or "")
    if not DATE_PATTERN.fullmatch(text):
        raise PortError(f"{what}: {text!r} is not a date (YYYY-MM-DD)")
    try:
        time.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise PortError(f"{what}: {text!r} is not a date (YYYY-MM-DD)") from None
    return text


def checked_reason(value: Any) -> str:
    text = " ".join(str(value or "").split())
    if len(text) > REASON_MAX or not text.isprintable():
        raise PortError(f"reason: at most {REASON_MAX} printable characters")
    return text


class Step:
    """One step's transaction: moves requests, writes their events and the numbers."""

    def __init__(self, conn: Database, cursor: Any, run_id: str, actor: str, check_mode: bool):
        if not ACTOR_PATTERN.fullmatch(actor or ""):
            raise PortError("actor: 1 to 64 letters, digits, '.', '_', '@' or '-'")
        self.conn, self.cursor = conn, cursor
        self.run_id, self.actor, self.check_mode = run_id, actor, check_mode
        self.events: list[dict] = []
        self.routing_changed = False
        self.returned_temporary: list[str] = []

    def execute(self, statement: str, values: tuple = ()) -> None:
        if not self.check_mode:
            self.cursor.execute(self.conn.sql(statement), values)

    def read(self, where: str = "", values: tuple = ()) -> list[Request]:
        if not schema.table_exists(self.conn, self.cursor, "sipwave_port_request"):
            return []
        self.cursor.execute(
            self.conn.sql(f"SELECT {', '.join(COLUMNS)} FROM sipwave_port_request {where} "
                          "ORDER BY created_at, ref"),
            values,
        )  # fmt: skip
        requests = []
        for row in self.cursor.fetchall():
            fields = dict(zip(COLUMNS, row, strict=True))
            fields["numbers"] = [n for n in fields["numbers"].split(";") if n]
            fields["wrong_secrets"] = int(fields["wrong_secrets"])
            requests.append(Request(**fields))
        return requests

    def get(self, ref: str) -> Request:
        if not REF_PATTERN.fullmatch(ref or ""):
            raise PortError(f"ref {ref!r}: 1 to 40 letters, digits, '.', '_' or '-'")
        found = self.read("WHERE ref = {p}", (ref,))
        if not found:
            raise PortError(f"port request {ref}: no such request")
        return found[0]

    def numbers_of(self, login: str) -> dict[str, str]:
        """The account's own numbers and their states."""
        self.cursor.execute(
            self.conn.sql(
                "SELECT number, state FROM sipwave_number WHERE login = {p} AND kind = {p}"
            ),
            (login, NUMBER),
        )
        return dict(self.cursor.fetchall())

    def set_numbers(self, request: Request, state: str, only_from: tuple[str, ...]) -> None:
        for number in request.numbers:
            self.execute(
                "UPDATE sipwave_number SET state = {p} WHERE number = {p} AND login = {p} "
                f"AND kind = {{p}} AND state IN ({', '.join(['{p}'] * len(only_from))})",
                (state, number, request.login, NUMBER, *only_from),
            )
        self.routing_changed = True

    def move(self, request: Request, after: str, reason: str = "") -> None:
        """One transition: the request row, its event, and its numbers."""
        states.check(request.ref, request.state, after, request.reason)
        was_open = states.is_open(request.state, request.reason)
        before = request.state
        request.state, request.reason, request.updated_at = after, reason, now()
        self.execute(
            "UPDATE sipwave_port_request SET state = {p}, reason = {p}, wrong_secrets = {p}, "
            "scheduled_date = {p}, updated_at = {p} WHERE ref = {p}",
            (after, reason, request.wrong_secrets, request.scheduled_date, request.updated_at,
             request.ref),
        )  # fmt: skip
        self.event(request, before, after, reason)
        is_open = states.is_open(after, reason)
        if after == states.PORTED:
            self.set_numbers(request, "active", ("porting",))
            self.return_temporary(request.login)
        elif was_open and not is_open:
            self.set_numbers(request, "legacy", ("porting",))
        elif is_open and not was_open:
            self.set_numbers(request, "porting", ("legacy",))

    def event(self, request: Request, before: str | None, after: str, reason: str) -> None:
        self.execute(
            "INSERT INTO sipwave_port_event (ref, at, run_id, actor, from_state, to_state, "
            "reason) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
            (request.ref, request.updated_at, self.run_id, self.actor, before, after, reason),
        )
        self.events.append(
            {"ref": request.ref, "login": request.login, "from": before, "to": after,
             "reason": reason, "at": request.updated_at, "numbers": list(request.numbers),
             "scheduled_date": request.scheduled_date}
        )  # fmt: skip

    def return_temporary(self, login: str) -> None:
        """The account's numbers are served here now: its temporary number goes back to the
        pool, into quarantine, once none of its numbers is still at the old operator."""
        held = self.numbers_of(login)
        if any(state in AT_OLD_OPERATOR for state in held.values()):
            return
        self.cursor.execute(
            self.conn.sql("SELECT number FROM sipwave_number WHERE login = {p} AND kind = {p}"),
            (login, TEMPORARY),
        )
        for (number,) in self.cursor.fetchall():
            self.execute(
                "DELETE FROM sipwave_number WHERE number = {p} AND login = {p} AND kind = {p}",
                (number, login, TEMPORARY),
            )
            self.execute("DELETE FROM sipwave_number_quarantine WHERE number = {p}", (number,))
            self.execute(
                "INSERT INTO sipwave_number_quarantine (number, returned_on) VALUES ({p}, {p})",
                (number, today()),
            )
            self.returned_temporary.append(number)
            self.routing_changed = True

    def finish(self) -> None:
        if self.routing_changed and not self.check_mode:
            self.cursor.execute(BUMP_GENERATION)
        if not self.check_mode:
            self.conn.connection.commit()


def open_step(conn: Database, cursor: Any, run_id: str, actor: str, check_mode: bool) -> Step:
    step = Step(conn, cursor, run_id, actor, check_mode)
    if not check_mode:
        lock_for_writing(conn, cursor)
        schema.ensure(conn, cursor)
    return step


def result(step: Step, conn: Database, requests: list[Request]) -> dict:
    return {
        "changed": bool(step.events),
        "events": step.events,
        "requests": [r.view() for r in requests],
        "returned_temporary": step.returned_temporary,
        "routing_generation": routing_generation(conn, step.cursor),
    }
