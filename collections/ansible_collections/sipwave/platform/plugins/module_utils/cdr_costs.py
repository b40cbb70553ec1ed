# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dial-in calls of a period from a PBX's CDRs (cdr_sqlite3_custom, table cdr), as calls
of the cost report: the same fields as the proxy's (call_costs.read_calls), rated with the
same tariffs by call_costs.rate.

A dial-in caller's channel is answered before the PIN prompt, so the CDR's own answer and
billsec include the PIN phase. What the carrier bills is the Dial's talk time, which the
dialplan must record in the CDR columns dialstatus and talk_ms from a hangup handler (so also
when the caller hangs up first), and start_epoch/end_epoch as epoch seconds (no time zone).
Not Dial's ANSWEREDTIME_MS: on Asterisk 22 it counts from the caller's answer, PIN included.
Every value is caller-influenced text: each is checked, and
a row whose times cannot be read is counted, never guessed.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from ansible_collections.sipwave.platform.plugins.module_utils.call_costs import (
    ENDED,
    UNANSWERED,
    period_bounds,
)

_EPOCH = re.compile(r"[0-9]{9,11}(\.[0-9]{1,6})?")
_MS = re.compile(r"[0-9]{1,10}")
_E164 = re.compile(r"\+[0-9]{1,15}")
_UNIQUEID = re.compile(r"[A-Za-z0-9._-]{1,150}")
_COLUMNS = ("uniqueid", "start_epoch", "end_epoch", "dialstatus", "talk_ms", "account",
            "department", "destination", "disposition", "outcome")  # fmt: skip
# A Dial that ended with this status was answered by the carrier.
ANSWERED = "ANSWER"


def _epoch(value: Any) -> float | None:
    text = value if isinstance(value, str) else ""
    return float(text) if _EPOCH.fullmatch(text) else None


def _text(value: Any, limit: int = 200) -> str:
    """A name as shown in the report: text, without control characters, bounded."""
    if not isinstance(value, str):
        return ""
    return "".join(c for c in value if c.isprintable())[:limit]


def columns_of(cursor: Any) -> set[str]:
    cursor.execute("SELECT name FROM pragma_table_info('cdr')")
    return {row[0] for row in cursor.fetchall()}


def read_dialin_calls(cursor: Any, period: str, *, pbx: str, carrier: str,
                      site: str) -> tuple[list[dict], int]:  # fmt: skip
    """Every dial-in call of ``period`` on this PBX, and how many CDR rows were unreadable.

    Rows of one channel (the same uniqueid: Asterisk may write one per party pair) are one
    call. It is answered when a Dial of it reported ANSWER with a talk time; it lasted the
    talk time in started seconds, from the carrier's answer (its end minus the talk time).
    Otherwise it is listed unanswered (refused, wrong PIN, not answered), at no cost."""
    start, stop = period_bounds(period)
    present = columns_of(cursor)
    if not present:
        return [], 0
    wanted = [c if c in present else f"NULL AS {c}" for c in _COLUMNS]
    cursor.execute(f"SELECT {', '.join(wanted)} FROM cdr ORDER BY rowid")
    calls: dict[str, dict] = {}
    unreadable = 0
    for row in cursor.fetchall():
        record = dict(zip(_COLUMNS, row, strict=True))
        began, ended = _epoch(record["start_epoch"]), _epoch(record["end_epoch"])
        uniqueid = record["uniqueid"] if isinstance(record["uniqueid"], str) else ""
        if began is None or ended is None or ended < began or not _UNIQUEID.fullmatch(uniqueid):
            unreadable += 1
            continue
        talk = record["talk_ms"] if isinstance(record["talk_ms"], str) else ""
        answered = record["dialstatus"] == ANSWERED and _MS.fullmatch(talk) is not None
        seconds = max(1, math.ceil(int(talk) / 1000 - 0.001)) if answered else 0
        at = ended - int(talk) / 1000 if answered else began
        destination = record["destination"] if isinstance(record["destination"], str) else ""
        call = calls.setdefault(uniqueid, {
            "source": f"cdr:{pbx}", "callid": uniqueid, "from_tag": "", "to_tag": "",
            "answered_at": at, "site": site, "department": _text(record["department"]),
            "account": _text(record["account"]), "carrier": carrier,
            # anything but an E.164 number is no number: unrated if answered, never guessed
            "callee": destination if _E164.fullmatch(destination) else "",
            "direction": "outbound", "sip_code": "", "state": UNANSWERED, "seconds": 0,
        })  # fmt: skip
        for name in ("department", "account"):
            call[name] = call[name] or _text(record[name])
        if answered and seconds >= call["seconds"]:
            call.update(state=ENDED, seconds=seconds, answered_at=at, sip_code="200")
    found = []
    for call in calls.values():
        if start <= call["answered_at"] < stop:
            stamp = time.gmtime(call["answered_at"])
            found.append({**call, "answered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp)})
    return found, unreadable
