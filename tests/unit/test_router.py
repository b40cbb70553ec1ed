"""Routing decisions of the KEMI router, driven through the KSR stub."""

import pytest
from conftest import joins, own_route, recorded_token

SUBSCRIBER = "10.0.0.1"  # the stub never sends anything: addresses are only data here
PBX = "127.0.20.21"


def request(
    ksr,
    method,
    *,
    source=SUBSCRIBER,
    ruser="481234002",
    rdomain="ip.tanifon.pl",
    fdomain="ip.tanifon.pl",
    tdomain=None,
    ua="Yealink SIP-T46U",
    totag=False,
):
    ksr.pvars.update(
        {
            "$si": source,
            "$rm": method,
            "$rU": ruser,
            "$rd": rdomain,
            "$fd": fdomain,
            "$td": tdomain or rdomain,
            "$ua": ua,
            "$(hdr(Contact)[*])": "<sip:phone@10.0.0.1:5060>",
        }
    )
    ksr.returns.update(
        {
            "siputils.has_totag": 1 if totag else -1,
            # a new transaction, not a retransmission
            "tmx.t_precheck_trans": -1,
            "tm.t_check_trans": -1,
        }
    )


def test_register_with_valid_credentials_is_saved(ksr, router):
    request(ksr, "REGISTER")
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert ksr.called("auth_db.auth_check") == [("ip.tanifon.pl", "subscriber", 1)]
    assert ksr.called("registrar.save") == [("location", 0)]
    # Answered here, never relayed: nothing to strip the credentials from.
    assert ksr.called("auth.consume_credentials") == []


@pytest.mark.parametrize("domain", ["ip.tanifon.pl", "SIP.sipwave.test"])
def test_register_is_challenged_in_its_own_realm(ksr, router, domain):
    request(ksr, "REGISTER", rdomain=domain)
    ksr.returns["auth_db.auth_check"] = -5  # no credentials yet
    router.request_route()
    assert ksr.called("auth.auth_challenge") == [(domain.lower(), 0)]
    assert ksr.called("registrar.save") == []


def test_register_is_answered_without_transaction_or_dialog_lookups(ksr, router):
    # The registrar replies statelessly; a retransmitted REGISTER is simply saved again.
    request(ksr, "REGISTER")
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert ksr.called("tmx.t_precheck_trans") == []
    assert ksr.called("tm.t_check_trans") == []
    assert ksr.called("siputils.has_totag") == []


@pytest.mark.parametrize("agent", ["Friendly-Scanner", "my.sipcli/1.0"])
def test_scanner_names_match_regardless_of_case_and_punctuation(ksr, router, agent):
    request(ksr, "REGISTER", ua=agent)
    router.request_route()
    assert ksr.htables["ipban"] == {SUBSCRIBER: 1}


def test_register_for_a_domain_not_served_is_refused(ksr, router):
    request(ksr, "REGISTER", rdomain="evil.example")
    router.request_route()
    assert ksr.replies() == [(403, "Domain Not Served")]
    assert ksr.called("auth_db.auth_check") == []


@pytest.mark.parametrize("failure", [-2, -3, -8])
def test_failed_authentications_ban_the_source_at_the_limit(ksr, router, failure):
    request(ksr, "REGISTER")
    ksr.returns["auth_db.auth_check"] = failure
    for _ in range(3):
        router.request_route()
    assert ksr.htables["ipban"] == {SUBSCRIBER: 1}
    # The third failure is still answered, as the legacy platform's answer to it would be.
    assert len(ksr.called("auth.auth_challenge")) == 3


def test_missing_credentials_do_not_count_as_failures(ksr, router):
    request(ksr, "REGISTER")
    ksr.returns["auth_db.auth_check"] = -5
    for _ in range(5):
        router.request_route()
    assert "ipban" not in ksr.htables or ksr.htables["ipban"] == {}


def test_banned_source_is_dropped_without_answer(ksr, router):
    request(ksr, "REGISTER")
    ksr.htables["ipban"] = {SUBSCRIBER: 1}
    router.request_route()
    assert ksr.replies() == []
    assert ksr.called("auth_db.auth_check") == []


