"""Parallel run: the new proxy next to the legacy platform, driven through the KSR stub.

The ``routing`` htable stands for what Kamailio loads from the subscriber database:
``i:user@domain`` for identities with a subscriber row, ``n:<E.164 digits>`` for dbaliases.
"""

import importlib

import pytest
from conftest import ROUTER_SETTINGS, joins, recorded_token

LEGACY = "ip.tanifon.pl"
NEW = "sip.sipwave.test"
LEGACY_PLATFORM = "sip:127.0.23.41:5060"
LEGACY_ADDRESS = "127.0.23.41"
NEW_PROXY = "127.0.23.11"
PHONE = "10.0.0.7"  # the stub never sends anything: addresses are only data here
MIGRATED = "481234001"
NOT_MIGRATED = "481234002"
MIGRATED_NUMBER = "48221234567"
MOVED = "481234005"  # phase 2, grace period over: only tnf481234005@NEW has a row
CLOSED = "481234007"  # closed: no subscriber row left, its numbers kept or released
KEPT_NUMBER = "48221234577"
RELEASED_NUMBER = "48221234588"

NEW_PROXY_SETTINGS = dict(
    ROUTER_SETTINGS,
    domains=[LEGACY, NEW],
    trusted_peers=["127.0.20.21", LEGACY_ADDRESS],
    legacy_domains=[LEGACY],
    legacy_platform=LEGACY_PLATFORM,
    phase2_login_prefix="tnf",
    phase2_domain=NEW,
    number_plan={"country_code": "48", "national_lengths": [9]},
)
LEGACY_PLATFORM_SETTINGS = dict(
    ROUTER_SETTINGS,
    domains=[LEGACY],
    trusted_peers=[],
    prefix_routes=[],
    relaying_peers=[NEW_PROXY],
    unregistered_destination=f"sip:{NEW_PROXY}:5060",
)


def make_router(settings):
    package = importlib.import_module("sipwave_router")
    from sipwave_router.settings import settings_from_dict

    return package.Router(settings_from_dict(settings))


@pytest.fixture
def proxy(ksr):
    ksr.htables["routing"] = {
        f"i:{MIGRATED}@{LEGACY}": 1,
        f"i:tnf{MIGRATED}@{NEW}": 1,
        f"i:tnf{MOVED}@{NEW}": 1,
        f"n:{MIGRATED_NUMBER}": f"{MIGRATED}@{LEGACY}",
        f"c:{CLOSED}": 1,
        f"p:{KEPT_NUMBER}": "kept_for_porting",
        f"p:{RELEASED_NUMBER}": "released",
        "g:generation": 7,
    }
    return make_router(NEW_PROXY_SETTINGS)


@pytest.fixture
def legacy(ksr):
    ksr.htables["routing"] = {f"i:{MIGRATED}@{LEGACY}": 1, f"i:{NOT_MIGRATED}@{LEGACY}": 1}
    return make_router(LEGACY_PLATFORM_SETTINGS)


def request(ksr, method, *, source=PHONE, fuser=MIGRATED, fdomain=LEGACY, ruser, rdomain=LEGACY):
    ksr.pvars.update(
        {
            "$si": source,
            "$rm": method,
            "$fU": fuser,
            "$fd": fdomain,
            "$tU": ruser if method == "REGISTER" else None,
            "$td": rdomain,
            "$rU": None if method == "REGISTER" else ruser,
            "$rd": rdomain,
            "$ua": "Yealink SIP-T46U",
            "$(hdr(Contact)[*])": "<sip:phone@10.0.0.1:5060>",
        }
    )
    ksr.returns.update(
        {"siputils.has_totag": -1, "tmx.t_precheck_trans": -1, "tm.t_check_trans": -1}
    )


# -- the new proxy -------------------------------------------------------------------------


