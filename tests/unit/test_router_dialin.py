"""Dial-in routing of the KEMI router (caller number to the PBX), driven through the KSR stub."""

import importlib

import pytest
from conftest import ROUTER_SETTINGS
from test_router import request

CARRIER = "127.0.21.31"
CLAIM_HEADERS = (
    "^(X-Sipwave-.*|P-Asserted-Identity|P-Preferred-Identity|Remote-Party-ID|Identity|y"
    "|Diversion|History-Info)$"
)
DIALIN = "+48225550100"
SETTINGS = {
    **ROUTER_SETTINGS,
    "trusted_peers": ["127.0.20.21", CARRIER],
    "prefix_routes": [
        *ROUTER_SETTINGS["prefix_routes"],
        {"name": "dial-in", "prefix": DIALIN, "destination": "sip:127.0.20.21:5060"},
    ],
    "number_plan": {"country_code": "48", "national_lengths": [9], "trunk_prefix": ""},
    "dialin_numbers": [DIALIN],
}


@pytest.fixture
def router(ksr):
    package = importlib.import_module("sipwave_router")
    from sipwave_router.settings import settings_from_dict

    return package.Router(settings_from_dict(SETTINGS))


def appended(ksr) -> list[str]:
    return [args[0] for args in ksr.called("hdr.append")]


@pytest.mark.parametrize("from_user", ["+48221110001", "0048221110001", "221110001"])
def test_carrier_caller_is_passed_on_in_e164(ksr, router, from_user):
    request(ksr, "INVITE", source=CARRIER, ruser=DIALIN)
    ksr.pvars["$fU"] = from_user
    router.request_route()
    assert appended(ksr) == ["X-Sipwave-Caller: +48221110001\r\n"]
    assert ksr.pvars["$du"] == "sip:127.0.20.21:5060"
    assert ksr.called("tm.t_relay") == [()]


def test_carrier_header_of_the_same_name_is_replaced(ksr, router):
    request(ksr, "INVITE", source=CARRIER, ruser=DIALIN)
    ksr.pvars["$fU"] = "+48221110001"
    router.request_route()
    assert ksr.called("textops.remove_hf") == [("X-Sipwave-Caller",)]


def accepted(ksr, user: str, domain: str = "ip.tanifon.pl") -> None:
    """auth_check() accepts the credentials of subscriber row user@domain (load_credentials)."""
    ksr.returns["auth_db.auth_check"] = 1
    ksr.pvars.update({"$avp(sipwave_auth_user)": user, "$avp(sipwave_auth_domain)": domain})


def test_subscriber_caller_is_the_authenticated_accounts_number(ksr, router):
    ksr.htables["routing"] = {"a:481234001@ip.tanifon.pl": "+48221110003"}
    request(ksr, "INVITE", ruser=DIALIN)
    accepted(ksr, "481234001")
    ksr.pvars.update({"$au": "481234001", "$fU": "481234001"})
    router.request_route()
    assert appended(ksr) == ["X-Sipwave-Caller: +48221110003\r\n"]


def test_first_credentials_header_of_another_user_is_not_the_caller(ksr, router):
    # $au reads the first Proxy-Authorization; auth_check() accepted a later one.
    ksr.htables["routing"] = {
        "a:481234001@ip.tanifon.pl": "+48221110001",
        "a:481239999@ip.tanifon.pl": "+48221119999",
    }
    request(ksr, "INVITE", ruser=DIALIN)
    accepted(ksr, "481239999")
    ksr.pvars.update({"$au": "481234001", "$fU": "481239999"})
    router.request_route()
    assert appended(ksr) == ["X-Sipwave-Caller: +48221119999\r\n"]


def test_phase2_login_calls_as_its_accounts_number(ksr, router):
    ksr.htables["routing"] = {"a:tnf48331000002@sip.sipwave.test": "+48331000002"}
    request(ksr, "INVITE", ruser=DIALIN, fdomain="sip.sipwave.test")
    accepted(ksr, "tnf48331000002", "SIP.sipwave.test")
    router.request_route()
    assert appended(ksr) == ["X-Sipwave-Caller: +48331000002\r\n"]
    assert ksr.called("htable.sht_get")[-1] == ("routing", "a:tnf48331000002@sip.sipwave.test")


def test_the_number_is_the_one_of_the_accepted_rows_domain(ksr, router):
    # A digest username "user@domain" is looked up in that domain, whatever the realm.
    ksr.htables["routing"] = {
        "a:4812@ip.tanifon.pl": "+48221110001",
        "a:4812@sip.sipwave.test": "+48221110002",
    }
    request(ksr, "INVITE", ruser=DIALIN, fdomain="ip.tanifon.pl")
    accepted(ksr, "4812", "sip.sipwave.test")
    router.request_route()
    assert appended(ksr) == ["X-Sipwave-Caller: +48221110002\r\n"]


def test_claim_headers_from_untrusted_sources_are_removed_before_anything_else(ksr, router):
    request(ksr, "INVITE", ruser=DIALIN)
    ksr.returns["auth_db.auth_check"] = -5  # not authenticated yet: challenged
    router.request_route()
    assert ksr.called("textops.remove_hf_re") == [(CLAIM_HEADERS,)]
    assert appended(ksr) == []
    assert ksr.called("auth.auth_challenge") == [("ip.tanifon.pl", 0)]


def test_trusted_peers_keep_their_headers_outside_dialin(ksr, router):
    request(ksr, "INVITE", source=CARRIER, ruser="800100")
    router.request_route()
    assert ksr.called("textops.remove_hf_re") == []
    assert appended(ksr) == []


# A numeric login (481234001) would read as +48481234001, a stranger's number: an account
# without a number of its own is refused whatever its login looks like.
@pytest.mark.parametrize("login", ["tnf481234003", "481234001", "48221110003", "", None])
def test_caller_without_a_number_is_refused(ksr, router, login):
    request(ksr, "INVITE", ruser=DIALIN)
    accepted(ksr, login)
    ksr.pvars["$au"] = "48221110003"  # someone else's first header changes nothing
    router.request_route()
    assert ksr.replies() == [(403, "Caller Number Unknown")]
    assert ksr.called("tm.t_relay") == []


def test_other_numbers_on_the_route_get_no_caller_header(ksr, router):
    request(ksr, "INVITE", source=CARRIER, ruser=DIALIN + "9")
    ksr.pvars["$fU"] = "+48221110001"
    router.request_route()
    assert appended(ksr) == []
    assert ksr.called("tm.t_relay") == [()]


def test_settings_without_dialin_read_international_numbers_only(ksr):
    from sipwave_router.e164 import normalise_or_none
    from sipwave_router.settings import settings_from_dict

    plan = settings_from_dict(ROUTER_SETTINGS).number_plan
    assert normalise_or_none("+48221110001", plan) == "+48221110001"
    assert normalise_or_none("221110001", plan) is None
