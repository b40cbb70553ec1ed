"""The floor of the KEMI bench: the KSR calls the router makes for a REGISTER, and nothing else.

bench/register.py swaps this file in for the deployed router's entry point (in the throwaway
bench container only) and reloads it over RPC. It crosses into Kamailio exactly as often, with
the same arguments, as roles/kamailio/files/router/sipwave_router/routing.py does for the
bench's REGISTERs, but skips everything the router decides in Python (settings, scanner
pattern, migration identities, failure counting). What this instance costs beyond the native
cfg is what app_python3s costs; what the real router costs beyond this is the router's own.
"""

import json
from pathlib import Path

import KSR

KSR.info("sipwave bench: KEMI floor router loaded\n")

_pv_get = KSR.pv.get
_pike_check_req = KSR.pike.pike_check_req
_process_maxfwd = KSR.maxfwd.process_maxfwd
_sanity_check = KSR.sanity.sanity_check_defaults
_sl_send_reply = KSR.sl.sl_send_reply
_auth_check = KSR.auth_db.auth_check
_auth_challenge = KSR.auth.auth_challenge
_save = KSR.registrar.save

# The deployed router's own settings, read once as the router reads them.
_SETTINGS = json.loads((Path(__file__).parent / "settings.json").read_text())
DOMAINS = frozenset(d.lower() for d in _SETTINGS["domains"])
MAX_FORWARDS = int(_SETTINGS["max_forwards"])


def ksr_request_route():
    facts = _pv_get("$_s($si\n|$sht(ipban=>$si)\n|$rm\n|$td\n|$ua)")
    _source, banned, method, to_domain, _user_agent = facts.split("\n|", 4)
    if banned != "<null>" or _pike_check_req() < 0 or _sanity_check() < 0:
        return 1
    if method != "REGISTER":
        if _process_maxfwd(MAX_FORWARDS) < 0:
            _sl_send_reply(483, "Too Many Hops")
        return 1
    realm = to_domain.lower()
    if realm not in DOMAINS:
        _sl_send_reply(403, "Domain Not Served")
        return 1
    if _auth_check(realm, "subscriber", 1) < 0:
        _auth_challenge(realm, 0)
        return 1
    _pv_get("$(hdr(Contact)[*])")
    if _save("location", 0) < 0:
        KSR.sl.sl_reply_error()
    return 1


def ksr_reply_route():
    return 1
