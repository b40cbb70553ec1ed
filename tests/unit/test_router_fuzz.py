"""Property-based fuzzing of the KEMI router through the KSR stub (hypothesis).

Every pseudo-variable the router reads ($si, $rm, $ua, $td, $fU, $fd, $rU, $rd, $au,
headers, whatever it reads tomorrow) holds arbitrary text: any Unicode, '|', NUL, pv's own
"<null>", surrogate-escaped bytes, or bytes that are not UTF-8 (which app_python3s refuses
to decode: reading such a value raises UnicodeDecodeError inside KSR.pv.get, exactly as in
Kamailio). The only rules are the two that Kamailio's parser enforces before any route runs:
a line break inside a value is always followed by a space or tab (header folding; otherwise
the header ended there), the method holds no whitespace (the request line's first space
ends it), and the destination URI ($du, set by loose_route from a Route it parsed) is a URI
with a scheme. Every KSR function returns an arbitrary value of its type. For any of them:
- no exception escapes request_route (in Kamailio it would be a traceback and no answer);
- a source in the ban table gets no answer and nothing is relayed or saved for it;
- a trusted or relaying peer (or the legacy platform) is never put in the ban table;
- registrar.save only runs for a REGISTER whose credentials auth_check accepted;
- only an OPTIONS is ever answered with a 2xx (the keepalive);
- a method that is not an RFC 3261 token is never relayed or saved, and only refused (400).
The legacy failure route (tm, for requests relayed to the legacy platform) gets the same
arbitrary values: no exception escapes and no peer is banned.
"""

import importlib
import re
from collections.abc import Callable
from typing import Any

import pytest
from conftest import ROUTER_SETTINGS
from hypothesis import given, settings
from hypothesis import strategies as st
from ksr_stub import load_api
from sipwave_testlib.torture import is_token

API = load_api()
RETURN_TYPES = {
    (f"{entry['module']}.{entry['name']}" if entry["module"] else entry["name"]): entry["ret"]
    for entry in API
}
# Functions that answer the request, by where their status code is.
CODED_REPLIES = {"sl.sl_send_reply", "sl.send_reply", "sl.send_reply_mode", "tm.t_reply",
                 "tm.t_send_reply"}  # fmt: skip
UNCODED_REPLIES = {"sl.sl_reply_error", "sl.send_reply_error", "tm.t_reply_error"}
CHALLENGES = {"auth.auth_challenge", "auth.www_challenge", "auth.proxy_challenge"}
AUTH_CHECKS = {"auth_db.auth_check", "auth_db.www_authenticate", "auth_db.proxy_authenticate",
               "auth_db.www_authorize", "auth_db.proxy_authorize"}  # fmt: skip

LEGACY = "ip.tanifon.pl"
NEW = "sip.sipwave.test"
PBX = "127.0.20.21"
LEGACY_ADDRESS = "127.0.23.41"
NEW_PROXY = "127.0.23.11"
DIALIN = "+48225550100"
SETTINGS = {
    "proxy": ROUTER_SETTINGS,
    "parallel-run-with-dialin": {
        **ROUTER_SETTINGS,
        "trusted_peers": [PBX, LEGACY_ADDRESS],
        "legacy_domains": [LEGACY],
        "legacy_platform": f"sip:{LEGACY_ADDRESS}:5060",
        "phase2_login_prefix": "tnf",
        "phase2_domain": NEW,
        "number_plan": {"country_code": "48", "national_lengths": [9]},
        "prefix_routes": [
            *ROUTER_SETTINGS["prefix_routes"],
            {"name": "dial-in", "prefix": DIALIN, "destination": f"sip:{PBX}:5060"},
        ],
        "dialin_numbers": [DIALIN],
    },
    "legacy-platform": {
        **ROUTER_SETTINGS,
        "domains": [LEGACY],
        "trusted_peers": [],
        "prefix_routes": [],
        "relaying_peers": [NEW_PROXY],
        "unregistered_destination": f"sip:{NEW_PROXY}:5060",
    },
}
# What the routing cache holds (the wave engine's view): some of the fuzzed values hit it.
ROUTING = {
    f"i:481234001@{LEGACY}": 1,
    f"i:tnf481234001@{NEW}": 1,
    f"i:tnf481234005@{NEW}": 1,
    "n:48221234567": f"481234001@{LEGACY}",
    "c:481234007": 1,
    "p:48221234568": "kept_for_porting",
}


