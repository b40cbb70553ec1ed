# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A staff member's account in the proxy database (playbooks/user_add.yml): the input checked
value by value, then one plan that reads what the database holds and writes, in one
transaction, the subscriber row (HA1 and HA1b only), the number taken from the staff number
inventory with its alias, the dial-in caller numbers, the sipwave_staff row and an audit
row, counting the routing generation up. A second run with the same input changes nothing.

The staff member's SIP password is credentials.staff_password (site secret and login): the
controller hashes it, the phone's files and the settings mail derive it again."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils import control_chars
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    NumberError,
    NumberPlan,
    normalise,
)
from ansible_collections.sipwave.platform.plugins.module_utils.export_fields import (
    LOGIN_PATTERN,
    MAX_LOGIN_LENGTH,
    parse_device,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)
from ansible_collections.sipwave.platform.plugins.module_utils.subscriber_db import Credentials
from ansible_collections.sipwave.platform.plugins.module_utils.wave import transaction
from ansible_collections.sipwave.platform.plugins.module_utils.wave.model import (
    DIALIN,
    NUMBER,
    MigrationError,
    Settings,
    TemporaryPool,
    alias_user,
    now,
)
from ansible_collections.sipwave.platform.plugins.module_utils.wave.plan import TemporaryNumbers
from ansible_collections.sipwave.platform.plugins.module_utils.wave.tables import (
    BUMP_GENERATION,
    lock_for_writing,
    read_state,
    routing_generation,
)

STAFF_WAVE = "staff"  # sipwave_audit.wave of staff changes
ACTIVE = "active"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
MAX_NAME_LENGTH = 128


class StaffError(MigrationError):
    """Bad input or a clash with what the database holds; names the value, never a secret."""


@dataclass(frozen=True)
class StaffMember:
    """A staff member as the input describes them (checked, numbers in E.164)."""

    login: str
    domain: str
    display_name: str
    email: str
    department: str
    devices: tuple[str, ...]  # vendor:model:mac, MAC in lower case without separators
    dialin_numbers: tuple[str, ...]
    number: str | None = None  # asked for; else the lowest free number of the inventory

    @property
    def macs(self) -> list[str]:
        return [device.rsplit(":", 1)[1] for device in self.devices]


def member_from_input(values: dict, plan: NumberPlan, domain: str) -> StaffMember:
    """The input as a StaffMember; StaffError lists every bad value by name."""
    problems = []
    login = str(values.get("login") or "")
    if not LOGIN_PATTERN.fullmatch(login) or len(login) > MAX_LOGIN_LENGTH:
        problems.append(
            f"login {login!r} must be 1 to {MAX_LOGIN_LENGTH} letters, digits, '.', '_' or '-'"
        )
    texts = {key: str(values.get(key) or "") for key in ("display_name", "email", "department")}
    for key, text in texts.items():
        if control_chars.first(text) is not None or len(text) > MAX_NAME_LENGTH:
            problems.append(f"{key} must be one line of at most {MAX_NAME_LENGTH} characters")
    if texts["email"] and not _EMAIL.fullmatch(texts["email"]):
        problems.append(f"email {texts['email']!r} is not an e-mail address")
    devices = []
    for written in values.get("devices") or []:
        device, _reason, message = parse_device(str(written))
        if device is None:
            problems.append(message)
        elif any(d.endswith(":" + device.mac) for d in devices):
            problems.append(f"MAC {device.mac} is given twice")
        elif control_chars.first(device.model) is not None:
            problems.append(f"device {written!r}: the model holds a control character")
        else:
            devices.append(f"{device.vendor}:{device.model}:{device.mac}")

    def number_of(key: str, written) -> str | None:
        try:
            return normalise(str(written), plan)
        except NumberError as exc:
            problems.append(f"{key}: {exc}")
            return None

    number = number_of("number", values["number"]) if values.get("number") else None
    dialin = []
    for written in values.get("dialin_numbers") or []:
        found = number_of("dialin_numbers", written)
        if found and found not in dialin:
            dialin.append(found)
    if problems:
        raise StaffError("refused: " + "; ".join(problems))
    return StaffMember(login, domain, texts["display_name"], texts["email"],
                       texts["department"], tuple(devices), tuple(dialin), number)  # fmt: skip


@dataclass
class StaffPlan:
    """What the run found and does: views without secrets, and the rows to write."""

    before: dict | None
    after: dict
    number: str
    statements: list[tuple[str, list[tuple]]] = field(default_factory=list, repr=False)

    @property
    def changed(self) -> bool:
        return bool(self.statements)


