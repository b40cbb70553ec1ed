"""Request routing: one method per route, called for every SIP request a worker receives.

The methods return ``True`` when the request has been answered or dropped and routing ends
there, ``False`` when the next route should look at it.

Parallel run: the ``routing`` htable caches, from the subscriber database, which identities
(``i:user@domain``) and which numbers (``n:<E.164 digits>`` -> ``user@domain``, from
dbaliases) are served here, the number each identity presents (``a:user@domain`` -> E.164,
the reverse of ``n:``), which accounts are closed (``c:<legacy login>``) and what became of a
closed account's numbers (``p:<E.164 digits>`` -> ``kept_for_porting`` or ``released``).
One hash lookup per decision replaces a database query; the wave playbooks reload the table
over RPC (``htable.reload routing``) after each run.
"""

import KSR

from sipwave_router.e164 import normalise_or_none
from sipwave_router.settings import Settings

# The functions every request calls, bound once per import (a reload imports this module
# again): looking them up on KSR's submodules for each call is measurable at this rate.
_pv_get = KSR.pv.get
_pike_check_req = KSR.pike.pike_check_req
_process_maxfwd = KSR.maxfwd.process_maxfwd
_sanity_check = KSR.sanity.sanity_check_defaults
_sl_send_reply = KSR.sl.sl_send_reply
_auth_check = KSR.auth_db.auth_check
_auth_challenge = KSR.auth.auth_challenge
_consume_credentials = KSR.auth.consume_credentials
_save = KSR.registrar.save

# auth_check() results that mean wrong credentials (auth_db module): invalid password,
# unknown user, authentication user differs from the From/To user.
AUTH_INVALID_PASSWORD = -2
AUTH_INVALID_USER = -3
AUTH_USER_MISMATCH = -8
AUTH_FAILURES = frozenset({AUTH_INVALID_PASSWORD, AUTH_INVALID_USER, AUTH_USER_MISMATCH})
# auth_check() flag: the authentication user must match the From (To for REGISTER) user.
AUTH_CHECK_USER_MATCH = 1

HTABLE_BANNED = "ipban"
# What every request needs first, read in one crossing into Kamailio instead of five: the
# source address, the method, the source's entry in the ban table, the To domain (the
# registrar's realm) and the User-Agent. pv prints an absent value as "<null>". Only the
# User-Agent can contain "|", so it is last.
REQUEST_FACTS = f"$_s($si|$rm|$sht({HTABLE_BANNED}=>$si)|$td|$ua)"
PV_NULL = "<null>"
# Phones repeat their User-Agent in every request: the scanner pattern's verdict on each one
# is remembered, for at most this many distinct values (the memory is emptied when full, so
# random User-Agents from an attacker cost a pattern search each, never unbounded memory),
# and only for values up to this long.
SCANNER_VERDICTS_MAX = 1024
SCANNER_VERDICT_LENGTH_MAX = 256
HTABLE_AUTH_FAILURES = "authfail"
HTABLE_ROUTING = "routing"
IDENTITY_KEY = "i:"
NUMBER_KEY = "n:"
CLOSED_ACCOUNT_KEY = "c:"
CLOSED_NUMBER_KEY = "p:"
CALLER_NUMBER_KEY = "a:"
# The subscriber row (username, domain) that auth_check() accepted, loaded by auth_db
# (load_credentials in kamailio.cfg). Never $au: that is the first credentials header, which
# the client chooses; auth_check() accepts any header whose realm matches.
AUTH_USER_AVP = "$avp(sipwave_auth_user)"
AUTH_DOMAIN_AVP = "$avp(sipwave_auth_domain)"
# What a call to a closed account's number gets, by what the closure did with the number
# (sipwave_closure_numbers): kept for porting it may come back elsewhere, released it is gone.
CLOSED_NUMBER_REPLIES = {
    "kept_for_porting": (480, "Number Kept For Porting"),
    "released": (410, "Number Released"),
}
# Between the new proxy and the legacy platform: the proxy asserts the identity it has
# authenticated, so the legacy side need not challenge a phone that registered elsewhere.
ASSERTED_IDENTITY = "P-Asserted-Identity"
USRLOC_TABLE = "location"
SUBSCRIBER_TABLE = "subscriber"
RECORD_ROUTED_METHODS = frozenset({"INVITE", "SUBSCRIBE"})
# Headers through which the proxy tells the PBX what it established (the dial-in caller).
# Anything of this family that arrives from outside is a forgery. textops matches header
# names case-insensitively, and the parser has already trimmed the whitespace around them.
CLAIM_HEADERS_RE = "^X-Sipwave-"
DIALIN_CALLER_HEADER = "X-Sipwave-Caller"