def test_register_of_a_migrated_identity_is_authenticated_here(ksr, proxy):
    request(ksr, "REGISTER", fuser=MIGRATED, ruser=MIGRATED)
    ksr.returns["auth_db.auth_check"] = 1
    proxy.request_route()
    assert ksr.called("auth_db.auth_check") == [(LEGACY, "subscriber", 1)]
    assert ksr.called("registrar.save") == [("location", 0)]
    assert "$du" not in ksr.pvars


def test_register_of_a_not_migrated_identity_goes_to_the_legacy_platform_unchallenged(ksr, proxy):
    request(ksr, "REGISTER", fuser=NOT_MIGRATED, ruser=NOT_MIGRATED)
    proxy.request_route()
    assert ksr.pvars["$du"] == LEGACY_PLATFORM
    assert ksr.called("tm.t_relay") == [()]
    assert ksr.called("auth_db.auth_check") == []
    assert ksr.called("auth.auth_challenge") == []
    assert ksr.called("registrar.save") == []


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_the_legacy_identity_of_an_account_past_its_grace_period_is_refused(ksr, proxy, method):
    request(ksr, method, fuser=MOVED, ruser=MOVED if method == "REGISTER" else NOT_MIGRATED)
    proxy.request_route()
    assert ksr.replies() == [(403, "Account Moved")]
    assert ksr.called("tm.t_relay") == []
    assert ksr.called("auth_db.auth_check") == []


def test_register_relayed_to_the_legacy_platform_counts_its_hop(ksr, proxy):
    request(ksr, "REGISTER", fuser=NOT_MIGRATED, ruser=NOT_MIGRATED)
    proxy.request_route()
    assert ksr.called("maxfwd.process_maxfwd") == [(10,)]
    ksr.calls.clear()
    ksr.returns["maxfwd.process_maxfwd"] = -1
    proxy.request_route()
    assert ksr.replies() == [(483, "Too Many Hops")]
    assert ksr.called("tm.t_relay") == []


def test_register_on_the_new_domain_is_never_relayed(ksr, proxy):
    request(ksr, "REGISTER", fuser="tnfunknown", ruser="tnfunknown", rdomain=NEW)
    ksr.returns["auth_db.auth_check"] = -5
    proxy.request_route()
    assert ksr.called("auth.auth_challenge") == [(NEW, 0)]
    assert "$du" not in ksr.pvars


def test_call_from_a_not_migrated_account_goes_to_the_legacy_platform_unchallenged(ksr, proxy):
    request(ksr, "INVITE", fuser=NOT_MIGRATED, ruser=MIGRATED)
    ksr.pvars["$ci"] = "call-2@phone"
    proxy.request_route()
    assert ksr.pvars["$du"] == LEGACY_PLATFORM
    assert ksr.called("auth_db.auth_check") == []
    assert ksr.called("tm.t_on_branch") == [("ksr_branch_dialog",)]
    # The branch's token names the phone and the legacy platform as the dialog's ends.
    swt = recorded_token(ksr, proxy)
    assert joins(proxy, "call-2@phone", swt, PHONE, "127.0.23.41")
    # whatever identity the phone claims is not passed on as asserted
    assert "P-Asserted-Identity" in ksr.called("textops.remove_hf_re")[0][0]
    assert ksr.called("hdr.append") == []
    # the legacy platform's refusals are counted as the proxy's own
    assert ksr.called("tm.t_on_failure") == [("ksr_failure_legacy",)]


def test_call_from_a_migrated_account_is_authenticated_here(ksr, proxy):
    request(ksr, "INVITE", fuser=MIGRATED, ruser=MIGRATED)
    ksr.returns["auth_db.auth_check"] = -5
    proxy.request_route()
    assert ksr.called("auth.auth_challenge") == [(LEGACY, 0)]
    assert ksr.called("tm.t_relay") == []


@pytest.mark.parametrize("called", [MIGRATED_NUMBER, "+48221234567", "0048221234567", "221234567"])
def test_call_to_a_migrated_number_reaches_its_account_here(ksr, proxy, called):
    request(ksr, "INVITE", fuser=f"tnf{MIGRATED}", fdomain=NEW, ruser=called)
    ksr.returns["auth_db.auth_check"] = 1
    proxy.request_route()
    assert ksr.pvars["$ru"] == f"sip:{MIGRATED}@{LEGACY}"
    assert ksr.called("registrar.lookup") == [("location",)]
    assert ksr.called("tm.t_relay") == [()]
    assert "$du" not in ksr.pvars


