"""Dialog tokens in the Record-Route, identity claims in replies, and caller numbers that are
never made of a login: the router's decisions through the KSR stub. The live attacks are in
molecule/kamailio/tests/test_attacks.py and test_telephony.py."""

import importlib
import time

import pytest
from conftest import ROUTER_SETTINGS, joins, own_route, recorded_token
from test_router import PBX, SUBSCRIBER, request
from test_router_dialin import accepted
from test_router_telephony import CALLED, CARRIER_A, SETTINGS, carriers_answer

CALL_ID = "a84b4c76e66710@pc33.example"
CALLEE = "10.0.0.7"
RELAYING_PEER = "127.0.20.51"


def make_router(settings: dict):
    package = importlib.import_module("sipwave_router")
    from sipwave_router.settings import settings_from_dict

    return package.Router(settings_from_dict(settings))


def key_file(tmp_path, text: str):
    path = tmp_path / "dialog.key"
    path.write_text(text)
    return path


def in_dialog(
    ksr,
    route_uri: str | None,
    *,
    call_id: str = CALL_ID,
    source=SUBSCRIBER,
    target: str = "sip:phone@" + CALLEE,
    further: str | None = None,
):
    """An in-dialog BYE whose top Route is this proxy's (check_route_param answers), to the
    request URI ``target`` or a ``further`` Route."""
    request(ksr, "BYE", source=source, totag=True, rdomain=uri_host(target))
    ksr.returns["rr.loose_route"] = 1
    ksr.pvars.update({"$ci": call_id, "$route_uri": route_uri, "$du": further})


def uri_host(uri: str) -> str:
    return uri.split("@", 1)[-1].split(":", 1)[0].split(";", 1)[0]


# -- the token ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["INVITE", "SUBSCRIBE"])
def test_each_branch_is_record_routed_with_the_token_of_its_two_ends(ksr, router, method):
    request(ksr, method, rdomain="sip.sipwave.test", ruser="tnf481234003")
    ksr.returns["auth_db.auth_check"] = 1
    ksr.pvars["$ci"] = CALL_ID
    router.request_route()
    assert ksr.called("rr.record_route_params") == []
    assert ksr.called("tm.t_on_branch") == [("ksr_branch_dialog",)]
    # A branch with a destination (a contact behind its received address) names that.
    direct = recorded_token(ksr, router, **{"$ru": f"sip:tnf481234003@{CALLEE}:5062"})
    received = recorded_token(ksr, router, **{"$du": "sip:10.0.0.9:5071"})
    assert joins(router, CALL_ID, direct, SUBSCRIBER, CALLEE)
    assert joins(router, CALL_ID, received, SUBSCRIBER, "10.0.0.9")
    stamp, first, second = direct.split(".")
    assert abs(int(stamp, 16) - time.time()) < 5
    assert len(first) == len(second) == 24 and int(first + second, 16) >= 0
    assert ksr.called("rr.record_route") == []


def test_the_right_token_is_followed_both_ways(ksr, router):
    route = own_route(router, CALL_ID, (SUBSCRIBER, CALLEE))
    in_dialog(ksr, route)
    router.request_route()
    assert ksr.called("tm.t_relay") == [()]
    ksr.calls.clear()
    in_dialog(ksr, route, source=CALLEE, target=f"sip:481234001@{SUBSCRIBER}:5060")
    router.request_route()
    assert ksr.called("tm.t_relay") == [()]


@pytest.mark.parametrize(
    "route_uri",
    [
        "sip:127.0.20.11;lr",  # the attack: the proxy named in a Route, nothing else
        None,
        "sip:127.0.20.11;lr;swt=",
        "sip:127.0.20.11;lr;swt=00000000000000000000000000000000",
        "sip:127.0.20.11;lr;swt=0." + "0" * 24 + "." + "0" * 24,
        "sip:127.0.20.11;lr;swt=zz",
        "sip:127.0.20.11;lr;swt=\u00e9\u00e9",
        "sip:127.0.20.11;lr;swt=0x1." + "0" * 24 + "." + "0" * 24,
    ],
)
def test_a_route_without_the_token_of_its_dialog_is_refused(ksr, router, route_uri):
    in_dialog(ksr, route_uri)
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]
    assert ksr.called("tm.t_relay") == []


