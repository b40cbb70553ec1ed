"""Hostile input to the KEMI router (issue 11), driven through the KSR stub.

The live attacks are in molecule/kamailio/tests/test_attacks.py; these pin the decisions.
"""

import sys

import pytest
from conftest import DIALOG_ENDS, own_route
from test_router import PBX, SUBSCRIBER, request

CONTACTS = "$(hdr(Contact)[*])"


def test_a_method_with_separators_is_refused_before_authentication(ksr, router):
    request(ksr, "REGISTER|<null>|ip.tanifon.pl")
    router.request_route()
    assert ksr.replies() == [(400, "Bad Method")]
    assert ksr.called("auth_db.auth_check") == []


@pytest.mark.parametrize("method", ["INVITE|<null>", "REGISTER"])
def test_a_banned_source_stays_banned_whatever_its_method(ksr, router, method):
    request(ksr, method)
    ksr.htables["ipban"] = {SUBSCRIBER: 1}
    router.request_route()
    assert ksr.calls == [("pv.get", (ksr.calls[0][1][0],))]


def test_an_unknown_method_that_is_a_token_goes_on(ksr, router):
    request(ksr, "FOO.bar")
    ksr.returns["auth_db.auth_check"] = -5
    router.request_route()
    assert (400, "Bad Method") not in ksr.replies()


def undecodable(ksr, monkeypatch, *, failing: str) -> None:
    """Make the pv read of ``failing`` raise as app_python3s does for bytes not UTF-8."""
    routing = sys.modules["sipwave_router.routing"]
    real = routing._pv_get

    def get(name):
        if failing in name:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        return real(name)

    monkeypatch.setattr(routing, "_pv_get", get)


def test_a_value_that_is_not_utf8_is_answered_400_and_counted(ksr, router, monkeypatch):
    request(ksr, "OPTIONS", ua="x")
    undecodable(ksr, monkeypatch, failing="$ua")
    assert router.request_route() == 1
    assert ksr.called("pike.pike_check_req") == [()]
    assert ksr.replies() == [(400, "Bad Encoding")]


def test_a_flood_of_values_that_are_not_utf8_bans_the_source(ksr, router, monkeypatch):
    request(ksr, "OPTIONS", ua="x")
    undecodable(ksr, monkeypatch, failing="$ua")
    ksr.returns["pike.pike_check_req"] = -1
    router.request_route()
    assert ksr.htables["ipban"] == {SUBSCRIBER: 1}
    assert ksr.replies() == []


@pytest.mark.parametrize("agent", ["friendly-scanner", "sipvicious"])
def test_a_spoofed_scanner_packet_never_bans_a_trusted_peer(ksr, router, agent):
    request(ksr, "OPTIONS", source=PBX, ua=agent)
    router.request_route()
    assert ksr.htables.get("ipban", {}) == {}
    assert ksr.replies() == []  # the packet itself is still dropped


def test_scanner_bans_stop_at_the_limit_per_minute(ksr, router):
    ksr.htables["scannerbans"] = {"scanner": router.settings.scanner_ban_limit}
    request(ksr, "OPTIONS", ua="friendly-scanner")
    router.request_route()
    assert ksr.htables.get("ipban", {}) == {}
    assert ksr.replies() == []


def test_no_ban_of_any_kind_past_the_table_limit(ksr, router):
    ksr.htables["bans"] = {"all": router.settings.ban_table_limit}
    request(ksr, "INVITE")
    ksr.returns["pike.pike_check_req"] = -1
    router.request_route()
    assert ksr.htables.get("ipban", {}) == {}


@pytest.mark.parametrize(
    "contacts",
    [
        "<sip:a@127.0.20.21:5080>",
        "<sip:a@10.0.0.1:5060>, <sip:a@127.0.20.21:5080>",
        '"x, y" <sip:a@10.0.0.1>,<sip:a@127.000.020.021>',
        "<SIP:a@ip.tanifon.pl>",
        "sip:a@127.0.20.22;transport=udp",
    ],
)
def test_a_contact_at_a_peer_or_served_domain_is_refused(ksr, router, contacts):
    request(ksr, "REGISTER")
    ksr.pvars[CONTACTS] = contacts
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert ksr.replies() == [(403, "Contact Not Allowed")]
    assert ksr.called("registrar.save") == []


@pytest.mark.parametrize("contacts", ["<sip:a@10.0.0.1:5060>", "*", "<sip:127.0.20.210@10.0.0.2>"])
def test_a_contact_elsewhere_is_saved(ksr, router, contacts):
    request(ksr, "REGISTER")
    ksr.pvars[CONTACTS] = contacts
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert ksr.called("registrar.save") == [("location", 0)]


@pytest.mark.parametrize(
    ("method", "auth", "reads"),
    [("REGISTER", -5, 0), ("REGISTER", 1, 1), ("INVITE", 1, 0), ("OPTIONS", -5, 0)],
)
def test_contacts_are_read_only_for_a_register_whose_credentials_passed(
    ksr, router, method, auth, reads
):
    """Collecting every Contact header costs Kamailio a walk over all headers: a challenged
    REGISTER and every other method never ask for them (the REGISTER bench's cost)."""
    request(ksr, method)
    ksr.pvars[CONTACTS] = "<sip:a@10.0.0.1:5060>"
    ksr.returns["auth_db.auth_check"] = auth
    router.request_route()
    assert ksr.called("pv.get").count((CONTACTS,)) == reads
    assert not any("Contact" in name for (name,) in ksr.called("pv.get")[:1])