def test_call_to_a_migrated_login_reaches_its_registration_here(ksr, proxy):
    request(ksr, "INVITE", fuser=f"tnf{MIGRATED}", fdomain=NEW, ruser=MIGRATED)
    ksr.returns["auth_db.auth_check"] = 1
    proxy.request_route()
    assert "$ru" not in ksr.pvars
    assert ksr.called("registrar.lookup") == [("location",)]


def test_call_from_a_migrated_account_to_a_not_migrated_one_goes_to_the_legacy_platform(ksr, proxy):
    request(ksr, "INVITE", fuser=MIGRATED, ruser=NOT_MIGRATED)
    ksr.returns["auth_db.auth_check"] = 1
    # The subscriber row auth_check() accepted (load_credentials); the first credentials
    # header ($au) names someone else and is never asserted.
    ksr.pvars.update(
        {"$avp(sipwave_auth_user)": MIGRATED, "$avp(sipwave_auth_domain)": LEGACY, "$au": "x"}
    )
    proxy.request_route()
    assert ksr.pvars["$du"] == LEGACY_PLATFORM
    assert ksr.called("registrar.lookup") == []
    assert ksr.called("hdr.append") == [(f"P-Asserted-Identity: <sip:{MIGRATED}@{LEGACY}>\r\n",)]
    assert ksr.called("tm.t_relay") == [()]


def test_call_from_the_legacy_platform_to_a_migrated_number_is_delivered_here(ksr, proxy):
    request(ksr, "INVITE", source=LEGACY_ADDRESS, fuser=NOT_MIGRATED, ruser=MIGRATED_NUMBER)
    proxy.request_route()
    assert ksr.called("auth_db.auth_check") == []
    assert ksr.pvars["$ru"] == f"sip:{MIGRATED}@{LEGACY}"
    assert ksr.called("registrar.lookup") == [("location",)]


def test_a_call_from_a_peer_to_a_served_number_is_the_called_accounts_record(ksr, proxy):
    """The legacy platform forwarding an old number: nobody here placed the call."""
    ksr.htables["routing"][f"d:{MIGRATED}@{LEGACY}"] = "sales"
    request(ksr, "INVITE", source=LEGACY_ADDRESS, fuser="+48601000001", ruser=MIGRATED_NUMBER)
    proxy.request_route()
    assert ksr.pvars["$avp(sipwave_acc_account)"] == f"{MIGRATED}@{LEGACY}"
    assert ksr.pvars["$avp(sipwave_acc_department)"] == "sales"
    assert ksr.pvars["$avp(sipwave_acc_direction)"] == "inbound"
    assert ksr.pvars["$avp(sipwave_acc_caller)"] == "+48601000001"
    assert ksr.pvars["$avp(sipwave_acc_callee)"] == f"+{MIGRATED_NUMBER}"


def test_a_subscribers_call_to_a_served_number_stays_the_callers_record(ksr, proxy):
    request(ksr, "INVITE", fuser=f"tnf{MIGRATED}", fdomain=NEW, ruser="+48221234567")
    ksr.returns["auth_db.auth_check"] = 1
    ksr.pvars.update(
        {"$avp(sipwave_auth_user)": f"tnf{MIGRATED}", "$avp(sipwave_auth_domain)": NEW}
    )
    proxy.request_route()
    assert ksr.pvars["$avp(sipwave_acc_account)"] == f"tnf{MIGRATED}@{NEW}"
    assert ksr.pvars["$avp(sipwave_acc_direction)"] == "internal"
    assert ksr.pvars["$avp(sipwave_acc_callee)"] == "+48221234567"