def _holder(state, number: str) -> str | None:
    """The login that holds ``number`` (any kind) or the identity an alias routes it to."""
    for login, numbers in state.numbers.items():
        if any(n == number for n, _kind in numbers):
            return login
    for alias in state.aliases.values():
        if "+" + alias.alias_username == number:
            return f"{alias.username}@{alias.domain}"
    return None


def _read_staff(conn: Database, cursor: Any, login: str) -> dict | None:
    if not schema.table_exists(conn, cursor, "sipwave_staff"):
        return None
    cursor.execute(
        conn.sql("SELECT login, domain, display_name, email, department, devices "
                 "FROM sipwave_staff WHERE login = {p}"), (login,)
    )  # fmt: skip
    row = cursor.fetchone()
    keys = ("login", "domain", "display_name", "email", "department", "devices")
    return dict(zip(keys, row, strict=True)) if row else None


def _other_staff_macs(conn: Database, cursor: Any, login: str) -> dict[str, str]:
    if not schema.table_exists(conn, cursor, "sipwave_staff"):
        return {}
    cursor.execute(conn.sql("SELECT login, devices FROM sipwave_staff WHERE login <> {p}"),
                   (login,))  # fmt: skip
    return {
        device.rsplit(":", 1)[1]: other
        for other, devices in cursor.fetchall()
        for device in devices.split(";")
        if device
    }


def _view(member: StaffMember, number: str | None, credentials: str) -> dict:
    return {
        "identity": f"{member.login}@{member.domain}",
        "number": number,
        "dialin_numbers": list(member.dialin_numbers),
        "devices": list(member.devices),
        "display_name": member.display_name,
        "email": member.email,
        "department": member.department,
        "credentials": credentials,
    }


def plan_member(
    conn: Database,
    cursor: Any,
    member: StaffMember,
    credentials: Credentials,
    pools: tuple[TemporaryPool, ...],
    today: date,
    login_prefix: str,
    run_id: str = "",
) -> StaffPlan:
    """Check the member against the database and plan the rows; StaffError names a clash."""
    login, domain = member.login, member.domain
    key = (login, domain)
    state = read_state(conn, cursor, [domain])
    stored = _read_staff(conn, cursor, login)
    customer = state.accounts.get(login) or next(
        (a for a in state.accounts.values() if (a.current_username, a.current_domain) == key),
        None,
    )
    if customer is not None:
        raise StaffError(f"login {login!r} is taken by the customer account {customer.login} "
                         f"(wave {customer.wave})")  # fmt: skip
    if login_prefix and login.startswith(login_prefix):
        raise StaffError(f"login {login!r} starts with {login_prefix!r}, the prefix of the "
                         "customers' phase-2 logins")  # fmt: skip
    if stored is None and key in state.subscribers:
        raise StaffError(f"{login}@{domain} is already a SIP account of this proxy")
    if stored is not None and stored["domain"] != domain:
        raise StaffError(f"staff member {login} is on {stored['domain']}, not {domain}")
    macs = _other_staff_macs(conn, cursor, login)
    for mac in member.macs:
        if mac in macs:
            raise StaffError(f"MAC {mac} is a phone of staff member {macs[mac]}")
    held = state.numbers.get(login, {})
    current = next((n for (n, kind) in held if kind == NUMBER), None)
    settings = Settings(
        wave=STAFF_WAVE, phase=1, new_domain=domain, login_prefix=login_prefix, grace_days=0,
        closure_numbers="released", today=today, run_id="", temporary_pools=pools,
    )  # fmt: skip
    allocator = TemporaryNumbers(state, settings)
    number = member.number or current
    if number is None:
        number = allocator.take_lowest()
        if number is None:
            raise StaffError("the staff number inventory has no free number left")
    elif number != current:
        if not any(pool.holds(number) for pool in pools):
            ranges = ", ".join(f"{p.first}-{p.last}" for p in pools) or "none configured"
            raise StaffError(f"number {number} is not in the staff number inventory ({ranges})")
        if not allocator.is_free(number):
            holder = _holder(state, number) or "a number returned to the pool lately"
            raise StaffError(f"number {number} is already taken ({holder})")
    for dialin in member.dialin_numbers:
        holder = next((other for other, numbers in state.numbers.items()
                       if other != login and (dialin, DIALIN) in numbers), None)  # fmt: skip
        if holder is not None:
            raise StaffError(f"dial-in number {dialin} is authorised for account {holder}")
    want_numbers = {
        (number, NUMBER): ACTIVE,
        **{(n, DIALIN): ACTIVE for n in member.dialin_numbers},
    }
    want_alias = (alias_user(number), domain, login, domain)
    aliases = {i: tuple(a) for i, a in state.aliases.items() if (a.username, a.domain) == key}
    creds_state = "unchanged" if state.subscribers.get(key) == tuple(credentials) else "set"
    before = _view(_stored_member(stored, held), current, "set") if stored else None
    plan = StaffPlan(before, _view(member, number, creds_state), number)
    statements = plan.statements
    if state.subscribers.get(key) != tuple(credentials):
        if key in state.subscribers:
            statements.append(
                (
                    "UPDATE subscriber SET ha1 = {p}, ha1b = {p} "
                    "WHERE username = {p} AND domain = {p}",
                    [(*credentials, *key)],
                )
            )
        else:
            statements.append(
                (
                    "INSERT INTO subscriber (username, domain, ha1, ha1b) "
                    "VALUES ({p}, {p}, {p}, {p})",
                    [(*key, *credentials)],
                )
            )
    if sorted(aliases.values()) != [want_alias]:
        statements.append(("DELETE FROM dbaliases WHERE id = {p}", [(i,) for i in aliases]))
        statements.append(
            (
                "INSERT INTO dbaliases (alias_username, alias_domain, username, "
                "domain) VALUES ({p}, {p}, {p}, {p})",
                [want_alias],
            )
        )
    if held != want_numbers:
        statements.append(("DELETE FROM sipwave_number WHERE login = {p}", [(login,)]))
        statements.append(
            (
                "INSERT INTO sipwave_number (number, login, kind, state, site, carrier) "
                "VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                [
                    (n, login, kind, s, *settings.number_columns(n, kind))
                    for (n, kind), s in sorted(want_numbers.items())
                ],
            )
        )
    row = (domain, member.display_name, member.email, member.department, ";".join(member.devices))
    if stored is None or tuple(stored[k] for k in _STAFF_COLUMNS[1:6]) != row:
        statements.append(("DELETE FROM sipwave_staff WHERE login = {p}", [(login,)]))
        statements.append((f"INSERT INTO sipwave_staff ({', '.join(_STAFF_COLUMNS)}) "
                           f"VALUES ({', '.join(['{p}'] * len(_STAFF_COLUMNS))})",
                           [(login, *row, now(), run_id)]))  # fmt: skip
    return plan


