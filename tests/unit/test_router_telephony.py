"""Carriers, caller ID and call records of the KEMI router, driven through the KSR stub."""

import importlib

import pytest
from ansible_collections.sipwave.platform.plugins.filter.carriers import carrier_sets
from conftest import ROUTER_SETTINGS, own_route
from test_router import request
from test_router_dialin import accepted

CARRIER_A = "127.0.20.31"
CARRIER_B = "127.0.20.32"
STRANGER = "127.0.20.120"
PROXY = "127.0.20.11"
ACCOUNT = "481234001@ip.tanifon.pl"
OWN_NUMBER = "+48221110001"
SECOND_NUMBER = "+48221110002"
LEGACY_NUMBER = "+48225550999"
CALLED = "+48225550100"
CARRIERS = [
    {"name": "carrier-a", "address": CARRIER_A, "prefixes": ["+4822"], "priority": 10,
     "allows_foreign_clip": True},
    {"name": "carrier-b", "address": CARRIER_B, "prefixes": ["+4822", "+4861"], "priority": 5},
]  # fmt: skip
SETTINGS = {
    **ROUTER_SETTINGS,
    "number_plan": {"country_code": "48", "national_lengths": [9], "trunk_prefix": ""},
    "proxy_addresses": [PROXY],
    "carriers": CARRIERS,
    # As the role renders them: set 1 is +4822, set 2 +4861 (dispatcher.list numbers the same).
    "carrier_sets": carrier_sets(CARRIERS),
    "clip_allow": {"481234001": ["+48 22 555 09 99"]},
}
ROUTING = {
    f"a:{ACCOUNT}": OWN_NUMBER,
    "n:48221110001": ACCOUNT,
    "n:48221110002": ACCOUNT,
    "n:48221110003": "481234002@ip.tanifon.pl",
    "d:" + ACCOUNT: "sales",
}


@pytest.fixture
def router(ksr):
    package = importlib.import_module("sipwave_router")
    from sipwave_router.settings import settings_from_dict

    ksr.htables["routing"] = dict(ROUTING)
    return package.Router(settings_from_dict(SETTINGS))


def carriers_answer(ksr, *addresses: str) -> None:
    """dispatcher selects the carriers in this order: ds_select_dst, then ds_next_dst."""
    queue = [f"sip:{address}:5060;transport=udp" for address in addresses]

    def select(*_args):
        if not queue:
            return -1
        ksr.pvars["$du"] = queue.pop(0)
        return 1

    ksr.returns["dispatcher.ds_select_dst"] = select
    ksr.returns["dispatcher.ds_next_dst"] = select


def call_out(ksr, router, dialled: str = "+48 22 555 01 00", **headers: str) -> None:
    request(ksr, "INVITE", ruser=dialled)
    accepted(ksr, "481234001")
    ksr.pvars.update({f"$hdr({name})": value for name, value in headers.items()})
    router.request_route()


def branch_headers(ksr, router, carrier: str) -> tuple[tuple, list[str]]:
    """From (uac_replace_from) and appended headers of one carrier's branch."""
    ksr.calls.clear()
    ksr.pvars["$du"] = f"sip:{carrier}:5060;transport=udp"
    router.branch_route_carrier()
    appended = [args[0] for args in ksr.called("hdr.append")]
    return ksr.called("uac.uac_replace_from")[0], appended


# -- outbound --------------------------------------------------------------------------------


@pytest.mark.parametrize("dialled", ["+48 22 555 01 00", "0048225550100", "225550100"])
def test_any_notation_goes_to_the_prefix_carriers_in_e164(ksr, router, dialled):
    carriers_answer(ksr, CARRIER_A)
    call_out(ksr, router, dialled)
    assert ksr.called("dispatcher.ds_select_dst") == [(1, 8)]
    assert ksr.pvars["$rU"] == CALLED
    # The carrier branch route replaces the dialog branch route, and record-routes too.
    assert ksr.called("tm.t_on_branch") == [("ksr_branch_dialog",), ("ksr_branch_carrier",)]
    assert ksr.called("tm.t_on_failure") == [("ksr_failure_carrier",)]
    assert ksr.called("tm.t_relay") == [()]