def test_the_token_of_another_call_is_refused(ksr, router):
    """A subscriber's own call gives it a token, for that Call-ID only."""
    route = own_route(router, "my-own-call@attacker", (SUBSCRIBER, CALLEE))
    in_dialog(ksr, route, call_id="victims-call@phone")
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]


@pytest.mark.parametrize("further", [None, "sip:10.0.0.66:5060;lr"])
def test_an_end_of_the_dialog_cannot_send_it_anywhere_else(ksr, router, further):
    """The replay: a subscriber's own call's token, to a request URI (or a further Route) of
    its choosing. Once that reached any host from the proxy's address."""
    route = own_route(router, CALL_ID, (SUBSCRIBER, CALLEE))
    in_dialog(ksr, route, target="sip:victim@10.0.0.66:5060", further=further)
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]
    assert ksr.called("tm.t_relay") == []


def test_someone_who_is_no_end_of_the_dialog_cannot_use_its_token(ksr, router):
    route = own_route(router, CALL_ID, (SUBSCRIBER, CALLEE))
    in_dialog(ksr, route, source="10.0.0.66")  # to the callee, as the caller would
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]


def test_an_end_of_the_dialog_may_reach_a_peer_at_another_address(ksr, router):
    """A PBX or carrier may answer from another of its addresses than the one called."""
    route = own_route(router, CALL_ID, (SUBSCRIBER, "127.0.20.22"))
    in_dialog(ksr, route, target="sip:800100@127.0.20.21:5080")
    router.request_route()
    assert ksr.called("tm.t_relay") == [()]


def test_a_calls_token_reaches_no_peer_when_its_other_end_was_none(ksr, router):
    """A subscriber's call to another subscriber gives it no way to the PBX or a carrier."""
    route = own_route(router, CALL_ID, (SUBSCRIBER, CALLEE))
    in_dialog(ksr, route, target="sip:800100@127.0.20.21:5080")
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]


@pytest.mark.parametrize(("age_s", "followed"), [(604800 - 60, True), (604800 + 60, False)])
def test_a_token_is_followed_for_the_dialog_lifetime(ksr, router, age_s, followed):
    in_dialog(ksr, own_route(router, CALL_ID, (SUBSCRIBER, CALLEE), age_s=age_s))
    router.request_route()
    assert bool(ksr.called("tm.t_relay")) is followed


def test_a_token_from_the_future_is_refused(ksr, router):
    in_dialog(ksr, own_route(router, CALL_ID, (SUBSCRIBER, CALLEE), age_s=-3600))
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]


def test_the_previous_releases_token_is_followed_towards_a_peer_only(ksr, router):
    """A call in progress across the upgrade can still be ended at its carrier or PBX."""
    from sipwave_router.dialogs import call_id_token

    route = f"sip:127.0.20.11;lr;swt={call_id_token(router._dialog_key, CALL_ID)}"
    in_dialog(ksr, route, target="sip:800100@127.0.20.21:5080")
    router.request_route()
    assert ksr.called("tm.t_relay") == [()]
    ksr.calls.clear()
    in_dialog(ksr, route)
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]


def test_a_token_on_a_route_that_is_not_this_proxy_is_refused(ksr, router):
    in_dialog(ksr, own_route(router, CALL_ID, (SUBSCRIBER, CALLEE), host="127.0.20.99"))
    ksr.returns["rr.check_route_param"] = -1  # loose_route found the top Route foreign
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]


def test_a_trusted_peer_follows_the_token_to_the_dialogs_other_end(ksr, router):
    """The PBX ends a call it took, from another of its addresses than the one called."""
    route = own_route(router, CALL_ID, (SUBSCRIBER, "127.0.20.22"))
    in_dialog(ksr, route, source=PBX, target=f"sip:481234001@{SUBSCRIBER}:5060")
    router.request_route()
    assert ksr.called("tm.t_relay") == [()]