class NotUtf8:
    """A value whose bytes are not UTF-8: KSR cannot hand it to Python as str."""

    def __init__(self, raw: bytes):
        self.raw = raw

    def __str__(self) -> str:
        return self.raw.decode("utf-8")  # raises, as app_python3s does

    def __repr__(self) -> str:
        return f"NotUtf8({self.raw!r})"


def as_kamailio_gives(value: Any) -> Any:
    return str(value) if isinstance(value, NotUtf8) else value


# Pieces an attacker would combine: separators, pv's rendering of an absent value, names
# and addresses the router compares against, SIP punctuation.
PIECES = ["|", "\x00", "<null>", "$si", "%7C", " ", "@", ":", ";", ",", "<", ">", "\r\n",
          "INVITE", "OPTIONS", "REGISTER", "ACK", "CANCEL", LEGACY, NEW, "ip.TANIFON.pl",
          PBX, LEGACY_ADDRESS, NEW_PROXY, "481234001", "481234005", "481234007", "tnf",
          "48221234567", "+48221234568", DIALIN, "800", "friendly-scanner", "sip:", "é",
          "\udcff"]  # fmt: skip
LINE_BREAK_ENDING_A_HEADER = re.compile(r"(\r\n|\r|\n)(?![ \t])")
WHITESPACE = re.compile(r"[ \t\r\n]")
BAD_BYTES = [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"]


def as_parsed(value: str) -> str:
    """``value`` as Kamailio's parser can deliver it: a line break only before folding."""
    return LINE_BREAK_ENDING_A_HEADER.sub(r"\1 ", value)


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


invalid_bytes = (
    st.tuples(st.binary(max_size=20), st.sampled_from(BAD_BYTES), st.binary(max_size=20))
    .map(b"".join)
    .filter(_not_utf8)
)
text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(PIECES), max_size=8).map("".join),
    invalid_bytes.map(lambda raw: raw.decode("utf-8", "surrogateescape")),
).map(as_parsed)


def mostly(usual: st.SearchStrategy, other: st.SearchStrategy, one_in: int) -> st.SearchStrategy:
    """``other`` once in ``one_in`` draws, else ``usual``: a request stopped at the first
    check (undecodable, banned, flooding, not a token) never reaches the routes behind it."""
    return st.integers(1, one_in).flatmap(lambda n: other if n == 1 else usual)


PV_VALUES = mostly(st.one_of(st.none(), text), invalid_bytes.map(NotUtf8), one_in=12)
METHODS = mostly(
    st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "ACK", "CANCEL", "BYE", "MESSAGE"]),
    st.one_of(
        text.map(lambda method: WHITESPACE.split(method)[0]).filter(bool),
        invalid_bytes.map(NotUtf8),
    ),
    one_in=4,
)
# Pseudo-variables that Kamailio only ever fills with a parsed URI.
URI_VALUES = st.one_of(st.none(), text.map(lambda rest: "sip:" + rest))
DRAWN_AS = {"$du": URI_VALUES}
SOURCES = st.one_of(st.sampled_from(["10.0.0.1", PBX, LEGACY_ADDRESS, NEW_PROXY]), text)
BANNED = st.integers(1, 4).map(lambda n: n == 1)
RESULTS = mostly(st.just(1), st.sampled_from([-8, -5, -3, -2, -1, 0, 2]), one_in=4)
RETURNS = {"int": RESULTS, "bool": RESULTS, "long": RESULTS, "none": st.none(), "str": PV_VALUES,
           "xval": PV_VALUES}  # fmt: skip


