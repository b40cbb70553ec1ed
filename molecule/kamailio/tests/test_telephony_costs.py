"""The cost report on the calls test_telephony.py placed through the real proxy (file order:
it runs after them): every answered outbound call rated with the carriers' tariffs, summed
per department, written for accounting."""

import calendar
import csv
import math
import os
import re
import time
from pathlib import Path

from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook
from test_attacks import PROXY_ADDRESS, PROXY_PORT
from test_telephony import (  # noqa: F401 (the carriers and numbers fixtures, here too)
    ACCOUNTS,
    CALLED,
    carriers,
    fresh_carriers,
    numbers,
    sql,
)

REPORTS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "cost-reports"
# Per started minute; carrier-b also charges a set-up fee. No tariff for carrier-c or d.
TARIFFS = [
    {"carrier": "carrier-a", "prefix": "+48", "per_minute": "0.60"},
    {"carrier": "carrier-b", "prefix": "+48", "per_minute": "0.30", "setup": "0.05"},
]
PRICES = {"carrier-a": (0.60, 0.0), "carrier-b": (0.30, 0.05)}


def epoch(stamp: str) -> float:
    """A time as the proxy's SQLite database holds it: a Julian day number, or its text."""
    try:
        return (float(stamp) - 2440587.5) * 86400
    except ValueError:
        return calendar.timegm(time.strptime(stamp.split(".")[0], "%Y-%m-%d %H:%M:%S"))


def expected_by_department() -> dict[str, tuple[int, str, int]]:
    """From the proxy's own rows, independently: department -> (answered outbound calls,
    cost, unrated)."""
    rows = sql(
        "SELECT a.department, a.carrier, a.direction, a.sip_code, a.time, "
        "(SELECT MIN(e.time) FROM sipwave_call_end e WHERE e.callid = a.callid) "
        "FROM acc a WHERE a.method = 'INVITE'"
    )
    found: dict[str, list] = {}
    for line in rows.splitlines():
        department, carrier, direction, code, answered, ended = line.split("|")
        entry = found.setdefault(department or "(none)", [0, 0.0, 0])
        entry[0] += code == "200"
        if direction != "outbound" or code != "200" or not ended:
            continue
        seconds = max(1, math.ceil(epoch(ended) - epoch(answered) - 0.001))
        if carrier not in PRICES:
            entry[2] += 1
            continue
        per_minute, setup = PRICES[carrier]
        entry[1] += setup + per_minute * math.ceil(seconds / 60)
    return {d: (n, f"{cost:.2f}", unrated) for d, (n, cost, unrated) in found.items()}


def test_the_cost_report_prices_each_departments_calls_like_accounting_would():
    user, domain, password = ACCOUNTS["legacy-a"]
    call = sipp.run(
        "call_auth.xml", f"{PROXY_ADDRESS}:{PROXY_PORT}", "127.0.20.251",
        rows=[[user, domain, sipp.credentials(user, password), CALLED, domain]],
    )  # fmt: skip
    assert call.successful == 1, call.output
    call_id = re.search(r"^Call-ID:\s*(\S+)", call.messages, re.M)[1]
    period = time.strftime("%Y-%m", time.gmtime())
    run = run_playbook("cost_report.yml", {
        "period": period, "sipwave_report_dir": str(REPORTS), "sipwave_call_tariffs": TARIFFS,
        "sipwave_call_currency": "PLN"})  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    with (REPORTS / f"costs-{period}-calls.csv").open(encoding="utf-8") as handle:
        calls = {row["callid"]: row for row in csv.DictReader(handle)}
    # The call just placed: answered, about 0.2 s long, one started minute on carrier-a.
    assert (calls[call_id]["carrier"], calls[call_id]["billed_seconds"]) == ("carrier-a", "60")
    assert calls[call_id]["cost"] == "0.60" and calls[call_id]["department"] == "sales"
    with (REPORTS / f"costs-{period}-departments.csv").open(encoding="utf-8") as handle:
        departments = {
            row["department"]: (int(row["answered"]), row["cost"], int(row["unrated"]))
            for row in csv.DictReader(handle)
        }
    assert departments == expected_by_department()
    assert departments["sales"][1] != "0.00"