def test_call_from_the_legacy_platform_for_a_legacy_account_never_goes_back(ksr, proxy):
    request(ksr, "INVITE", source=LEGACY_ADDRESS, fuser=MIGRATED, ruser=NOT_MIGRATED)
    proxy.request_route()
    assert ksr.replies() == [(404, "Not Found")]
    assert ksr.called("tm.t_relay") == []


def test_call_to_an_unknown_user_of_the_new_domain_stays_here(ksr, proxy):
    request(ksr, "INVITE", fuser=MIGRATED, ruser="tnfnobody", rdomain=NEW)
    ksr.returns.update({"auth_db.auth_check": 1, "registrar.lookup": -1})
    proxy.request_route()
    assert ksr.replies() == [(404, "Not Found")]
    assert "$du" not in ksr.pvars


def test_without_a_legacy_platform_nothing_is_relayed(ksr):
    ksr.htables["routing"] = {}
    router = make_router(dict(NEW_PROXY_SETTINGS, legacy_platform=""))
    request(ksr, "REGISTER", fuser=NOT_MIGRATED, ruser=NOT_MIGRATED)
    ksr.returns["auth_db.auth_check"] = -5
    router.request_route()
    assert ksr.called("auth.auth_challenge") == [(LEGACY, 0)]
    assert ksr.called("tm.t_relay") == []
    assert "$du" not in ksr.pvars


# -- closed accounts -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
@pytest.mark.parametrize(
    ("user", "domain"), [(CLOSED, LEGACY), (f"tnf{CLOSED}", NEW)], ids=["legacy", "phase2"]
)
def test_requests_of_a_closed_account_are_refused_unchallenged(ksr, proxy, method, user, domain):
    request(ksr, method, fuser=user, fdomain=domain, ruser=user if method == "REGISTER" else
            NOT_MIGRATED, rdomain=domain)  # fmt: skip
    proxy.request_route()
    assert ksr.replies() == [(403, "Account Closed")]
    assert ksr.called("auth_db.auth_check") == []
    assert ksr.called("tm.t_relay") == []


def test_a_closed_account_is_refused_also_without_a_legacy_platform(ksr):
    ksr.htables["routing"] = {f"c:{CLOSED}": 1}
    router = make_router(dict(NEW_PROXY_SETTINGS, legacy_platform=""))
    request(ksr, "REGISTER", fuser=CLOSED, ruser=CLOSED)
    router.request_route()
    assert ksr.replies() == [(403, "Account Closed")]


@pytest.mark.parametrize(
    ("called", "reply"),
    [
        (KEPT_NUMBER, (480, "Number Kept For Porting")),
        ("+" + KEPT_NUMBER, (480, "Number Kept For Porting")),
        (KEPT_NUMBER[2:], (480, "Number Kept For Porting")),
        (RELEASED_NUMBER, (410, "Number Released")),
        ("00" + RELEASED_NUMBER, (410, "Number Released")),
    ],
)
def test_a_call_to_a_closed_account_s_number_is_answered_by_what_closure_did(
    ksr, proxy, called, reply
):
    request(ksr, "INVITE", fuser=f"tnf{MIGRATED}", fdomain=NEW, ruser=called)
    ksr.returns["auth_db.auth_check"] = 1
    proxy.request_route()
    assert ksr.replies() == [reply]
    assert ksr.called("registrar.lookup") == []
    assert ksr.called("tm.t_relay") == []


def test_a_carrier_call_to_a_number_kept_for_porting_gets_480(ksr, proxy):
    request(ksr, "INVITE", source="127.0.20.21", fuser="48601000000", ruser=KEPT_NUMBER)
    proxy.request_route()
    assert ksr.replies() == [(480, "Number Kept For Porting")]


def test_a_number_served_again_goes_to_its_account_not_to_the_closure_answer(ksr, proxy):
    ksr.htables["routing"][f"n:{KEPT_NUMBER}"] = f"{MIGRATED}@{LEGACY}"
    request(ksr, "INVITE", fuser=f"tnf{MIGRATED}", fdomain=NEW, ruser=KEPT_NUMBER)
    ksr.returns["auth_db.auth_check"] = 1
    proxy.request_route()
    assert ksr.replies() == []
    assert ksr.pvars["$ru"] == f"sip:{MIGRATED}@{LEGACY}"
    assert ksr.called("tm.t_relay") == [()]