def test_flood_bans_the_source(ksr, router):
    request(ksr, "INVITE")
    ksr.returns["pike.pike_check_req"] = -1
    router.request_route()
    assert ksr.htables["ipban"] == {SUBSCRIBER: 1}
    assert ksr.replies() == []


def test_trusted_peer_is_not_flood_checked(ksr, router):
    request(ksr, "INVITE", source=PBX, ruser="800100")
    ksr.returns["pike.pike_check_req"] = -1
    router.request_route()
    assert ksr.called("pike.pike_check_req") == []
    assert ksr.pvars["$du"] == "sip:127.0.20.21:5080"


@pytest.mark.parametrize("agent", ["friendly-scanner", "SIPVicious 0.3", "x friendly-SCANNER"])
def test_scanner_user_agents_are_dropped_and_banned(ksr, router, agent):
    request(ksr, "OPTIONS", ua=agent)
    router.request_route()
    assert ksr.replies() == []
    assert ksr.htables["ipban"] == {SUBSCRIBER: 1}


def test_request_without_user_agent_is_served(ksr, router):
    request(ksr, "REGISTER", ua=None)
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert ksr.called("registrar.save") == [("location", 0)]
    assert "ipban" not in ksr.htables or ksr.htables["ipban"] == {}


@pytest.mark.parametrize(
    ("agent", "banned"), [("Yealink|SIP-T46U|1", False), ("x|sipvicious|y", True)]
)
def test_user_agent_with_separator_is_read_whole(ksr, router, agent, banned):
    """The request's first facts come in one pv read separated by "|"; a User-Agent may
    contain that character too."""
    request(ksr, "REGISTER", ua=agent)
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert (ksr.htables.get("ipban", {}) == {SUBSCRIBER: 1}) is banned
    assert ksr.called("registrar.save") == ([] if banned else [("location", 0)])


def test_scanner_verdict_holds_for_the_next_request_with_that_user_agent(ksr, router):
    request(ksr, "OPTIONS", ua="friendly-scanner", source="10.0.0.7")
    router.request_route()
    request(ksr, "OPTIONS", ua="friendly-scanner", source="10.0.0.8")
    router.request_route()
    assert ksr.htables["ipban"] == {"10.0.0.7": 1, "10.0.0.8": 1}
    request(ksr, "REGISTER", ua="Yealink SIP-T46U", source="10.0.0.9")
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    router.request_route()
    assert ksr.called("registrar.save") == [("location", 0)] * 2
    assert "10.0.0.9" not in ksr.htables["ipban"]


def test_remembered_user_agents_are_bounded(ksr, router):
    from sipwave_router.routing import SCANNER_VERDICT_LENGTH_MAX, SCANNER_VERDICTS_MAX

    ksr.returns["auth_db.auth_check"] = 1
    for n in range(SCANNER_VERDICTS_MAX + 10):
        request(ksr, "REGISTER", ua=f"random-agent-{n}")
        router.request_route()
    assert len(router._scanner_verdicts) <= SCANNER_VERDICTS_MAX
    long_scanner = "x" * SCANNER_VERDICT_LENGTH_MAX + " sipvicious"
    request(ksr, "OPTIONS", ua=long_scanner)
    router.request_route()
    assert long_scanner not in router._scanner_verdicts
    assert ksr.htables["ipban"] == {SUBSCRIBER: 1}


def test_register_answered_here_does_not_count_hops(ksr, router):
    """Max-Forwards limits forwarding; the registrar answers the REGISTER itself."""
    request(ksr, "REGISTER")
    ksr.returns["auth_db.auth_check"] = 1
    ksr.returns["maxfwd.process_maxfwd"] = -1
    router.request_route()
    assert ksr.called("maxfwd.process_maxfwd") == []
    assert ksr.called("registrar.save") == [("location", 0)]


def test_too_many_hops_is_answered_483(ksr, router):
    request(ksr, "INVITE")
    ksr.returns["maxfwd.process_maxfwd"] = -1
    router.request_route()
    assert ksr.replies() == [(483, "Too Many Hops")]
    assert ksr.called("maxfwd.process_maxfwd") == [(10,)]


def test_malformed_request_stops_after_sanity(ksr, router):
    request(ksr, "INVITE")
    ksr.returns["sanity.sanity_check_defaults"] = -1
    router.request_route()
    assert ksr.called("tm.t_relay") == []