class DrawnPvars(dict):
    """Pseudo-variables: the given ones, and any other drawn when the router first reads it."""

    def __init__(self, given: dict[str, Any], draw: Callable[[str], Any]):
        super().__init__(given)
        self._draw = draw

    def get(self, name, default=None):
        if name not in self:
            self[name] = self._draw(name)
        return super().get(name, default)


class DrawnReturns(dict):
    """Return values of KSR functions: drawn per call by return type, and logged."""

    def __init__(self, draw: Callable[[str, str], Any]):
        super().__init__()
        self._draw = draw
        self.log: list[tuple[str, Any]] = []

    def get(self, qualified, default=None):
        def result(*_args):
            value = self._draw(qualified, RETURN_TYPES[qualified])
            self.log.append((qualified, value))
            return as_kamailio_gives(value)

        return result


def make_router(ksr, name: str):
    """The router of ``name``'s settings, importing against this stub with KSR.pv.get
    decoding values as Kamailio does."""
    stub_get = ksr.pv.get
    ksr.pv.get = lambda pv: as_kamailio_gives(stub_get(pv))
    package = importlib.import_module("sipwave_router")
    from sipwave_router.settings import settings_from_dict

    return package.Router(settings_from_dict(SETTINGS[name]))


def route(ksr, router, method, source, banned, pv: Callable[[str], Any], ret) -> DrawnReturns:
    """One request through the router with a fresh KSR state; the request must not raise."""
    ksr.calls.clear()
    ksr.htables = {"ipban": {source: 1} if banned else {}, "routing": dict(ROUTING)}
    ksr.pvars = DrawnPvars({"$si": source, "$rm": method}, pv)
    ksr.returns = DrawnReturns(ret)
    router.request_route()
    return ksr.returns


def peers(name: str) -> set[str]:
    """Addresses of ``name``'s settings that a spoofed packet must never get banned."""
    values = SETTINGS[name]
    legacy = values.get("legacy_platform", "")
    return {*values.get("trusted_peers", []), *values.get("relaying_peers", []),
            *([legacy.split(":")[1]] if legacy else [])}  # fmt: skip


def check_properties(ksr, name: str, returns: DrawnReturns, method, banned: bool) -> None:
    bans = [args[1] for call, args in ksr.calls
            if call.startswith("htable.sht_set") and args[0] == "ipban"]  # fmt: skip
    assert not set(bans) & peers(name), f"banned a peer: {bans}"
    codes = [args[0] for name, args in ksr.calls if name in CODED_REPLIES]
    answered = codes + [name for name, _ in ksr.calls if name in UNCODED_REPLIES | CHALLENGES]
    relayed = [name for name, _ in ksr.calls if name == "forward" or name.startswith("tm.t_relay")]
    saved = ksr.called("registrar.save")
    accepted = [value for name, value in returns.log if name in AUTH_CHECKS and value > 0]
    token = isinstance(method, str) and is_token(method)
    if banned:
        assert (answered, relayed, saved) == ([], [], []), "a banned source was served"
    assert not saved or (accepted and method == "REGISTER"), f"saved a {method!r} unaccepted"
    assert all(code == 200 and method == "OPTIONS" for code in codes if 200 <= code < 300), (
        f"{method!r} answered {codes}"
    )
    if not token:
        assert (relayed, saved) == ([], []), f"non-token method {method!r} served"
        assert all(code == 400 for code in answered), f"{method!r} answered {answered}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_no_exception_escapes_and_no_header_changes_the_meaning_of_another(ksr, name):
    router = make_router(ksr, name)

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.data(), METHODS, SOURCES, BANNED)
    def any_request(data, method, source, banned):
        returns = route(
            ksr, router, method, source, banned,
            pv=lambda pv: data.draw(DRAWN_AS.get(pv, PV_VALUES), label=pv),
            ret=lambda function, kind: data.draw(RETURNS[kind], label=function),
        )  # fmt: skip
        check_properties(ksr, name, returns, method, banned)

    any_request()