def test_longest_prefix_chooses_the_set(ksr, router):
    carriers_answer(ksr, CARRIER_B)
    call_out(ksr, router, "+48 61 555 01 00")
    assert ksr.called("dispatcher.ds_select_dst") == [(2, 8)]


def test_number_served_here_stays_here(ksr, router):
    call_out(ksr, router, "221110003")
    assert ksr.called("dispatcher.ds_select_dst") == []
    assert ksr.pvars["$ru"] == "sip:481234002@ip.tanifon.pl"


def test_number_no_carrier_serves_is_not_sent_to_one(ksr, router):
    call_out(ksr, router, "+49 30 1234567")
    assert ksr.called("dispatcher.ds_select_dst") == []


def test_no_active_carrier_is_answered_and_recorded(ksr, router):
    carriers_answer(ksr)
    call_out(ksr, router)
    assert ksr.replies() == [(503, "No Carrier Available")]
    assert ksr.called("tm.t_relay") == []


def test_unauthenticated_caller_never_reaches_a_carrier(ksr, router):
    carriers_answer(ksr, CARRIER_A)
    request(ksr, "INVITE", ruser="+48225550100")
    ksr.returns["auth_db.auth_check"] = -5
    router.request_route()
    assert ksr.called("dispatcher.ds_select_dst") == []
    assert ksr.called("auth.auth_challenge") == [("ip.tanifon.pl", 0)]


def test_a_carrier_never_transits_to_another_carrier(ksr, router):
    carriers_answer(ksr, CARRIER_B)
    request(ksr, "INVITE", source=CARRIER_A, ruser="+48225550100")
    router.request_route()
    assert ksr.called("dispatcher.ds_select_dst") == []
    assert ksr.replies() == [(404, "Not Found")]


# -- caller ID -------------------------------------------------------------------------------


def test_from_and_pai_carry_the_accounts_number(ksr, router):
    carriers_answer(ksr, CARRIER_A)
    call_out(ksr, router)
    from_header, appended = branch_headers(ksr, router, CARRIER_A)
    assert from_header == ("", f"sip:{OWN_NUMBER}@{PROXY}")
    assert appended == [f"P-Asserted-Identity: <sip:{OWN_NUMBER}@{PROXY}>\r\n"]
    assert ksr.pvars["$ru"] == f"sip:{CALLED}@{CARRIER_A}:5060"


def test_another_own_number_may_be_asked_for(ksr, router):
    carriers_answer(ksr, CARRIER_B)
    call_out(ksr, router, **{"P-Preferred-Identity": "<sip:0048221110002@ip.tanifon.pl>"})
    from_header, _ = branch_headers(ksr, router, CARRIER_B)
    assert from_header == ("", f"sip:{SECOND_NUMBER}@{PROXY}")


@pytest.mark.parametrize("asked", ["<sip:+48221110003@ip.tanifon.pl>", "<tel:+48229999999>"])
def test_a_number_of_someone_else_is_replaced(ksr, router, asked):
    carriers_answer(ksr, CARRIER_A)
    call_out(ksr, router, **{"P-Preferred-Identity": asked})
    from_header, appended = branch_headers(ksr, router, CARRIER_A)
    assert from_header == ("", f"sip:{OWN_NUMBER}@{PROXY}")
    assert appended == [f"P-Asserted-Identity: <sip:{OWN_NUMBER}@{PROXY}>\r\n"]


@pytest.mark.parametrize(
    ("carrier", "presented"), [(CARRIER_A, LEGACY_NUMBER), (CARRIER_B, OWN_NUMBER)]
)
def test_clip_allow_list_only_on_carriers_that_allow_it(ksr, router, carrier, presented):
    carriers_answer(ksr, carrier)
    call_out(ksr, router, **{"P-Preferred-Identity": "<tel:+48225550999>"})
    from_header, appended = branch_headers(ksr, router, carrier)
    assert from_header == ("", f"sip:{presented}@{PROXY}")
    assert appended == [f"P-Asserted-Identity: <sip:{presented}@{PROXY}>\r\n"]


TEMPORARY_NUMBER = "+48225559000"