class Router:
    def __init__(self, settings: Settings):
        self.settings = settings
        # Derived once from the settings for the per-request checks.
        self._flood_exempt = settings.trusted_peers | settings.relaying_peers
        self._scanner_search = (
            settings.scanner_pattern.search if settings.scanner_pattern is not None else None
        )
        self._max_forwards = settings.max_forwards
        self._scanner_verdicts: dict[str, bool] = {}
        self._migration_domains = settings.legacy_domains | (
            {settings.phase2_domain} if settings.phase2_domain else set()
        )

    def request_route(self) -> int:
        # Runs for every request: values are read once and compared in Python, because every
        # KSR call crosses into Kamailio.
        facts = _pv_get(REQUEST_FACTS)
        if facts is None:
            return 1
        source, method, banned, to_domain, user_agent = facts.split("|", 4)
        if banned != PV_NULL or self.route_reqinit(source, user_agent):
            return 1
        # The registrar answers statelessly and a REGISTER never belongs to a dialog: it skips
        # the transaction and dialog checks (three calls into Kamailio fewer per REGISTER). It
        # never reaches the PBX, so it need not be stripped of claims either. Max-Forwards
        # matters only to a request that is forwarded: checked when a REGISTER is relayed.
        if method == "REGISTER":
            self.route_registrar(source, to_domain.lower())
            return 1
        if self.route_max_forwards():
            return 1
        if method == "OPTIONS" and self.route_keepalive():
            return 1
        self.route_strip_claims(source)
        if self.route_cancel_and_retransmissions(method):
            return 1
        if self.route_within_dialog(method):
            return 1
        if self.route_legacy_caller(source, method):
            return 1
        if self.route_authenticate(source, method):
            return 1
        if method in RECORD_ROUTED_METHODS:
            KSR.rr.record_route()
        self.route_destination(source)
        return 1

    # -- request hygiene and flood defence -------------------------------------------

    def route_reqinit(self, source: str, user_agent: str) -> bool:
        """Flood, scanner and sanity checks; True when the request is done.

        The ban table has already been checked (request_route reads it with the source).
        """
        if source not in self._flood_exempt and _pike_check_req() < 0:
            self.ban(source, "request flood")
            return True
        scanner = self._scanner_verdicts.get(user_agent)
        if scanner is None:
            scanner = self.judge_user_agent(user_agent)
        if scanner:
            self.ban(source, "scanner user agent")
            return True
        # sanity_check_defaults() answers a malformed request itself.
        return _sanity_check() < 0

    def route_max_forwards(self) -> bool:
        """Decrement Max-Forwards (added when missing); 483 when it was exhausted."""
        if _process_maxfwd(self._max_forwards) < 0:
            _sl_send_reply(483, "Too Many Hops")
            return True
        return False

    def judge_user_agent(self, user_agent: str) -> bool:
        """Whether the User-Agent names a scanner; remembered for the next request."""
        scanner = (
            self._scanner_search is not None
            and user_agent != PV_NULL
            and self._scanner_search(user_agent.lower()) is not None
        )
        if len(user_agent) <= SCANNER_VERDICT_LENGTH_MAX:
            if len(self._scanner_verdicts) >= SCANNER_VERDICTS_MAX:
                self._scanner_verdicts.clear()
            self._scanner_verdicts[user_agent] = scanner
        return scanner

    def ban(self, source: str, reason: str) -> None:
        KSR.htable.sht_seti(HTABLE_BANNED, source, 1)
        KSR.err(f"sipwave: banning {source}: {reason}\n")

    def route_keepalive(self) -> bool:
        """OPTIONS addressed to the proxy itself (no user part) are answered here."""
        if KSR.pv.get("$rU") is None and KSR.is_myself_ruri():
            KSR.sl.sl_send_reply(200, "Keepalive")
            return True
        return False

    # -- transactions and dialogs -------------------------------------------------------

    def route_cancel_and_retransmissions(self, method: str) -> bool:
        if method == "CANCEL":
            if KSR.tm.t_check_trans() > 0:
                self.relay()
            return True
        if method != "ACK":
            if KSR.tmx.t_precheck_trans() > 0:
                KSR.tm.t_check_trans()
                return True
            if KSR.tm.t_check_trans() == 0:
                return True
        return False

    def route_within_dialog(self, method: str) -> bool:
        if KSR.siputils.has_totag() < 0:
            return False
        if KSR.rr.loose_route() > 0:
            self.relay()
        elif method == "ACK":
            if KSR.tm.t_check_trans() > 0:
                self.relay()
        else:
            KSR.sl.sl_send_reply(404, "Not Here")
        return True

    # -- registrar and authentication ---------------------------------------------------

    def route_registrar(self, source: str, realm: str) -> None:
        """``realm`` is the lower-cased To domain."""
        if realm not in self.settings.domains:
            _sl_send_reply(403, "Domain Not Served")
            return
        if realm in self._migration_domains and self.route_identity("$tU", realm, "REGISTER"):
            return
        if not self.check_credentials(source, realm):
            return
        # The credentials stay on the request: the registrar answers it here and it is never
        # relayed, so consume_credentials() would strip them from nothing that leaves.
        if _save(USRLOC_TABLE, 0) < 0:
            KSR.sl.sl_reply_error()

    def route_legacy_caller(self, source: str, method: str) -> bool:
        """A request from an account not migrated yet goes to the legacy platform as is."""
        if source in self.settings.trusted_peers:
            return False
        domain = (KSR.pv.get("$fd") or "").lower()
        return domain in self._migration_domains and self.route_identity("$fU", domain, method)

    def route_identity(self, user_variable: str, domain: str, method: str) -> bool:
        """Requests of a migration identity without a subscriber row never stay here.

        Legacy or phase-2 identity of a closed account: refused. A legacy identity not
        migrated yet: relayed to the legacy platform, which authenticates it. Moved to its
        phase 2 identity (the grace period is over): refused. ``domain`` is one of the
        migration domains (legacy or phase 2); the callers check that first.
        """
        legacy = domain in self.settings.legacy_domains
        user = KSR.pv.get(user_variable) or ""
        if KSR.htable.sht_get(HTABLE_ROUTING, f"{IDENTITY_KEY}{user}@{domain}") is not None:
            return False
        login = user if legacy else self.phase2_login(user)
        if login and KSR.htable.sht_get(HTABLE_ROUTING, CLOSED_ACCOUNT_KEY + login) is not None:
            KSR.sl.sl_send_reply(403, "Account Closed")
            return True
        if not legacy or not self.settings.legacy_platform:
            return False
        if self.moved_to_phase2(user):
            KSR.sl.sl_send_reply(403, "Account Moved")
            return True
        # A REGISTER has not been through the Max-Forwards check (request_route).
        if method == "REGISTER" and self.route_max_forwards():
            return True
        # Not authenticated here, so nothing it claims about its identity is asserted.
        KSR.hdr.remove(ASSERTED_IDENTITY)
        if method in RECORD_ROUTED_METHODS:
            KSR.rr.record_route()
        self.relay_to(self.settings.legacy_platform)
        return True

    def phase2_login(self, user: str) -> str | None:
        """The legacy login behind a phase-2 user name (prefix + login)."""
        prefix = self.settings.phase2_login_prefix
        return user[len(prefix) :] if user.startswith(prefix) else None

    def moved_to_phase2(self, user: str | None) -> bool:
        prefix, domain = self.settings.phase2_login_prefix, self.settings.phase2_domain
        if not prefix or not domain:
            return False
        key = f"{IDENTITY_KEY}{prefix}{user}@{domain}"
        return KSR.htable.sht_get(HTABLE_ROUTING, key) is not None

    def route_authenticate(self, source: str, method: str) -> bool:
        """Authenticate requests from subscribers; trusted peers are known by address."""
        if source in self.settings.trusted_peers:
            return False
        if source in self.settings.relaying_peers and KSR.hdr.is_present(ASSERTED_IDENTITY) > 0:
            return False
        realm = (KSR.pv.get("$fd") or "").lower()
        if realm not in self.settings.domains:
            KSR.sl.sl_send_reply(403, "Relaying Forbidden")
            return True
        if not self.check_credentials(source, realm):
            return True
        if method != "ACK":
            _consume_credentials()
        return False

    def check_credentials(self, source: str, realm: str) -> bool:
        """Digest check against the HA1 in the subscriber table; challenges on failure."""
        result = _auth_check(realm, SUBSCRIBER_TABLE, AUTH_CHECK_USER_MATCH)
        if result > 0:
            return True
        # A relaying proxy speaks for many phones: one phone's wrong password must not ban it.
        if result in AUTH_FAILURES and source not in self.settings.relaying_peers:
            failures = KSR.htable.sht_inc(HTABLE_AUTH_FAILURES, source)
            if failures >= self.settings.auth_failure_limit:
                self.ban(source, f"{failures} failed authentications")
                return False
        _auth_challenge(realm, 0)
        return False

    # -- destination ---------------------------------------------------------------------

    def route_destination(self, source: str) -> None:
        called = KSR.pv.get("$rU") or ""
        route = self.settings.route_for(called) if called else None
        if route is not None:
            if called in self.settings.dialin_numbers and not self.route_dialin_caller(source):
                return
            self.relay_to(route.destination)
            return
        domain = (KSR.pv.get("$rd") or "").lower()
        if domain not in self.settings.domains:
            KSR.sl.sl_send_reply(403, "Relaying Forbidden")
            return
        if called and not self.route_to_served_account(source, called, domain):
            return
        if KSR.registrar.lookup(USRLOC_TABLE) < 0:
            self.route_unregistered()
            return
        self.relay()

    def route_to_served_account(self, source: str, called: str, domain: str) -> bool:
        """Point the request at the account served here; False when it went elsewhere."""
        identity = f"{called}@{domain}"
        if KSR.htable.sht_get(HTABLE_ROUTING, IDENTITY_KEY + identity) is not None:
            return True
        number = normalise_or_none(called, self.settings.number_plan)
        if number is not None:
            digits = number.lstrip("+")
            account = KSR.htable.sht_get(HTABLE_ROUTING, NUMBER_KEY + digits)
            if account is not None:
                if account != identity:
                    KSR.pv.sets("$ru", "sip:" + account)
                return True
            closed = KSR.htable.sht_get(HTABLE_ROUTING, CLOSED_NUMBER_KEY + digits)
            if closed in CLOSED_NUMBER_REPLIES:
                KSR.sl.sl_send_reply(*CLOSED_NUMBER_REPLIES[closed])
                return False
        if not self.settings.legacy_platform or domain not in self.settings.legacy_domains:
            return True
        if source == self.settings.legacy_platform_address:
            # The legacy platform sent it because the account is not there: no ping-pong.
            KSR.sl.sl_send_reply(404, "Not Found")
            return False
        if source not in self.settings.trusted_peers:
            KSR.hdr.remove(ASSERTED_IDENTITY)
            # Only an identity whose credentials were accepted here is asserted.
            identity = self.authenticated_identity()
            if identity is not None:
                KSR.hdr.append(f"{ASSERTED_IDENTITY}: <sip:{identity}>\r\n")
        self.relay_to(self.settings.legacy_platform)
        return False

    def route_unregistered(self) -> None:
        # On the legacy platform: the account moved. The new proxy answers 404 itself when it
        # does not serve the account either, so a call never bounces between the two.
        if self.settings.unregistered_destination:
            self.relay_to(self.settings.unregistered_destination)
            return
        KSR.sl.sl_send_reply(404, "Not Found")

    def relay_to(self, destination: str) -> None:
        KSR.pv.sets("$du", destination)
        self.relay()

    # -- dial-in --------------------------------------------------------------------------

    def route_strip_claims(self, source: str) -> None:
        """Only trusted peers may send the headers the PBX believes."""
        if source not in self.settings.trusted_peers:
            KSR.textops.remove_hf_re(CLAIM_HEADERS_RE)

    def route_dialin_caller(self, source: str) -> bool:
        """Tell the PBX who calls the dial-in number, in E.164; refuse when nobody can say.

        The caller is the From number when a trusted peer (the carrier) sends the call, or
        the number of the account whose credentials were accepted otherwise;
        route_authenticate has already refused anything else.
        """
        if source in self.settings.trusted_peers:
            claimed = KSR.pv.get("$fU")
        else:
            claimed = self.caller_number(self.authenticated_identity())
        caller = normalise_or_none(claimed or "", self.settings.number_plan)
        if caller is None:
            KSR.sl.sl_send_reply(403, "Caller Number Unknown")
            return False
        # A trusted peer's own header of this name is replaced, never passed on.
        KSR.textops.remove_hf(DIALIN_CALLER_HEADER)
        KSR.hdr.append(f"{DIALIN_CALLER_HEADER}: {caller}\r\n")
        return True

    def authenticated_identity(self) -> str | None:
        """user@domain of the subscriber row auth_check() accepted; None when none was."""
        user = KSR.pv.get(AUTH_USER_AVP)
        domain = KSR.pv.get(AUTH_DOMAIN_AVP)
        if not user or not domain:
            return None
        return f"{user}@{domain.lower()}"

    def caller_number(self, identity: str | None) -> str | None:
        """The number an identity presents: its account's number (one hash lookup; a phase-2
        login such as tnf481234567 is no number), else the login when it is one."""
        if identity is None:
            return None
        number = KSR.htable.sht_get(HTABLE_ROUTING, CALLER_NUMBER_KEY + identity)
        return number if number is not None else identity.rsplit("@", 1)[0]

    def relay(self) -> None:
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()