# The attacks that are known, run on every test run whatever hypothesis draws: (method,
# banned, pseudo-variables other than $si and $rm, KSR results other than the defaults).
KNOWN = {
    "invite-pipe-null-from-a-banned-source": ("INVITE|<null>", True, {}, {}),
    "options-pipe-null-is-no-keepalive": ("OPTIONS|<null>", False, {"$rU": None}, {}),
    "register-pipe-shifts-the-realm": (
        f"REGISTER|<null>|{LEGACY}", False, {"$td": "evil.example", "$ua": "x"},
        {"auth_db.auth_check": 1},
    ),
    "user-agent-not-utf8": ("OPTIONS", False, {"$ua": NotUtf8(b"Phone \xff\xfe")}, {}),
    "method-not-utf8": (NotUtf8(b"REGISTER\xff"), False, {}, {}),
    "to-domain-not-utf8": ("REGISTER", False, {"$td": NotUtf8(b"ip.tanifon.pl\xe2\x82")}, {}),
    "from-user-not-utf8-on-a-legacy-domain": (
        "INVITE", False, {"$fd": LEGACY, "$fU": NotUtf8(b"4812\xc3\x28")}, {},
    ),
    "authorization-user-not-utf8-to-dialin": (
        "INVITE", False,
        {"$fd": LEGACY, "$fU": "481234001", "$rU": DIALIN, "$au": NotUtf8(b"\xff")},
        {"auth_db.auth_check": 1},
    ),
    "scanner-user-agent-spoofed-from-a-peer": (
        "OPTIONS", False, {"$si": PBX, "$ua": "friendly-scanner"}, {},
    ),
    "wrong-passwords-spoofed-from-a-peer": (
        "REGISTER", False, {"$si": NEW_PROXY, "$td": LEGACY}, {"auth_db.auth_check": -2},
    ),
}  # fmt: skip
# A new request that passes the flood and sanity checks and is not in a dialog.
DEFAULT_RESULTS = {"siputils.has_totag": -1, "tmx.t_precheck_trans": -1, "tm.t_check_trans": -1}


@pytest.mark.parametrize("attack", sorted(KNOWN))
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_known_attack(ksr, name, attack):
    method, banned, pvars, results = KNOWN[attack]
    router = make_router(ksr, name)
    results = {**DEFAULT_RESULTS, **results}
    returns = route(
        ksr, router, method, pvars.get("$si", "10.0.0.1"), banned,
        pv=lambda pv: pvars.get(pv, f"{LEGACY}" if pv in ("$fd", "$td", "$rd") else None),
        ret=lambda function, kind: results.get(function, 1 if kind in ("int", "bool") else None),
    )  # fmt: skip
    check_properties(ksr, name, returns, method, banned)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_no_exception_escapes_the_legacy_failure_route(ksr, name):
    # tm runs it for requests relayed to the legacy platform; the reply and the request it
    # answers are as arbitrary as any request.
    router = make_router(ksr, name)

    @settings(max_examples=60, deadline=None, database=None)
    @given(st.data(), METHODS, SOURCES)
    def any_failure(data, method, source):
        ksr.calls.clear()
        ksr.htables = {"ipban": {}, "routing": dict(ROUTING)}
        ksr.pvars = DrawnPvars(
            {"$si": source, "$rm": method},
            lambda pv: data.draw(DRAWN_AS.get(pv, PV_VALUES), label=pv),
        )
        ksr.returns = DrawnReturns(lambda function, kind: data.draw(RETURNS[kind], label=function))
        router.failure_route_legacy()
        bans = [args[1] for call, args in ksr.calls
                if call.startswith("htable.sht_set") and args[0] == "ipban"]  # fmt: skip
        assert not set(bans) & peers(name), f"banned a peer: {bans}"

    any_failure()
