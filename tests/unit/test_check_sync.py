"""check_sync's outcomes and report, and the router's side of it: the reply route keeps the
final status of the check-sync NOTIFYs the proxy sent, and nothing else."""

from __future__ import annotations

import importlib
import re

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import check_sync
from ansible_collections.sipwave.platform.plugins.module_utils.check_sync import (
    ANSWERED,
    ERROR,
    NO_CONTACT,
    TIMED_OUT,
    UNSENT,
    DeviceReport,
    Notified,
    answered_status,
    batch_script,
    counts,
    lookup_answer,
    new_call_id,
    notify_headers,
    split_batch,
    valid_identity,
)
from ansible_collections.sipwave.platform.plugins.module_utils.resync_pending import settled_macs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CALL_ID = re.compile("sipwave-checksync-[0-9a-f]{32}")

LOOKUP = """{
\tAoR: 481200000@ip.tanifon.pl
\tContacts: {
\t\tContact: {
\t\t\tAddress: sip:481200000@10.1.1.5:5062
\t\t\tExpires: 3599
\t\t\tReceived: sip:203.0.113.7:40211
\t\t\tSocket: udp:127.0.22.11:5060
\t\t}
\t\tContact: {
\t\t\tAddress: sip:481200000@10.1.1.6:5060
\t\t\tReceived: [not set]
\t\t\tSocket: udp:127.0.22.11:5060
\t\t}
\t}
}"""


def notified(outcome: str, status: str = "") -> Notified:
    return Notified("sip:phone@10.0.0.1", "check-sync", new_call_id(), outcome, status)


# -- reading kamcmd ----------------------------------------------------------------------------


def test_a_lookup_answer_gives_each_contact_with_its_nat_source():
    assert lookup_answer(LOOKUP) == [
        {
            "address": "sip:481200000@10.1.1.5:5062",
            "received": "sip:203.0.113.7:40211",
            "socket": "udp:127.0.22.11:5060",
        },
        {"address": "sip:481200000@10.1.1.6:5060", "received": None,
         "socket": "udp:127.0.22.11:5060"},
    ]  # fmt: skip


def test_an_identity_not_registered_has_no_contact_and_a_failed_lookup_is_told_apart():
    assert lookup_answer("error: 500 - AOR not found in location table") == []
    assert lookup_answer("error: 500 - Table not found") is None


def test_a_batch_is_split_at_its_marks_whatever_the_prompt_echoes():
    script = batch_script(["ul.lookup location a@b", "htable.get checksync x"])
    assert script.count("\n") == 5
    output = (
        "kamcmd 1.6\nCopyright 2006 iptelorg GmbH\n"
        "kamcmd> core.echo sipwave-checksync-mark-start\nsipwave-checksync-mark-start\n"
        "kamcmd> ul.lookup location a@b\nerror: 500 - AOR not found in location table\n"
        "kamcmd> core.echo sipwave-checksync-mark-0\nsipwave-checksync-mark-0\n"
        "kamcmd> htable.get checksync x\n{\n\titem: {\n\t\tvalue: 200\n\t}\n}\n"
        "kamcmd> core.echo sipwave-checksync-mark-1\nsipwave-checksync-mark-1\nkamcmd> "
    )
    first, second = split_batch(output, 2)
    assert first == "error: 500 - AOR not found in location table"
    assert answered_status(second) == 200


def test_commands_whose_answers_never_came_are_errors():
    answers = split_batch("kamcmd> ul.lookup location a@b\n", 2)
    assert answers == ["error: no answer from the control socket"] * 2
    assert lookup_answer(answers[0]) is None


def test_a_missing_htable_key_is_no_answer_yet():
    assert answered_status("error: 500 - Key name doesn't exist in htable.") is None


@pytest.mark.parametrize(
    "identity",
    ["481200000@ip.tanifon.pl", "tnf481200000@sip.sipwave.test", "user.name+x@example.test"],
)
def test_identities_of_the_export_are_looked_up(identity):
    assert valid_identity(identity)


@pytest.mark.parametrize(
    "identity",
    ["a b@example.test", "a@example.test\r\nEvent: x", "a@example.test location", "a", "",
     "a@b@c", '"a"@b'],
)  # fmt: skip
def test_an_identity_that_would_break_an_rpc_line_or_a_header_is_refused(identity):
    assert not valid_identity(identity)


def test_the_notify_carries_its_call_id_event_and_identity_in_crlf_headers():
    call_id = new_call_id()
    headers = notify_headers("sip:provisioning@sip.sipwave.test", "481200000@ip.tanifon.pl",
                             "check-sync", call_id)  # fmt: skip
    assert headers.endswith("\r\n") and "\n" not in headers.replace("\r\n", "")
    assert f"Call-ID: {call_id}\r\n" in headers
    assert "To: <sip:481200000@ip.tanifon.pl>\r\n" in headers
    assert "Event: check-sync\r\n" in headers
    assert call_id.startswith(check_sync.CALL_ID_PREFIX) and call_id != new_call_id()


