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

import ipaddress
import re
import time

import KSR

from sipwave_router.checksync import record_answer
from sipwave_router.dialogs import ROUTE_PARAM, follows, load_key, token
from sipwave_router.e164 import normalise_or_none
from sipwave_router.keys import (
    CLOSED_ACCOUNT_KEY,
    CLOSED_NUMBER_KEY,
    CLOSED_NUMBER_REPLIES,
    FACT_SEPARATOR,
    FORWARDING_KEY,
    HTABLE_BANNED,
    HTABLE_ROUTING,
    IDENTITY_KEY,
    NUMBER_KEY,
    PV_NULL,
    USRLOC_TABLE,
)
from sipwave_router.metrics import MetricsRoutes
from sipwave_router.settings import Settings, uri_host
from sipwave_router.telephony import TelephonyRoutes

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
_remove_hf_re = KSR.textops.remove_hf_re

# auth_check() results that mean wrong credentials (auth_db module): invalid password,
# unknown user, authentication user differs from the From/To user.
AUTH_INVALID_PASSWORD = -2
AUTH_INVALID_USER = -3
AUTH_USER_MISMATCH = -8
AUTH_FAILURES = frozenset({AUTH_INVALID_PASSWORD, AUTH_INVALID_USER, AUTH_USER_MISMATCH})
# auth_check() flag: the authentication user must match the From (To for REGISTER) user.
AUTH_CHECK_USER_MATCH = 1