def test_a_served_phase2_identity_is_not_taken_for_a_closed_one(ksr, proxy):
    request(ksr, "REGISTER", fuser=f"tnf{MIGRATED}", ruser=f"tnf{MIGRATED}", rdomain=NEW)
    ksr.returns["auth_db.auth_check"] = 1
    proxy.request_route()
    assert ("routing", f"c:{MIGRATED}") not in ksr.called("htable.sht_get")
    assert ksr.called("registrar.save") == [("location", 0)]


# -- the legacy platform --------------------------------------------------------------------


def test_legacy_platform_challenges_phones_relayed_by_the_new_proxy(ksr, legacy):
    request(ksr, "INVITE", source=NEW_PROXY, fuser=NOT_MIGRATED, ruser=MIGRATED)
    ksr.returns.update({"hdr.is_present": -1, "auth_db.auth_check": -5})
    legacy.request_route()
    assert ksr.called("auth.auth_challenge") == [(LEGACY, 0)]
    assert ksr.called("pike.pike_check_req") == []


def test_legacy_platform_trusts_the_identity_the_new_proxy_asserts(ksr, legacy):
    request(
        ksr, "INVITE", source=NEW_PROXY, fuser=f"tnf{MIGRATED}", fdomain=NEW, ruser=NOT_MIGRATED
    )
    ksr.returns["hdr.is_present"] = 1
    legacy.request_route()
    assert ksr.called("auth_db.auth_check") == []
    assert ksr.called("registrar.lookup") == [("location",)]
    assert ksr.called("tm.t_relay") == [()]


def test_legacy_platform_never_bans_the_relaying_proxy(ksr, legacy):
    request(ksr, "REGISTER", source=NEW_PROXY, fuser=NOT_MIGRATED, ruser=NOT_MIGRATED)
    ksr.returns["auth_db.auth_check"] = -2
    for _ in range(5):
        legacy.request_route()
    assert ksr.htables.get("ipban", {}) == {}
    assert len(ksr.called("auth.auth_challenge")) == 5


def test_legacy_platform_sends_calls_for_moved_accounts_to_the_new_proxy(ksr, legacy):
    request(ksr, "INVITE", fuser=NOT_MIGRATED, ruser=MIGRATED)
    ksr.returns.update({"auth_db.auth_check": 1, "registrar.lookup": -1})
    legacy.request_route()
    assert ksr.pvars["$du"] == f"sip:{NEW_PROXY}:5060"
    assert ksr.called("tm.t_relay") == [()]


TEMPORARY_NUMBER = "+48225559000"


@pytest.fixture
def forwarding_legacy(ksr):
    ksr.htables["routing"] = {
        f"i:{MIGRATED}@{LEGACY}": 1,
        f"i:{NOT_MIGRATED}@{LEGACY}": 1,
        f"f:{MIGRATED_NUMBER}": TEMPORARY_NUMBER,
    }
    settings = dict(
        LEGACY_PLATFORM_SETTINGS,
        forwarding_destination=f"sip:{NEW_PROXY}:5060",
        number_plan={"country_code": "48", "national_lengths": [9]},
    )
    return make_router(settings)


@pytest.mark.parametrize("called", ["+48221234567", "0048221234567", "221234567"])
def test_legacy_platform_forwards_an_old_number_to_the_temporary_one(
    ksr, forwarding_legacy, called
):
    request(ksr, "INVITE", fuser=NOT_MIGRATED, ruser=called)
    ksr.returns["auth_db.auth_check"] = 1
    forwarding_legacy.request_route()
    assert ksr.pvars["$rU"] == TEMPORARY_NUMBER
    assert ksr.pvars["$du"] == f"sip:{NEW_PROXY}:5060"
    assert ksr.called("hdr.append") == [
        (f"Diversion: <sip:+{MIGRATED_NUMBER}@{LEGACY}>;reason=unconditional\r\n",)
    ]
    assert ("Diversion",) in ksr.called("textops.remove_hf")
    assert ksr.called("registrar.lookup") == []
    assert ksr.called("tm.t_relay") == [()]