def test_options_to_the_proxy_itself_is_answered(ksr, router):
    request(ksr, "OPTIONS", ruser=None)
    ksr.returns["is_myself_ruri"] = True
    router.request_route()
    assert ksr.replies() == [(200, "Keepalive")]


def test_call_from_unserved_domain_is_refused(ksr, router):
    request(ksr, "INVITE", fdomain="elsewhere.example")
    router.request_route()
    assert ksr.replies() == [(403, "Relaying Forbidden")]


def test_call_without_credentials_is_challenged(ksr, router):
    request(ksr, "INVITE")
    ksr.returns["auth_db.auth_check"] = -5
    router.request_route()
    assert ksr.called("auth.auth_challenge") == [("ip.tanifon.pl", 0)]
    assert ksr.called("tm.t_relay") == []


def test_authenticated_call_to_a_registered_subscriber_is_relayed(ksr, router):
    request(ksr, "INVITE", rdomain="sip.sipwave.test", ruser="tnf481234003")
    ksr.returns["auth_db.auth_check"] = 1
    ksr.pvars["$ci"] = "call-1@phone"
    router.request_route()
    assert ksr.called("registrar.lookup") == [("location",)]
    assert ksr.called("tm.t_on_branch") == [("ksr_branch_dialog",)]
    assert ksr.called("tm.t_relay") == [()]
    # Each branch (each registered contact) is record-routed with its own token.
    phone = recorded_token(ksr, router, **{"$ru": "sip:tnf481234003@10.0.0.7:5062"})
    other = recorded_token(ksr, router, **{"$ru": "sip:tnf481234003@10.0.0.8:5060"})
    assert joins(router, "call-1@phone", phone, SUBSCRIBER, "10.0.0.7")
    assert joins(router, "call-1@phone", other, SUBSCRIBER, "10.0.0.8")
    assert not joins(router, "call-1@phone", phone, SUBSCRIBER, "10.0.0.8")


def test_call_to_an_unregistered_subscriber_is_404(ksr, router):
    request(ksr, "INVITE")
    ksr.returns.update({"auth_db.auth_check": 1, "registrar.lookup": -1})
    router.request_route()
    assert ksr.replies() == [(404, "Not Found")]
    assert ksr.called("tm.t_relay") == []


@pytest.mark.parametrize(
    ("called", "destination"),
    [
        ("800100", "sip:127.0.20.21:5080"),
        ("8009123", "sip:127.0.20.22:5080"),  # the longer prefix wins
    ],
)
def test_prefix_routes_send_calls_to_their_peer(ksr, router, called, destination):
    request(ksr, "INVITE", ruser=called)
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert ksr.pvars["$du"] == destination
    assert ksr.called("registrar.lookup") == []
    assert ksr.called("tm.t_relay") == [()]


def test_call_to_a_foreign_domain_is_not_relayed(ksr, router):
    request(ksr, "INVITE", rdomain="elsewhere.example", ruser="alice")
    ksr.returns["auth_db.auth_check"] = 1
    router.request_route()
    assert ksr.replies() == [(403, "Relaying Forbidden")]


def test_in_dialog_request_follows_its_route_set(ksr, router):
    request(ksr, "BYE", totag=True)
    ksr.returns["rr.loose_route"] = 1
    ksr.pvars.update({"$ci": "call-1@phone", "$route_uri": own_route(router, "call-1@phone")})
    router.request_route()
    assert ksr.called("tm.t_relay") == [()]
    assert ksr.called("auth_db.auth_check") == []


def test_in_dialog_request_without_route_is_404(ksr, router):
    request(ksr, "BYE", totag=True)
    ksr.returns["rr.loose_route"] = -1
    router.request_route()
    assert ksr.replies() == [(404, "Not Here")]


def test_retransmission_is_absorbed(ksr, router):
    request(ksr, "INVITE")
    ksr.returns["tmx.t_precheck_trans"] = 1
    router.request_route()
    assert ksr.called("tm.t_relay") == []
    assert ksr.called("auth_db.auth_check") == []


def test_cancel_is_relayed_only_for_a_known_transaction(ksr, router):
    request(ksr, "CANCEL")
    ksr.returns["tm.t_check_trans"] = 1
    router.request_route()
    assert ksr.called("tm.t_relay") == [()]