_STAFF_COLUMNS = ("login", "domain", "display_name", "email", "department", "devices",
                  "updated_at", "run_id")  # fmt: skip


def _stored_member(stored: dict, held: dict[tuple[str, str], str]) -> StaffMember:
    devices = tuple(d for d in stored["devices"].split(";") if d)
    dialin = tuple(sorted(n for (n, kind) in held if kind == DIALIN))
    return StaffMember(stored["login"], stored["domain"], stored["display_name"],
                       stored["email"], stored["department"], devices, dialin)  # fmt: skip


def apply_member(
    conn: Database,
    member: StaffMember,
    credentials: Credentials,
    pools: tuple[TemporaryPool, ...],
    today: date,
    login_prefix: str,
    run_id: str,
    check_mode: bool,
) -> tuple[StaffPlan, int]:
    """Plan the member and, unless check mode, write the plan in one transaction with an
    audit row and the routing generation counted up. Returns the plan and the generation."""
    with transaction.transaction(conn) as cursor:
        if not schema.table_exists(conn, cursor, "subscriber"):
            raise StaffError("the database has no subscriber table: deploy the kamailio role")
        if not check_mode:
            lock_for_writing(conn, cursor)
            schema.ensure(conn, cursor, add_columns=False)
        plan = plan_member(conn, cursor, member, credentials, pools, today, login_prefix, run_id)
        if plan.changed and not check_mode:
            statements = list(plan.statements)
            statements.append((transaction.AUDIT_INSERT, [(
                now(), run_id, STAFF_WAVE, member.login,
                "staff_added" if plan.before is None else "staff_updated",
                json.dumps(plan.before, sort_keys=True), json.dumps(plan.after, sort_keys=True),
            )]))  # fmt: skip
            statements.append((BUMP_GENERATION, [()]))
            for statement, rows in statements:
                conn.executemany(cursor, conn.sql(statement), rows)
        if not check_mode:
            conn.connection.commit()
        generation = routing_generation(conn, cursor)
    return plan, generation