@pytest.mark.parametrize(
    ("carrier", "presented"), [(CARRIER_A, OWN_NUMBER), (CARRIER_B, TEMPORARY_NUMBER)]
)
def test_own_numbers_still_at_the_old_operator_only_where_clip_is_not_screened(
    ksr, router, carrier, presented
):
    ksr.htables["routing"][f"t:{ACCOUNT}"] = TEMPORARY_NUMBER
    carriers_answer(ksr, carrier)
    call_out(ksr, router)
    from_header, appended = branch_headers(ksr, router, carrier)
    assert from_header == ("", f"sip:{presented}@{PROXY}")
    assert appended == [f"P-Asserted-Identity: <sip:{presented}@{PROXY}>\r\n"]


@pytest.mark.parametrize(
    ("asked", "on_a", "on_b"),
    [
        ("<sip:0048221110002@ip.tanifon.pl>", SECOND_NUMBER, TEMPORARY_NUMBER),  # its own
        ("<tel:+48225550999>", LEGACY_NUMBER, TEMPORARY_NUMBER),  # its allow-list
        ("<tel:+48221110003>", OWN_NUMBER, TEMPORARY_NUMBER),  # someone else's
    ],
)
def test_with_a_temporary_number_a_requested_number_is_checked_the_same_way(
    ksr, router, asked, on_a, on_b
):
    ksr.htables["routing"][f"t:{ACCOUNT}"] = TEMPORARY_NUMBER
    for carrier, presented in ((CARRIER_A, on_a), (CARRIER_B, on_b)):
        carriers_answer(ksr, carrier)
        call_out(ksr, router, **{"P-Preferred-Identity": asked})
        from_header, _ = branch_headers(ksr, router, carrier)
        assert from_header == ("", f"sip:{presented}@{PROXY}"), carrier


def test_a_carrier_call_to_a_temporary_number_reaches_its_account(ksr, router):
    ksr.htables["routing"]["n:48225559000"] = ACCOUNT
    request(ksr, "INVITE", source=CARRIER_B, ruser="+48225559000")
    router.request_route()
    assert ksr.pvars["$ru"] == f"sip:{ACCOUNT}"
    assert ksr.called("registrar.lookup") == [("location",)]


@pytest.mark.parametrize("privacy", ["id", "header;id", "ID"])
def test_privacy_id_makes_from_anonymous_and_keeps_pai_for_the_carrier(ksr, router, privacy):
    carriers_answer(ksr, CARRIER_A)
    call_out(ksr, router, Privacy=privacy)
    from_header, appended = branch_headers(ksr, router, CARRIER_A)
    assert from_header == ("Anonymous", "sip:anonymous@anonymous.invalid")
    assert appended == [f"P-Asserted-Identity: <sip:{OWN_NUMBER}@{PROXY}>\r\n"]


def test_phone_identity_headers_are_stripped_before_anything_is_relayed(ksr, router):
    carriers_answer(ksr, CARRIER_A)
    call_out(ksr, router, **{"P-Asserted-Identity": "<tel:+48229999999>"})
    assert ksr.called("textops.remove_hf_re")[0][0].startswith("^(X-Sipwave-.*|P-Asserted")


# -- failover --------------------------------------------------------------------------------


def failure(ksr, router, code: int, *, timeout: bool = False) -> None:
    ksr.calls.clear()
    ksr.pvars["$T_reply_code"] = code
    ksr.returns["tm.t_is_canceled"] = -1
    ksr.returns["tm.t_branch_timeout"] = 1 if timeout else -1
    ksr.returns["tm.t_branch_replied"] = -1 if timeout else 1
    router.failure_route_carrier()


@pytest.mark.parametrize("code", [408, 500, 503, 504])
def test_408_and_5xx_try_the_next_carrier(ksr, router, code):
    carriers_answer(ksr, CARRIER_A, CARRIER_B)
    call_out(ksr, router)
    failure(ksr, router, code)
    assert ksr.called("dispatcher.ds_next_dst") == [()]
    assert ksr.called("tm.t_relay") == [()]
    assert ksr.called("tm.t_on_branch") == [("ksr_branch_carrier",)]
    assert ksr.pvars["$avp(sipwave_acc_carrier)"] == "carrier-b"


@pytest.mark.parametrize("code", [404, 486, 603])
def test_an_answer_of_the_called_party_is_final(ksr, router, code):
    carriers_answer(ksr, CARRIER_A, CARRIER_B)
    call_out(ksr, router)
    failure(ksr, router, code)
    assert ksr.called("dispatcher.ds_next_dst") == []


