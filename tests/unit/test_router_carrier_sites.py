"""Carriers chosen by the caller's site, driven through the KSR stub.

The sets are numbered by the role's own filter (carrier_sets), as dispatcher.list and
settings.json are rendered; each test names the carriers it expects the chosen set to hold,
so that it checks what dispatcher would try, not a number.
"""

import importlib

import pytest
from ansible_collections.sipwave.platform.plugins.filter.carriers import carrier_sets
from conftest import ROUTER_SETTINGS
from test_router import request
from test_router_dialin import accepted

DOMAIN = "ip.tanifon.pl"
# Two carriers for every site, and Gdansk's local ones: one for calls to Warsaw, one for the
# rest of the country.
CARRIERS = [
    {"name": "national-a", "address": "127.0.20.31", "prefixes": ["+4822"], "priority": 10},
    {"name": "national-b", "address": "127.0.20.32", "prefixes": ["+4822", "+4861"],
     "priority": 5},
    {"name": "gdansk-local", "address": "127.0.20.33", "prefixes": ["+4822"], "priority": 10,
     "sites": ["gdansk"]},
    {"name": "gdansk-backup", "address": "127.0.20.34", "prefixes": ["+4822"], "priority": 5,
     "sites": ["gdansk"]},
    {"name": "gdansk-national", "address": "127.0.20.35", "prefixes": ["+48"],
     "sites": ["gdansk"]},
]  # fmt: skip
SITES = [
    {"name": "warsaw", "areas": ["+4822"]},
    {"name": "gdansk", "areas": ["+4858"]},
    # A longer area wins: Sopot's numbers are inside Gdansk's area code.
    {"name": "sopot", "areas": ["+48585"]},
]
SETS = carrier_sets(CARRIERS)
SETTINGS = {
    **ROUTER_SETTINGS,
    "number_plan": {"country_code": "48", "national_lengths": [9], "trunk_prefix": ""},
    "proxy_addresses": ["127.0.20.11"],
    "carriers": CARRIERS,
    "carrier_sets": SETS,
    "sites": SITES,
}
# login: (first own number or None, temporary number or None)
ACCOUNTS = {
    "481234001": ("+48221110001", None),  # Warsaw, which has no carrier of its own
    "481234002": ("+48581110002", None),  # Gdansk
    "481234003": ("+48585110003", None),  # Sopot (no carriers either)
    "481234004": ("+48611110004", None),  # Poznan: no site
    "481234005": (None, "+48585559000"),  # no own number listed: its temporary one decides
    "481234006": ("+48581110006", "+48225559001"),  # its own number decides, not the temporary
}
NATIONAL = ["national-a", "national-b"]
# Gdansk's carriers for Warsaw, then (the fallback) the carriers of every site for it.
GDANSK_TO_WARSAW = ["gdansk-local", "gdansk-backup", *NATIONAL]


@pytest.fixture
def router(ksr):
    package = importlib.import_module("sipwave_router")
    from sipwave_router.settings import settings_from_dict

    routing = {}
    for login, (own, temporary) in ACCOUNTS.items():
        identity = f"{login}@{DOMAIN}"
        if own:
            routing[f"a:{identity}"] = own
        if temporary:
            routing[f"t:{identity}"] = temporary
    ksr.htables["routing"] = routing
    ksr.returns["dispatcher.ds_select_dst"] = -1
    return package.Router(settings_from_dict(SETTINGS))


def chosen_carriers(ksr, router, login: str, dialled: str) -> list[str] | None:
    """The carriers of the set the router asked dispatcher for; None when it asked for none."""
    request(ksr, "INVITE", ruser=dialled)
    accepted(ksr, login)
    router.request_route()
    selected = ksr.called("dispatcher.ds_select_dst")
    if not selected:
        return None
    ((setid, _algorithm),) = selected
    (chosen,) = [s for s in SETS if s["setid"] == setid]
    return chosen["carriers"]