@pytest.mark.parametrize(
    ("route_uri", "target", "further"),
    [
        # No token at all: once enough from a trusted peer's address.
        ("sip:127.0.20.11;lr", "sip:victim@10.0.0.66:5060", None),
        # A token of the attacker's own call with the PBX, to a host of its choosing.
        ("own", "sip:victim@10.0.0.66:5060", None),
        ("own", f"sip:481234001@{SUBSCRIBER}:5060", "sip:10.0.0.66:5060;lr"),
        # A further Route whose user part names the PBX: the host is evil.example's.
        ("own", f"sip:481234001@{SUBSCRIBER}:5060", "sip:127.0.20.21;x@evil.example;lr"),
    ],
)
def test_a_request_forged_from_a_trusted_peers_address_reaches_no_host_of_its_choosing(
    ksr, router, route_uri, target, further
):
    """UDP from the PBX's (or a carrier's) address is easily forged."""
    if route_uri == "own":
        route_uri = own_route(router, CALL_ID, (SUBSCRIBER, "127.0.20.21"))
    in_dialog(ksr, route_uri, source=PBX, target=target, further=further)
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]
    assert ksr.called("tm.t_relay") == []


@pytest.mark.parametrize(
    "further", ["sip:127.0.20.21;x@evil.example;lr", "sip:127.0.20.21;lr;maddr=evil.example"]
)
def test_a_further_route_that_only_seems_to_name_a_peer_is_not_that_peer(ksr, router, further):
    """The review's attacks: ``sip:PEER;x@evil.example`` once read as the peer's host, and a
    maddr parameter (where a Kamailio built with HONOR_MADDR sends)."""
    route = own_route(router, CALL_ID, (SUBSCRIBER, "127.0.20.21"))
    in_dialog(ksr, route, further=further)
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]


def test_an_ipv6_end_is_followed_although_kamailio_keeps_its_brackets(ksr, router):
    """$rd of sip:phone@[2001:db8::7] is "[2001:db8::7]"; the branch recorded 2001:db8::7."""
    ksr.pvars["$ci"] = CALL_ID
    recorded = recorded_token(ksr, router, **{"$si": SUBSCRIBER, "$ru": "sip:p@[2001:DB8::7]"})
    in_dialog(ksr, f"sip:127.0.20.11;lr;swt={recorded}", target="sip:p@x")
    ksr.pvars["$rd"] = "[2001:db8:0::7]"
    router.request_route()
    assert ksr.called("tm.t_relay") == [()]


def test_a_token_outlives_a_restart_with_the_same_key_file(ksr, tmp_path):
    settings = {**ROUTER_SETTINGS, "dialog_key_file": str(key_file(tmp_path, "ab" * 32))}
    before = make_router(settings)
    route = own_route(before, CALL_ID, (SUBSCRIBER, CALLEE))
    after = make_router(settings)
    in_dialog(ksr, route)
    after.request_route()
    assert ksr.called("tm.t_relay") == [()]
    # ... and a key of another proxy (or before the upgrade: no token at all) does not.
    other = {**settings, "dialog_key_file": str(key_file(tmp_path, "cd" * 32))}
    ksr.calls.clear()
    in_dialog(ksr, route)
    make_router(other).request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("not hex at all", "is not hex"), ("ab" * 16, "fewer than 32 bytes"), ("", "fewer than")],
)
def test_a_bad_key_file_is_refused_naming_the_file(ksr, tmp_path, text, reason):
    path = key_file(tmp_path, text)
    with pytest.raises(ValueError, match=reason) as raised:
        make_router({**ROUTER_SETTINGS, "dialog_key_file": str(path)})
    assert str(raised.value).startswith(f"{path}: line 1: ")


def test_the_key_is_read_from_its_file_and_never_part_of_the_settings(ksr, tmp_path):
    router = make_router({**ROUTER_SETTINGS, "dialog_key_file": str(key_file(tmp_path, "5a" * 32))})
    assert router._dialog_key == bytes.fromhex("5a" * 32)
    assert "5a5a" not in repr(router.settings)


def test_without_a_key_file_each_router_has_a_random_key_of_its_own(ksr):
    first, second = make_router(ROUTER_SETTINGS), make_router(ROUTER_SETTINGS)
    assert len(first._dialog_key) == 32 and first._dialog_key != second._dialog_key


# -- identity claims in replies ----------------------------------------------------------------