# What every request needs first, read in one crossing into Kamailio instead of five: the
# source address, its entry in the ban table, the method, the To domain (the registrar's
# realm) and the User-Agent. pv prints an absent value as "<null>". The Contacts are read
# only once a REGISTER's credentials are accepted (CONTACTS): every other request, and every
# REGISTER that is challenged, would pay for collecting them for nothing.
# The separator is a line feed followed by "|", which no value can hold: the method ends at
# the request line's first space, and a header value holds a line feed only where the next
# line starts with a space or tab (folding), else the header would have ended there. A "|"
# alone, as before, could be typed into the method and shifted every field after it.
FACT_FIELDS = 4
REQUEST_FACTS = (
    "$_s(" + FACT_SEPARATOR.join(("$si", f"$sht({HTABLE_BANNED}=>$si)", "$rm", "$td", "$ua")) + ")"
)
# Every Contact header's value, joined by commas (None when pv's buffer cannot hold them).
CONTACTS = "$(hdr(Contact)[*])"
# When a value is not UTF-8 (Python cannot hold it as str): only the source and its ban.
SOURCE_FACTS = f"$_s($si{FACT_SEPARATOR}$sht({HTABLE_BANNED}=>$si))"
# RFC 3261 methods are tokens. Kamailio's parser takes anything up to the first space as the
# method, and auth_check and save() disagree about what an unknown method means (the From
# user is matched, the To AoR is saved): a method that is not a token is refused first.
KNOWN_METHODS = frozenset(
    ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
     "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE")
)  # fmt: skip
METHOD_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
# Phones repeat their User-Agent in every request: the scanner pattern's verdict on each one
# is remembered, for at most this many distinct values (the memory is emptied when full, so
# random User-Agents from an attacker cost a pattern search each, never unbounded memory),
# and only for values up to this long.
SCANNER_VERDICTS_MAX = 1024
SCANNER_VERDICT_LENGTH_MAX = 256
CONTACT_VERDICTS_MAX = 8192
CONTACT_VERDICT_LENGTH_MAX = 512
HTABLE_AUTH_FAILURES = "authfail"
# Failures are counted per source address and per identity ("u:user@domain"): guesses for
# one login spread over many addresses still end in bans.
IDENTITY_FAILURE_KEY = "u:"
# Fixed-window counts of bans (kamailio.cfg): "all" per ban period, "scanner" per minute.
HTABLE_BANS = "bans"
HTABLE_SCANNER_BANS = "scannerbans"
BANS_KEY = "all"
SCANNER_BANS_KEY = "scanner"
# The subscriber row (username, domain) that auth_check() accepted, loaded by auth_db
# (load_credentials in kamailio.cfg). Never $au: that is the first credentials header, which
# the client chooses; auth_check() accepts any header whose realm matches.
AUTH_USER_AVP = "$avp(sipwave_auth_user)"
AUTH_DOMAIN_AVP = "$avp(sipwave_auth_domain)"
# Between the new proxy and the legacy platform: the proxy asserts the identity it has
# authenticated, so the legacy side need not challenge a phone that registered elsewhere.
ASSERTED_IDENTITY = "P-Asserted-Identity"
SUBSCRIBER_TABLE = "subscriber"
RECORD_ROUTED_METHODS = frozenset({"INVITE", "SUBSCRIBE"})
# Headers that claim an identity or what the proxy established (X-Sipwave-*, the dial-in
# caller): from anyone but a trusted peer they are forgeries and removed. A relaying peer (on
# the legacy platform: the new proxy) keeps its P-Asserted-Identity, which is believed.
# textops matches header names case-insensitively, and the parser has already trimmed the
# whitespace around them.
# Diversion and History-Info claim that a number forwarded the call: carriers may let such a
# call present the forwarding number, so only a trusted peer's are believed. Identity
# (STIR/SHAKEN) is a carrier's signature of a caller: nobody else's is passed on, also in its
# compact form "y" (textops matches a header by the name as written, not by its type).
CLAIM_HEADERS_RE = (
    "^(X-Sipwave-.*|P-Asserted-Identity|P-Preferred-Identity|Remote-Party-ID|Identity|y"
    "|Diversion|History-Info)$"
)
RELAYED_CLAIM_HEADERS_RE = (
    "^(X-Sipwave-.*|P-Preferred-Identity|Remote-Party-ID|Identity|y|Diversion|History-Info)$"
)
# The same claims in replies: a phone answering a carrier's call must not tell the carrier
# whom it connected to (connected line). A relaying peer's asserted identity is believed.
REPLY_CLAIM_HEADERS_RE = (
    "^(P-Asserted-Identity|P-Preferred-Identity|Remote-Party-ID|Identity|y|X-Sipwave-.*)$"
)
RELAYED_REPLY_CLAIM_HEADERS_RE = "^(P-Preferred-Identity|Remote-Party-ID|Identity|y|X-Sipwave-.*)$"
# An in-dialog request's top Route (this proxy's, with its dialog token), Call-ID, the next
# hop loose_route() chose (a further Route) and the request URI's host (the next hop without
# one), read in one call.
DIALOG_FACTS = "$_s(" + FACT_SEPARATOR.join(("$route_uri", "$ci", "$du", "$rd")) + ")"
# A branch of a record-routed request: where it came from, its Call-ID, and where it goes
# (its destination, else its request URI): the two ends its dialog token names.
BRANCH_FACT_NAMES = ("$si", "$ci", "$du", "$ru")
BRANCH_FACTS = "$_s(" + FACT_SEPARATOR.join(BRANCH_FACT_NAMES) + ")"
# tm branch route (sipwave_kemi.py exports it under this name) of record-routed requests.
DIALOG_BRANCH_ROUTE = "ksr_branch_dialog"
# Every URI host in a Contact value (and in anything else there that looks like a URI): the
# check errs towards refusing. A host is what follows the scheme or any "@" after it.
CONTACT_URI = re.compile(r"sips?:([^\s,;>?&\"]+)", re.IGNORECASE)
# tm failure route (sipwave_kemi.py exports it under this name) for requests relayed to the
# legacy platform: its digest failures are counted as the proxy's own.
LEGACY_FAILURE_ROUTE = "ksr_failure_legacy"
LEGACY_FAILURE_FACTS = (
    "$_s("
    + FACT_SEPARATOR.join(
        ("$T_reply_code", "$si", "$rm", "$hdrc(Authorization)", "$hdrc(Proxy-Authorization)")
    )
    + ")"
)
# Answers of the legacy platform that mean: these credentials are wrong.
LEGACY_AUTH_FAILURES = frozenset({"401", "403", "407"})
DIALIN_CALLER_HEADER = "X-Sipwave-Caller"