# -- outcomes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contacts", "lookup_failed", "outcome", "settled"),
    [
        ([(ANSWERED, "200")], False, ANSWERED, True),
        ([(TIMED_OUT, "408"), (ANSWERED, "200")], False, ANSWERED, True),
        ([(ANSWERED, "481")], False, ANSWERED, True),  # refused: not asked again
        ([(TIMED_OUT, "408")], False, TIMED_OUT, True),  # not told again: periodic check
        ([], False, NO_CONTACT, True),
        ([(ERROR, "error: 500 - No local socket")], False, ERROR, False),
        ([(TIMED_OUT, "408"), (ERROR, "error: x")], False, ERROR, False),
        ([], True, ERROR, False),  # one identity could not be looked up
        ([(UNSENT, "not sent (check mode)")], False, UNSENT, False),
    ],
)
def test_a_devices_outcome_and_whether_it_is_settled(contacts, lookup_failed, outcome, settled):
    report = DeviceReport("001565aabb01", "yealink", [notified(*c) for c in contacts],
                          lookup_failed)  # fmt: skip
    assert report.outcome == outcome
    assert report.settled is settled
    assert report.as_dict()["outcome"] == outcome


def test_the_report_counts_devices_per_outcome_and_notifies_per_answer():
    reports = [
        DeviceReport("a", contacts=[notified(ANSWERED, "200")]),
        DeviceReport("b", contacts=[notified(ANSWERED, "486")]),
        DeviceReport("c", contacts=[notified(TIMED_OUT, "408"), notified(TIMED_OUT, "408")]),
        DeviceReport("d"),
        DeviceReport("e", contacts=[notified(ERROR, "error: x")]),
    ]
    assert counts(reports) == {
        "devices": 5, "contacts": 5, "answered": 2, "timed_out": 1, "no_contact": 1,
        "error": 1, "not_sent": 0, "notified": 1, "refused": 1, "timed_out_contacts": 2,
        "failed": 1, "unregistered": 1,
    }  # fmt: skip


def test_the_report_names_no_call_id_and_resync_pending_reads_its_settled_flags():
    reports = [DeviceReport("a", contacts=[notified(ANSWERED, "200")]),
               DeviceReport("e", contacts=[notified(ERROR, "error: x")])]  # fmt: skip
    devices = [r.as_dict() for r in reports]
    assert all("call_id" not in c for d in devices for c in d["contacts"])
    assert settled_macs([{"changed": True, "devices": devices}]) == {"a"}


# -- the router's reply route ------------------------------------------------------------------


@pytest.fixture
def recorder(ksr):
    return importlib.import_module("sipwave_router.checksync")


def reply(ksr, call_id: str, method: str = "NOTIFY", status: str = "200", ours: int = 1):
    ksr.pvars.update({"$ci": call_id, "$rm": method, "$rs": status})
    ksr.returns["tm.t_check_trans"] = ours


def test_router_and_module_agree_on_the_htable_and_call_id(recorder):
    assert recorder.HTABLE_CHECK_SYNC == check_sync.HTABLE_CHECK_SYNC
    assert recorder.CALL_ID_PREFIX == check_sync.CALL_ID_PREFIX
    assert recorder.CALL_ID.fullmatch(new_call_id())


def test_the_final_answer_to_a_check_sync_notify_is_kept(ksr, router):
    call_id = new_call_id()
    reply(ksr, call_id, status="200")
    assert router.reply_route() == 1
    assert ksr.htables["checksync"] == {call_id: 200}


@pytest.mark.parametrize(
    ("call_id", "method", "status", "ours"),
    [
        (None, "NOTIFY", "180", 1),  # provisional: the final one is still to come
        (None, "INVITE", "200", 1),  # another method
        ("sipwave-checksync-zz", "NOTIFY", "200", 1),  # not a Call-ID the module makes
        ("a1b2c3@phone", "NOTIFY", "200", 1),
        (None, "NOTIFY", "200", -1),  # forged: no transaction of the proxy's
        (None, "NOTIFY", "2000", 1),
    ],
)
def test_every_other_reply_is_passed_on_untouched(ksr, router, call_id, method, status, ours):
    reply(ksr, call_id or new_call_id(), method, status, ours)
    assert router.reply_route() == 1
    assert ksr.htables.get("checksync", {}) == {}


def test_a_reply_that_is_not_utf8_is_passed_on(ksr, router):
    def undecodable(_name):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    ksr.pv.get = undecodable
    assert router.reply_route() == 1
    assert ksr.called("htable.sht_seti") == []


@given(
    call_id=st.one_of(st.text(max_size=80), st.just(new_call_id())),
    method=st.sampled_from(["NOTIFY", "INVITE", "notify", "", "NOTIFY\n|x"]) | st.text(max_size=10),
    status=st.sampled_from(["100", "200", "486", "999", "", "20", "2000", "²²²"])
    | st.text(max_size=5),
    ours=st.sampled_from([1, -1, 0]),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_whatever_a_reply_holds_only_a_matched_final_answer_of_ours_is_kept(
    ksr, router, call_id, method, status, ours
):
    ksr.htables.clear()
    reply(ksr, call_id, method, status, ours)
    assert router.reply_route() == 1
    kept = ksr.htables.get("checksync", {})
    ours_and_final = ours == 1 and re.fullmatch("[2-6][0-9]{2}", status)
    expected = method == "NOTIFY" and ours_and_final and CALL_ID.fullmatch(call_id)
    assert kept == ({call_id: int(status)} if expected else {})