REPLY_CLAIMS = (
    "^(P-Asserted-Identity|P-Preferred-Identity|Remote-Party-ID|Identity|y|X-Sipwave-.*)$"
)
RELAYED_REPLY_CLAIMS = "^(P-Preferred-Identity|Remote-Party-ID|Identity|y|X-Sipwave-.*)$"


def a_reply(ksr, source: str) -> None:
    ksr.pvars.update({"$si": source, "$ci": CALL_ID, "$rm": "INVITE", "$rs": "200"})


def test_a_phones_reply_loses_its_identity_claims(ksr, router):
    a_reply(ksr, SUBSCRIBER)
    assert router.reply_route() == 1
    assert ksr.called("textops.remove_hf_re") == [(REPLY_CLAIMS,)]


def test_a_trusted_peers_reply_keeps_them(ksr, router):
    a_reply(ksr, PBX)
    assert router.reply_route() == 1
    assert ksr.called("textops.remove_hf_re") == []


def test_a_relaying_peers_reply_keeps_only_its_asserted_identity(ksr):
    proxy = make_router({**ROUTER_SETTINGS, "relaying_peers": [RELAYING_PEER]})
    a_reply(ksr, RELAYING_PEER)
    proxy.reply_route()
    assert ksr.called("textops.remove_hf_re") == [(RELAYED_REPLY_CLAIMS,)]


def test_an_unreadable_reply_is_treated_as_a_strangers(ksr, router):
    def undecodable(_name):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    ksr.pv.get = undecodable
    assert router.reply_route() == 1
    assert ksr.called("textops.remove_hf_re") == [(REPLY_CLAIMS,)]


def test_identity_from_a_phone_is_removed_from_its_requests(ksr, router):
    request(ksr, "INVITE")
    ksr.returns["auth_db.auth_check"] = -5
    router.request_route()
    ((pattern,),) = ksr.called("textops.remove_hf_re")
    assert "|Identity|" in pattern


# -- caller numbers are never made of a login --------------------------------------------------


@pytest.fixture
def telephony(ksr):
    return make_router(SETTINGS)


@pytest.mark.parametrize("login", ["481234005", "48221110009", "tnf481234005"])
def test_an_account_without_a_number_never_calls_a_carrier(ksr, telephony, login):
    """481234005 would have been presented as +48481234005: a stranger's number."""
    carriers_answer(ksr, CARRIER_A)
    request(ksr, "INVITE", ruser=CALLED)
    accepted(ksr, login)
    telephony.request_route()
    assert ksr.replies() == [(403, "Caller Number Unknown")]
    assert ksr.called("tm.t_relay") == []
    assert ksr.called("dispatcher.ds_select_dst") == []


def test_an_account_with_only_a_temporary_number_presents_it(ksr, telephony):
    ksr.htables["routing"] = {"t:481234005@ip.tanifon.pl": "+48225559000"}
    carriers_answer(ksr, CARRIER_A)
    request(ksr, "INVITE", ruser=CALLED)
    accepted(ksr, "481234005")
    telephony.request_route()
    assert ksr.pvars["$avp(sipwave_clip_own)"] == "+48225559000"
    assert "$avp(sipwave_clip_foreign)" not in ksr.pvars
    assert ksr.called("tm.t_relay") == [()]


@pytest.mark.parametrize("name", ["Identity", "identity", "y", "Y"])
def test_identity_is_a_claim_in_its_full_and_compact_forms_and_nothing_else_is(ksr, name):
    """textops compares the header name as written: Kamailio's parser reads "y" as Identity
    (RFC 8224's compact form), the regular expressions must name it too."""
    import re

    routing = importlib.import_module("sipwave_router.routing")
    for pattern in (
        routing.CLAIM_HEADERS_RE,
        routing.RELAYED_CLAIM_HEADERS_RE,
        routing.REPLY_CLAIM_HEADERS_RE,
        routing.RELAYED_REPLY_CLAIM_HEADERS_RE,
    ):
        assert re.search(pattern, name, re.IGNORECASE), pattern
        for other in ("Privacy", "Via", "Reply-To", "yy"):
            assert not re.search(pattern, other, re.IGNORECASE), (pattern, other)