class Router(TelephonyRoutes, MetricsRoutes):
    def __init__(self, settings: Settings):
        self.settings = settings
        # Derived once from the settings for the per-request checks.
        self._flood_exempt = settings.trusted_peers | settings.relaying_peers
        self._scanner_search = (
            settings.scanner_pattern.search if settings.scanner_pattern is not None else None
        )
        self._max_forwards = settings.max_forwards
        self._scanner_verdicts: dict[str, bool] = {}
        self._contact_verdicts: dict[str, bool] = {}
        self._migration_domains = settings.legacy_domains | (
            {settings.phase2_domain} if settings.phase2_domain else set()
        )
        # Addresses a spoofed packet must never get banned, and where a next hop or a
        # registered contact may not point unless the proxy itself decided so.
        peers = settings.trusted_peers | settings.relaying_peers | settings.proxy_addresses
        if settings.legacy_platform:
            peers |= {settings.legacy_platform_address}
        self._never_banned = frozenset(peers)
        self._next_hops_allowed = frozenset(normalise_host(p) for p in peers)
        destinations = frozenset(
            normalise_host(h)
            for h in (
                *(uri_host(r.destination) for r in settings.prefix_routes),
                uri_host(settings.unregistered_destination),
                uri_host(settings.forwarding_destination),
            )
            if h
        )
        # Who may stand for a dialog's end from another address than the recorded one.
        self._dialog_peers = self._next_hops_allowed | destinations
        self._contact_hosts_refused = (
            self._dialog_peers
            | frozenset(normalise_host(h) for h in settings.domains)
            | {"localhost"}
        )
        # The host of the From and P-Asserted-Identity the proxy writes towards carriers.
        self._from_host = min(settings.proxy_addresses, default="localhost")
        self._claim_headers_re = {
            True: RELAYED_CLAIM_HEADERS_RE,
            False: CLAIM_HEADERS_RE,
        }
        self._reply_claim_headers_re = {
            True: RELAYED_REPLY_CLAIM_HEADERS_RE,
            False: REPLY_CLAIM_HEADERS_RE,
        }
        self._dialog_key = load_key(settings.dialog_key_file)

    def request_route(self) -> int:
        # Runs for every request: values are read once and compared in Python, because every
        # KSR call crosses into Kamailio. A value that is not UTF-8 cannot become a Python
        # str: whichever read meets it raises, and the request is refused (and counted
        # towards the flood limit) instead of leaving a traceback in the journal.
        try:
            facts = _pv_get(REQUEST_FACTS)
            if facts is None:
                return 1
            source, banned, method, to_domain, user_agent = facts.split(FACT_SEPARATOR, FACT_FIELDS)
            if banned != PV_NULL or self.route_reqinit(source, method, user_agent):
                return 1
            # The registrar answers statelessly and a REGISTER never belongs to a dialog: it
            # skips the transaction and dialog checks (three calls into Kamailio fewer per
            # REGISTER). Max-Forwards matters only to a request that is forwarded: checked
            # when a REGISTER is relayed.
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
            if self.route_within_dialog(source, method):
                return 1
            if self.route_legacy_caller(source, method):
                return 1
            if self.route_authenticate(source, method):
                return 1
            # Whose call an INVITE is: read once, for its record and its routing.
            caller = None
            if method == "INVITE":
                caller = self.authenticated_identity()
                self.start_call_record(caller)
            if method in RECORD_ROUTED_METHODS:
                self.record_route()
            self.route_destination(source, method, caller)
        except UnicodeDecodeError:
            self.route_undecodable()
        return 1

    def reply_route(self) -> int:
        """Core reply route: every reply goes on to tm (1) once a check-sync answer is kept
        and, from anyone but a trusted peer, its identity claims are removed."""
        source = record_answer()
        if source not in self.settings.trusted_peers:
            _remove_hf_re(self._reply_claim_headers_re[source in self.settings.relaying_peers])
        return 1

    # -- request hygiene and flood defence -------------------------------------------

    def route_reqinit(self, source: str, method: str, user_agent: str) -> bool:
        """Flood, method, scanner and sanity checks; True when the request is done.

        The ban table has already been checked (request_route reads it with the source).
        """
        if source not in self._flood_exempt and _pike_check_req() < 0:
            self.ban(source, "request flood")
            return True
        if method not in KNOWN_METHODS and METHOD_TOKEN.fullmatch(method) is None:
            _sl_send_reply(400, "Bad Method")
            return True
        scanner = self._scanner_verdicts.get(user_agent)
        if scanner is None:
            scanner = self.judge_user_agent(user_agent)
        if scanner:
            self.ban(source, "scanner user agent", scanner=True)
            return True
        # sanity_check_defaults() answers a malformed request itself.
        return _sanity_check() < 0

    def route_undecodable(self) -> None:
        """A request with a value that is not UTF-8: counted as traffic, then refused."""
        facts = _pv_get(SOURCE_FACTS)
        if facts is None:
            return
        source, banned = facts.split(FACT_SEPARATOR, 1)
        if banned != PV_NULL:
            return
        if source not in self._flood_exempt and _pike_check_req() < 0:
            self.ban(source, "request flood")
            return
        _sl_send_reply(400, "Bad Encoding")

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

    def ban(self, source: str, reason: str, scanner: bool = False) -> None:
        """Ban ``source`` unless it is a peer or the ban limits are reached.

        Anyone can put a peer's address on a UDP packet: a scanner User-Agent or wrong
        credentials "from" the carrier must not cut the carrier off. The request itself is
        dropped by the caller either way; the limits only stop it from being remembered.
        """
        if source in self._never_banned:
            return
        if scanner and not self.within_ban_limit(
            HTABLE_SCANNER_BANS, SCANNER_BANS_KEY, self.settings.scanner_ban_limit
        ):
            return
        if not self.within_ban_limit(HTABLE_BANS, BANS_KEY, self.settings.ban_table_limit):
            return
        KSR.htable.sht_seti(HTABLE_BANNED, source, 1)
        KSR.err(f"sipwave: banning {source}: {reason}\n")

    def within_ban_limit(self, table: str, key: str, limit: int) -> bool:
        """Count one more ban in ``table``'s current window; False past ``limit``."""
        count = KSR.htable.sht_inc(table, key)
        if count <= limit:
            return True
        if count == limit + 1:
            KSR.err(f"sipwave: ban limit {limit} of {table} reached, dropping without bans\n")
        return False

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

    def route_within_dialog(self, source: str, method: str) -> bool:
        if KSR.siputils.has_totag() < 0:
            # An ACK without a To tag acknowledges nothing: no transaction and no dialog.
            return method == "ACK"
        if KSR.rr.loose_route() > 0:
            if self.route_set_followed(source):
                self.record_call_end(source, method)
                self.relay()
            elif method != "ACK":
                _sl_send_reply(403, "Route Not Followed")
        elif method == "ACK":
            if KSR.tm.t_check_trans() > 0:
                self.relay()
        else:
            KSR.sl.sl_send_reply(404, "Not Here")
        return True

    def route_set_followed(self, source: str) -> bool:
        """Whether loose_route() followed this proxy's own Record-Route, and only it, from one
        end of the dialog towards its other end.

        Only the Route this proxy put there may be followed, whoever sends the request (a
        trusted peer's address is easily forged over UDP): the top Route must be this proxy
        with a dialog token (dialogs.py) that names ``source`` as one end of the dialog of
        the request's Call-ID and the next hop (a further Route, else the request URI) as
        the other end; a peer may stand for an end recorded at a peer's address. Without it,
        anyone who once saw a token, or who forges a carrier's address, could have any
        request URI reached from the proxy's address.
        """
        if not self._routed_by_myself():
            return False
        facts = _pv_get(DIALOG_FACTS)
        if facts is None:
            return False
        route_uri, call_id, further, request_host = facts.split(FACT_SEPARATOR, 3)
        next_hop = normalise_host(request_host if further == PV_NULL else uri_host(further))
        return follows(
            self._dialog_key,
            call_id,
            route_uri,
            normalise_host(source),
            next_hop,
            peers=self._dialog_peers,
            now=time.time(),
            lifetime=self.settings.dialog_lifetime,
        )

    def record_route(self) -> None:
        """Record-Route each branch of this request (branch_route_dialog)."""
        KSR.tm.t_on_branch(DIALOG_BRANCH_ROUTE)

    def branch_route_dialog(self) -> int:
        self.record_route_branch()
        return 1

    def record_route_branch(self) -> None:
        """Record-Route this branch with the token of its dialog's two ends (dialogs.py)."""
        facts = _pv_get(BRANCH_FACTS)
        if facts is None:  # more than pv's buffer holds (a long Call-ID): one value at a time
            values = [_pv_get(name) or "" for name in BRANCH_FACT_NAMES]
        else:
            values = ["" if v == PV_NULL else v for v in facts.split(FACT_SEPARATOR, 3)]
        source, call_id, destination, request_uri = values
        callee = uri_host(destination or request_uri)
        value = token(
            self._dialog_key, call_id, normalise_host(source), normalise_host(callee), time.time()
        )
        KSR.rr.record_route_params(f";{ROUTE_PARAM}={value}")

    @staticmethod
    def _routed_by_myself() -> bool:
        # rr's check_route_param() only answers for a Route this proxy removed as its own:
        # every Record-Route of this proxy carries ";lr".
        return KSR.rr.check_route_param("lr") > 0

    # -- registrar and authentication ---------------------------------------------------

    def route_registrar(self, source: str, realm: str) -> None:
        """``realm`` is the lower-cased To domain."""
        if realm not in self.settings.domains:
            _sl_send_reply(403, "Domain Not Served")
            return
        if realm in self._migration_domains and self.route_identity("$tU", realm, "REGISTER"):
            return
        if not self.check_credentials(source, realm, "$tU"):
            return
        if self.contacts_refused(_pv_get(CONTACTS)):
            _sl_send_reply(403, "Contact Not Allowed")
            return
        # The credentials stay on the request: the registrar answers it here and it is never
        # relayed, so consume_credentials() would strip them from nothing that leaves.
        if _save(USRLOC_TABLE, 0) < 0:
            KSR.sl.sl_reply_error()
        else:
            self.count_registration(realm)

    def contacts_refused(self, contacts: str | None) -> bool:
        """A contact at a peer or at this proxy would make it send calls there as if the
        peer had registered; Contact values too long to read are refused as well."""
        if contacts is None:
            # pv gives no value for Contact headers longer than its buffer, too.
            return KSR.hdr.is_present("Contact") > 0
        # A phone registers the same Contact again and again: the verdict is remembered,
        # bounded like the scanner verdicts.
        refused = self._contact_verdicts.get(contacts)
        if refused is None:
            refused = self.judge_contacts(contacts)
            if len(contacts) <= CONTACT_VERDICT_LENGTH_MAX:
                if len(self._contact_verdicts) >= CONTACT_VERDICTS_MAX:
                    self._contact_verdicts.clear()
                self._contact_verdicts[contacts] = refused
        return refused

    def judge_contacts(self, contacts: str) -> bool:
        refused = self._contact_hosts_refused
        for match in CONTACT_URI.finditer(contacts):
            for host in match[1].split("@"):
                if normalise_host(host_of(host)) in refused:
                    return True
        return False

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
        # Not authenticated here, so nothing it claims about its identity is asserted (a
        # REGISTER has not been through route_strip_claims).
        if method == "REGISTER":
            _remove_hf_re(CLAIM_HEADERS_RE)
        if method in RECORD_ROUTED_METHODS:
            self.record_route()
        # The legacy platform checks the password: its refusals count as the proxy's own.
        KSR.tm.t_on_failure(LEGACY_FAILURE_ROUTE)
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
        if not self.check_credentials(source, realm, "$fU"):
            return True
        if method != "ACK":
            _consume_credentials()
        return False

    def check_credentials(self, source: str, realm: str, user_variable: str) -> bool:
        """Digest check against the HA1 in the subscriber table; challenges on failure.

        ``user_variable`` holds the user whose identity the credentials must prove ($tU for
        a REGISTER, $fU otherwise).
        """
        result = _auth_check(realm, SUBSCRIBER_TABLE, AUTH_CHECK_USER_MATCH)
        if result > 0:
            return True
        # The guess that reaches the limit is still answered, as the legacy platform's
        # answer to it is (failure_route_legacy): the ban takes the next one.
        if result in AUTH_FAILURES:
            user = KSR.pv.get(user_variable) or ""
            self.count_auth_failure(source, f"{user}@{realm}")
        _auth_challenge(realm, 0)
        return False

    def count_auth_failure(self, source: str, identity: str) -> None:
        """Count wrong credentials per source and per identity; ban past the limit."""
        # A relaying proxy speaks for many phones: one phone's wrong password must not ban it.
        if source in self.settings.relaying_peers:
            return
        limit = self.settings.auth_failure_limit
        failures = KSR.htable.sht_inc(HTABLE_AUTH_FAILURES, source)
        guessed = KSR.htable.sht_inc(HTABLE_AUTH_FAILURES, IDENTITY_FAILURE_KEY + identity)
        if failures >= limit or guessed >= limit:
            self.ban(source, f"{failures} failed authentications, {guessed} for one identity")

    def failure_route_legacy(self) -> int:
        """tm failure route of requests relayed to the legacy platform unchallenged.

        A 401/403/407 to a request that carried credentials is a wrong password there, and
        counts like one here; a challenge to a request without credentials is not a failure.
        """
        try:
            facts = _pv_get(LEGACY_FAILURE_FACTS)
            if facts is None:
                return 1
            code, source, method, authorization, proxy_authorization = facts.split(
                FACT_SEPARATOR, 4
            )
            if code not in LEGACY_AUTH_FAILURES or authorization == proxy_authorization == "0":
                return 1
            if self.legacy_challenge_is_stale(code):
                return 1
            user, domain = ("$tU", "$td") if method == "REGISTER" else ("$fU", "$fd")
            identity = KSR.pv.get(f"$_s({user}@{domain})") or ""
            self.count_auth_failure(source, identity.lower())
        except UnicodeDecodeError:
            pass
        return 1

    @staticmethod
    def legacy_challenge_is_stale(code: str) -> bool:
        """A new challenge because the nonce expired (stale=true) is no wrong password."""
        if code == "403":
            return False
        header = "WWW-Authenticate" if code == "401" else "Proxy-Authenticate"
        challenge = KSR.pv.get(f"$T_rpl($hdr({header}))") or ""
        return "stale=true" in challenge.lower()

    # -- destination ---------------------------------------------------------------------

    def route_destination(self, source: str, method: str, caller: str | None = None) -> None:
        """``caller`` is the identity whose credentials an INVITE carried (None otherwise)."""
        called = KSR.pv.get("$rU") or ""
        route = self.settings.route_for(called) if called else None
        if route is not None:
            if called in self.settings.dialin_numbers and not self.route_dialin_caller(source):
                return
            self.relay_to(route.destination)
            return
        if (
            self.settings.forwarding_destination
            and method == "INVITE"
            and self.route_forwarded(called)
        ):
            return
        if source in self.settings.carriers:
            self.route_from_carrier(source, called, method)
            return
        domain = (KSR.pv.get("$rd") or "").lower()
        if domain not in self.settings.domains:
            KSR.sl.sl_send_reply(403, "Relaying Forbidden")
            return
        if called and not self.route_to_served_account(source, called, domain, method, caller):
            return
        if KSR.registrar.lookup(USRLOC_TABLE) < 0:
            self.route_unregistered()
            return
        self.relay()

    def route_to_served_account(
        self, source: str, called: str, domain: str, method: str, caller: str | None
    ) -> bool:
        """Point the request at the account served here; False when it went elsewhere."""
        identity = f"{called}@{domain}"
        if KSR.htable.sht_get(HTABLE_ROUTING, IDENTITY_KEY + identity) is not None:
            return True
        number = normalise_or_none(called, self.settings.number_plan)
        if number is not None:
            digits = number.lstrip("+")
            account = KSR.htable.sht_get(HTABLE_ROUTING, NUMBER_KEY + digits)
            if account is not None:
                if method == "INVITE":
                    self.note_called_account(account, number, caller)
                if account != identity:
                    KSR.pv.sets("$ru", "sip:" + account)
                return True
            closed = KSR.htable.sht_get(HTABLE_ROUTING, CLOSED_NUMBER_KEY + digits)
            if closed in CLOSED_NUMBER_REPLIES:
                KSR.sl.sl_send_reply(*CLOSED_NUMBER_REPLIES[closed])
                return False
            # A number of the public network: the carriers of its prefix, if any.
            if method == "INVITE" and self.route_to_carrier(number, caller):
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

    def route_forwarded(self, called: str) -> bool:
        """Legacy platform: a call to a number that moved on in the parallel run goes to the
        account's temporary number (f: entry), marked as forwarded from the old number."""
        number = normalise_or_none(called, self.settings.number_plan)
        if number is None:
            return False
        domain = (KSR.pv.get("$rd") or "").lower()
        if domain not in self.settings.domains:
            return False  # refused as relaying by route_destination
        target = KSR.htable.sht_get(HTABLE_ROUTING, FORWARDING_KEY + number.lstrip("+"))
        if not target:
            return False
        KSR.textops.remove_hf("Diversion")
        KSR.hdr.append(f"Diversion: <sip:{number}@{domain}>;reason=unconditional\r\n")
        KSR.pv.sets("$rU", target)
        self.relay_to(self.settings.forwarding_destination)
        return True

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
        """Only trusted peers may send identity headers and the headers the PBX believes."""
        if source not in self.settings.trusted_peers:
            _remove_hf_re(self._claim_headers_re[source in self.settings.relaying_peers])

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

    def relay(self) -> None:
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()


def host_of(hostport: str) -> str:
    """The host of ``host[:port]`` or ``[v6]:port``."""
    if hostport.startswith("["):
        return hostport[1:].split("]", 1)[0]
    return hostport if hostport.count(":") > 1 else hostport.split(":", 1)[0]


def normalise_host(host: str) -> str:
    """One spelling per address: Kamailio reads 127.0.020.21 as 127.0.20.21, for instance,
    and keeps an IPv6 request URI's host in brackets ($rd is "[::1]")."""
    host = host.lower().rstrip(".")
    if host[:1] == "[" and host[-1:] == "]":
        host = host[1:-1]
    # Only a dotted quad with a leading zero is spelt differently from the canonical form.
    if (host[:1] == "0" or ".0" in host) and host.replace(".", "").isdigit():
        parts = host.split(".")
        if len(parts) == 4:
            return ".".join(str(int(p)) for p in parts)
    if ":" in host:
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            return host
    return host
