# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the calls of a period cost, per department: the call records the proxy keeps (acc,
one row per INVITE transaction, and sipwave_call_end, the BYE of an answered call), rated
with the carriers' tariffs, and summed up for accounting.

A tariff is data (``sipwave_call_tariffs``): per carrier and destination prefix, a price per
minute, the billing increment in seconds (60: per started minute, 1: per second), an
optional first increment (a minimum) and a set-up fee per answered call. The longest prefix
of the carrier wins. Only answered outbound calls cost; inbound and internal calls are
listed at zero, and an outbound call without a tariff is listed as unrated (never guessed).
Money is Decimal throughout, rounded half up to the cent once per call.
"""

from __future__ import annotations

import calendar
import csv
import io
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.times import (  # noqa: F401 (JULIAN_DAY_OF_EPOCH for callers)
    JULIAN_DAY_OF_EPOCH,
    epoch_of,
)

CENT = Decimal("0.01")
PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_PREFIX = re.compile(r"\+[0-9]{1,15}")
_PRICE = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")
CALL_COLUMNS = ("callid", "answered_at", "site", "department", "account", "carrier", "callee",
                "direction", "sip_code", "state", "seconds", "billed_seconds", "cost",
                "source")  # fmt: skip
DEPARTMENT_COLUMNS = ("site", "department", "calls", "answered", "billed_minutes", "cost",
                      "unrated", "open", "currency")  # fmt: skip


class CostError(ValueError):
    """Bad tariffs or period; the message names the entry."""


@dataclass(frozen=True)
class Tariff:
    carrier: str
    prefix: str
    per_minute: Decimal
    increment: int = 60
    first: int = 60
    setup: Decimal = Decimal("0")


def _price(value: Any, where: str) -> Decimal:
    text = str(value if value is not None else "").strip()
    if not _PRICE.fullmatch(text):
        raise CostError(f"{where}: {text!r} is not a price (digits, up to 6 decimals)")
    return Decimal(text)


def _seconds(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3600:
        raise CostError(f"{where}: must be whole seconds from 1 to 3600")
    return value


def tariffs(entries: Any) -> list[Tariff]:
    """The tariff list, checked; CostError names each bad entry (``tariffs[i]: ...``)."""
    if not isinstance(entries, list):
        raise CostError("tariffs: must be a list of {carrier, prefix, per_minute, ...}")
    found, problems, seen = [], [], set()
    for index, entry in enumerate(entries):
        where = f"tariffs[{index}]"
        try:
            if not isinstance(entry, dict):
                raise CostError(f"{where}: not a mapping")
            carrier, prefix = str(entry.get("carrier") or ""), str(entry.get("prefix") or "")
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", carrier):
                raise CostError(f"{where}: carrier must be a carrier's name")
            if not _PREFIX.fullmatch(prefix):
                raise CostError(f"{where}: prefix {prefix!r} is not an E.164 prefix (+ and digits)")
            if (carrier, prefix) in seen:
                raise CostError(f"{where}: {carrier} {prefix} has a tariff already")
            seen.add((carrier, prefix))
            increment = _seconds(entry.get("increment", 60), f"{where}.increment")
            found.append(
                Tariff(
                    carrier, prefix, _price(entry.get("per_minute"), f"{where}.per_minute"),
                    increment, _seconds(entry.get("first", increment), f"{where}.first"),
                    _price(entry.get("setup", "0"), f"{where}.setup"),
                )
            )  # fmt: skip
        except CostError as exc:
            problems.append(str(exc))
    if problems:
        raise CostError("\n".join(problems[:20]))
    return found


def tariff_for(known: Iterable[Tariff], carrier: str, callee: str) -> Tariff | None:
    matching = [t for t in known if t.carrier == carrier and callee.startswith(t.prefix)]
    return max(matching, key=lambda t: len(t.prefix), default=None)


def billed_seconds(tariff: Tariff, seconds: int) -> int:
    """The first increment is charged whole, then every started increment."""
    if seconds <= 0:
        return 0
    if seconds <= tariff.first:
        return tariff.first
    rest = seconds - tariff.first
    return tariff.first + -(-rest // tariff.increment) * tariff.increment


def cost_of(tariff: Tariff, seconds: int) -> tuple[int, Decimal]:
    billed = billed_seconds(tariff, seconds)
    if billed == 0:
        return 0, Decimal("0.00")
    amount = tariff.setup + tariff.per_minute * Decimal(billed) / Decimal(60)
    return billed, amount.quantize(CENT, rounding=ROUND_HALF_UP)


def period_bounds(period: str) -> tuple[float, float]:
    """[start, end) of a calendar month in UTC, as epoch seconds."""
    match = PERIOD.fullmatch(period or "")
    if not match:
        raise CostError(f"period {period!r}: must be a month, YYYY-MM")
    year, month = int(match[1]), int(match[2])
    start = calendar.timegm((year, month, 1, 0, 0, 0))
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return float(start), float(calendar.timegm((*following, 1, 0, 0, 0)))


_CALLS = """
    SELECT callid, from_tag, to_tag, time, account, department, site, carrier, callee,
           direction, sip_code
    FROM acc WHERE method = 'INVITE'"""
_ENDS = "SELECT callid, from_tag, to_tag, time, carrier FROM sipwave_call_end WHERE method = 'BYE'"

ENDED, OPEN, UNANSWERED = "ended", "open", "unanswered"


@dataclass(frozen=True)
class _End:
    tags: frozenset
    at: float
    carrier: str


def _ends(cursor: Any) -> dict[str, list[_End]]:
    cursor.execute(_ENDS)
    found: dict[str, list[_End]] = {}
    for callid, from_tag, to_tag, stamp, carrier in cursor:
        at = epoch_of(stamp)
        if at is not None:
            found.setdefault(callid, []).append(_End(frozenset((from_tag, to_tag)), at, carrier))
    return found


def end_of(call: dict, at: float, ends: Iterable[_End]) -> float | None:
    """When the answered call ``call`` (answered at ``at``) ended, by the first BYE of the
    same dialog (Call-ID and both tags, in either direction) recorded at or after its answer.
    An outbound call ends only by an end its carrier confirmed (a BYE the carrier sent, or
    its 2xx to the subscriber's BYE): a BYE that anyone else answered ends nothing that a
    carrier bills."""
    tags = frozenset((call["from_tag"], call["to_tag"]))
    times = [
        end.at for end in ends
        if end.tags == tags and end.at >= at
        and (call["direction"] != "outbound" or end.carrier == call["carrier"])
    ]  # fmt: skip
    return min(times, default=None)


def read_calls(cursor: Any, period: str) -> tuple[list[dict], int]:
    """Every call whose final answer came in ``period``, and how many records had a time that
    cannot be read (left out: never priced by guess).

    Each call has a state: ``ended`` with its duration in started seconds (from the answer
    to the end of the same dialog), ``open`` (answered, no end recorded: priced by nobody,
    listed for accounting to look at) or ``unanswered``."""
    start, stop = period_bounds(period)
    ends = _ends(cursor)
    cursor.execute(_CALLS)
    calls, unreadable = [], 0
    for row in cursor.fetchall():
        callid, from_tag, to_tag, answered = row[:4]
        at = epoch_of(answered)
        if at is None:
            unreadable += 1
            continue
        if not start <= at < stop:
            continue
        account, department, site, carrier, callee, direction, code = row[4:]
        call = {
            "callid": callid, "from_tag": from_tag or "", "to_tag": to_tag or "",
            "answered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
            "department": department or "", "site": site or "", "account": account or "",
            "carrier": carrier or "", "callee": callee or "", "direction": direction or "",
            "sip_code": code or "", "state": UNANSWERED, "seconds": 0,
        }  # fmt: skip
        if str(code).startswith("2"):
            finished = end_of(call, at, ends.get(callid, ()))
            # A started second counts (1 ms of tolerance absorbs the time stamps' rounding),
            # and an answered call that ended lasted at least one: stamps of whole seconds
            # (the database's) may give the answer and the BYE of a short call the same one.
            if finished is None:
                call["state"] = OPEN
            else:
                call["state"] = ENDED
                call["seconds"] = max(1, math.ceil(finished - at - 0.001))
        calls.append(call)
    return calls, unreadable


def rate(calls: Iterable[dict], known: list[Tariff]) -> list[dict]:
    """Each call with billed_seconds and cost. The cost is None for an outbound call that
    cannot be priced: without a tariff (unrated) or still open."""
    rated = []
    for call in calls:
        billed, cost = 0, Decimal("0.00")
        if call["direction"] == "outbound" and call["state"] == OPEN:
            cost = None
        elif call["direction"] == "outbound" and call["seconds"] > 0:
            tariff = tariff_for(known, call["carrier"], call["callee"])
            if tariff is None:
                billed, cost = call["seconds"], None
            else:
                billed, cost = cost_of(tariff, call["seconds"])
        rated.append({**call, "billed_seconds": billed,
                      "cost": None if cost is None else str(cost)})  # fmt: skip
    return rated


def record_key(call: dict) -> tuple:
    """A call record's identity: where it was read (the proxies' acc, or one PBX's CDRs), its
    dialog (Call-ID and both tags) and its answer. Proxies sharing one database read the same
    record; two calls never share all of it, even when a phone reuses a Call-ID, and no
    caller-chosen Call-ID can match a PBX's record."""
    return (call.get("source") or "acc", call["callid"], call["from_tag"], call["to_tag"],
            call["answered_at"], call["sip_code"])  # fmt: skip


def merge(calls: Iterable[dict]) -> list[dict]:
    """The calls of every proxy, each record once, in the order they were answered."""
    unique = {record_key(call): call for call in calls}
    return sorted(unique.values(), key=lambda c: (c["answered_at"], record_key(c)))


def by_department(calls: Iterable[dict], currency: str) -> list[dict]:
    """One row per site and department (sorted), from the merged calls."""
    totals: dict[tuple[str, str], dict] = {}
    for call in calls:
        empty = {"calls": 0, "answered": 0, "billed_seconds": 0, "cost": Decimal("0.00"),
                 "unrated": 0, "open": 0}  # fmt: skip
        key = (call.get("site") or "(none)", call["department"] or "(none)")
        row = totals.setdefault(key, empty)
        row["calls"] += 1
        row["answered"] += call["state"] != UNANSWERED
        row["billed_seconds"] += call["billed_seconds"]
        if call["direction"] == "outbound" and call["state"] == OPEN:
            row["open"] += 1
        elif call["cost"] is None:
            row["unrated"] += 1
        else:
            row["cost"] += Decimal(call["cost"])
    return [
        {"site": site, "department": name, "calls": row["calls"], "answered": row["answered"],
         "billed_minutes": str((Decimal(row["billed_seconds"]) / 60).quantize(CENT)),
         "cost": str(row["cost"]), "unrated": row["unrated"], "open": row["open"],
         "currency": currency}
        for (site, name), row in sorted(totals.items())
    ]  # fmt: skip


def report(calls: Iterable[dict], currency: str) -> dict:
    """Both lists of the report from one merge: the calls and the site/department totals."""
    merged = merge(calls)
    return {"calls": merged, "departments": by_department(merged, currency)}


def to_csv(rows: Iterable[dict], columns: tuple[str, ...]) -> str:
    """CSV for accounting; a value a spreadsheet would run as a formula is quoted with '."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return (
        "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _numeric(text) else text
    )


def _numeric(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return True