def test_legacy_platform_forwards_only_invites_of_numbers_in_its_table(ksr, forwarding_legacy):
    request(ksr, "INVITE", fuser=NOT_MIGRATED, ruser="+48229999999")
    ksr.returns.update({"auth_db.auth_check": 1, "registrar.lookup": -1})
    forwarding_legacy.request_route()
    assert ksr.pvars["$rU"] == "+48229999999"
    assert ksr.called("hdr.append") == []
    request(ksr, "MESSAGE", fuser=NOT_MIGRATED, ruser="+48221234567")
    forwarding_legacy.request_route()
    assert ksr.pvars["$rU"] == "+48221234567"


def test_a_forwarded_number_at_a_domain_not_served_is_refused_not_forwarded(ksr, forwarding_legacy):
    request(ksr, "INVITE", fuser=NOT_MIGRATED, ruser="+48221234567", rdomain="evil.example")
    ksr.returns["auth_db.auth_check"] = 1
    forwarding_legacy.request_route()
    assert ksr.called("hdr.append") == []
    assert ksr.replies() == [(403, "Relaying Forbidden")]


def test_without_a_forwarding_destination_nothing_is_forwarded(ksr, legacy):
    ksr.htables["routing"][f"f:{MIGRATED_NUMBER}"] = TEMPORARY_NUMBER
    request(ksr, "INVITE", fuser=NOT_MIGRATED, ruser="+48221234567")
    ksr.returns.update({"auth_db.auth_check": 1, "registrar.lookup": -1})
    legacy.request_route()
    assert ksr.pvars["$rU"] == "+48221234567"


@pytest.mark.parametrize("header", ["Diversion", "History-Info"])
def test_a_phones_forwarding_claim_is_removed(ksr, proxy, header):
    request(ksr, "INVITE", ruser="+48225550100")
    ksr.returns["auth_db.auth_check"] = 1
    proxy.request_route()
    (removed,) = ksr.called("textops.remove_hf_re")
    assert f"|{header}" in removed[0]


@pytest.mark.parametrize(
    ("uri", "host"),
    [
        ("sip:127.0.23.41:5060", "127.0.23.41"),
        ("sip:127.0.23.41", "127.0.23.41"),
        ("sip:127.0.23.41:5060;transport=udp", "127.0.23.41"),
        ("sips:legacy@[::1]:5061", "::1"),
        ("", ""),
        # From a request ($du after loose_route): never an exception.
        ("127.0.20.99:5070", "127.0.20.99"),
        ("no-colon-at-all", "no-colon-at-all"),
        ("SIP:[::1", "::1"),
        ("tel:+48221234567", "tel"),
        # The user part may hold ";": the host is what follows its "@", as Kamailio reads it.
        ("sip:+48221234567;npdi=yes@127.0.23.41:5060", "127.0.23.41"),
        ("sip:127.0.20.21;x@evil.example;lr", "evil.example"),
        # Read two ways, so read as no host at all.
        ("sip:127.0.20.21:5060;lr?x=@evil.example", ""),
        ("sip:a@127.0.20.21@evil.example;lr", ""),
        ("sip:evil.example?x=@127.0.20.21;lr", ""),
        # maddr: where a Kamailio built with HONOR_MADDR sends instead of the host.
        ("sip:127.0.20.21;lr;maddr=evil.example", ""),
        ("sip:127.0.20.21;MADDR=evil.example", ""),
        ("sip:127.0.20.21;lr;xmaddr=1", "127.0.20.21"),
    ],
)
def test_legacy_platform_address_is_the_host_of_its_uri(ksr, uri, host):
    from sipwave_router.settings import uri_host

    assert uri_host(uri) == host