def test_contacts_too_long_to_read_are_refused(ksr, router):
    request(ksr, "REGISTER")
    ksr.pvars[CONTACTS] = None  # pv's buffer was too small for them
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert ksr.called("hdr.is_present") == [("Contact",)]
    assert ksr.called("registrar.save") == []


def in_dialog(
    ksr, router=None, *, source=SUBSCRIBER, ours: bool, next_hop: str | None, ends=DIALOG_ENDS
):
    """An in-dialog MESSAGE whose top Route is this proxy's (``ours``), with the dialog token
    of its Call-ID between ``ends`` when a ``router`` is given."""
    request(ksr, "MESSAGE", source=source, totag=True)
    ksr.returns["rr.loose_route"] = 1
    ksr.returns["rr.check_route_param"] = 1 if ours else -1
    ksr.pvars["$du"] = next_hop
    ksr.pvars["$ci"] = "dialog-1@phone"
    if router is not None:
        ksr.pvars["$route_uri"] = own_route(router, "dialog-1@phone", ends)


@pytest.mark.parametrize(
    ("ours", "next_hop"),
    [(False, "sip:127.0.20.99:5070;lr"), (True, "sip:127.0.20.99:5070;lr")],
)
def test_a_foreign_route_in_a_dialog_is_not_followed(ksr, router, ours, next_hop):
    in_dialog(ksr, router, ours=ours, next_hop=next_hop)
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]
    assert ksr.called("tm.t_relay") == []


@pytest.mark.parametrize(
    ("next_hop", "ends"),
    [(None, DIALOG_ENDS), ("sip:127.0.20.21:5080;lr", (SUBSCRIBER, "127.0.20.21"))],
)
def test_the_own_route_in_a_dialog_is_followed(ksr, router, next_hop, ends):
    in_dialog(ksr, router, ours=True, next_hop=next_hop, ends=ends)
    router.request_route()
    assert ksr.called("tm.t_relay") == [()]


@pytest.mark.parametrize("ours", [False, True])
def test_a_trusted_peer_in_a_dialog_is_not_followed_to_a_route_of_its_choosing(ksr, router, ours):
    """Its address is easily forged: it follows the dialog's token like anyone else."""
    in_dialog(ksr, router, source=PBX, ours=ours, next_hop="sip:127.0.20.99:5070")
    router.request_route()
    assert ksr.replies() == [(403, "Route Not Followed")]
    assert ksr.called("tm.t_relay") == []


def test_an_ack_without_to_tag_is_dropped(ksr, router):
    request(ksr, "ACK")
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert ksr.called("tm.t_relay") == []
    assert ksr.called("auth_db.auth_check") == []


def legacy_failure(ksr, code, *, authorization="1", challenge="", method="REGISTER"):
    ksr.pvars.update(
        {
            "$T_reply_code": code,
            "$si": SUBSCRIBER,
            "$rm": method,
            "$hdrc(Authorization)": authorization,
            "$hdrc(Proxy-Authorization)": "0",
            "$tU": "481299001",
            "$td": "IP.tanifon.pl",
            "$fU": "481299001",
            "$fd": "ip.tanifon.pl",
            "$T_rpl($hdr(WWW-Authenticate))": challenge,
        }
    )


@pytest.mark.parametrize("code", ["401", "403"])
def test_the_legacy_platforms_refusals_of_credentials_are_counted(ksr, router, code):
    legacy_failure(ksr, code)
    for _ in range(3):  # auth_failure_limit of the unit settings
        router.failure_route_legacy()
    assert ksr.htables["authfail"] == {SUBSCRIBER: 3, "u:481299001@ip.tanifon.pl": 3}
    assert ksr.htables["ipban"] == {SUBSCRIBER: 1}


@pytest.mark.parametrize(
    "failure",
    [
        {"code": "401", "authorization": "0"},  # a first challenge, no credentials yet
        {"code": "401", "challenge": 'Digest realm="x", nonce="y", stale=true'},
        {"code": "486"},
    ],
)
def test_other_legacy_answers_are_not_failures(ksr, router, failure):
    legacy_failure(ksr, **failure)
    router.failure_route_legacy()
    assert "authfail" not in ksr.htables


def test_guesses_for_one_identity_from_many_sources_end_in_bans(ksr, router):
    ksr.htables["authfail"] = {"u:481299001@ip.tanifon.pl": 2}
    legacy_failure(ksr, "401")
    router.failure_route_legacy()
    assert ksr.htables["ipban"] == {SUBSCRIBER: 1}


@pytest.mark.parametrize("source", [PBX, "127.0.20.22"])
def test_claims_are_removed_from_clients_only(ksr, router, source):
    request(ksr, "INVITE", source=source, ruser="800100")
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    removed = ksr.called("textops.remove_hf_re")
    if source == PBX:
        assert removed == []
    else:
        assert len(removed) == 1
        for name in ("P-Asserted-Identity", "P-Preferred-Identity", "Remote-Party-ID"):
            assert name in removed[0][0]
