"""The cost report on the calls test_telephony.py placed through the real proxy (file order:
it runs after them): every answered outbound call rated with the carriers' tariffs, summed
per site and department, written for accounting as CSV and as a page with charts (rendered
by headless Chromium here). And the callers who want their calls cheaper: a forged BYE (tags
of no dialog, or answered by a phone of the caller's own, or sent before the call with a
Call-ID chosen in advance) shortens no call, and a reused Call-ID hides no call."""

import calendar
import csv
import math
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook
from test_attacks import (
    PROXY_ADDRESS,
    PROXY_PORT,
    Phone,
    authenticated,
    phone,
    reply,
    status,
)
from test_telephony import (  # noqa: F401 (the carriers and numbers fixtures, here too)
    ACCOUNTS,
    CALLED,
    CARRIER_A,
    carriers,
    fresh_carriers,
    header,
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


# The end of a call, as accounting counts it, written in SQL apart from the project's
# Python: the first BYE of the same dialog (Call-ID and both tags, either direction)
# recorded at or after the answer; for an outbound call one its carrier confirmed.
ENDED_AT = """
    (SELECT MIN(e.time) FROM sipwave_call_end e
     WHERE e.callid = a.callid AND e.time >= a.time
       AND ((e.from_tag = a.from_tag AND e.to_tag = a.to_tag)
            OR (e.from_tag = a.to_tag AND e.to_tag = a.from_tag))
       AND (a.direction IS NOT 'outbound' OR e.carrier = a.carrier))"""


def expected_by_department() -> dict[tuple[str, str], tuple[int, str, int, int]]:
    """From the proxy's own rows, independently: (site, department) -> (answered calls,
    cost, unrated, open)."""
    rows = sql(
        "SELECT a.site, a.department, a.carrier, a.direction, a.sip_code, a.time, "
        f"{ENDED_AT} FROM acc a WHERE a.method = 'INVITE'"
    )
    found: dict[tuple[str, str], list] = {}
    for line in rows.splitlines():
        site, department, carrier, direction, code, answered, ended = line.split("|")
        entry = found.setdefault((site or "(none)", department or "(none)"), [0, 0.0, 0, 0])
        entry[0] += code == "200"
        if direction != "outbound" or code != "200":
            continue
        if not ended:
            entry[3] += 1
            continue
        seconds = max(1, math.ceil(epoch(ended) - epoch(answered) - 0.001))
        if carrier not in PRICES:
            entry[2] += 1
            continue
        per_minute, setup = PRICES[carrier]
        entry[1] += setup + per_minute * math.ceil(seconds / 60)
    return {key: (n, f"{cost:.2f}", unrated, opened)
            for key, (n, cost, unrated, opened) in found.items()}  # fmt: skip


def cost_report(period: str) -> tuple[dict[tuple, dict], dict[tuple, tuple]]:
    """Run the playbook; (calls by (Call-ID, From tag), departments by (site, department))."""
    run = run_playbook("cost_report.yml", {
        "period": period, "sipwave_report_dir": str(REPORTS), "sipwave_call_tariffs": TARIFFS,
        "sipwave_call_currency": "PLN"})  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    with (REPORTS / f"costs-{period}-calls.csv").open(encoding="utf-8") as handle:
        calls = list(csv.DictReader(handle))
    with (REPORTS / f"costs-{period}-departments.csv").open(encoding="utf-8") as handle:
        departments = {
            (row["site"], row["department"]):
                (int(row["answered"]), row["cost"], int(row["unrated"]), int(row["open"]))
            for row in csv.DictReader(handle)
        }  # fmt: skip
    return calls, departments


def test_the_cost_report_prices_each_departments_calls_like_accounting_would():
    user, domain, password = ACCOUNTS["legacy-a"]
    call = sipp.run(
        "call_auth.xml", f"{PROXY_ADDRESS}:{PROXY_PORT}", "127.0.20.251",
        rows=[[user, domain, sipp.credentials(user, password), CALLED, domain]],
    )  # fmt: skip
    assert call.successful == 1, call.output
    call_id = re.search(r"^Call-ID:\s*(\S+)", call.messages, re.M)[1]
    period = time.strftime("%Y-%m", time.gmtime())
    calls, departments = cost_report(period)
    (placed,) = [row for row in calls if row["callid"] == call_id]
    # The call just placed: answered, about 0.2 s long, one started minute on carrier-a.
    assert (placed["carrier"], placed["state"], placed["billed_seconds"]) == (
        "carrier-a",
        "ended",
        "60",
    )
    assert placed["cost"] == "0.60" and placed["department"] == "sales"
    assert departments == expected_by_department()
    assert departments[("warsaw", "sales")][1] != "0.00"
    # Both lists come from one merge: the calls add up to the departments' totals.
    assert sum(float(row["cost"] or 0) for row in calls) == pytest.approx(
        sum(float(cost) for _, cost, _, _ in departments.values())
    )


# -- callers who want their calls cheaper --------------------------------------------------

CALLER, ATTACKER_UA = "127.0.20.252", "127.0.20.253"
HELD_S = 3  # how long each call below really lasts


class Call:
    """An answered outbound call of legacy-a from a handset that speaks SIP line by line."""

    def __init__(self, handset: Phone):
        self.handset = handset
        user, domain, _ = ACCOUNTS["legacy-a"]
        self.from_uri, self.to_uri = f"sip:{user}@{domain}", f"sip:{CALLED}@{domain}"
        answer = authenticated(handset, "legacy-a", "INVITE", self.to_uri, to_user=CALLED,
                               wait_s=5)  # fmt: skip
        assert status(answer) == "SIP/2.0 200 OK"
        self.call_id = handset.call_id
        self.to_tag = re.search(r"^To:.*?;tag=([^;\s]+)", answer.decode(), re.M)[1]
        self.route = header(answer, "Record-Route")
        self.target = re.search(r"<([^>]+)>", header(answer, "Contact"))[1]
        self.in_dialog("ACK", self.target, self.to_tag)

    def in_dialog(self, method: str, uri: str, to_tag: str) -> bytes:
        message = self.handset.request(
            method, uri, from_uri=self.from_uri, to_uri=self.to_uri, to_tag=to_tag,
            headers=(f"Route: {self.route}",),
        )  # fmt: skip
        self.handset.send(message)
        return message

    def bye(self, uri: str | None = None, to_tag: str | None = None) -> str:
        """A BYE through the proxy (to the carrier unless ``uri`` says where); its answer."""
        self.in_dialog("BYE", uri or self.target, to_tag or self.to_tag)
        return status(self.handset.answer(4))


def answering_phone(address: str):
    """A phone of the attacker's own that answers 200 to whatever reaches it."""
    handset = Phone(address)

    def serve() -> None:
        handset.sock.settimeout(0.1)
        while not stop.is_set():
            try:
                data = handset.sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            if not data.startswith(b"SIP/2.0"):
                handset.sock.sendto(reply(data, b"200 OK"), (PROXY_ADDRESS, PROXY_PORT))
                answered.append(data)

    stop, answered = threading.Event(), []
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return handset, stop, thread, answered


def ends_of(call_id: str) -> list[str]:
    """sip_code|carrier of each end recorded for the call ("" for NULL)."""
    return sql(
        f"SELECT sip_code, carrier FROM sipwave_call_end WHERE callid = '{call_id}' ORDER BY id"
    ).splitlines()


def test_forged_byes_shorten_no_call():
    """Three ways a caller tries to end the record of a call early while the call goes on,
    then the real BYE after HELD_S seconds: the report bills the whole call."""
    uas, stop, thread, reached = answering_phone(ATTACKER_UA)
    try:
        with phone(CALLER) as handset:
            # 3: a BYE sent before the call, with the Call-ID the call will use, for the
            # attacker's own phone: without the call's dialog token (there is no call yet)
            # the proxy refuses it.
            chosen = f"chosen-{time.time_ns()}@{CALLER}"
            handset.call_id = chosen
            early = handset.request(
                "BYE", f"sip:x@{ATTACKER_UA}:{uas.port}", from_uri="sip:x@x.invalid",
                to_uri="sip:y@x.invalid", to_tag="t",
                headers=(f"Route: <sip:{PROXY_ADDRESS};lr>",))  # fmt: skip
            handset.send(early)
            assert status(handset.answer(2)) == "SIP/2.0 403 Route Not Followed"
            handset.request = _keep_call_id(handset, chosen)
            call = Call(handset)
            assert call.call_id == chosen
            # 1: tags of no dialog: the carrier answers 481.
            assert call.bye(to_tag="forged") == "SIP/2.0 481 Call Does Not Exist"
            # 2: the right tags and the call's own dialog token, sent to the attacker's own
            # phone: once relayed (the token named the Call-ID only), now refused, as the
            # phone is not the other end of the call.
            misdirected = call.bye(uri=f"sip:x@{ATTACKER_UA}:{uas.port}")
            assert misdirected == "SIP/2.0 403 Route Not Followed"
            time.sleep(HELD_S)
            assert call.bye() == "SIP/2.0 200 OK"
    finally:
        stop.set()
        thread.join()
        uas.close()
    assert reached == []  # nothing reached the attacker's phone
    # Only the carrier's answer to the real BYE ends the call.
    assert ends_of(chosen) == ["200|carrier-a"]
    calls, _ = cost_report(time.strftime("%Y-%m", time.gmtime()))
    (billed,) = [row for row in calls if row["callid"] == chosen]
    assert billed["state"] == "ended" and int(billed["seconds"]) >= HELD_S


STRANGER = "127.0.20.249"


def test_a_calls_dialog_token_reaches_only_the_calls_other_end():
    """A subscriber holds the dialog token of its own calls (the Record-Route of every answer).
    Once that token let anyone who had seen it send any in-dialog request, unauthenticated,
    from the proxy's address to any request URI. Now it takes one end of the call to the
    other, and nobody else anywhere."""
    uas, stop, thread, reached = answering_phone(ATTACKER_UA)
    try:
        with phone(CALLER) as handset, phone(STRANGER) as stranger:
            call = Call(handset)
            # The caller, with its call's token, to a phone of its own: a MESSAGE and a
            # re-INVITE (a free call through the proxy, were it relayed).
            for method in ("MESSAGE", "INVITE"):
                call.in_dialog(method, f"sip:x@{ATTACKER_UA}:{uas.port}", call.to_tag)
                assert status(handset.answer(2)) == "SIP/2.0 403 Route Not Followed"
            # ... through a further Route whose user part names the carrier: its host is the
            # attacker's phone (once read as the carrier, a peer, and relayed there).
            further = f"<sip:{CARRIER_A};x@{ATTACKER_UA}:{uas.port};lr>"
            message = handset.request(
                "MESSAGE", call.target, from_uri=call.from_uri, to_uri=call.to_uri,
                to_tag=call.to_tag, headers=(f"Route: {call.route}, {further}",))  # fmt: skip
            assert status(handset.exchange(message)) == "SIP/2.0 403 Route Not Followed"
            # Someone else who saw the call (its Call-ID, tags and Record-Route), to the
            # carrier the call is with: no end of the call, refused.
            stranger.call_id, stranger.from_tag = call.call_id, handset.from_tag
            stranger.cseq = handset.cseq
            bye = stranger.request(
                "BYE", call.target, from_uri=call.from_uri, to_uri=call.to_uri,
                to_tag=call.to_tag, headers=(f"Route: {call.route}",))  # fmt: skip
            assert status(stranger.exchange(bye)) == "SIP/2.0 403 Route Not Followed"
            # The carrier's address forged (UDP), with the call's token, to the attacker's
            # phone: once a trusted peer's request was followed anywhere, token or not.
            with phone(CARRIER_A) as forged:
                forged.call_id, forged.cseq = call.call_id, 1
                message = forged.request(
                    "MESSAGE", f"sip:x@{ATTACKER_UA}:{uas.port}", from_uri=call.to_uri,
                    to_uri=call.from_uri, to_tag=handset.from_tag,
                    headers=(f"Route: {call.route}",))  # fmt: skip
                assert status(forged.exchange(message)) == "SIP/2.0 403 Route Not Followed"
            # The caller's own BYE to the carrier is followed.
            assert call.bye() == "SIP/2.0 200 OK"
    finally:
        stop.set()
        thread.join()
        uas.close()
    assert reached == []
    # The carrier answered one BYE: the caller's (the stranger's never reached it).
    assert ends_of(call.call_id) == ["200|carrier-a"]


def _keep_call_id(handset: Phone, call_id: str):
    """Phone.request with new_call=True still using ``call_id`` (a caller's chosen one)."""
    original = Phone.request

    def request(method, uri, **fields):
        fields.pop("new_call", None)
        handset.call_id = call_id
        return original(handset, method, uri, **fields)

    return request


def test_a_reused_call_id_hides_no_call():
    """Two calls under one Call-ID (two handsets, two From tags): both are in the calls list,
    each priced, and the departments' totals agree with it."""
    shared = f"reused-{time.time_ns()}@{CALLER}"
    for address in ("127.0.20.254", "127.0.20.250"):
        with phone(address) as handset:
            handset.request = _keep_call_id(handset, shared)
            call = Call(handset)
            assert call.bye() == "SIP/2.0 200 OK"
    calls, departments = cost_report(time.strftime("%Y-%m", time.gmtime()))
    reused = [row for row in calls if row["callid"] == shared]
    assert [(row["state"], row["cost"]) for row in reused] == [("ended", "0.60")] * 2
    assert departments == expected_by_department()


def test_the_report_page_shows_its_charts_in_a_browser(tmp_path):
    """The HTML page of the last report, rendered by headless Chromium (a file, no network:
    any request it would make goes to a closed loopback port): both charts are drawn."""
    from PIL import Image

    period = time.strftime("%Y-%m", time.gmtime())
    page = REPORTS / f"costs-{period}.html"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is missing: make host-deps installs it"
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1800",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.exists(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=image.width * image.height)
    painted = {colour: count for count, colour in colours}
    # The bars of both charts: their colours fill a visible area of the screenshot.
    for bar in ("#1f6fb4", "#e07b1a"):
        rgb = tuple(int(bar[i : i + 2], 16) for i in (1, 3, 5))
        assert painted.get(rgb, 0) > 500, f"no {bar} bars in the screenshot"