@pytest.mark.parametrize(
    ("login", "dialled", "carriers"),
    [
        # A site with carriers of its own for the called prefix uses them.
        ("481234002", "+48225550100", GDANSK_TO_WARSAW),
        # ... and its carrier of a shorter prefix where no carrier has a longer one.
        ("481234002", "+48585550100", ["gdansk-national"]),
        # A longer prefix that only the carriers of every site serve wins over the site's
        # shorter one: the destination decides first, the site among carriers of one prefix.
        ("481234002", "+48615550100", ["national-b"]),
        # A site without carriers of its own, a caller in no site: the carriers of every site.
        ("481234001", "+48225550100", NATIONAL),
        ("481234004", "+48225550100", NATIONAL),
        # The longest area decides the site: Sopot, not Gdansk, whose carriers it never uses.
        ("481234003", "+48225550100", NATIONAL),
        # No own number in the routing cache: the temporary number's area (Sopot).
        ("481234005", "+48225550100", NATIONAL),
        # The own number's area decides (Gdansk), not the temporary number's (Warsaw).
        ("481234006", "+48225550100", GDANSK_TO_WARSAW),
    ],
)
def test_the_callers_site_and_the_called_prefix_choose_the_carriers(
    ksr, router, login, dialled, carriers
):
    assert chosen_carriers(ksr, router, login, dialled) == carriers


@pytest.mark.parametrize("login", ["481234001", "481234004"])
def test_another_sites_carriers_never_carry_a_call(ksr, router, login):
    # +4858 is served only by Gdansk's national carrier: for anyone else it is no carrier's.
    assert chosen_carriers(ksr, router, login, "+48585550100") is None


def test_a_site_carrier_is_recorded_and_failed_over_like_any_other(ksr, router):
    def gdansk_local_answers(*_args):
        ksr.pvars["$du"] = "sip:127.0.20.33:5060;transport=udp"
        return 1

    ksr.returns["dispatcher.ds_select_dst"] = gdansk_local_answers
    chosen_carriers(ksr, router, "481234002", "+48225550100")
    assert ksr.pvars["$avp(sipwave_acc_carrier)"] == "gdansk-local"
    assert ksr.called("tm.t_on_failure") == [("ksr_failure_carrier",)]


def test_without_sites_the_sets_are_those_of_the_sorted_prefixes():
    """A configuration from before sites keeps its set ids (a reload changes nothing)."""
    national = [c for c in CARRIERS if "sites" not in c]
    assert [(s["setid"], s["prefix"], s["site"]) for s in carrier_sets(national)] == [
        (1, "+4822", ""),
        (2, "+4861", ""),
    ]


def set_of(site: str, prefix: str, sets: list[dict] = SETS) -> dict:
    (found,) = [s for s in sets if (s["site"], s["prefix"]) == (site, prefix)]
    return found


def tried_in_order(entry: dict) -> list[str]:
    """The set's carriers as dispatcher's priority algorithm tries them."""
    return sorted(entry["carriers"], key=lambda name: -entry["priorities"][name])


def test_a_sites_set_tries_its_own_carriers_then_those_of_every_site():
    gdansk_to_warsaw = set_of("gdansk", "+4822")
    assert tried_in_order(gdansk_to_warsaw) == GDANSK_TO_WARSAW
    assert gdansk_to_warsaw["fallback"] == NATIONAL
    # Every own carrier above every fallback one, the configured order within each group.
    assert gdansk_to_warsaw["priorities"] == {
        "gdansk-local": 11, "gdansk-backup": 6, "national-a": 5, "national-b": 0,
    }  # fmt: skip
    # The sets of every site keep the configured priorities.
    assert set_of("", "+4822")["priorities"] == {"national-a": 10, "national-b": 5}


def test_the_fallback_is_the_carriers_of_the_longest_prefix_that_covers_the_sites():
    carriers = [
        {"name": "world", "address": "127.0.20.41", "prefixes": ["+"]},
        {"name": "poland", "address": "127.0.20.42", "prefixes": ["+48"], "priority": 3},
        {"name": "warsaw", "address": "127.0.20.43", "prefixes": ["+4822"]},
        {"name": "local", "address": "127.0.20.44", "prefixes": ["+4858", "+"],
         "sites": ["gdansk"]},
    ]  # fmt: skip
    sets = carrier_sets(carriers)
    # +4858: the carriers of +48 (not of +4822, which +4858 does not start with, nor of +).
    assert tried_in_order(set_of("gdansk", "+4858", sets)) == ["local", "poland"]
    assert tried_in_order(set_of("gdansk", "+", sets)) == ["local", "world"]
    # A negative priority would mean nothing to a reader of dispatcher.list: none is made.
    assert set_of("gdansk", "+4858", sets)["priorities"] == {"local": 1, "poland": 0}


def test_without_fallback_a_sites_set_holds_only_its_own_carriers_with_the_same_ids():
    without = carrier_sets(CARRIERS, fallback=False)
    assert [s["setid"] for s in without] == [s["setid"] for s in SETS]
    assert tried_in_order(set_of("gdansk", "+4822", without)) == ["gdansk-local", "gdansk-backup"]
    assert set_of("gdansk", "+4822", without)["priorities"] == {
        "gdansk-local": 10, "gdansk-backup": 5,
    }  # fmt: skip