def test_a_silent_carrier_is_marked_inactive_for_probing(ksr, router):
    carriers_answer(ksr, CARRIER_A, CARRIER_B)
    call_out(ksr, router)
    failure(ksr, router, 408, timeout=True)
    assert ksr.called("dispatcher.ds_mark_dst_state") == [("ip",)]


def test_a_cancelled_call_is_not_failed_over(ksr, router):
    carriers_answer(ksr, CARRIER_A, CARRIER_B)
    call_out(ksr, router)
    ksr.calls.clear()
    ksr.returns["tm.t_is_canceled"] = 1
    router.failure_route_carrier()
    assert ksr.called("dispatcher.ds_next_dst") == []


# -- inbound ---------------------------------------------------------------------------------


@pytest.mark.parametrize("called", ["+48221110001", "221110001"])
def test_carrier_call_to_a_served_number_reaches_every_contact(ksr, router, called):
    request(ksr, "INVITE", source=CARRIER_A, ruser=called, rdomain=PROXY, fdomain=CARRIER_A)
    ksr.pvars["$fU"] = "+48601000001"
    router.request_route()
    assert ksr.pvars["$ru"] == f"sip:{ACCOUNT}"
    assert ksr.called("registrar.lookup") == [("location",)]
    assert ksr.called("tm.t_relay") == [()]
    assert ksr.called("auth_db.auth_check") == []


def test_carrier_call_to_an_unregistered_account_gets_480(ksr, router):
    request(ksr, "INVITE", source=CARRIER_A, ruser="+48221110001", rdomain=PROXY)
    ksr.returns["registrar.lookup"] = -1
    router.request_route()
    assert ksr.replies() == [(480, "Temporarily Unavailable")]
    # tm does not record its own answers: the one row is written here
    assert ksr.called("acc.acc_db_request") == [("480 Temporarily Unavailable", "acc")]


@pytest.mark.parametrize("called", ["+48229999999", "481234001", "anything"])
def test_carrier_call_to_an_unknown_number_gets_404_and_nothing_else(ksr, router, called):
    request(ksr, "INVITE", source=CARRIER_A, ruser=called, rdomain=PROXY)
    router.request_route()
    assert ksr.replies() == [(404, "Not Found")]
    assert ksr.called("registrar.lookup") == []


def test_the_same_call_from_another_address_is_refused(ksr, router):
    request(ksr, "INVITE", source=STRANGER, ruser="+48221110001", rdomain=PROXY,
            fdomain=CARRIER_A)  # fmt: skip
    router.request_route()
    assert ksr.replies() == [(403, "Relaying Forbidden")]
    assert ksr.called("registrar.lookup") == []


# -- call records ----------------------------------------------------------------------------


def test_outbound_call_is_recorded_with_account_department_carrier_and_numbers(ksr, router):
    carriers_answer(ksr, CARRIER_A)
    call_out(ksr, router)
    assert ksr.called("setflag") == [(1,), (2,)]
    assert {k: v for k, v in ksr.pvars.items() if k.startswith("$avp(sipwave_acc_")} == {
        "$avp(sipwave_acc_start)": ksr.pvars["$avp(sipwave_acc_start)"],
        "$avp(sipwave_acc_account)": ACCOUNT,
        "$avp(sipwave_acc_department)": "sales",
        "$avp(sipwave_acc_callee)": CALLED,
        "$avp(sipwave_acc_direction)": "outbound",
        "$avp(sipwave_acc_carrier)": "carrier-a",
        "$avp(sipwave_acc_caller)": OWN_NUMBER,
    }


def test_inbound_call_is_recorded_with_the_called_account(ksr, router):
    request(ksr, "INVITE", source=CARRIER_B, ruser="+48221110002", rdomain=PROXY)
    ksr.pvars["$fU"] = "+48601000001"
    router.request_route()
    assert ksr.called("setflag") == [(1,), (2,)]
    assert ksr.pvars["$avp(sipwave_acc_account)"] == ACCOUNT
    assert ksr.pvars["$avp(sipwave_acc_carrier)"] == "carrier-b"
    assert ksr.pvars["$avp(sipwave_acc_direction)"] == "inbound"
    assert ksr.pvars["$avp(sipwave_acc_caller)"] == "+48601000001"