def test_a_call_whose_site_carriers_all_fail_goes_out_through_the_fallback(ksr, router):
    """What dispatcher does with the set: gdansk-local and gdansk-backup answer 503, then
    national-a, tried next, carries the call and its record."""
    tried = [
        f"sip:127.0.20.3{n}:5060;transport=udp" for n in (3, 4, 1)
    ]  # gdansk-local, gdansk-backup, national-a

    def select(*_args):
        if not tried:
            return -1
        ksr.pvars["$du"] = tried.pop(0)
        return 1

    ksr.returns.update({
        "dispatcher.ds_select_dst": select, "dispatcher.ds_next_dst": select,
        "tm.t_is_canceled": -1, "tm.t_branch_timeout": -1, "tm.t_branch_replied": 1,
    })  # fmt: skip
    assert chosen_carriers(ksr, router, "481234002", "+48225550100") == GDANSK_TO_WARSAW
    ksr.pvars["$T_reply_code"] = 503
    for _ in range(2):
        router.failure_route_carrier()
    assert ksr.pvars["$avp(sipwave_acc_carrier)"] == "national-a"
    assert ksr.pvars["$avp(sipwave_acc_site)"] == "gdansk"


# -- the site in the call records ----------------------------------------------------------

SITE_AVP = "$avp(sipwave_acc_site)"


@pytest.mark.parametrize(
    ("login", "site"),
    [
        ("481234002", "gdansk"),
        ("481234001", "warsaw"),
        ("481234003", "sopot"),
        ("481234005", "sopot"),  # by its temporary number
        ("481234006", "gdansk"),  # by its own number, not the temporary one
    ],
)
def test_a_call_to_a_carrier_is_recorded_with_the_callers_site(ksr, router, login, site):
    chosen_carriers(ksr, router, login, "+48225550100")
    assert ksr.pvars[SITE_AVP] == site
    assert ksr.pvars["$avp(sipwave_acc_direction)"] == "outbound"


def test_a_caller_in_no_site_leaves_the_site_of_the_record_empty(ksr, router):
    chosen_carriers(ksr, router, "481234004", "+48225550100")
    assert SITE_AVP not in ksr.pvars


def test_a_call_that_reaches_no_carrier_records_no_site(ksr, router):
    # Gdansk's account calls a number no carrier serves for it: not a call to a carrier.
    assert chosen_carriers(ksr, router, "481234002", "+4930123456") is None
    assert SITE_AVP not in ksr.pvars


def carrier_calls(ksr, router, login: str, called: str, *, source: str = "127.0.20.31") -> None:
    """An INVITE from ``source`` to ``called``, a number of ``login``'s account."""
    ksr.htables["routing"][f"n:{called.lstrip('+')}"] = f"{login}@{DOMAIN}"
    request(ksr, "INVITE", source=source, ruser=called, rdomain=DOMAIN, fdomain="127.0.20.31")
    ksr.pvars["$fU"] = "+48601000001"
    router.request_route()


@pytest.mark.parametrize(
    ("login", "called", "site"),
    [
        ("481234002", "+48581110002", "gdansk"),
        ("481234005", "+48585559000", "sopot"),  # its temporary number
        # Called at its temporary number in Warsaw: its own number's site all the same.
        ("481234006", "+48225559001", "gdansk"),
    ],
)
def test_a_carrier_call_is_recorded_with_the_called_accounts_site(ksr, router, login, called, site):
    carrier_calls(ksr, router, login, called)
    assert ksr.pvars["$avp(sipwave_acc_direction)"] == "inbound"
    assert ksr.pvars[SITE_AVP] == site


def test_a_carrier_call_to_an_account_in_no_site_records_none(ksr, router):
    carrier_calls(ksr, router, "481234004", "+48611110004")
    assert ksr.pvars["$avp(sipwave_acc_account)"] == f"481234004@{DOMAIN}"
    assert SITE_AVP not in ksr.pvars


def test_a_call_forwarded_by_a_peer_is_recorded_with_the_called_accounts_site(ksr, router):
    # The legacy platform (a trusted peer) forwarding an old number to the temporary one.
    carrier_calls(ksr, router, "481234002", "+48581110002", source="127.0.20.21")
    assert ksr.pvars["$avp(sipwave_acc_direction)"] == "inbound"
    assert ksr.pvars[SITE_AVP] == "gdansk"