def test_a_refusal_of_a_request_not_flagged_for_acc_is_not_recorded(ksr, router):
    request(ksr, "MESSAGE", source=CARRIER_A, ruser="+48229999999", rdomain=PROXY)
    ksr.returns["isflagset"] = -1
    router.request_route()
    assert ksr.replies() == [(404, "Not Found")]
    assert ksr.called("acc.acc_db_request") == []


def test_a_carriers_bye_records_the_end_at_once_with_the_carrier(ksr, router):
    request(ksr, "BYE", source=CARRIER_A, totag=True)
    ksr.returns["rr.loose_route"] = 1
    ksr.returns["rr.check_route_param"] = 1
    ends = (CARRIER_A, "ip.tanifon.pl")
    ksr.pvars.update(
        {"$ci": "call-2@carrier", "$route_uri": own_route(router, "call-2@carrier", ends)}
    )
    router.request_route()
    assert ksr.called("acc.acc_db_request") == [("200 Call Ended", "sipwave_call_end")]
    assert ksr.pvars["$avp(sipwave_acc_carrier)"] == "carrier-a"
    assert ksr.called("tm.t_on_reply") == []


def test_a_subscribers_bye_records_nothing_until_it_is_answered(ksr, router):
    """Anyone who knows a call's Call-ID and tags can write its BYE and send it to a phone of
    their own: the end is recorded on the answer (reply route), not on the request."""
    request(ksr, "BYE", source="127.0.20.201", totag=True)
    ksr.returns["rr.loose_route"] = 1
    ksr.returns["rr.check_route_param"] = 1
    ksr.pvars.update(
        {
            "$ci": "call-3@phone",
            "$route_uri": own_route(router, "call-3@phone", ("127.0.20.201", "ip.tanifon.pl")),
        }
    )
    router.request_route()
    assert ksr.called("acc.acc_db_request") == []
    assert ksr.called("tm.t_on_reply") == [("ksr_reply_call_end",)]
    assert ksr.called("tm.t_relay")


@pytest.mark.parametrize(
    ("code", "answered_by", "carrier"),
    [(200, CARRIER_A, "carrier-a"), (202, CARRIER_B, "carrier-b"), (200, "127.0.20.77", None)],
)
def test_a_2xx_to_a_subscribers_bye_records_the_end_and_who_confirmed_it(
    ksr, router, code, answered_by, carrier
):
    ksr.pvars.update({"$rs": code, "$si": answered_by})
    assert router.reply_route_call_end() == 1
    assert ksr.called("acc.acc_db_request") == [(f"{code} Call Ended", "sipwave_call_end")]
    assert ksr.pvars.get("$avp(sipwave_acc_carrier)") == carrier


@pytest.mark.parametrize("code", [100, 180, 481, 408, 500, None])
def test_any_other_answer_to_a_subscribers_bye_records_no_end(ksr, router, code):
    ksr.pvars.update({"$rs": code, "$si": CARRIER_A})
    assert router.reply_route_call_end() == 1
    assert ksr.called("acc.acc_db_request") == []


def test_a_clip_allow_list_with_a_number_that_is_none_is_refused():
    from sipwave_router.e164 import NumberError
    from sipwave_router.settings import settings_from_dict

    with pytest.raises(NumberError):
        settings_from_dict({**SETTINGS, "clip_allow": {"481234001": ["not a number"]}})


def test_acc_writes_every_avp_of_the_router_into_a_column_of_both_call_record_tables(ksr):
    """kamailio.cfg's db_extra (column=AVP) names exactly the router's AVPs, and each of its
    columns exists in acc and sipwave_call_end, new or upgraded (schema.ADDED_COLUMNS)."""
    import re
    import sqlite3
    from pathlib import Path

    from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
    from sipwave_router.telephony import ACC_AVPS

    template = Path(__file__).parents[2] / "roles/kamailio/templates/etc/kamailio/kamailio.cfg.j2"
    (extra,) = re.findall(r'modparam\("acc", "db_extra", "([^"]+)"\)', template.read_text())
    columns = dict(pair.split("=", 1) for pair in extra.split(";"))
    assert sorted(columns.values()) == sorted(ACC_AVPS.values())
    with sqlite3.connect(":memory:") as connection:
        for table in ("acc", "sipwave_call_end"):
            connection.execute(schema.create_table("sqlite", table))
            present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            assert set(columns) <= present, table
